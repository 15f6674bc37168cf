use std::time::Instant;
fn run(m: usize, n: usize, k: usize, ta: bool, halves: bool, par: usize) -> f64 {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0f32; m * n];
    let reps = (4e9 / (2.0 * (m * n * k) as f64)).clamp(3.0, 2000.0) as usize;
    let go = |c: &mut [f32], r0: usize, r1: usize, p: gemm::Parallelism| unsafe {
        let (lcs, lrs) = if ta { (m as isize, 1) } else { (1, k as isize) };
        gemm::gemm(
            r1 - r0,
            n,
            k,
            c.as_mut_ptr().add(r0 * n),
            1,
            n as isize,
            false,
            a.as_ptr().offset(r0 as isize * lrs),
            lcs,
            lrs,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            p,
        );
    };
    let t = Instant::now();
    for _ in 0..reps {
        if halves {
            let (lo, hi) = c.split_at_mut(m / 2 * n);
            let mid = m / 2;
            rayon::join(
                || go(lo, 0, mid, gemm::Parallelism::None),
                || {
                    let hi_ptr = hi;
                    let _ = &hi_ptr;
                    go(
                        unsafe {
                            std::slice::from_raw_parts_mut(hi_ptr.as_mut_ptr().sub(mid * n), m * n)
                        },
                        mid,
                        m,
                        gemm::Parallelism::None,
                    )
                },
            );
        } else {
            go(
                &mut c,
                0,
                m,
                if par > 1 {
                    gemm::Parallelism::Rayon(par)
                } else {
                    gemm::Parallelism::None
                },
            );
        }
    }
    let s = t.elapsed().as_secs_f64() / reps as f64;
    2.0 * (m * n * k) as f64 / s / 1e9
}
fn main() {
    for &(m, n, k, ta) in &[
        (64usize, 512usize, 128usize, false),
        (128, 512, 128, false),
        (25600, 512, 128, false),
        (512, 128, 25600, true),
        (25600, 128, 512, false),
    ] {
        println!(
            "{m}x{n}x{k} ta={ta}: 1 thread {:.0}, rayon(2) {:.0}, halves {:.0} GFLOP/s",
            run(m, n, k, ta, false, 1),
            run(m, n, k, ta, false, 2),
            if ta { 0.0 } else { run(m, n, k, ta, true, 1) }
        );
    }
}
