//! Sum, mean, maximum and minimum along axes (all axes gives a scalar).
use super::layout::offsets;
use crate::op::expect_arity;
use crate::{Graph, IrError, NodeId, Op, Result, Shape, Tensor, TensorType};
use smallvec::SmallVec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    Sum,
    Mean,
    /// The largest element (NaN if any is; `+0 > -0`), PyTorch's `amax`: the gradient is
    /// shared evenly by the elements equal to it.
    Max,
    /// The smallest element (`amin`), likewise.
    Min,
}

impl ReduceKind {
    /// Whether the kind picks an element (`Max`, `Min`) rather than summing.
    pub fn selects(self) -> bool {
        matches!(self, ReduceKind::Max | ReduceKind::Min)
    }
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
            ReduceKind::Max => "max",
            ReduceKind::Min => "min",
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
        if self.kind.selects() && self.axes.iter().any(|&a| x.dims()[a] == 0) {
            return Err(IrError::shape(
                self.name(),
                inputs,
                "an empty axis has no maximum or minimum".to_string(),
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
    /// `y = sum_axes x` (divided by the reduced count for the mean), or its maximum or
    /// minimum (IEEE 754-2019 `maximum` / `minimum`, as the elementwise ops).
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = inputs[0];
        let ty = self.infer(&[&x.ty()])?;
        let kept = self.shape_kept(x.shape());
        let ks = kept.strides();
        let strides: Vec<usize> = (0..x.dims().len())
            .map(|i| if self.axes.contains(&i) { 0 } else { ks[i] })
            .collect();
        let (init, fold): (f64, fn(f64, f64) -> f64) = match self.kind {
            ReduceKind::Sum | ReduceKind::Mean => (0.0, |a, b| a + b),
            ReduceKind::Max => (f64::NEG_INFINITY, crate::functions::maximum),
            ReduceKind::Min => (f64::INFINITY, crate::functions::minimum),
        };
        let mut out = vec![init; ty.numel()];
        for (o, v) in offsets(x.dims(), &strides).into_iter().zip(x.to_f64_vec()) {
            out[o] = fold(out[o], v);
        }
        if self.kind == ReduceKind::Mean {
            let n = self.count(x.shape()) as f64;
            out.iter_mut().for_each(|v| *v /= n);
        }
        Ok(Tensor::from_f64(ty.dtype, ty.shape, out))
    }
    // d sum(x) = broadcast(dy); d mean(x) = broadcast(dy) / count;
    // d max(x) = broadcast(dy) [x == y] / (number of elements equal to y), as amax's
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        y: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let xs = g.ty(inputs[0]).shape.clone();
        let kept = g.reshape(grad, self.shape_kept(&xs))?;
        let mut d = g.broadcast_to(kept, &xs)?;
        match self.kind {
            ReduceKind::Sum => {}
            ReduceKind::Mean => {
                let inv = g.scalar_like(d, 1.0 / self.count(&xs) as f64)?;
                d = g.mul(d, inv)?;
            }
            ReduceKind::Max | ReduceKind::Min => {
                let y = g.reshape(y, self.shape_kept(&xs))?;
                let hit = g.equal(inputs[0], y)?;
                let ties = g.sum(hit, &self.axes, true)?;
                let share = g.div(hit, ties)?;
                d = g.mul(d, share)?;
            }
        }
        Ok(vec![Some(d)])
    }
}
