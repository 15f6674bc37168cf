use std::time::Instant;
fn main() {
    for &(m, n, k) in &[
        (128usize, 512usize, 128usize),
        (25600, 512, 128),
        (512, 128, 25600),
        (128, 128, 512),
    ] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0f32; m * n];
        for par in [gemm::Parallelism::None, gemm::Parallelism::Rayon(2)] {
            let reps = (2e9 / (2.0 * (m * n * k) as f64)).max(3.0) as usize;
            let t = Instant::now();
            for _ in 0..reps {
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        k as isize,
                        b.as_ptr(),
                        1,
                        n as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        par,
                    );
                }
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{m}x{n}x{k} {:?}: {:.1} us, {:.1} GFLOP/s",
                par,
                s * 1e6,
                2.0 * (m * n * k) as f64 / s / 1e9
            );
        }
    }
}
