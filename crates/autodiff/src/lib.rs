//! trellis-autodiff: reverse-mode differentiation as a graph-to-graph transformation.
//!
//! [`grad`] appends the backward nodes of a scalar loss to the same graph using each op's
//! `vjp`, so the result is an ordinary graph: the passes and the JIT treat it like the forward,
//! and it can be differentiated again. [`gradcheck`] proves a graph's gradients against f64
//! central differences through the reference interpreter.
mod check;
mod error;
mod recompute;
mod reverse;

pub use check::{gradcheck, GradCheck, Mismatch, Tolerance};
pub use error::AutodiffError;
pub use recompute::{grad_recomputing, Checkpoints, Recompute};
pub use reverse::{grad, grad_with_seed};
