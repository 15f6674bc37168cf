//! Built-in ops, one file per family. Each op keeps its shape rule, reference semantics and
//! derivative side by side.
mod after;
mod cast;
pub(crate) mod elementwise;
mod gather;
mod layout;
mod matmul;
mod reduce;
mod source;
mod stop_gradient;

pub use after::After;
pub use cast::Cast;
pub use elementwise::{eval_elementwise, BinaryOp, Select, UnaryOp};
pub use gather::{check_ids, Gather, ScatterAdd};
pub use layout::{BroadcastTo, Concat, Pad, Reshape, Slice, SumTo, Transpose};
pub use matmul::MatMul;
pub use reduce::{Reduce, ReduceKind};
pub use source::{Constant, Fill, Input};
pub use stop_gradient::StopGradient;
