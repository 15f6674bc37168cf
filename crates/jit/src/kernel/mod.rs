//! Fused elementwise kernels: a [`KernelSpec`] (a `ScalarFn` and how each input broadcasts)
//! compiled by one of four backends into a [`Kernel`] that runs the expression over a strided
//! 2-D grid, cached by spec.
//!
//! One file per job, imports one way: `spec` (what a kernel computes, read by every code
//! generator) <- `cranelift` (f32x4 loops as Cranelift IR, with [`ClifLanes`]), `avx512` (tile
//! programs on sixteen-lane registers, hosts with AVX-512F) and `asm` (the lane math
//! traced, register-allocated and encoded as AVX-512 or AVX2 machine code, in `exec_mem`'s
//! mappings)
//! <- `cache` ([`Kernel`], [`Backend`], [`KernelCache`]: picks the backend, checks views, keeps
//! one kernel per spec).
#[cfg(target_arch = "x86_64")]
mod asm;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(not(target_arch = "x86_64"))]
#[path = "avx512_absent.rs"]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod exec_mem;
#[cfg(not(target_arch = "x86_64"))]
use avx512 as asm;
mod cache;
mod cranelift;
mod spec;

pub use cache::{Backend, Kernel, KernelCache, View, ViewMut};
pub use cranelift::{ClifLanes, Lanes};
pub use spec::KernelSpec;
