//! Parameter initialisers (the Keras defaults of each layer), driven by a seeded
//! [`SplitMix64`] so that the same model seed gives the same weights on every platform.
//!
//! Shapes are in trellis / PyTorch layout (`[out, in]`); fans are computed as Keras does on its
//! transposed `[in, out]` kernels, which gives the same numbers.
use crate::data::SplitMix64;

/// How a parameter starts.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All equal to the value.
    Constant(f32),
    /// Uniform in `[-limit, limit]` (Keras `RandomUniform(-0.05, 0.05)` is `Uniform(0.05)`).
    Uniform(f32),
    /// Glorot (Xavier) uniform: `limit = sqrt(6 / (fan_in + fan_out))`.
    GlorotUniform,
    /// A matrix with orthonormal columns (or rows, whichever are fewer), as Keras's
    /// `Orthogonal(gain=1)`: QR of a Gaussian matrix with the signs of `diag(R)` folded in.
    Orthogonal,
    /// LSTM bias (`[4H]`, gates i, f, g, o): zeros with the forget gate at 1 (Keras's
    /// `unit_forget_bias=True`).
    LstmBias,
}

impl Init {
    /// Values for a tensor of `shape`, from `rng`.
    pub fn sample(&self, shape: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
        let n: usize = shape.iter().product();
        match self {
            Init::Zeros => vec![0.0; n],
            Init::Constant(c) => vec![*c; n],
            Init::Uniform(limit) => uniform(n, *limit as f64, rng),
            Init::GlorotUniform => {
                let (fan_in, fan_out) = fans(shape);
                let limit = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
                uniform(n, limit, rng)
            }
            Init::Orthogonal => orthogonal(shape, rng),
            Init::LstmBias => {
                let h = n / 4;
                let mut v = vec![0.0; n];
                v[h..2 * h].fill(1.0);
                v
            }
        }
    }
}

/// `(fan_in, fan_out)` of a trellis-layout weight `[out, in]` (a vector: `(n, n)`).
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [out, inp] => (*inp, *out),
        [out, inp, rest @ ..] => {
            let r: usize = rest.iter().product();
            (inp * r, out * r)
        }
    }
}

fn uniform(n: usize, limit: f64, rng: &mut SplitMix64) -> Vec<f32> {
    (0..n)
        .map(|_| ((rng.next_f64() * 2.0 - 1.0) * limit) as f32)
        .collect()
}

/// A standard normal sample (Box-Muller).
pub fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = 1.0 - rng.next_f64(); // (0, 1]
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// `[rows, cols]` (higher ranks flatten the trailing axes) with orthonormal columns when
/// `rows >= cols`, orthonormal rows otherwise.
///
/// Modified Gram-Schmidt in f64 on a Gaussian `[m, k]` (`m >= k`) is its QR. The columns are
/// processed in blocks of [`LANES`] stored interleaved, so one pass over a finished column
/// projects it out of a whole block (independent sums the CPU runs side by side), and the
/// blocks of a group run on the cores at once. Every column still sees exactly the operations
/// of the textbook column-at-a-time loop, in the same order, so the values are bit-identical
/// to it. Memory: the `[m, k]` f64 matrix and the output.
fn orthogonal(shape: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
    let rows = shape.first().copied().unwrap_or(1);
    let cols: usize = shape.iter().skip(1).product();
    let (m, k) = (rows.max(cols), rows.min(cols));
    // Column-major: column j is q[j*m..(j+1)*m], drawn column after column.
    let mut q: Vec<f64> = (0..m * k).map(|_| normal(rng)).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let group = LANES * threads;
    let mut j0 = 0;
    while j0 < k {
        let w = group.min(k - j0);
        let (done, rest) = q.split_at_mut(j0 * m);
        let done: &[f64] = done;
        let mut blocks: Vec<Vec<f64>> = rest[..w * m]
            .chunks(LANES * m)
            .map(|cols| interleave(cols, m))
            .collect();
        // Project the finished columns out of every block: the bulk of the work.
        if blocks.len() > 1 && j0 * m >= 1 << 14 {
            std::thread::scope(|s| {
                for b in &mut blocks {
                    s.spawn(|| project_block(done, m, b));
                }
            });
        } else {
            for b in &mut blocks {
                project_block(done, m, b);
            }
        }
        for (bi, b) in blocks.iter().enumerate() {
            deinterleave(
                b,
                m,
                &mut rest[bi * LANES * m..(w * m).min((bi + 1) * LANES * m)],
            );
        }
        // Then within the group, column after column.
        for c in 0..w {
            let (prev, cur) = rest.split_at_mut(c * m);
            let col = &mut cur[..m];
            for qi in prev.chunks(m) {
                let d: f64 = qi.iter().zip(col.iter()).map(|(a, b)| a * b).sum();
                for (x, a) in col.iter_mut().zip(qi) {
                    *x -= d * a;
                }
            }
            // diag(R) > 0 by construction, so the sign correction of Keras is already folded in.
            let norm = col.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
            for x in col.iter_mut() {
                *x /= norm;
            }
        }
        j0 += w;
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // rows >= cols: out = Q [m=rows, k=cols]; else out = Q^T [k=rows, m=cols].
            out[r * cols + c] = if rows >= cols {
                q[c * m + r]
            } else {
                q[r * m + c]
            } as f32;
        }
    }
    out
}

