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
/// decisions counted (rows, or elements for multi-label binary outputs). Per-step outputs
/// come as one row per step; `keep` (1 or 0 per row, the mask) leaves out padding steps.
///
/// A NaN prediction is no class: it counts as wrong (a row with a NaN has no argmax).
pub fn accuracy_counts(
    loss: Loss,
    pred: &[f32],
    y: &[f32],
    n: usize,
    k: usize,
    keep: Option<&[f32]>,
) -> (u64, u64) {
    let kept = |i: &usize| keep.is_none_or(|m| m[*i] > 0.0);
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
            let rows = (0..n).filter(kept);
            let (ok, all) = rows.fold((0, 0), |(ok, all), i| {
                let hit = argmax(&pred[i * k..(i + 1) * k]) == y[i] as usize;
                (ok + u64::from(hit), all + 1)
            });
            (ok, all)
        }
        _ if k == 1 || loss == Loss::BinaryCrossentropy => {
            let rows = (0..n).filter(kept);
            let (ok, all) = rows.fold((0, 0), |(ok, all), i| {
                let r = i * k..(i + 1) * k;
                let hits = pred[r.clone()]
                    .iter()
                    .zip(&y[r])
                    .filter(|(p, t)| !p.is_nan() && (**p > 0.5) == (**t > 0.5))
                    .count();
                (ok + hits as u64, all + k as u64)
            });
            (ok, all)
        }
        _ => {
            let rows = (0..n).filter(kept);
            let (ok, all) = rows.fold((0, 0), |(ok, all), i| {
                let p = argmax(&pred[i * k..(i + 1) * k]);
                let hit = p != usize::MAX && p == argmax(&y[i * k..(i + 1) * k]);
                (ok + u64::from(hit), all + 1)
            });
            (ok, all)
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
            None,
        );
        assert_eq!(c, (1, 3));
        // Categorical: a row holding a NaN has no argmax, even against class 0.
        let p = [nan, 0.1, 0.2, 0.7, 0.2, 0.1];
        let c = accuracy_counts(
            Loss::SparseCategoricalCrossentropy,
            &p,
            &[0.0, 0.0],
            2,
            3,
            None,
        );
        assert_eq!(c, (1, 2));
        let y = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        assert_eq!(
            accuracy_counts(Loss::MeanSquaredError, &p, &y, 2, 3, None),
            (1, 2)
        );
    }

    #[test]
    fn masked_rows_count_for_nothing() {
        // Three steps of two classes; the wrong second step is padding.
        let p = [0.9, 0.1, 0.8, 0.2, 0.3, 0.7];
        let y = [0.0, 1.0, 1.0];
        let sparse = Loss::SparseCategoricalCrossentropy;
        assert_eq!(accuracy_counts(sparse, &p, &y, 3, 2, None), (2, 3));
        let keep = [1.0, 0.0, 1.0];
        assert_eq!(accuracy_counts(sparse, &p, &y, 3, 2, Some(&keep)), (2, 2));
        let bce = Loss::BinaryCrossentropy;
        let (p, y) = ([0.9, 0.2, 0.4], [1.0, 1.0, 0.0]);
        assert_eq!(accuracy_counts(bce, &p, &y, 3, 1, Some(&keep)), (2, 2));
    }
}
