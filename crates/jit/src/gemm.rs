//! Matrix products through the `gemm` crate (AVX-512 micro-kernels), with strides so that
//! transposes and strided views cost nothing.
use gemm::Parallelism;

/// A strided matrix in the plan's memory: element (i, j) at `off + i*rs + j*cs`.
#[derive(Clone, Copy, Debug)]
pub struct Mat {
    pub off: usize,
    pub rs: isize,
    pub cs: isize,
}

impl Mat {
    /// Row-major, `rs` elements from one row to the next.
    pub fn row_major(off: usize, rs: usize) -> Mat {
        Mat {
            off,
            rs: rs as isize,
            cs: 1,
        }
    }
    /// Column-major (a row-major matrix read transposed), `cs` elements from one column to
    /// the next.
    pub fn col_major(off: usize, cs: usize) -> Mat {
        Mat {
            off,
            rs: 1,
            cs: cs as isize,
        }
    }
}

/// Below this many multiply-adds a second thread costs more than it saves.
const PARALLEL_MIN_FLOP: usize = 1 << 18;

/// `C = A B` for `A [m, k]`, `B [k, n]`, `C [m, n]`. (Summed gradients never need `C += A B`:
/// sums fuse into the consuming kernel or become one batched GEMM, see `ir::passes`.)
///
/// # Safety
/// Every element the three matrices address lies inside the allocation at `base`, and `c`
/// overlaps neither `a` nor `b`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    base: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: Mat,
    threads: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if m <= FEW_ROWS && b.cs == 1 && c.cs == 1 && crate::cpu::has_avx512() {
        // SAFETY: the caller's contract; the host has AVX-512F and FMA (checked just above).
        unsafe { few_rows(base, m, n, k, a, b, c) };
        return;
    }
    if threads > 1 && k >= LONG_K * m.max(n) && m >= 32 * threads {
        // SAFETY: the caller's contract, passed on for disjoint row bands of A and C.
        unsafe { row_bands(base, m, n, k, a, b, c, threads) };
        return;
    }
    let par = if threads > 1 && m * n * k >= PARALLEL_MIN_FLOP {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the caller's contract.
    unsafe { crate_gemm(base, m, n, k, a, b, c, par) }
}

/// `C = A B` by the `gemm` crate (its micro-kernels, packing and threading).
///
/// # Safety
/// As [`sgemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn crate_gemm(
    base: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: Mat,
    par: Parallelism,
) {
    // SAFETY: the caller guarantees every addressed element is in bounds and C is disjoint from
    // A and B; gemm reads A and B and writes only C.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            base.add(c.off),
            c.cs,
            c.rs,
            false,
            base.add(a.off),
            a.cs,
            a.rs,
            base.add(b.off),
            b.cs,
            b.rs,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// A product whose `k` is this many times its larger side (a weight gradient summed over every
/// time step and sample: 512x128 over k = 25,600) splits its rows across the threads, each
/// running the one-thread GEMM on its band: 196-202 against 181-192 GFLOP/s for the crate's
/// own threading on the seed model's four such products (2 threads, this AMD EPYC).
const LONG_K: usize = 8;

/// `C = A B` as `threads` bands of rows, one per thread of the current pool.
///
/// # Safety
/// As [`sgemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn row_bands(
    base: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: Mat,
    threads: usize,
) {
    let base = crate::memory::SendPtr(base);
    // Bands of whole micro-kernel tiles (16 rows) where the rows allow.
    in_row_bands(m, threads, 16, |start, end| {
        let shift = |l: Mat| Mat {
            off: (l.off as isize + start as isize * l.rs) as usize,
            ..l
        };
        let (a, c) = (shift(a), shift(c));
        // SAFETY: rows `start..end` of A and C are inside the caller's matrices; the bands'
        // rows of C are disjoint, so no two threads write one element, and A and B are only
        // read.
        unsafe { crate_gemm(base.at(0), end - start, n, k, a, b, c, Parallelism::None) }
    });
}

/// Runs `f(start, end)` over `0..m` in contiguous bands of rows, one a thread of the current
/// pool, each a multiple of `align` rows but the last; on the calling thread when one band
/// covers them all.
pub(crate) fn in_row_bands(
    m: usize,
    threads: usize,
    align: usize,
    f: impl Fn(usize, usize) + Sync,
) {
    let band = m.div_ceil(threads.max(1)).next_multiple_of(align.max(1));
    if band >= m {
        f(0, m);
        return;
    }
    let f = &f;
    rayon::scope(|s| {
        for start in (0..m).step_by(band) {
            s.spawn(move |_| f(start, (start + band).min(m)));
        }
    });
}

/// At most this many rows of `A` take [`few_rows`]: batch-1 inference multiplies one row by
/// the recurrent weight every step, and the general GEMM's packing of `B` on each call was
/// most of the product (4.3 us for 1x128 by 128x512).
const FEW_ROWS: usize = 4;

