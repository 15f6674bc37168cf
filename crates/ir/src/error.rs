//! The one error type of the `ir` crate.
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum IrError {
    /// Shapes or dtypes that do not fit an op: `matmul [128,256] x [128,512]: inner dimensions 256 and 128 differ`.
    #[error("{op} {shapes}: {msg}")]
    Shape {
        op: String,
        shapes: String,
        msg: String,
    },
    #[error("{op}: expects {expected} inputs, got {got}")]
    Arity {
        op: String,
        expected: usize,
        got: usize,
    },
    /// An error located at a node of a graph (the node's id and debug name).
    #[error("node {node}: {source}")]
    AtNode { node: String, source: Box<IrError> },
    #[error("no value fed for input '{0}'")]
    MissingInput(String),
    #[error("input '{name}' expects {expected}, got {got}")]
    FeedType {
        name: String,
        expected: String,
        got: String,
    },
    /// A gather index outside the table: names the id, its position and the table size.
    #[error("{op}: id {id} at position {position} is outside the vocabulary of {vocab}")]
    IndexOutOfRange {
        op: String,
        id: i64,
        position: usize,
        vocab: usize,
    },
    /// A type whose size cannot exist: its element or byte count overflows (`isize::MAX` bytes
    /// is the most one allocation holds). Names what has the type.
    #[error("{what}: {ty} is an impossible size (more than isize::MAX bytes)")]
    TooLarge { what: String, ty: String },
    /// A window (a convolution's kernel, a pooling) longer than the padded sequence: the
    /// one error a longer sequence would not give.
    #[error(
        "{op}: a kernel spanning {span} steps does not fit a sequence of {steps} steps \
         (padded to {padded}); pad it or use a smaller kernel"
    )]
    WindowTooLong {
        op: String,
        span: usize,
        steps: usize,
        padded: usize,
    },
    #[error("{0}")]
    Invalid(String),
}

impl IrError {
    /// A shape error for `op` on the given input types.
    pub fn shape(op: &str, inputs: &[&crate::TensorType], msg: impl Into<String>) -> Self {
        let shapes = inputs
            .iter()
            .map(|t| t.shape.to_string())
            .collect::<Vec<_>>()
            .join(" x ");
        IrError::Shape {
            op: op.to_string(),
            shapes,
            msg: msg.into(),
        }
    }
    pub fn at(self, node: impl Into<String>) -> Self {
        IrError::AtNode {
            node: node.into(),
            source: Box::new(self),
        }
    }
}

pub type Result<T, E = IrError> = std::result::Result<T, E>;
