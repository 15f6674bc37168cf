//! Metrics, computed on the host from the predictions of each batch (real rows only).
use crate::losses::Loss;

/// A metric of [`Sequential::compile`](crate::Sequential::compile). The loss is always
/// reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Binary accuracy (threshold 0.5 on the probability) for one output unit with binary
    /// cross-entropy (or MSE); categorical accuracy (argmax) for several units.
    Accuracy,
}

/// Number of correct predictions among `n` rows of `pred` (`[n, k]`) against `y` (as the user
/// gave it: `[n, k]` for binary losses, `[n]` class ids for the sparse loss), and the number of
/// decisions counted (rows, or elements for multi-label binary outputs).
pub fn accuracy_counts(loss: Loss, pred: &[f32], y: &[f32], n: usize, k: usize) -> (u64, u64) {
    let argmax = |r: &[f32]| {
        r.iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0
    };
    match loss {
        Loss::SparseCategoricalCrossentropy => {
            let correct = (0..n)
                .filter(|&i| argmax(&pred[i * k..(i + 1) * k]) == y[i] as usize)
                .count();
            (correct as u64, n as u64)
        }
        _ if k == 1 || loss == Loss::BinaryCrossentropy => {
            let correct = pred[..n * k]
                .iter()
                .zip(&y[..n * k])
                .filter(|(p, t)| (**p > 0.5) == (**t > 0.5))
                .count();
            (correct as u64, (n * k) as u64)
        }
        _ => {
            let correct = (0..n)
                .filter(|&i| argmax(&pred[i * k..(i + 1) * k]) == argmax(&y[i * k..(i + 1) * k]))
                .count();
            (correct as u64, n as u64)
        }
    }
}
