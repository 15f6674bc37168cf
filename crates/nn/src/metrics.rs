//! Metrics, computed on the host from the predictions of each batch (real rows only, masked
//! steps left out) and accumulated exactly over the whole epoch: counts and scores, never a
//! mean of per-batch values. [`Tally`] is the accumulator `fit` and `evaluate` share.
use crate::losses::{Loss, LossConfig};

/// A metric of [`Sequential::compile`](crate::Sequential::compile). The loss is always
/// reported. Binary metrics read a probability above 0.5 (a logit above 0 for
/// `from_logits`) as the positive class; for several classes they read the argmax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Metric {
    /// Binary accuracy (threshold 0.5 on the probability) for one output unit with binary
    /// cross-entropy (or MSE); categorical accuracy (argmax) for several units.
    Accuracy,
    /// `tp / (tp + fp)`: binary, or for several classes the unweighted mean over classes
    /// (scikit-learn's `average="macro"`); 0 where nothing was predicted positive.
    Precision,
    /// `tp / (tp + fn)`, binary or macro as [`Metric::Precision`].
    Recall,
    /// `2 tp / (2 tp + fp + fn)`, binary or macro.
    F1Score,
    /// Area under the ROC curve, exact from every score of the epoch (tied scores count one
    /// half, as scikit-learn's `roc_auc_score`). One output unit (binary), or several
    /// independent binary units pooled (`average="micro"`).
    Auc,
    /// Whether the true class is among the `k` highest scores (Keras's
    /// `top_k_categorical_accuracy`, `k = 5` by default there).
    TopKCategoricalAccuracy(usize),
    /// `exp` of the mean cross-entropy per real step (per sample), over the epoch.
    Perplexity,
    /// Mean of `|prediction - target|` over every output unit of every real step (Keras's
    /// `"mae"`); regression outputs, not class ids.
    MeanAbsoluteError,
    /// Mean of `(prediction - target)^2`, as [`Metric::MeanAbsoluteError`] (Keras's `"mse"`).
    MeanSquaredError,
}

impl Metric {
    /// Keras's name (the key in the epoch logs, the CSV and the history).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1Score => "f1_score",
            Metric::Auc => "auc",
            Metric::TopKCategoricalAccuracy(_) => "top_k_categorical_accuracy",
            Metric::Perplexity => "perplexity",
            Metric::MeanAbsoluteError => "mae",
            Metric::MeanSquaredError => "mse",
        }
    }
}

/// The class a row of `k` scores predicts: the argmax (`usize::MAX` for a row holding a NaN:
/// no class), or for one unit whether it is above `threshold`.
fn predicted(r: &[f32], threshold: f32) -> usize {
    if r.iter().any(|v| v.is_nan()) {
        return usize::MAX;
    }
    if r.len() == 1 {
        return usize::from(r[0] > threshold);
    }
    r.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
        .0
}

/// The decision threshold of a binary output: 0.5 on probabilities, 0 on logits.
fn threshold(loss: &LossConfig) -> f32 {
    if loss.from_logits {
        0.0
    } else {
        0.5
    }
}

/// Number of correct predictions among `n` rows of `pred` (`[n, k]`) against `y` (as the user
/// gave it: `[n, k]` for binary losses, `[n]` class ids for the sparse loss), and the number of
/// decisions counted (rows, or elements for multi-label binary outputs). Per-step outputs
/// come as one row per step; `keep` (1 or 0 per row, the mask) leaves out padding steps.
///
/// A NaN prediction is no class: it counts as wrong (a row with a NaN has no argmax).
pub fn accuracy_counts(
    loss: impl Into<LossConfig>,
    pred: &[f32],
    y: &[f32],
    n: usize,
    k: usize,
    keep: Option<&[f32]>,
) -> (u64, u64) {
    let loss = loss.into();
    let t = threshold(&loss);
    let kept = |i: &usize| keep.is_none_or(|m| m[*i] > 0.0);
    let rows = (0..n).filter(kept);
    let count =
        |(ok, all): (u64, u64), (hits, of): (usize, usize)| (ok + hits as u64, all + of as u64);
    match loss.kind {
        _ if loss.kind.takes_class_ids() => rows
            .map(|i| {
                (
                    usize::from(predicted(&pred[i * k..(i + 1) * k], t) == y[i] as usize),
                    1,
                )
            })
            .fold((0, 0), count),
        _ if k == 1 || loss.kind == Loss::BinaryCrossentropy => rows
            .map(|i| {
                let r = i * k..(i + 1) * k;
                let hits = pred[r.clone()]
                    .iter()
                    .zip(&y[r])
                    .filter(|(p, y)| !p.is_nan() && (**p > t) == (**y > 0.5))
                    .count();
                (hits, k)
            })
            .fold((0, 0), count),
        _ => rows
            .map(|i| {
                let p = predicted(&pred[i * k..(i + 1) * k], t);
                (
                    usize::from(p != usize::MAX && p == predicted(&y[i * k..(i + 1) * k], 0.5)),
                    1,
                )
            })
            .fold((0, 0), count),
    }
}

