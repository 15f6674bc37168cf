//! Parameter initialisers (the Keras defaults of each layer), driven by a seeded
//! [`SplitMix64`] so that the same model seed gives the same weights on every platform.
//!
//! Shapes are in trellis / PyTorch layout (`[out, in]`); fans are computed as Keras does on its
//! transposed `[in, out]` kernels, which gives the same numbers.
use crate::data::SplitMix64;

/// How a parameter starts.
#[derive(Clone, Debug, PartialEq)]
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
fn orthogonal(shape: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
    let rows = shape.first().copied().unwrap_or(1);
    let cols: usize = shape.iter().skip(1).product();
    let (m, k) = (rows.max(cols), rows.min(cols));
    // Gaussian [m, k], stored as k columns of length m; modified Gram-Schmidt in f64 is QR.
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
        // diag(R) > 0 by construction, so the sign correction of Keras is already folded in.
        let norm = q[j].iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
        for x in &mut q[j] {
            *x /= norm;
        }
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // rows >= cols: out = Q [m=rows, k=cols]; else out = Q^T [k=rows, m=cols].
            out[r * cols + c] = if rows >= cols { q[c][r] } else { q[r][c] } as f32;
        }
    }
    out
}
