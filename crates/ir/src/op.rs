//! The op contract: one trait, implemented once per op, that every part of trellis reads.
use crate::{Graph, IrError, NodeId, Result, ScalarFn, Tensor, TensorType};
use std::any::Any;
use std::fmt::Debug;

/// Lets passes and the JIT recognise a concrete op (`op.as_any().downcast_ref::<MatMul>()`)
/// without each op writing the method.
pub trait AsAny {
    fn as_any(&self) -> &dyn Any;
}
impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An operation of the graph.
///
/// * `infer`: output type from input types (shape inference), with an [`IrError`] naming the op
///   and shapes when they do not fit.
/// * `eval`: reference semantics on concrete tensors (the interpreter; the JIT's ground truth).
/// * `vjp`: builds, as ordinary graph nodes, the gradient of each input given the output's
///   gradient `grad` (`None` where no gradient flows, e.g. token ids).
/// * `scalar`: for elementwise ops, the per-element expression; fusion and the JIT use it.
///
/// The `Debug` form of an op is its identity for common-subexpression elimination: two nodes
/// with equal `Debug` strings and equal inputs compute the same value.
pub trait Op: Debug + Send + Sync + AsAny {
    fn name(&self) -> &str;
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType>;
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor>;
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        out: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>>;
    fn scalar(&self) -> Option<ScalarFn> {
        None
    }
    /// Whether [`Op::scalar`] is `Some`, without building the expression (passes ask this of
    /// every node). Elementwise ops override both.
    fn is_elementwise(&self) -> bool {
        false
    }
}

/// Checks an op's input count.
pub fn expect_arity(op: &str, inputs: usize, expected: usize) -> Result<()> {
    if inputs != expected {
        return Err(IrError::Arity {
            op: op.to_string(),
            expected,
            got: inputs,
        });
    }
    Ok(())
}
