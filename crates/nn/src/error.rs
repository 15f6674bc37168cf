//! The crate's one error type.
//!
//! Every variant names the file, argument or value involved, so a bad input can be fixed
//! from the message alone. Other modules of `trellis-nn` add their variants here.

use std::path::PathBuf;

use thiserror::Error;

/// The error type of `trellis-nn`.
#[derive(Debug, Error)]
pub enum NnError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file is malformed (or does not have the expected structure).
    #[error("{file}: malformed JSON at line {line}, column {column}: {message}")]
    Json {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },

    /// A label is not 0 or 1.
    #[error("{file}: review {index}: label must be 0 or 1, got {value}")]
    BadLabel {
        file: String,
        index: usize,
        value: String,
    },

    /// A file is not valid UTF-8.
    #[error("{}: not valid UTF-8 (at byte {valid_up_to})", path.display())]
    Utf8 { path: PathBuf, valid_up_to: usize },

    /// A data set file or tree does not have the expected layout.
    #[error("{file}: {message}")]
    Layout { file: String, message: String },

    /// A directory given to `load_dir` is neither a reviews.json package nor an aclImdb tree.
    #[error(
        "{}: not an IMDB data directory (expected reviews.json, package/reviews.json, \
         or an aclImdb tree with train/{{pos,neg}} and test/{{pos,neg}})",
        path.display()
    )]
    NotADataset { path: PathBuf },

    /// A vocabulary file is malformed.
    #[error("{file}: line {line}: {message}")]
    Vocab {
        file: String,
        line: usize,
        message: String,
    },

    /// A token id outside the vocabulary of the model's embedding.
    #[error(
        "token id {id} at sample {sample}, position {position} is out of range: the \
         embedding has a vocabulary of {vocab} (ids 0..{vocab})"
    )]
    TokenOutOfRange {
        id: i64,
        sample: usize,
        position: usize,
        vocab: usize,
    },

    /// A training label that the loss cannot take.
    #[error("label of sample {sample} is {value}: {expected}")]
    BadTarget {
        sample: usize,
        value: f32,
        expected: String,
    },

    /// Inputs whose sizes do not agree.
    #[error("{0}")]
    Shape(String),

    /// A model used before it is ready (not compiled, not built, ...).
    #[error("model: {0}")]
    Model(String),

    /// A checkpoint tensor whose shape does not match the model's.
    #[error("{}: {tensor}: expected {expected:?}, got {got:?}", path.display())]
    CheckpointShape {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },

    /// A checkpoint that cannot be read (truncated, missing tensor, wrong dtype, ...).
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },

    /// An error building the graph.
    #[error("graph: {0}")]
    Ir(#[from] trellis_ir::IrError),

    /// An error differentiating the graph.
    #[error("autodiff: {0}")]
    Autodiff(#[from] trellis_autodiff::AutodiffError),

    /// An error compiling or running the plan.
    #[error("jit: {0}")]
    Jit(#[from] trellis_jit::JitError),

    /// A float input that is NaN or infinite.
    #[error("x: sample {sample}, position {position} is {value}: inputs must be finite")]
    NonFiniteInput {
        sample: usize,
        position: usize,
        value: f32,
    },

    /// A value the model computed that is NaN or infinite (a diverging run).
    #[error("{0}")]
    NonFinite(String),

    /// A size that cannot be had: its arithmetic overflows, or it needs more memory than is
    /// available (or than the limit set).
    #[error("{what}: {message}")]
    TooLarge { what: String, message: String },

    /// A function argument is out of its domain.
    #[error("invalid argument `{name}` = {value}: {message}")]
    InvalidArgument {
        name: &'static str,
        value: String,
        message: String,
    },
}

/// `Result` with [`NnError`] as the default error.
pub type Result<T, E = NnError> = std::result::Result<T, E>;
