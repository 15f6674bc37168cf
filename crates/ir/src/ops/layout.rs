//! Ops that move data without arithmetic: reshape, transpose, slice / pad, concat, and
//! broadcast-to with its reduction sum-to.
use crate::op::expect_arity;
use crate::{
    broadcast_shapes, broadcast_strides, Graph, IrError, NodeId, Op, Result, Shape, Tensor,
    TensorType,
};
use smallvec::SmallVec;

/// For each element of a tensor of shape `dims` (row-major), the offset `sum_d idx[d]*strides[d]`.
pub(crate) fn offsets(dims: &[usize], strides: &[usize]) -> Vec<usize> {
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; dims.len()];
    let mut off = 0usize;
    for _ in 0..n {
        out.push(off);
        for d in (0..dims.len()).rev() {
            idx[d] += 1;
            off += strides[d];
            if idx[d] < dims[d] {
                break;
            }
            off -= strides[d] * dims[d];
            idx[d] = 0;
        }
    }
    out
}

/// Gathers `src[offsets[i]]` into a tensor of type `ty`.
fn take(src: &Tensor, offs: &[usize], ty: &TensorType) -> Tensor {
    let v = src.to_f64_vec();
    Tensor::from_f64(
        ty.dtype,
        ty.shape.clone(),
        offs.iter().map(|&o| v[o]).collect(),
    )
}

fn check_axis(op: &str, inputs: &[&TensorType], axis: usize) -> Result<()> {
    if axis >= inputs[0].rank() {
        return Err(IrError::shape(
            op,
            inputs,
            format!("axis {axis} out of range for rank {}", inputs[0].rank()),
        ));
    }
    Ok(())
}

/// The same elements under a new shape of equal size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reshape {
    pub shape: Shape,
}

impl Op for Reshape {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "reshape"
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::View
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("reshape", inputs.len(), 1)?;
        if inputs[0].numel() != self.shape.numel() {
            return Err(IrError::shape(
                "reshape",
                inputs,
                format!("cannot reshape to {}: sizes differ", self.shape),
            ));
        }
        Ok(TensorType {
            shape: self.shape.clone(),
            dtype: inputs[0].dtype,
        })
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        inputs[0].clone().reshape(self.shape.clone())
    }
    // d reshape(x) = reshape(dy, shape(x))
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let s = g.ty(inputs[0]).shape.clone();
        Ok(vec![Some(g.reshape(grad, s)?)])
    }
}

/// Permutes axes: output axis `i` is input axis `perm[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transpose {
    pub perm: SmallVec<[usize; 4]>,
}

impl Op for Transpose {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "transpose"
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::View
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("transpose", inputs.len(), 1)?;
        let r = inputs[0].rank();
        let mut seen = vec![false; r];
        if self.perm.len() != r
            || self
                .perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return Err(IrError::shape(
                "transpose",
                inputs,
                format!(
                    "{:?} is not a permutation of {r} axes",
                    self.perm.as_slice()
                ),
            ));
        }
        let d = inputs[0].dims();
        Ok(TensorType::new(
            self.perm.iter().map(|&p| d[p]).collect::<Vec<_>>(),
            inputs[0].dtype,
        ))
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let ty = self.infer(&[&inputs[0].ty()])?;
        let s = inputs[0].shape().strides();
        let strides: Vec<usize> = self.perm.iter().map(|&p| s[p]).collect();
        Ok(take(inputs[0], &offsets(ty.dims(), &strides), &ty))
    }
    // d transpose(x, p) = transpose(dy, p^-1)
    fn vjp(
        &self,
        g: &mut Graph,
        _: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let mut inv = vec![0; self.perm.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            inv[p] = i;
        }
        Ok(vec![Some(g.transpose(grad, &inv)?)])
    }
}

/// `x[..., start..end, ...]` along `axis`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slice {
    pub axis: usize,
    pub start: usize,
    pub end: usize,
}

impl Op for Slice {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "slice"
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::View
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("slice", inputs.len(), 1)?;
        check_axis("slice", inputs, self.axis)?;
        let len = inputs[0].dims()[self.axis];
        if self.start > self.end || self.end > len {
            return Err(IrError::shape(
                "slice",
                inputs,
                format!(
                    "range {}..{} out of bounds for axis {} of length {len}",
                    self.start, self.end, self.axis
                ),
            ));
        }
        let mut d = inputs[0].shape.clone();
        d.0[self.axis] = self.end - self.start;
        Ok(TensorType {
            shape: d,
            dtype: inputs[0].dtype,
        })
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let ty = self.infer(&[&inputs[0].ty()])?;
        let s = inputs[0].shape().strides();
        let base = self.start * s[self.axis];
        let offs: Vec<usize> = offsets(ty.dims(), &s)
            .into_iter()
            .map(|o| o + base)
            .collect();
        Ok(take(inputs[0], &offs, &ty))
    }
    // d slice(x) = pad(dy) with zeros back to shape(x)
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let total = g.ty(inputs[0]).dims()[self.axis];
        Ok(vec![Some(g.pad(grad, self.axis, self.start, total)?)])
    }
}

/// Zero padding along `axis`: the input lands at `start..start+len` of a length-`total` axis.
/// The gradient of [`Slice`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pad {
    pub axis: usize,
    pub start: usize,
    pub total: usize,
}