/// Columns projected at once by [`project_block`].
const LANES: usize = 8;

/// Up to `LANES` columns of length `m` (column-major) as `[m, LANES]` rows, zero-padded.
fn interleave(cols: &[f64], m: usize) -> Vec<f64> {
    let mut b = vec![0.0; m * LANES];
    for (c, col) in cols.chunks(m).enumerate() {
        for (r, &x) in col.iter().enumerate() {
            b[r * LANES + c] = x;
        }
    }
    b
}

fn deinterleave(b: &[f64], m: usize, cols: &mut [f64]) {
    for (c, col) in cols.chunks_mut(m).enumerate() {
        for (r, x) in col.iter_mut().enumerate() {
            *x = b[r * LANES + c];
        }
    }
}

/// For each finished column `qi` of `done` in order: `col -= (qi . col) qi` for every column of
/// the interleaved block, each dot product summed in row order (as `Iterator::sum` does). One
/// pass per `qi`: the update by `q_{i-1}` of a row and the next dot product's term of that row
/// share it (the same operations in the same order as two passes, so the same bits).
fn project_block(done: &[f64], m: usize, b: &mut [f64]) {
    let mut cols = done.chunks(m);
    let Some(first) = cols.next() else { return };
    let mut d = [-0.0f64; LANES];
    for (a, row) in first.iter().zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            d[l] += a * row[l];
        }
    }
    let mut prev = first;
    for qi in cols {
        let mut next = [-0.0f64; LANES];
        for ((a, q), row) in prev.iter().zip(qi).zip(b.chunks_exact_mut(LANES)) {
            for l in 0..LANES {
                row[l] -= d[l] * a;
                next[l] += q * row[l];
            }
        }
        d = next;
        prev = qi;
    }
    for (a, row) in prev.iter().zip(b.chunks_exact_mut(LANES)) {
        for l in 0..LANES {
            row[l] -= d[l] * a;
        }
    }
}

impl Init {
    /// Bytes of scratch memory [`Init::sample`] needs beside its output for `shape` (the f64
    /// matrix of the orthogonal initialiser), for the memory check before a model is built.
    pub fn workspace_bytes(&self, shape: &[usize]) -> u128 {
        match self {
            Init::Orthogonal => shape.iter().map(|&d| d as u128).product::<u128>() * 8,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook column-at-a-time modified Gram-Schmidt the blocked version must match.
    fn orthogonal_reference(shape: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
        let rows = shape[0];
        let cols: usize = shape[1..].iter().product();
        let (m, k) = (rows.max(cols), rows.min(cols));
        let mut q: Vec<Vec<f64>> = (0..k)
            .map(|_| (0..m).map(|_| normal(rng)).collect())
            .collect();
        for j in 0..k {
            let (done, rest) = q.split_at_mut(j);
            let col = &mut rest[0];
            for qi in done.iter() {
                let d: f64 = qi.iter().zip(col.iter()).map(|(a, b)| a * b).sum();
                for (c, a) in col.iter_mut().zip(qi) {
                    *c -= d * a;
                }
            }
            let norm = q[j].iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
            for x in &mut q[j] {
                *x /= norm;
            }
        }
        let mut out = vec![0.0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                out[r * cols + c] = if rows >= cols { q[c][r] } else { q[r][c] } as f32;
            }
        }
        out
    }

    #[test]
    fn blocked_orthogonal_is_bit_identical_to_column_at_a_time() {
        for shape in [
            [1, 1],
            [3, 7],
            [7, 3],
            [64, 16],
            [40, 37],
            [37, 40],
            [96, 35],
        ] {
            let a = orthogonal(&shape, &mut SplitMix64::new(11));
            let b = orthogonal_reference(&shape, &mut SplitMix64::new(11));
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{shape:?}"
            );
        }
    }
}
