//! Subnormal numbers flushed to zero while a plan runs.
//!
//! Intel cores take a microcode assist (30-100x slower) for every subnormal operand or result;
//! gradients that decay through a long recurrence land there, and a training step then runs
//! 8x slower (AMD cores barely notice). So, as TensorFlow and XLA do on their compute threads,
//! a plan runs with FTZ (subnormal results become zero) and DAZ (subnormal operands read as
//! zero) set in MXCSR:
//!
//! - every plan runs on [`pool`], trellis' own worker threads, which set FTZ and DAZ when they
//!   start and only ever run plan work (GEMM threads and the half-batch chains included);
//! - the thread that runs a plan's steps also sets them for the duration of the run and puts
//!   back what it had ([`FlushSubnormals`]), so a caller's floating-point state is never
//!   changed by calling into trellis.
//!
//! The reference interpreter and kernels called directly (outside a plan) keep IEEE gradual
//! underflow: the ulp bounds of `math` hold there for every result, in plans for every result
//! that is not subnormal.
use std::sync::OnceLock;

use crate::JitError;

/// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) flags.
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

#[cfg(target_arch = "x86_64")]
fn read_csr() -> u32 {
    let mut csr = 0u32;
    // SAFETY: `stmxcsr` stores the 32-bit MXCSR register into the local `csr`; SSE is part of
    // the x86-64 baseline, and nothing else is read or written.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
    }
    csr
}

#[cfg(target_arch = "x86_64")]
fn write_csr(csr: u32) {
    // SAFETY: `ldmxcsr` loads a value read by `read_csr` with at most the FTZ and DAZ bits
    // changed; every x86-64 core defines both, so no reserved bit is set and it cannot fault.
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags, readonly));
    }
}

/// Whether this thread flushes subnormal operands and results to zero (FTZ and DAZ both set).
pub fn flushes_subnormals() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        read_csr() & FTZ_DAZ == FTZ_DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Sets FTZ and DAZ on this thread for good (trellis' own workers).
fn flush_this_thread() {
    #[cfg(target_arch = "x86_64")]
    write_csr(read_csr() | FTZ_DAZ);
}

/// Sets FTZ and DAZ on this thread until dropped, then restores the previous state.
pub struct FlushSubnormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl FlushSubnormals {
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = read_csr();
            write_csr(saved | FTZ_DAZ);
            FlushSubnormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushSubnormals {}
    }
}

impl Default for FlushSubnormals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushSubnormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        write_csr(self.saved);
    }
}

/// trellis' worker threads (one per core), each with FTZ and DAZ set for its whole life; an
/// error when the OS refuses even one thread (kept: every later run reports it too).
pub(crate) fn pool() -> Result<&'static rayon::ThreadPool, JitError> {
    static POOL: OnceLock<Result<rayon::ThreadPool, String>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let build = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("trellis-{i}"))
                .start_handler(|_| flush_this_thread())
                .build()
        };
        // 0 lets rayon choose (RAYON_NUM_THREADS, else one per core). If the OS refuses
        // threads, one worker still runs every plan.
        build(0).or_else(|_| build(1)).map_err(|e| e.to_string())
    });
    pool.as_ref().map_err(|e| JitError::Threads(e.clone()))
}

/// Runs `f` on trellis' workers with subnormals flushed (the caller's own state untouched).
pub(crate) fn run_flushed<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R, JitError> {
    Ok(pool()?.install(|| {
        let _flush = FlushSubnormals::new();
        f()
    }))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn guard_sets_and_restores() {
        let before = read_csr();
        {
            let _g = FlushSubnormals::new();
            assert!(flushes_subnormals());
            // A subnormal operand reads as zero, a subnormal result becomes zero.
            let tiny = std::hint::black_box(1e-40f32);
            assert_eq!(std::hint::black_box(tiny * 1.0), 0.0);
            let small = std::hint::black_box(1e-30f32);
            assert_eq!(std::hint::black_box(small * 1e-10), 0.0);
        }
        assert_eq!(read_csr(), before);
        assert!(!flushes_subnormals());
        let tiny = std::hint::black_box(1e-40f32);
        assert_eq!(std::hint::black_box(tiny * 1.0), 1e-40);
    }

    #[test]
    fn pool_threads_flush() {
        let all = pool().unwrap().broadcast(|_| flushes_subnormals());
        assert!(!all.is_empty());
        assert!(all.iter().all(|&f| f), "{all:?}");
        assert!(run_flushed(flushes_subnormals).unwrap());
        assert!(!flushes_subnormals());
    }
}
