//! trellis-jit: Cranelift code generation of fused elementwise kernels (and, later, GEMM calls,
//! the memory planner and the `Plan` executor).
//!
//! [`KernelCache::get`] compiles a [`KernelSpec`] (a `ScalarFn` plus how each input is
//! broadcast) into a [`Kernel`] that runs the expression over a strided 2-D grid with f32x4
//! vectors and a scalar tail. [`math`] holds the polynomial emitters for exp, log, tanh,
//! sigmoid and pow.
pub mod error;
mod fusion;
mod gemm;
pub mod kernel;
mod loc;
pub mod math;
mod memory;
mod plan;
mod split;

pub use error::JitError;
pub use kernel::{Kernel, KernelCache, KernelSpec, View, ViewMut};
pub use plan::{compile, CompileOptions, Plan, PlanStats, Profile};