/// The exact ROC AUC of `scores` with labels `positive`: the probability that a positive
/// scores above a negative, ties counting one half (the area scikit-learn's trapezoids give).
/// `None` when either class is absent (scikit-learn raises).
pub fn roc_auc(scored: &mut [(f32, bool)]) -> Option<f64> {
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pos = scored.iter().filter(|s| s.1).count() as f64;
    let neg = scored.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    // Sum over positives of the negatives below them, plus half the tied negatives.
    let (mut below, mut pairs, mut i) = (0f64, 0f64, 0);
    while i < scored.len() {
        let j = i + scored[i..]
            .iter()
            .take_while(|s| s.0 == scored[i].0)
            .count();
        let p = scored[i..j].iter().filter(|s| s.1).count() as f64;
        let n = (j - i) as f64 - p;
        pairs += p * (below + 0.5 * n);
        below += n;
        i = j;
    }
    Some(pairs / (pos * neg))
}

/// Whether an output is read as independent binary units (one unit, or binary cross-entropy).
fn is_binary(loss: &LossConfig, k: usize) -> bool {
    k == 1 || loss.kind == Loss::BinaryCrossentropy
}

/// Refuses a metric that has no meaning for an output of `k` units under `loss`, naming it
/// (checked with the data, before any work).
pub fn check(metrics: &[Metric], loss: &LossConfig, k: usize) -> crate::Result<()> {
    let binary = is_binary(loss, k);
    let ce = matches!(
        loss.kind,
        Loss::BinaryCrossentropy
            | Loss::SparseCategoricalCrossentropy
            | Loss::CategoricalCrossentropy
    );
    for m in metrics {
        let why = match *m {
            Metric::TopKCategoricalAccuracy(0) => Some("k must be at least 1".to_string()),
            Metric::TopKCategoricalAccuracy(_) if loss.kind == Loss::Crf => Some(
                "has no meaning on a Crf output: it is the decoded path, one tag a step (use \
                 accuracy)"
                    .to_string(),
            ),
            Metric::TopKCategoricalAccuracy(_) if binary => Some(format!(
                "needs one score per class, but the output has {k} unit(s) under {}",
                loss.name()
            )),
            Metric::Auc if !binary => Some(format!(
                "is computed for binary outputs, but the output has {k} classes under {}",
                loss.name()
            )),
            Metric::MeanAbsoluteError | Metric::MeanSquaredError if loss.kind.takes_class_ids() => {
                Some(format!(
                    "compares values with targets, but {} takes class ids",
                    loss.name()
                ))
            }
            Metric::Perplexity if !ce || (k > 1 && loss.kind == Loss::BinaryCrossentropy) => {
                Some(format!(
                    "is the exp of a cross-entropy over classes, which {} with {k} unit(s) is not",
                    loss.name()
                ))
            }
            _ => None,
        };
        if let Some(why) = why {
            return Err(crate::NnError::InvalidArgument {
                name: "metrics",
                value: format!("{m:?}"),
                message: format!("{} {why}", m.name()),
            });
        }
    }
    Ok(())
}

/// The tallies of a model's outputs, one each: accuracy pooled over all of them (one figure,
/// as `fit` reports it), the other metrics per output, named `name` for a one-output model
/// and `output{o}_name` (`o` from 0, in the model's output order) for several.
#[derive(Clone, Debug)]
pub struct Tallies(pub Vec<Tally>);

