//! trellis-jit: compiles an optimised graph into a [`Plan`] and runs it.
//!
//! [`compile`] runs the ir passes, fuses elementwise ops ([`fusion`](crate) groups), places
//! every value in one memory block (views for slices/reshapes/broadcasts, concat inputs written
//! in place, parameter updates in place), turns nodes into steps (GEMM calls through the `gemm`
//! crate, Cranelift kernels, gathers, reductions), finds the runs of steps that split into two
//! half-batch chains (one per core), and assigns arena memory by liveness.
//!
//! [`KernelCache::get`] compiles a [`KernelSpec`] (a `ScalarFn` plus how each input is
//! broadcast) into a [`Kernel`] that runs the expression over a strided 2-D grid with f32x4
//! vectors and a scalar tail. [`math`] holds the polynomial emitters for exp, log, tanh,
//! sigmoid and pow.
//!
//! Files: `plan` (API, pipeline), `lower` (placement, steps, memory plan), `step` (execution),
//! `fusion`, `split` (core split), `loc` (windows and views), `memory` (arena), `gemm`,
//! `kernel` + `math` (codegen).
mod avx512;
pub mod error;
mod fusion;
mod gemm;
pub mod kernel;
mod loc;
mod lower;
pub mod math;
mod memory;
mod plan;
mod split;
mod step;

pub use error::JitError;
pub use kernel::{Backend, Kernel, KernelCache, KernelSpec, View, ViewMut};
pub use plan::{compile, CompileOptions, Plan, PlanStats, Profile};
