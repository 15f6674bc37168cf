use thiserror::Error;
use trellis_ir::IrError;

/// The one error type of `trellis-autodiff`.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum AutodiffError {
    #[error("grad: {0} is not a node of the graph")]
    NotInGraph(String),
    #[error("grad: the loss {node} must be a float scalar, got {ty}")]
    BadLoss { node: String, ty: String },
    #[error("grad: seed for {node} has type {got}, expected {expected}")]
    BadSeed {
        node: String,
        expected: String,
        got: String,
    },
    /// An op's vjp returned gradients that do not fit its inputs (a wrong count, or a
    /// gradient whose type is not its input's).
    #[error("grad: the vjp of {node} {detail}")]
    BadVjp { node: String, detail: String },
    /// gradcheck found an element beyond tolerance.
    #[error("gradcheck: {0}")]
    Mismatch(String),
    /// Recomputation could not be planned (an interval of 0, a budget too small).
    #[error("recompute: {0}")]
    Recompute(String),
    #[error(transparent)]
    Ir(#[from] IrError),
}
