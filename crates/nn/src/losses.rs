//! Losses as graph builders. Each reduces the last axis (the output units) to 1: a per-sample
//! loss `[B, 1]`, or per step `[B, T, 1]` for sequence outputs. The model reduces it with a
//! weight input of the same shape (`sum(loss * w)`, `w = 1/n` on the `n` real rows — or real
//! steps — of a batch and 0 on padding), so one plan at the full batch size trains a partial
//! batch exactly.
use trellis_ir::crf::crf_nll;
use trellis_ir::models::bce_with_logits_per_sample;
use trellis_ir::softmax::log_softmax;
use trellis_ir::{Graph, NodeId};

use crate::layers::{Activation, CrfHead};
use crate::{NnError, Result};

/// A loss of [`Sequential::compile`](crate::Sequential::compile), with Keras's defaults;
/// [`LossConfig`] (from [`Loss::from_logits`], [`Loss::with_label_smoothing`],
/// [`Loss::with_delta`]) sets the options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Loss {
    /// Labels in [0, 1] (hard 0/1 or soft), one per output unit. From probabilities: from
    /// the logit when the last activation is a sigmoid (stable for large |z|), else clipped to
    /// `[1e-7, 1 - 1e-7]` as Keras does; `from_logits`: `max(z, 0) - z y + log(1 + e^-|z|)`.
    BinaryCrossentropy,
    /// Integer class labels (given as `f32` class indices, one per sample). From the logits
    /// with a stable log-softmax when the last activation is a softmax (or `from_logits`);
    /// otherwise from the clipped probabilities.
    SparseCategoricalCrossentropy,
    /// Mean over the output units of `(prediction - target)^2`.
    MeanSquaredError,
    /// One-hot or soft labels `[n, K]` (per step `[n, T, K]`): `-sum y log p`, with `p`
    /// normalised to sum 1 and clipped when given as probabilities, or the log-softmax of
    /// the logits (last activation a softmax, or `from_logits`).
    CategoricalCrossentropy,
    /// Mean over the output units of `|prediction - target|` (robust to outliers; time series).
    MeanAbsoluteError,
    /// Mean over the output units of `0.5 d^2` where `|d| <= delta`, `delta (|d| - delta/2)`
    /// beyond (`d = prediction - target`; `delta` 1 unless set).
    Huber,
    /// The negative log-likelihood of the tag sequence under a [`Crf`](crate::layers::Crf)
    /// output (labels: tag ids per step, as the sparse loss), a loss per sequence: the mean
    /// over the batch's sequences, each weighted by the mean weight of its real steps.
    Crf,
}

/// A [`Loss`] with its options (Keras's loss objects: `BinaryCrossentropy(from_logits=True,
/// label_smoothing=0.1)`, `Huber(delta=2.0)`). `compile` takes either.
///
/// **Probabilities or logits.** A probability loss (`from_logits = false`) on an output whose
/// last activation is known not to give probabilities (a Dense with `Linear`, `Relu` or
/// `Tanh`) is refused when the step is built: Keras would clip those values to
/// `[1e-7, 1 - 1e-7]` and train on nonsense without a word. `from_logits = true` on an output
/// that already went through a sigmoid or softmax is refused too (Keras warns).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "LossRepr")]
pub struct LossConfig {
    pub kind: Loss,
    /// The output is logits (cross-entropies only).
    pub from_logits: bool,
    /// Targets move towards uniform: `y (1 - s) + s / K` (`K` classes; 2 for binary
    /// cross-entropy, Keras's `0.5 s`). Cross-entropies only; in [0, 1).
    pub label_smoothing: f64,
    /// Huber's threshold (positive).
    pub delta: f64,
}

fn one() -> f64 {
    1.0
}

/// What a saved [`LossConfig`] may be: the bare kind (saved models before loss options), or
/// the kind with its options.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum LossRepr {
    Kind(Loss),
    Full {
        kind: Loss,
        #[serde(default)]
        from_logits: bool,
        #[serde(default)]
        label_smoothing: f64,
        #[serde(default = "one")]
        delta: f64,
    },
}

impl From<LossRepr> for LossConfig {
    fn from(r: LossRepr) -> Self {
        match r {
            LossRepr::Kind(kind) => kind.into(),
            LossRepr::Full {
                kind,
                from_logits,
                label_smoothing,
                delta,
            } => LossConfig {
                kind,
                from_logits,
                label_smoothing,
                delta,
            },
        }
    }
}

