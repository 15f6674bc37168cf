//! The machine's fp32 peak, measured: shares of peak are only meaningful against what the cores
//! in hand execute (a clock, a core count and a vector width differ between machines and
//! between sessions on one machine), so benchmarks measure it in the same run.

use std::time::Instant;

/// Multiply-adds per lane per loop iteration: twelve independent accumulators hide the FMA
/// latency (4 cycles on Zen 4 and Sapphire Rapids) on two FMA pipes.
const CHAINS: usize = 12;

/// The fp32 multiply-add throughput of `threads` threads running at once, in GFLOP/s (an FMA is
/// two FLOPs): AVX-512 registers where the host has them, else AVX2. `None` on hosts with
/// neither (or off x86-64). Takes about `seconds`.
pub fn fp32_peak_gflops(threads: usize, seconds: f64) -> Option<f64> {
    let lanes = lanes()?;
    let threads = threads.max(1);
    // Calibrate the iteration count on one short run, then time all threads together.
    let probe = 200_000;
    let t = Instant::now();
    run(probe, lanes);
    let per_iter = t.elapsed().as_secs_f64() / probe as f64;
    let iters = ((seconds / per_iter.max(1e-12)) as usize).max(probe);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| run(iters, lanes));
        }
    });
    let flops = (threads * iters * CHAINS * lanes * 2) as f64;
    Some(flops / t.elapsed().as_secs_f64() / 1e9)
}

fn lanes() -> Option<usize> {
    if crate::cpu::has_avx512() {
        Some(16)
    } else if crate::cpu::has_avx2() {
        Some(8)
    } else {
        None
    }
}

#[cfg(target_arch = "x86_64")]
fn run(iters: usize, lanes: usize) -> f32 {
    if lanes == 16 {
        // SAFETY: `lanes` is 16 only when the host has AVX-512F and FMA (`lanes()`).
        unsafe { fma_zmm(iters) }
    } else {
        // SAFETY: `lanes` is 8 only when the host has AVX2 and FMA (`lanes()`).
        unsafe { fma_ymm(iters) }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn run(_: usize, _: usize) -> f32 {
    0.0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn fma_zmm(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); CHAINS];
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-6));
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    let s = acc
        .iter()
        .fold(_mm512_setzero_ps(), |s, &x| _mm512_add_ps(s, x));
    // The result is returned so the loop is not optimised away.
    std::hint::black_box(_mm512_reduce_add_ps(s))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_ymm(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); CHAINS];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-6));
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let s = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds the eight floats the store writes.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
    std::hint::black_box(lanes.iter().sum())
}

#[cfg(test)]
mod tests {
    /// The timed loop does the multiply-adds it counts: every lane of every chain follows the
    /// scalar recurrence `x <- x * a + b`, so the returned sum is `chains * lanes` times it.
    /// (Speed itself is not asserted: a shared CI host can time two threads below one.)
    #[test]
    fn the_timed_loop_does_the_counted_multiply_adds() {
        let Some(lanes) = super::lanes() else {
            return; // no AVX2/AVX-512 host: nothing to measure
        };
        let iters = 1_000;
        let mut x = 0.0f32;
        for _ in 0..iters {
            x = x.mul_add(0.999_999, 1e-6);
        }
        let want = x * (super::CHAINS * lanes) as f32;
        let got = super::run(iters, lanes);
        assert!((got - want).abs() <= 1e-5 * want.abs(), "{got} vs {want}");
        let peak = super::fp32_peak_gflops(2, 0.01).unwrap();
        assert!(peak.is_finite() && peak > 0.0, "{peak}");
    }
}
