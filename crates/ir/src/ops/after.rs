//! `after(x, deps..)`: `x` itself, but only once `deps` exist. An ordering edge in a dataflow
//! graph: recomputation (autodiff's `recompute`) starts a segment's copy of the forward from
//! `after(checkpoint, gradient entering the segment)`, so the copy is scheduled when the
//! backward reaches the segment, and is a value of its own (CSE cannot merge it back into the
//! forward it copies). The JIT lowers it as a view of `x`: no step, no copy.
use crate::op::expect_arity;
use crate::{Graph, IrError, NodeId, Op, Result, Tensor, TensorType};

/// Operand 0 is the value; the others are only waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct After;

impl Op for After {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "after"
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::View
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        if inputs.len() < 2 {
            expect_arity("after", inputs.len(), 2)?;
        }
        Ok(inputs[0].clone())
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        inputs
            .first()
            .map(|t| (*t).clone())
            .ok_or_else(|| IrError::Invalid("after: no operand".into()))
    }
    // The value passes through; the dependencies carry no gradient.
    fn vjp(
        &self,
        _: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let mut d = vec![None; inputs.len()];
        d[0] = Some(grad);
        Ok(d)
    }
}