impl Tallies {
    /// Empty tallies for outputs of `widths` units under `losses`.
    pub fn new(losses: &[LossConfig], metrics: &[Metric], widths: &[usize]) -> Tallies {
        Tallies(
            losses
                .iter()
                .zip(widths)
                .map(|(&l, &k)| Tally::new(l, metrics, k))
                .collect(),
        )
    }
    /// Accuracy over every output's decisions, when compiled.
    pub fn accuracy(&self) -> Option<f64> {
        let first = self.0.first()?;
        first.has(|m| *m == Metric::Accuracy).then(|| {
            let ok: u64 = self.0.iter().map(|t| t.correct).sum();
            let all: u64 = self.0.iter().map(|t| t.counted).sum();
            ok as f64 / all.max(1) as f64
        })
    }
    /// The other metrics by Keras name (see [`Tallies`]), `prefix` first (`"val_"`).
    pub fn results(&self, prefix: &str) -> Vec<(String, f64)> {
        if let [one] = self.0.as_slice() {
            return one.results(prefix);
        }
        let per = self.0.iter().enumerate();
        per.flat_map(|(o, t)| t.results(&format!("{prefix}output{o}_")))
            .collect()
    }
}

/// The exact state of every compiled metric over the batches seen so far.
#[derive(Clone, Debug)]
pub struct Tally {
    loss: LossConfig,
    metrics: Vec<Metric>,
    k: usize,
    correct: u64,
    counted: u64,
    /// Per class (one class `1` for a binary output): true positives, false positives, false
    /// negatives.
    confusion: Vec<[u64; 3]>,
    /// (score, is positive) of every binary decision, for the AUC.
    scored: Vec<(f32, bool)>,
    top_k: (u64, u64),
    /// Sum of `-ln p(true class)` and steps counted, for the perplexity.
    nll: (f64, u64),
    /// Sums of `|p - y|` and `(p - y)^2`, and the values counted.
    errors: (f64, f64, u64),
}

impl Tally {
    /// An empty tally of `metrics` for outputs of `k` units under `loss`.
    pub fn new(loss: impl Into<LossConfig>, metrics: &[Metric], k: usize) -> Tally {
        let loss = loss.into();
        let classes = if is_binary(&loss, k) { 1 } else { k };
        Tally {
            loss,
            metrics: metrics.to_vec(),
            k,
            correct: 0,
            counted: 0,
            confusion: vec![[0; 3]; classes],
            scored: Vec::new(),
            top_k: (0, 0),
            nll: (0.0, 0),
            errors: (0.0, 0.0, 0),
        }
    }

    fn has(&self, f: impl Fn(&Metric) -> bool) -> bool {
        self.metrics.iter().any(f)
    }

