//! `stop_gradient(x)`: `x` itself, through which no gradient flows (`tf.stop_gradient`,
//! PyTorch's `detach`). A value that shifts a computation without changing its result (the row
//! maximum a softmax subtracts) is taken through it, so the backward graph skips a derivative
//! that cancels. The JIT lowers it as a view of `x`: no step, no copy.
use crate::op::expect_arity;
use crate::{Graph, IrError, NodeId, Op, Result, Tensor, TensorType};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StopGradient;

impl Op for StopGradient {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "stop_gradient"
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::View
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("stop_gradient", inputs.len(), 1)?;
        Ok(inputs[0].clone())
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        inputs
            .first()
            .map(|t| (*t).clone())
            .ok_or_else(|| IrError::Invalid("stop_gradient: no operand".into()))
    }
    // No gradient reaches the operand.
    fn vjp(
        &self,
        _: &mut Graph,
        _: &[NodeId],
        _: NodeId,
        _: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![None])
    }
}
