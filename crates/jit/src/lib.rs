//! trellis-jit: compiles an optimised graph into a [`Plan`] and runs it.
//!
//! [`compile`] runs the ir passes, fuses elementwise ops ([`fusion`](crate) groups), places
//! every value in one memory block (views for slices/reshapes/broadcasts, concat inputs written
//! in place, parameter updates in place), turns nodes into steps (GEMM calls through the `gemm`
//! crate, fused kernels, gathers, reductions), finds the runs of steps that split into two
//! half-batch chains (one per core), and assigns arena memory by liveness.
//!
//! [`KernelCache::get`] turns a [`KernelSpec`] (a `ScalarFn` plus how each input is
//! broadcast) into a [`Kernel`] that runs the expression over a strided 2-D grid, on a
//! [`Backend`]: Cranelift machine code (f32x4 loops with a scalar tail, any host) or, where the
//! host has AVX-512 or AVX2, machine code the JIT emits itself with the expression's values in
//! `zmm` or `ymm` registers (`kernel/asm`; tile programs on sixteen-lane registers, `avx512`,
//! are the AVX-512 code's fallback, Cranelift the AVX2 code's). All run each function's lane code from `trellis_ir::functions` (and outside
//! primitives' recorded code), written once over the [`kernel::Lanes`] primitives each
//! provides, so their results are bit-identical.
//!
//! Plans run on trellis' own worker threads with subnormals flushed to zero ([`fpmode`]).
//!
//! Files, each importing only files listed before it (so imports go one way):
//! - leaves: `error`, `cpu` (host features), `loc` (windows and views), `memory` (arena,
//!   memory limit), `gemm`,
//!   `table` (per-node tables), `stats` ([`PlanStats`]), `fpmode` (FTZ/DAZ, the worker pool),
//!   `peak` (the fp32 FMA throughput, measured for shares of peak), `order` (the node order:
//!   lookups placed where they are read), `panels` (products against a weight packed once a
//!   run into column panels), `autotune` (tall products by the faster of the crate and the
//!   panel loop, timed once per shape);
//! - `kernel/`: the spec, one backend per file (Cranelift, AVX-512 tiles, AVX-512 code with
//!   its executable memory), the cache;
//! - `split` (which steps split across cores), `step` (the steps and how each runs), `fusion`;
//! - `lower/`: the phases, each a type made from the one before: `place` -> `select` ->
//!   `schedule` -> `assemble`;
//! - `plan` ([`Plan`]: run, read, profile, explain), `compile` (the pipeline), `attach` (plans
//!   sharing a host plan's memory and parameters).
mod attach;
mod autotune;
mod compile;
mod cpu;
pub mod error;
pub mod fpmode;
mod fusion;
mod gemm;
pub mod kernel;
mod loc;
mod lower;
mod memory;
mod order;
mod panels;
pub mod peak;
mod plan;
mod remat;
mod split;
mod stats;
mod step;
mod table;

pub use attach::{Attach, Attached, AttachedId};
pub use autotune::{gemm_choices, GemmChoice};
pub use compile::{compile, CompileOptions};
pub use error::JitError;
pub use kernel::{Backend, Kernel, KernelCache, KernelSpec, View, ViewMut};
pub use memory::release_freed_heap;
pub use plan::{Plan, Profile};
pub use stats::PlanStats;