    /// Adds `n` rows (one per sample, or per step) of `pred` (`[n, k]`) against `y` as the
    /// user gave it (class ids for the sparse loss, else `k` values per row); rows whose
    /// `keep` is 0 (masked steps) count for nothing.
    pub fn add(&mut self, pred: &[f32], y: &[f32], keep: Option<&[f32]>) {
        let k = self.k;
        let n = pred.len() / k;
        if self.has(|m| *m == Metric::Accuracy) {
            let (ok, all) = accuracy_counts(self.loss, pred, y, n, k, keep);
            self.correct += ok;
            self.counted += all;
        }
        let t = threshold(&self.loss);
        let sparse = self.loss.kind.takes_class_ids();
        let binary = is_binary(&self.loss, k);
        let confusion =
            self.has(|m| matches!(m, Metric::Precision | Metric::Recall | Metric::F1Score));
        let auc = self.has(|m| *m == Metric::Auc);
        let top_k = self.metrics.iter().find_map(|m| match m {
            Metric::TopKCategoricalAccuracy(k) => Some(*k),
            _ => None,
        });
        let nll = self.has(|m| *m == Metric::Perplexity);
        let errors =
            self.has(|m| matches!(m, Metric::MeanAbsoluteError | Metric::MeanSquaredError));
        for i in (0..n).filter(|&i| keep.is_none_or(|m| m[i] > 0.0)) {
            let p = &pred[i * k..(i + 1) * k];
            // The true class (binary: whether the label is positive).
            let truth = if sparse {
                y[i] as usize
            } else {
                predicted(&y[i * k..(i + 1) * k], 0.5)
            };
            if confusion && binary {
                let yr = &y[i * k..(i + 1) * k];
                let c = &mut self.confusion[0];
                for (&s, &l) in p.iter().zip(yr) {
                    match (s > t, l > 0.5) {
                        (true, true) => c[0] += 1,
                        (true, false) => c[1] += 1,
                        (false, true) => c[2] += 1,
                        _ => {}
                    }
                }
            } else if confusion {
                let guess = predicted(p, t);
                if guess == truth {
                    self.confusion[truth][0] += 1;
                } else {
                    // A row with a NaN predicts no class: a miss, and no false positive.
                    if let Some(c) = self.confusion.get_mut(guess) {
                        c[1] += 1;
                    }
                    self.confusion[truth][2] += 1;
                }
            }
            if auc {
                let yr = &y[i * k..(i + 1) * k];
                self.scored
                    .extend(p.iter().zip(yr).map(|(&s, &l)| (s, l > 0.5)));
            }
            if let Some(top) = top_k {
                let s = p[truth];
                let above = p.iter().filter(|&&v| v > s).count();
                self.top_k.0 += u64::from(!s.is_nan() && above < top);
                self.top_k.1 += 1;
            }
            if nll {
                self.nll.0 += self.neg_log_likelihood(p, truth);
                self.nll.1 += 1;
            }
            if errors {
                for (&a, &b) in p.iter().zip(&y[i * k..(i + 1) * k]) {
                    let d = a as f64 - b as f64;
                    self.errors.0 += d.abs();
                    self.errors.1 += d * d;
                    self.errors.2 += 1;
                }
            }
        }
    }

    /// `-ln p(truth)` from probabilities (clipped to 1e-7, as the loss) or logits.
    fn neg_log_likelihood(&self, p: &[f32], truth: usize) -> f64 {
        if self.k == 1 {
            let v = p[0] as f64;
            let p1 = if self.loss.from_logits {
                1.0 / (1.0 + (-v).exp())
            } else {
                v
            };
            let q = if truth == 1 { p1 } else { 1.0 - p1 };
            return -q.clamp(1e-7, 1.0).ln();
        }
        if self.loss.from_logits {
            let m = p.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let lse = m + p.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            return lse - p[truth] as f64;
        }
        -(p[truth] as f64).clamp(1e-7, 1.0).ln()
    }

    /// Accuracy over everything added, when compiled.
    pub fn accuracy(&self) -> Option<f64> {
        self.has(|m| *m == Metric::Accuracy)
            .then(|| self.correct as f64 / self.counted.max(1) as f64)
    }

    /// Every compiled metric but accuracy, by Keras name, in the order compiled (`prefix`
    /// `"val_"` for validation). A metric with no defined value (AUC with one class only)
    /// is NaN.
    pub fn results(&self, prefix: &str) -> Vec<(String, f64)> {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let macro_avg = |f: &dyn Fn(&[u64; 3]) -> f64| {
            self.confusion.iter().map(f).sum::<f64>() / self.confusion.len() as f64
        };
        self.metrics
            .iter()
            .filter(|m| **m != Metric::Accuracy)
            .map(|m| {
                let v = match m {
                    Metric::Precision => macro_avg(&|c| ratio(c[0], c[0] + c[1])),
                    Metric::Recall => macro_avg(&|c| ratio(c[0], c[0] + c[2])),
                    Metric::F1Score => macro_avg(&|c| ratio(2 * c[0], 2 * c[0] + c[1] + c[2])),
                    Metric::Auc => roc_auc(&mut self.scored.clone()).unwrap_or(f64::NAN),
                    Metric::TopKCategoricalAccuracy(_) => ratio(self.top_k.0, self.top_k.1),
                    Metric::Perplexity => (self.nll.0 / self.nll.1.max(1) as f64).exp(),
                    Metric::MeanAbsoluteError => self.errors.0 / self.errors.2.max(1) as f64,
                    Metric::MeanSquaredError => self.errors.1 / self.errors.2.max(1) as f64,
                    Metric::Accuracy => unreachable!("filtered out"),
                };
                (format!("{prefix}{}", m.name()), v)
            })
            .collect()
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
