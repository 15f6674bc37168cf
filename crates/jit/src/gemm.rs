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
    let par = if threads > 1 && m * n * k >= PARALLEL_MIN_FLOP {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
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
