//! trellis-ir: the graph of ops that every other crate stands on.
//!
//! A [`Graph`] holds nodes that apply an [`Op`] to earlier nodes. Every op implements one trait:
//! shape inference, reference evaluation, its derivative as graph-building code, and (when
//! elementwise) its scalar form for fusion and the JIT.
pub mod attention;
mod builder;
pub mod conv;
pub mod crf;
pub mod dot;
pub mod error;
pub mod functions;
pub mod graph;
pub mod gru;
pub mod interp;
pub mod lanes;
pub mod lstm;
pub mod models;
pub mod normalization;
pub mod op;
pub mod ops;
pub mod passes;
pub mod prim;
pub mod recurrent;
pub mod rnn;
pub mod scalar;
pub mod softmax;
pub mod tensor;
pub mod timing;
pub mod types;

pub use error::{IrError, Result};
pub use graph::{Graph, InputKind, Node, NodeId};
pub use interp::{run, Feeds, Precision};
pub use op::{Op, OpClass};
pub use prim::Prim;
pub use scalar::{Binary, Scalar, ScalarFn, Unary};
pub use tensor::{Data, Tensor};
pub use types::{broadcast_shapes, broadcast_strides, DType, Shape, TensorType};