impl From<Loss> for LossConfig {
    fn from(kind: Loss) -> Self {
        LossConfig {
            kind,
            from_logits: false,
            label_smoothing: 0.0,
            delta: 1.0,
        }
    }
}

impl Loss {
    /// Keras's name of the loss.
    pub fn name(self) -> &'static str {
        match self {
            Loss::BinaryCrossentropy => "binary_crossentropy",
            Loss::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
            Loss::MeanSquaredError => "mean_squared_error",
            Loss::CategoricalCrossentropy => "categorical_crossentropy",
            Loss::Huber => "huber",
            Loss::MeanAbsoluteError => "mean_absolute_error",
            Loss::Crf => "crf_loss",
        }
    }
    /// The labels are class ids (one per sample or step), one-hot encoded on the host.
    pub fn takes_class_ids(self) -> bool {
        matches!(self, Loss::SparseCategoricalCrossentropy | Loss::Crf)
    }
    /// This loss on logits (`true`) or probabilities.
    pub fn from_logits(self, yes: bool) -> LossConfig {
        LossConfig::from(self).from_logits(yes)
    }
    pub fn with_label_smoothing(self, s: f64) -> LossConfig {
        LossConfig::from(self).with_label_smoothing(s)
    }
    pub fn with_delta(self, delta: f64) -> LossConfig {
        LossConfig::from(self).with_delta(delta)
    }
    fn is_crossentropy(self) -> bool {
        matches!(
            self,
            Loss::BinaryCrossentropy
                | Loss::SparseCategoricalCrossentropy
                | Loss::CategoricalCrossentropy
        )
    }
    /// The per-sample loss with Keras's defaults (see [`LossConfig::per_sample`]).
    pub fn per_sample(
        self,
        g: &mut Graph,
        pred: NodeId,
        logits: Option<(NodeId, Activation)>,
        y: NodeId,
    ) -> Result<NodeId> {
        LossConfig::from(self).per_sample(g, pred, logits, y)
    }
}

