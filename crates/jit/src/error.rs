//! The crate's one error type.

/// Everything that can go wrong in `trellis-jit`: code generation, kernel specs and the views a
/// kernel is run on. Other parts of the crate add variants; match with a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JitError {
    /// The host machine is not supported by Cranelift, or an ISA setting was rejected.
    #[error("host ISA: {0}")]
    Isa(String),
    /// Cranelift failed to compile or link a function.
    #[error("cranelift: {0}")]
    Codegen(String),
    /// A kernel spec that cannot be compiled (malformed expression, flag count, ...).
    #[error("invalid kernel spec: {0}")]
    InvalidSpec(String),
    /// The number of input or output views does not match the kernel.
    #[error("kernel expects {expected} {what} views, got {got}")]
    ViewCount {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A view does not cover the grid it is run over.
    #[error(
        "{what} view {index}: a {rows}x{cols} grid needs element {needed} \
         (offset {offset}, row_stride {row_stride}) but the data has {len} elements"
    )]
    ViewOutOfBounds {
        what: &'static str,
        index: usize,
        rows: usize,
        cols: usize,
        offset: usize,
        row_stride: usize,
        needed: usize,
        len: usize,
    },
    /// An output view whose rows overlap (row_stride smaller than cols with more than one row).
    #[error(
        "output view {index}: row_stride {row_stride} < cols {cols} makes the {rows} rows overlap"
    )]
    OverlappingOutput {
        index: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
    },
    /// A graph the JIT cannot compile (dtype, update target, ...).
    #[error("compile: {0}")]
    Unsupported(String),
    /// The plan needs more memory than the limit (by default the memory available on the
    /// machine; see `CompileOptions::memory_limit`). Checked before the memory is allocated.
    #[error(
        "compile: the plan needs {needed} bytes ({persistent} for inputs, parameters and \
         constants + {arena} for intermediate values) but {limit_is} is {limit} bytes"
    )]
    MemoryLimit {
        needed: usize,
        persistent: usize,
        arena: usize,
        limit: usize,
        /// Where the limit comes from ("the memory limit set", "the memory available").
        limit_is: &'static str,
    },
    /// The allocator refused the plan's memory.
    #[error("compile: allocating {bytes} bytes for the plan's {what} failed")]
    Alloc { bytes: usize, what: &'static str },
    /// The OS refused to start trellis' worker threads.
    #[error("plan: cannot start trellis' worker threads: {0}")]
    Threads(String),
    /// A value set or read through the plan that does not fit it.
    #[error("plan: {0}")]
    Feed(String),
    /// An error of the graph or its data (shape, out-of-range id), located at a node.
    #[error(transparent)]
    Ir(#[from] trellis_ir::IrError),
}