impl Op for Pad {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "pad"
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("pad", inputs.len(), 1)?;
        check_axis("pad", inputs, self.axis)?;
        let len = inputs[0].dims()[self.axis];
        if self
            .start
            .checked_add(len)
            .is_none_or(|end| end > self.total)
        {
            return Err(IrError::shape(
                "pad",
                inputs,
                format!(
                    "{len} elements at {} overflow axis {} of length {}",
                    self.start, self.axis, self.total
                ),
            ));
        }
        let mut d = inputs[0].shape.clone();
        d.0[self.axis] = self.total;
        Ok(TensorType {
            shape: d,
            dtype: inputs[0].dtype,
        })
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let ty = self.infer(&[&inputs[0].ty()])?;
        let os = ty.shape.strides();
        let base = self.start * os[self.axis];
        let mut out = vec![0.0; ty.numel()];
        for (o, v) in offsets(inputs[0].dims(), &os)
            .into_iter()
            .zip(inputs[0].to_f64_vec())
        {
            out[o + base] = v;
        }
        Ok(Tensor::from_f64(ty.dtype, ty.shape, out))
    }
    // d pad(x) = slice(dy)
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let len = g.ty(inputs[0]).dims()[self.axis];
        Ok(vec![Some(g.slice(
            grad,
            self.axis,
            self.start,
            self.start + len,
        )?)])
    }
}

/// Joins its inputs along `axis`; other dimensions must agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Concat {
    pub axis: usize,
}

impl Op for Concat {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "concat"
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        if inputs.is_empty() {
            return Err(IrError::Arity {
                op: "concat".into(),
                expected: 1,
                got: 0,
            });
        }
        check_axis("concat", inputs, self.axis)?;
        let first = inputs[0];
        let mut total: usize = 0;
        for t in inputs {
            let same_rest = t.rank() == first.rank()
                && (0..t.rank()).all(|d| d == self.axis || t.dims()[d] == first.dims()[d]);
            if !same_rest || t.dtype != first.dtype {
                return Err(IrError::shape(
                    "concat",
                    inputs,
                    format!("inputs differ outside axis {}", self.axis),
                ));
            }
            total = usize::checked_add(total, t.dims()[self.axis])
                .ok_or_else(|| IrError::shape("concat", inputs, "the joined length overflows"))?;
        }
        let mut d = first.shape.clone();
        d.0[self.axis] = total;
        Ok(TensorType {
            shape: d,
            dtype: first.dtype,
        })
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let tys: Vec<TensorType> = inputs.iter().map(|t| t.ty()).collect();
        let ty = self.infer(&tys.iter().collect::<Vec<_>>())?;
        let os = ty.shape.strides();
        let mut out = vec![0.0; ty.numel()];
        let mut at = 0;
        for t in inputs {
            let base = at * os[self.axis];
            for (o, v) in offsets(t.dims(), &os).into_iter().zip(t.to_f64_vec()) {
                out[o + base] = v;
            }
            at += t.dims()[self.axis];
        }
        Ok(Tensor::from_f64(ty.dtype, ty.shape, out))
    }
    // d concat(x_1..x_n) = the matching slices of dy
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let mut at = 0;
        let mut grads = Vec::with_capacity(inputs.len());
        for &x in inputs {
            let len = g.ty(x).dims()[self.axis];
            grads.push(Some(g.slice(grad, self.axis, at, at + len)?));
            at += len;
        }
        Ok(grads)
    }
}

/// Broadcasts (numpy rules) to `shape`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BroadcastTo {
    pub shape: Shape,
}

impl Op for BroadcastTo {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "broadcast_to"
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::View
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("broadcast_to", inputs.len(), 1)?;
        if broadcast_shapes(&inputs[0].shape, &self.shape).as_ref() != Some(&self.shape) {
            return Err(IrError::shape(
                "broadcast_to",
                inputs,
                format!("cannot broadcast to {}", self.shape),
            ));
        }
        Ok(TensorType {
            shape: self.shape.clone(),
            dtype: inputs[0].dtype,
        })
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let ty = self.infer(&[&inputs[0].ty()])?;
        let strides = broadcast_strides(inputs[0].shape(), &self.shape);
        Ok(take(inputs[0], &offsets(self.shape.dims(), &strides), &ty))
    }
    // d broadcast_to(x) = sum_to(dy, shape(x))
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let s = g.ty(inputs[0]).shape.clone();
        Ok(vec![Some(g.sum_to(grad, &s)?)])
    }
}

/// Sums over the axes that broadcasting `shape` to the input's shape would expand: the
/// reduction that undoes [`BroadcastTo`] (and the gradient of every broadcasting op).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SumTo {
    pub shape: Shape,
}

impl Op for SumTo {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "sum_to"
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::Reduction
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("sum_to", inputs.len(), 1)?;
        if broadcast_shapes(&self.shape, &inputs[0].shape).as_ref() != Some(&inputs[0].shape) {
            return Err(IrError::shape(
                "sum_to",
                inputs,
                format!("{} does not broadcast to the input", self.shape),
            ));
        }
        Ok(TensorType {
            shape: self.shape.clone(),
            dtype: inputs[0].dtype,
        })
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let ty = self.infer(&[&inputs[0].ty()])?;
        let strides = broadcast_strides(&self.shape, inputs[0].shape());
        let mut out = vec![0.0; ty.numel()];
        for (o, v) in offsets(inputs[0].dims(), &strides)
            .into_iter()
            .zip(inputs[0].to_f64_vec())
        {
            out[o] += v;
        }
        Ok(Tensor::from_f64(ty.dtype, ty.shape, out))
    }
    // d sum_to(x) = broadcast_to(dy, shape(x))
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let s = g.ty(inputs[0]).shape.clone();
        Ok(vec![Some(g.broadcast_to(grad, &s)?)])
    }
}