impl LossConfig {
    pub fn from_logits(mut self, yes: bool) -> Self {
        self.from_logits = yes;
        self
    }
    pub fn with_label_smoothing(mut self, s: f64) -> Self {
        self.label_smoothing = s;
        self
    }
    pub fn with_delta(mut self, delta: f64) -> Self {
        self.delta = delta;
        self
    }
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Refuses options the loss does not have or values out of their domain (done by
    /// `compile`), naming the option.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, value: String, message: String| {
            Err(NnError::InvalidArgument {
                name,
                value,
                message,
            })
        };
        let ce = self.kind.is_crossentropy();
        if self.from_logits && !ce {
            return bad(
                "from_logits",
                "true".into(),
                format!("{} has no logits form (cross-entropies only)", self.name()),
            );
        }
        let s = self.label_smoothing;
        if s != 0.0 && !ce {
            return bad(
                "label_smoothing",
                s.to_string(),
                format!(
                    "{} has no label smoothing (cross-entropies only)",
                    self.name()
                ),
            );
        }
        if !(0.0..1.0).contains(&s) {
            return bad("label_smoothing", s.to_string(), "must be in [0, 1)".into());
        }
        let d = self.delta;
        if !(d.is_finite() && d > 0.0 && d as f32 > 0.0) {
            return bad("delta", d.to_string(), "must be positive and finite".into());
        }
        if d != 1.0 && self.kind != Loss::Huber {
            return bad(
                "delta",
                d.to_string(),
                format!("{} has no delta (Huber only)", self.name()),
            );
        }
        Ok(())
    }

    /// Refuses the probability/logit mix-ups described on [`LossConfig`] for an output whose
    /// last activation is `last` (when known), naming the activation and the fix.
    pub fn check_output(&self, last: Option<Activation>) -> Result<()> {
        let Some(act) = last.filter(|_| self.kind.is_crossentropy()) else {
            return Ok(());
        };
        let prob = if self.kind == Loss::BinaryCrossentropy {
            "Activation::Sigmoid"
        } else {
            "Activation::Softmax"
        };
        let gives_probabilities = matches!(
            act,
            Activation::Sigmoid | Activation::Softmax | Activation::HardSigmoid
        );
        let message = match (self.from_logits, gives_probabilities) {
            (false, false) => format!(
                "takes probabilities, but the last layer's activation is {act:?}, whose values \
                 are not probabilities (they would be clipped to [1e-7, 1 - 1e-7] and the \
                 model would not learn): end the model with {prob}, or use \
                 Loss::{:?}.from_logits(true) on a linear output",
                self.kind
            ),
            (true, true) => format!(
                "is set from_logits, but the last layer's activation is {act:?}: its output is \
                 already a probability; drop from_logits, or end the model with \
                 Activation::Linear"
            ),
            _ => return Ok(()),
        };
        Err(NnError::Model(format!("{} {message}", self.name())))
    }

    /// The per-sample loss `[B, 1]` (per step: `[B, T, 1]`) of the output `pred` (`[B, K]`,
    /// `[B, T, K]`) whose logit and activation are `logits` when known, against the target
    /// node `y` (`pred`'s shape; for the sparse loss, the labels one-hot encoded on the host).
    pub fn per_sample(
        &self,
        g: &mut Graph,
        pred: NodeId,
        logits: Option<(NodeId, Activation)>,
        y: NodeId,
    ) -> Result<NodeId> {
        let y = self.smooth(g, y)?;
        let z = match (self.from_logits, logits) {
            (true, _) => Some(pred),
            (false, Some((z, Activation::Sigmoid))) if self.kind == Loss::BinaryCrossentropy => {
                Some(z)
            }
            (false, Some((z, Activation::Softmax))) if self.kind != Loss::BinaryCrossentropy => {
                Some(z)
            }
            _ => None,
        };
        match (self.kind, z) {
            (Loss::BinaryCrossentropy, Some(z)) => Ok(bce_with_logits_per_sample(g, z, y)?),
            (Loss::BinaryCrossentropy, None) => bce_per_sample(g, pred, y),
            (Loss::SparseCategoricalCrossentropy | Loss::CategoricalCrossentropy, Some(z)) => {
                let ls = log_softmax(g, z)?;
                nll_per_sample(g, ls, y)
            }
            (Loss::SparseCategoricalCrossentropy, None) => {
                let p = clip(g, pred)?;
                let lp = g.log(p)?;
                nll_per_sample(g, lp, y)
            }
            (Loss::CategoricalCrossentropy, None) => {
                // Keras: probabilities renormalised to sum 1 over the classes, then clipped.
                let axis = g.ty(pred).rank() - 1;
                let total = g.sum(pred, &[axis], true)?;
                let p = g.div(pred, total)?;
                let p = clip(g, p)?;
                let lp = g.log(p)?;
                nll_per_sample(g, lp, y)
            }
            (Loss::MeanSquaredError, _) => mse_per_sample(g, pred, y),
            (Loss::Huber, _) => huber_per_sample(g, pred, y, self.delta),
            (Loss::MeanAbsoluteError, _) => mae_per_sample(g, pred, y),
            (Loss::Crf, _) => Err(NnError::Model(
                "crf_loss is a loss per sequence, of a Crf layer's output (see crf_loss)".into(),
            )),
        }
    }

    /// `y (1 - s) + s / K` (K = 2 for binary cross-entropy), or `y` itself without smoothing.
    fn smooth(&self, g: &mut Graph, y: NodeId) -> Result<NodeId> {
        let s = self.label_smoothing;
        if s == 0.0 {
            return Ok(y);
        }
        let k = match self.kind {
            Loss::BinaryCrossentropy => 2,
            _ => *g.ty(y).dims().last().expect("targets have units"),
        };
        let keep = g.scalar_like(y, 1.0 - s)?;
        let add = g.scalar_like(y, s / k as f64)?;
        let y = g.mul(y, keep)?;
        Ok(g.add(y, add)?)
    }
}

/// The weighted mean loss, a scalar: `sum(l * w)` for weights that sum to 1 (the host's
/// `1/n` per real row), or with a mask `m` (1 on real steps, 0 on padding) `sum(l * w * m) /
/// sum(w * m)`, so masked steps count for nothing. A batch with no real step has loss 0.
pub fn weighted_mean(
    g: &mut Graph,
    per_sample: NodeId,
    w: NodeId,
    mask: Option<NodeId>,
) -> Result<NodeId> {
    let Some(m) = mask else {
        let l = g.mul(per_sample, w)?;
        return Ok(g.sum_all(l)?);
    };
    let wm = g.mul(w, m)?;
    weighted_average(g, per_sample, wm)
}

/// `sum(values * weights) / sum(weights)`, 0 when every weight is 0.
fn weighted_average(g: &mut Graph, values: NodeId, weights: NodeId) -> Result<NodeId> {
    let l = g.mul(values, weights)?;
    let num = g.sum_all(l)?;
    let den = g.sum_all(weights)?;
    let tiny = g.scalar_like(den, 1e-30)?;
    let den = g.maximum(den, tiny)?;
    Ok(g.div(num, den)?)
}

