//! Convenience constructors on [`Graph`]: one method per op, so model code and `vjp` bodies read
//! like maths (`g.mul(grad, out)?`). The elementwise functions' methods (`g.exp(x)?`) come from
//! their declarations in [`crate::functions`].
use crate::ops::*;
use crate::{DType, Graph, NodeId, Result, Shape, Tensor, TensorType};

impl Graph {
    /// `c != 0 ? a : b`
    pub fn select(&mut self, c: NodeId, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.apply(Select, &[c, a, b])
    }
    /// `x`, through which no gradient flows (`tf.stop_gradient`, PyTorch's `detach`).
    pub fn stop_gradient(&mut self, x: NodeId) -> Result<NodeId> {
        self.apply(StopGradient, &[x])
    }
    /// `x`, once `deps` have been computed (an ordering edge; see [`After`]).
    pub fn after(&mut self, x: NodeId, deps: &[NodeId]) -> Result<NodeId> {
        let mut ops = vec![x];
        ops.extend_from_slice(deps);
        self.apply(After, &ops)
    }
    /// `a b`
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.apply(MatMul::new(false, false), &[a, b])
    }
    /// `op(a) op(b)` with transpose flags.
    pub fn matmul_t(
        &mut self,
        a: NodeId,
        b: NodeId,
        transpose_a: bool,
        transpose_b: bool,
    ) -> Result<NodeId> {
        self.apply(MatMul::new(transpose_a, transpose_b), &[a, b])
    }
    pub fn reshape(&mut self, x: NodeId, shape: impl Into<Shape>) -> Result<NodeId> {
        let shape = shape.into();
        if self.ty(x).shape == shape {
            return Ok(x);
        }
        self.apply(Reshape { shape }, &[x])
    }
    pub fn transpose(&mut self, x: NodeId, perm: &[usize]) -> Result<NodeId> {
        self.apply(Transpose { perm: perm.into() }, &[x])
    }
    pub fn slice(&mut self, x: NodeId, axis: usize, start: usize, end: usize) -> Result<NodeId> {
        self.apply(Slice { axis, start, end }, &[x])
    }
    pub fn pad(&mut self, x: NodeId, axis: usize, start: usize, total: usize) -> Result<NodeId> {
        self.apply(Pad { axis, start, total }, &[x])
    }
    pub fn concat(&mut self, xs: &[NodeId], axis: usize) -> Result<NodeId> {
        if xs.len() == 1 {
            return Ok(xs[0]);
        }
        self.apply(Concat { axis }, xs)
    }
    /// Broadcasts to `shape` (no node when the shape already matches).
    pub fn broadcast_to(&mut self, x: NodeId, shape: &Shape) -> Result<NodeId> {
        if &self.ty(x).shape == shape {
            return Ok(x);
        }
        self.apply(
            BroadcastTo {
                shape: shape.clone(),
            },
            &[x],
        )
    }
    /// Sums broadcast axes away down to `shape` (no node when the shape already matches).
    pub fn sum_to(&mut self, x: NodeId, shape: &Shape) -> Result<NodeId> {
        if &self.ty(x).shape == shape {
            return Ok(x);
        }
        self.apply(
            SumTo {
                shape: shape.clone(),
            },
            &[x],
        )
    }
    pub fn sum(&mut self, x: NodeId, axes: &[usize], keepdims: bool) -> Result<NodeId> {
        self.apply(
            Reduce {
                kind: ReduceKind::Sum,
                axes: axes.into(),
                keepdims,
            },
            &[x],
        )
    }
    pub fn mean(&mut self, x: NodeId, axes: &[usize], keepdims: bool) -> Result<NodeId> {
        self.apply(
            Reduce {
                kind: ReduceKind::Mean,
                axes: axes.into(),
                keepdims,
            },
            &[x],
        )
    }
    /// The largest element along `axes` (PyTorch's `amax`, Keras's `reduce_max`): NaN if any
    /// is NaN; the gradient is shared evenly by the elements equal to the maximum.
    pub fn max(&mut self, x: NodeId, axes: &[usize], keepdims: bool) -> Result<NodeId> {
        self.apply(
            Reduce {
                kind: ReduceKind::Max,
                axes: axes.into(),
                keepdims,
            },
            &[x],
        )
    }
    /// The smallest element along `axes` (`amin`, `reduce_min`), as [`Graph::max`].
    pub fn min(&mut self, x: NodeId, axes: &[usize], keepdims: bool) -> Result<NodeId> {
        self.apply(
            Reduce {
                kind: ReduceKind::Min,
                axes: axes.into(),
                keepdims,
            },
            &[x],
        )
    }
    /// Sum of all elements, a scalar.
    pub fn sum_all(&mut self, x: NodeId) -> Result<NodeId> {
        let axes: Vec<usize> = (0..self.ty(x).rank()).collect();
        self.sum(x, &axes, false)
    }
    /// Mean of all elements, a scalar.
    pub fn mean_all(&mut self, x: NodeId) -> Result<NodeId> {
        let axes: Vec<usize> = (0..self.ty(x).rank()).collect();
        self.mean(x, &axes, false)
    }
    /// Rows of `table` picked by i64 `ids`.
    pub fn gather(&mut self, table: NodeId, ids: NodeId) -> Result<NodeId> {
        self.apply(Gather, &[table, ids])
    }
    pub fn scatter_add(&mut self, ids: NodeId, src: NodeId, rows: usize) -> Result<NodeId> {
        self.apply(ScatterAdd { rows }, &[ids, src])
    }
    pub fn cast(&mut self, x: NodeId, dtype: DType) -> Result<NodeId> {
        if self.ty(x).dtype == dtype {
            return Ok(x);
        }
        self.apply(Cast { dtype }, &[x])
    }
    /// A tensor of type `ty` filled with `value` (an error when `ty` is an impossible size).
    pub fn fill(&mut self, ty: TensorType, value: f64) -> Result<NodeId> {
        self.apply(Fill { ty, value }, &[])
    }
    /// A scalar constant of `dtype`.
    pub fn scalar(&mut self, value: f64, dtype: DType) -> NodeId {
        self.constant(Tensor::from_f64(dtype, Shape::scalar(), vec![value]))
    }
    /// A scalar constant with the dtype of `like`.
    pub fn scalar_like(&mut self, like: NodeId, value: f64) -> Result<NodeId> {
        let dt = self.ty(like).dtype;
        Ok(self.scalar(value, dt))
    }
}