/// `C = A B` row by row for a few rows, `B` and `C` with contiguous rows: each row of `C` is
/// built over the whole of `k` (one read of `B`, no packing), summing over `k` in order as the
/// general GEMM does. 256 columns at a time in sixteen registers: each FMA waits for the one
/// before it in its register, and sixteen chains keep the FMA units busy where four left them
/// waiting on latency (1x128 by 128x512: 3.5 us in four registers); a last part narrower
/// than 256 goes 64 columns at a time, its last vector masked.
///
/// # Safety
/// As [`sgemm`], with `b.cs == c.cs == 1`, on a host with AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn few_rows(base: *mut f32, m: usize, n: usize, k: usize, a: Mat, b: Mat, c: Mat) {
    use std::arch::x86_64::*;
    const W: usize = 16;
    const WIDE: usize = 16;
    let at = |l: Mat, i: usize, j: usize| {
        base.wrapping_offset(l.off as isize + i as isize * l.rs + j as isize * l.cs)
    };
    for i in 0..m {
        let mut j = 0;
        while j + WIDE * W <= n {
            let mut acc = [_mm512_setzero_ps(); WIDE];
            for p in 0..k {
                // SAFETY: (i, p) of A and (p, j..j + 256) of B are elements the caller vouches
                // for (j + 256 <= n).
                unsafe {
                    let x = _mm512_set1_ps(*at(a, i, p));
                    let row = at(b, p, j);
                    for (v, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm512_fmadd_ps(x, _mm512_loadu_ps(row.add(v * W)), *acc);
                    }
                }
            }
            for (v, acc) in acc.iter().enumerate() {
                // SAFETY: (i, j..j + 256) of C is writable by the caller's contract.
                unsafe { _mm512_storeu_ps(at(c, i, j).add(v * W), *acc) };
            }
            j += WIDE * W;
        }
        while j < n {
            // Up to four vectors of columns; the last may be partial (masked).
            let width = (n - j).min(4 * W);
            let vecs = width.div_ceil(W);
            let mask = |v: usize| -> __mmask16 {
                let left = width - v * W;
                if left >= W {
                    0xffff
                } else {
                    ((1u32 << left) - 1) as __mmask16
                }
            };
            let mut acc = [_mm512_setzero_ps(); 4];
            for p in 0..k {
                // SAFETY: (i, p) of A and (p, j..j + width) of B are elements the caller
                // vouches for; masked lanes past `width` are not read.
                unsafe {
                    let x = _mm512_set1_ps(*at(a, i, p));
                    let row = at(b, p, j);
                    for (v, acc) in acc.iter_mut().enumerate().take(vecs) {
                        let y = _mm512_maskz_loadu_ps(mask(v), row.add(v * W));
                        *acc = _mm512_fmadd_ps(x, y, *acc);
                    }
                }
            }
            for (v, acc) in acc.iter().enumerate().take(vecs) {
                // SAFETY: (i, j..j + width) of C is writable by the caller's contract; masked
                // lanes past `width` are not written.
                unsafe { _mm512_mask_storeu_ps(at(c, i, j).add(v * W), mask(v), *acc) };
            }
            j += width;
        }
    }
}

/// Test memory for `A [m, k]` (row-major, or stored transposed when `a_t`) at 0 and a row-major
/// `B [k, n]` right after it, filled with small varied values, with `extra` elements after B.
#[cfg(test)]
pub(crate) fn test_operands(
    m: usize,
    n: usize,
    k: usize,
    a_t: bool,
    extra: usize,
) -> (Vec<f32>, Mat, Mat) {
    let mem = test_memory(m * k + k * n + extra);
    let a = if a_t {
        Mat::col_major(0, m)
    } else {
        Mat::row_major(0, k)
    };
    (mem, a, Mat::row_major(m * k, n))
}

/// `len` small varied values (test operands).
#[cfg(test)]
pub(crate) fn test_memory(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The few-rows path against an f64 product, for widths with and without a partial vector,
    /// and a transposed (strided) `A`.
    #[test]
    fn few_rows_match_an_f64_product() {
        for (m, n, k, a_t) in [
            (1, 512, 128, false),
            (2, 300, 20, false),
            (3, 37, 5, true),
            (4, 70, 33, false),
            (2, 16, 1, true),
        ] {
            let (na, nb) = (m * k, k * n);
            let (mut mem, a, b) = test_operands(m, n, k, a_t, m * n);
            let c = Mat::row_major(na + nb, n);
            let want: Vec<f64> = (0..m * n)
                .map(|e| {
                    let (i, j) = (e / n, e % n);
                    (0..k)
                        .map(|p| {
                            let av = mem
                                [(a.off as isize + i as isize * a.rs + p as isize * a.cs) as usize];
                            f64::from(av) * f64::from(mem[b.off + p * n + j])
                        })
                        .sum()
                })
                .collect();
            // SAFETY: every matrix lies inside `mem`, C after A and B.
            unsafe { sgemm(mem.as_mut_ptr(), m, n, k, a, b, c, 1) };
            for (e, w) in want.iter().enumerate() {
                let got = f64::from(mem[c.off + e]);
                assert!(
                    (got - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{m}x{n}x{k}: [{e}] {got} vs {w}"
                );
            }
        }
    }
}