/// The CRF loss, a scalar: `sum_b nll_b r_b / sum_b r_b`, where `nll_b` is sequence `b`'s
/// negative log-likelihood of the tags `y` (one-hot `[B, T, K]`) and `r_b` the mean of its
/// real steps' weights `w [B, T, 1]` (the host's `1/n`, 0 on padding rows): the mean over the
/// batch's sequences (pytorch-crf's `reduction="mean"`, tfa's CRF loss), sample and class
/// weights respected. A batch with no real step has loss 0.
pub fn crf_loss(
    g: &mut Graph,
    head: &CrfHead,
    y: NodeId,
    w: NodeId,
    mask: Option<NodeId>,
) -> Result<NodeId> {
    let nll = crf_nll(g, head.emissions, y, mask, &head.weights)?;
    let dims = g.ty(head.emissions).dims().to_vec();
    let (b, t) = (dims[0], dims[1]);
    let w = g.reshape(w, [b, t])?;
    let (w, steps) = match mask {
        Some(m) => {
            let wm = g.mul(w, m)?;
            let steps = g.sum(m, &[1], true)?;
            let one = g.scalar_like(steps, 1.0)?;
            (wm, g.maximum(steps, one)?)
        }
        None => (w, g.scalar_like(w, t as f64)?),
    };
    let wsum = g.sum(w, &[1], true)?;
    let r = g.div(wsum, steps)?;
    weighted_average(g, nll, r)
}

/// Probability clipped to `[1e-7, 1 - 1e-7]` (Keras's epsilon).
fn clip(g: &mut Graph, p: NodeId) -> Result<NodeId> {
    let lo = g.scalar_like(p, 1e-7)?;
    let hi = g.scalar_like(p, 1.0 - 1e-7)?;
    let p = g.maximum(p, lo)?;
    Ok(g.minimum(p, hi)?)
}

/// Binary cross-entropy from probabilities `p [.., K]` over the last axis, `[.., 1]`.
pub fn bce_per_sample(g: &mut Graph, p: NodeId, y: NodeId) -> Result<NodeId> {
    let p = clip(g, p)?;
    let one = g.scalar_like(p, 1.0)?;
    let lp = g.log(p)?;
    let q = g.sub(one, p)?;
    let lq = g.log(q)?;
    let ny = g.sub(one, y)?;
    let a = g.mul(y, lp)?;
    let b = g.mul(ny, lq)?;
    let s = g.add(a, b)?;
    let m = mean_last(g, s)?;
    Ok(g.neg(m)?)
}

/// `-sum_c onehot * logp` over the last axis, `[.., 1]`.
fn nll_per_sample(g: &mut Graph, logp: NodeId, onehot: NodeId) -> Result<NodeId> {
    let t = g.mul(onehot, logp)?;
    let axis = g.ty(t).rank() - 1;
    let s = g.sum(t, &[axis], true)?;
    Ok(g.neg(s)?)
}

/// Mean squared error over the last axis, `[.., 1]`.
pub fn mse_per_sample(g: &mut Graph, p: NodeId, y: NodeId) -> Result<NodeId> {
    let d = g.sub(p, y)?;
    let d2 = g.mul(d, d)?;
    mean_last(g, d2)
}

/// Mean absolute error over the last axis, `[.., 1]`.
pub fn mae_per_sample(g: &mut Graph, p: NodeId, y: NodeId) -> Result<NodeId> {
    let d = g.sub(p, y)?;
    let a = g.abs(d)?;
    mean_last(g, a)
}

/// Huber loss over the last axis, `[.., 1]`: with `a = |p - y|` and `q = min(a, delta)`,
/// `0.5 q^2 + delta (a - q)` (one branch-free form of both pieces).
pub fn huber_per_sample(g: &mut Graph, p: NodeId, y: NodeId, delta: f64) -> Result<NodeId> {
    let d = g.sub(p, y)?;
    let a = g.abs(d)?;
    let dl = g.scalar_like(a, delta)?;
    let q = g.minimum(a, dl)?;
    let q2 = g.mul(q, q)?;
    let half = g.scalar_like(a, 0.5)?;
    let quad = g.mul(half, q2)?;
    let over = g.sub(a, q)?;
    let lin = g.mul(dl, over)?;
    let l = g.add(quad, lin)?;
    mean_last(g, l)
}

/// The mean over the last axis, kept as size 1.
fn mean_last(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    let axis = g.ty(x).rank() - 1;
    Ok(g.mean(x, &[axis], true)?)
}
