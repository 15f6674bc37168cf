//! The op contract: one trait, implemented once per op, that every part of trellis reads.
use crate::{Graph, IrError, NodeId, Result, ScalarFn, Tensor, TensorType};
use std::any::Any;
use std::fmt::{Debug, Write};
use std::hash::Hasher;

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

/// What kind of computation an op is, for passes and backends that treat every op of a kind
/// alike without knowing the op: which nodes are leaves, which only re-index an operand, which
/// are products. Where an op's fields matter (a slice's range, a product's transpose flags)
/// the reader still downcasts to the op ([`AsAny`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpClass {
    /// No operands: a value set from outside or fixed (`Input`, `Constant`, `Fill`).
    Leaf,
    /// Its first operand re-indexed, nothing computed: each output element is one operand
    /// element (`Reshape`, `Slice`, `BroadcastTo`, `Transpose`; `After`, whose further
    /// operands are only waited for). Values are kept, so e.g.
    /// ids stay ids; a backend may read the operand's memory in place.
    View,
    /// Element by element, from its scalar form ([`Op::scalar`]).
    Elementwise,
    /// Sums of products over a shared axis (`MatMul`).
    Contraction,
    /// Sums or means over axes (`Reduce`, `SumTo`).
    Reduction,
    /// Rows addressed by integer ids (`Gather`, `ScatterAdd`).
    Index,
    /// Anything else: `Pad`, `Concat`, `Cast`, outside ops without a scalar form.
    Other,
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
/// An op's identity for common-subexpression elimination is [`Op::identity_hash`] and
/// [`Op::same_as`]: two nodes with the same op and equal inputs compute the same value. By
/// default that is the `Debug` form; ops whose fields are `Hash + Eq` compare the fields
/// instead ([`structural_identity!`]), which is what keeps CSE cheap on millions of nodes.
pub trait Op: Debug + Send + Sync + AsAny {
    fn name(&self) -> &str;
    /// The output type. Default, for an op with a scalar form (an outside elementwise op
    /// needs only `name`, `scalar` and `vjp`): its inputs broadcast together
    /// and share one float dtype; without a scalar form, an error saying to implement it.
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        crate::ops::elementwise::infer_from_scalar(self.name(), self.scalar(), inputs)
    }
    /// The reference value. Default: the scalar form per element, in f64, rounded once.
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        crate::ops::elementwise::eval_with(self, inputs)
    }
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
    /// The op's kind ([`OpClass`]). Default: elementwise when it has a scalar form, else
    /// other; the built-in leaves, views, products, reductions and index ops say theirs.
    fn class(&self) -> OpClass {
        if self.is_elementwise() {
            OpClass::Elementwise
        } else {
            OpClass::Other
        }
    }
    /// Whether [`Op::scalar`] is `Some`. Passes ask this of every node, so the built-in
    /// elementwise ops answer without building the expression; the default asks `scalar`
    /// (free for ops without one), so an op with a scalar form can never be taken for opaque.
    fn is_elementwise(&self) -> bool {
        self.scalar().is_some()
    }
    /// How many range-reduced polynomials the op's scalar form chains
    /// ([`ScalarFn::transcendental_depth`]), for fusion's cut rule. Ops whose scalar form is
    /// one table function override it to skip building the expression.
    fn transcendental_depth(&self) -> usize {
        self.scalar().map_or(0, |e| e.transcendental_depth())
    }
    /// Feeds the op's identity to `h`: equal ops (see [`Op::same_as`]) must hash equally.
    fn identity_hash(&self, h: &mut dyn Hasher) {
        struct W<'a>(&'a mut dyn Hasher);
        impl std::fmt::Write for W<'_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0.write(s.as_bytes());
                Ok(())
            }
        }
        let _ = write!(W(h), "{self:?}");
    }
    /// Whether `other` is the same op (same computation on the same inputs): by default,
    /// equal `Debug` forms.
    fn same_as(&self, other: &dyn Op) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

/// In an `impl Op` of a type that is `Hash + Eq` (and whose `Debug` form shows exactly its
/// fields): the op's CSE identity is its type and field values, not its formatted text.
#[macro_export]
macro_rules! structural_identity {
    () => {
        fn identity_hash(&self, mut h: &mut dyn std::hash::Hasher) {
            std::hash::Hash::hash(&std::any::TypeId::of::<Self>(), &mut h);
            std::hash::Hash::hash(self, &mut h);
        }
        fn same_as(&self, other: &dyn $crate::Op) -> bool {
            $crate::op::AsAny::as_any(other).downcast_ref::<Self>() == Some(self)
        }
    };
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
