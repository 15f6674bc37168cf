//! Sum and mean along axes (all axes gives a scalar).
use super::layout::offsets;
use crate::op::expect_arity;
use crate::{Graph, IrError, NodeId, Op, Result, Shape, Tensor, TensorType};
use smallvec::SmallVec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    Sum,
    Mean,
}

/// Reduces `axes` (sorted, distinct); `keepdims` keeps them as length 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reduce {
    pub kind: ReduceKind,
    pub axes: SmallVec<[usize; 4]>,
    pub keepdims: bool,
}

impl Reduce {
    fn shape_kept(&self, x: &Shape) -> Shape {
        Shape(
            x.0.iter()
                .enumerate()
                .map(|(i, &d)| if self.axes.contains(&i) { 1 } else { d })
                .collect(),
        )
    }
    fn count(&self, x: &Shape) -> usize {
        self.axes.iter().map(|&a| x.0[a]).product()
    }
}

impl Op for Reduce {
    crate::structural_identity!();
    fn name(&self) -> &str {
        match self.kind {
            ReduceKind::Sum => "sum",
            ReduceKind::Mean => "mean",
        }
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::Reduction
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity(self.name(), inputs.len(), 1)?;
        let x = inputs[0];
        if !x.dtype.is_float() {
            return Err(IrError::shape(
                self.name(),
                inputs,
                format!("needs a float input, got {}", x.dtype),
            ));
        }
        if self.axes.iter().any(|&a| a >= x.rank()) || self.axes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(IrError::shape(
                self.name(),
                inputs,
                format!(
                    "axes {:?} must be sorted, distinct and below rank {}",
                    self.axes.as_slice(),
                    x.rank()
                ),
            ));
        }
        let shape = if self.keepdims {
            self.shape_kept(&x.shape)
        } else {
            Shape(
                x.dims()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !self.axes.contains(i))
                    .map(|(_, &d)| d)
                    .collect(),
            )
        };
        Ok(TensorType {
            shape,
            dtype: x.dtype,
        })
    }
    /// `y = sum_axes x` (divided by the reduced count for the mean).
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = inputs[0];
        let ty = self.infer(&[&x.ty()])?;
        let kept = self.shape_kept(x.shape());
        let ks = kept.strides();
        let strides: Vec<usize> = (0..x.dims().len())
            .map(|i| if self.axes.contains(&i) { 0 } else { ks[i] })
            .collect();
        let mut out = vec![0.0; ty.numel()];
        for (o, v) in offsets(x.dims(), &strides).into_iter().zip(x.to_f64_vec()) {
            out[o] += v;
        }
        if self.kind == ReduceKind::Mean {
            let n = self.count(x.shape()) as f64;
            out.iter_mut().for_each(|v| *v /= n);
        }
        Ok(Tensor::from_f64(ty.dtype, ty.shape, out))
    }
    // d sum(x) = broadcast(dy); d mean(x) = broadcast(dy) / count
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let xs = g.ty(inputs[0]).shape.clone();
        let kept = g.reshape(grad, self.shape_kept(&xs))?;
        let mut d = g.broadcast_to(kept, &xs)?;
        if self.kind == ReduceKind::Mean {
            let inv = g.scalar_like(d, 1.0 / self.count(&xs) as f64)?;
            d = g.mul(d, inv)?;
        }
        Ok(vec![Some(d)])
    }
}
