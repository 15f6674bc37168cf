//! Latency figures for the examples: the median of repeated timings.
use std::time::Instant;

/// The median of `n` (>= 1) timings of `f`, in microseconds; `f`'s first error stops it.
pub fn median_us<E>(n: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<f64, E> {
    let mut t = Vec::with_capacity(n.max(1));
    for _ in 0..n.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}
