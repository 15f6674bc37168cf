//! Conversion between dtypes.
use crate::op::expect_arity;
use crate::{DType, Graph, NodeId, Op, Result, Tensor, TensorType};

/// Converts elements to `dtype` (floats round, i64 <-> float convert by value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cast {
    pub dtype: DType,
}

impl Op for Cast {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "cast"
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("cast", inputs.len(), 1)?;
        Ok(TensorType {
            shape: inputs[0].shape.clone(),
            dtype: self.dtype,
        })
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        Ok(inputs[0].cast(self.dtype))
    }
    // d cast(x) = cast(dy, dtype(x)) between floats; none into integers
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let dt = g.ty(inputs[0]).dtype;
        Ok(vec![if dt.is_float() {
            Some(g.cast(grad, dt)?)
        } else {
            None
        }])
    }
}
