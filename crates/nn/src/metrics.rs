//! Metrics, computed on the host from the predictions of each batch (real rows only).
use crate::losses::Loss;

/// A metric of [`Sequential::compile`](crate::Sequential::compile). The loss is always
/// reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Metric {
    /// Binary accuracy (threshold 0.5 on the probability) for one output unit with binary
    /// cross-entropy (or MSE); categorical accuracy (argmax) for several units.
    Accuracy,
}

/// Number of correct predictions among `n` rows of `pred` (`[n, k]`) against `y` (as the user
/// gave it: `[n, k]` for binary losses, `[n]` class ids for the sparse loss), and the number of
/// decisions counted (rows, or elements for multi-label binary outputs).
///
/// A NaN prediction is no class: it counts as wrong (a row with a NaN has no argmax).
pub fn accuracy_counts(loss: Loss, pred: &[f32], y: &[f32], n: usize, k: usize) -> (u64, u64) {
    let argmax = |r: &[f32]| {
        if r.iter().any(|v| v.is_nan()) {
            return usize::MAX;
        }
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
                .filter(|(p, t)| !p.is_nan() && (**p > 0.5) == (**t > 0.5))
                .count();
            (correct as u64, (n * k) as u64)
        }
        _ => {
            let correct = (0..n)
                .filter(|&i| {
                    let p = argmax(&pred[i * k..(i + 1) * k]);
                    p != usize::MAX && p == argmax(&y[i * k..(i + 1) * k])
                })
                .count();
            (correct as u64, n as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_predictions_count_as_wrong() {
        let nan = f32::NAN;
        // Binary: a NaN is neither above nor below the threshold.
        let c = accuracy_counts(
            Loss::BinaryCrossentropy,
            &[nan, nan, 0.9],
            &[0.0, 1.0, 1.0],
            3,
            1,
        );
        assert_eq!(c, (1, 3));
        // Categorical: a row holding a NaN has no argmax, even against class 0.
        let p = [nan, 0.1, 0.2, 0.7, 0.2, 0.1];
        let c = accuracy_counts(Loss::SparseCategoricalCrossentropy, &p, &[0.0, 0.0], 2, 3);
        assert_eq!(c, (1, 2));
        let y = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        assert_eq!(
            accuracy_counts(Loss::MeanSquaredError, &p, &y, 2, 3),
            (1, 2)
        );
    }
}
