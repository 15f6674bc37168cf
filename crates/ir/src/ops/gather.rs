//! Row gather (embedding lookup) and its gradient, scatter-add.
use crate::op::expect_arity;
use crate::{DType, Graph, IrError, NodeId, Op, Result, Shape, Tensor, TensorType};

/// Checks every id against `rows` before any data moves; the error names the id, its position
/// (flat index into `ids`) and the table size.
pub fn check_ids(op: &str, ids: &[i64], rows: usize) -> Result<()> {
    match ids.iter().position(|&i| i < 0 || i as usize >= rows) {
        Some(p) => Err(IrError::IndexOutOfRange {
            op: op.into(),
            id: ids[p],
            position: p,
            vocab: rows,
        }),
        None => Ok(()),
    }
}

fn ids_of<'a>(op: &str, t: &'a Tensor) -> Result<&'a [i64]> {
    t.as_i64()
        .ok_or_else(|| IrError::Invalid(format!("{op}: ids must be i64, got {}", t.dtype())))
}

/// `out[p..., :] = table[ids[p...], :]`: table `[V, D...]`, ids i64 of any shape,
/// output `ids.shape ++ [D...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gather;

impl Op for Gather {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "gather"
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::Index
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("gather", inputs.len(), 2)?;
        let (table, ids) = (inputs[0], inputs[1]);
        if ids.dtype != DType::I64 || table.rank() == 0 || !table.dtype.is_float() {
            return Err(IrError::shape(
                "gather",
                inputs,
                format!(
                    "needs a float table of rank >= 1 and i64 ids, got {} and {}",
                    table.dtype, ids.dtype
                ),
            ));
        }
        let mut d = ids.shape.0.clone();
        d.extend_from_slice(&table.dims()[1..]);
        Ok(TensorType {
            shape: Shape(d),
            dtype: table.dtype,
        })
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let (table, ids) = (inputs[0], inputs[1]);
        let ty = self.infer(&[&table.ty(), &ids.ty()])?;
        let ids = ids_of("gather", ids)?;
        check_ids("gather", ids, table.dims()[0])?;
        let row = table.numel() / table.dims()[0];
        let t = table.to_f64_vec();
        let mut out = Vec::with_capacity(ty.numel());
        for &i in ids {
            out.extend_from_slice(&t[i as usize * row..(i as usize + 1) * row]);
        }
        Ok(Tensor::from_f64(ty.dtype, ty.shape, out))
    }
    // d gather(table, ids) = scatter_add(ids, dy) into zeros of shape(table); ids get none
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let rows = g.ty(inputs[0]).dims()[0];
        Ok(vec![Some(g.scatter_add(inputs[1], grad, rows)?), None])
    }
}

/// `out = zeros([rows, D...]); out[ids[p...], :] += src[p..., :]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScatterAdd {
    pub rows: usize,
}

impl Op for ScatterAdd {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "scatter_add"
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::Index
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("scatter_add", inputs.len(), 2)?;
        let (ids, src) = (inputs[0], inputs[1]);
        let r = ids.rank();
        if ids.dtype != DType::I64
            || !src.dtype.is_float()
            || src.rank() < r
            || src.dims()[..r] != *ids.dims()
        {
            return Err(IrError::shape(
                "scatter_add",
                inputs,
                "needs i64 ids and a float source whose shape starts with the ids' shape",
            ));
        }
        let mut d: smallvec::SmallVec<[usize; 4]> = smallvec::smallvec![self.rows];
        d.extend_from_slice(&src.dims()[r..]);
        Ok(TensorType {
            shape: Shape(d),
            dtype: src.dtype,
        })
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let ty = self.infer(&[&inputs[0].ty(), &inputs[1].ty()])?;
        let ids = ids_of("scatter_add", inputs[0])?;
        check_ids("scatter_add", ids, self.rows)?;
        let row = ty.numel() / self.rows.max(1);
        let src = inputs[1].to_f64_vec();
        let mut out = vec![0.0; ty.numel()];
        for (p, &i) in ids.iter().enumerate() {
            for k in 0..row {
                out[i as usize * row + k] += src[p * row + k];
            }
        }
        Ok(Tensor::from_f64(ty.dtype, ty.shape, out))
    }
    // d scatter_add(ids, src) = (none, gather(dy, ids))
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![None, Some(g.gather(grad, inputs[0])?)])
    }
}
