//! Losses as graph builders. Each reduces the last axis (the output units) to 1: a per-sample
//! loss `[B, 1]`, or per step `[B, T, 1]` for sequence outputs. The model reduces it with a
//! weight input of the same shape (`sum(loss * w)`, `w = 1/n` on the `n` real rows — or real
//! steps — of a batch and 0 on padding), so one plan at the full batch size trains a partial
//! batch exactly.
use trellis_ir::models::bce_with_logits_per_sample;
use trellis_ir::softmax::log_softmax;
use trellis_ir::{Graph, NodeId};

use crate::layers::Activation;
use crate::Result;

/// A loss of [`Sequential::compile`](crate::Sequential::compile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Loss {
    /// Labels 0/1, one per output unit. From the logit when the last activation is a sigmoid
    /// (stable for large |z|); otherwise from the probability, clipped to `[1e-7, 1 - 1e-7]`
    /// as Keras does.
    BinaryCrossentropy,
    /// Integer class labels (given as `f32` class indices, one per sample). From the logits
    /// with a stable log-softmax when the last activation is a softmax; otherwise from the
    /// clipped probabilities.
    SparseCategoricalCrossentropy,
    /// Mean over the output units of `(prediction - target)^2`.
    MeanSquaredError,
}

impl Loss {
    /// Keras's name of the loss.
    pub fn name(self) -> &'static str {
        match self {
            Loss::BinaryCrossentropy => "binary_crossentropy",
            Loss::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
            Loss::MeanSquaredError => "mean_squared_error",
        }
    }

    /// The per-sample loss `[B, 1]` (per step: `[B, T, 1]`) of the output `pred` (`[B, K]`,
    /// `[B, T, K]`) whose logit and activation are `logits` when known, against the target
    /// node `y` (`pred`'s shape; for the sparse loss, the labels one-hot encoded on the host).
    pub fn per_sample(
        self,
        g: &mut Graph,
        pred: NodeId,
        logits: Option<(NodeId, Activation)>,
        y: NodeId,
    ) -> Result<NodeId> {
        match (self, logits) {
            (Loss::BinaryCrossentropy, Some((z, Activation::Sigmoid))) => {
                Ok(bce_with_logits_per_sample(g, z, y)?)
            }
            (Loss::BinaryCrossentropy, _) => bce_per_sample(g, pred, y),
            (Loss::SparseCategoricalCrossentropy, Some((z, Activation::Softmax))) => {
                let ls = log_softmax(g, z)?;
                nll_per_sample(g, ls, y)
            }
            (Loss::SparseCategoricalCrossentropy, _) => {
                let p = clip(g, pred)?;
                let lp = g.log(p)?;
                nll_per_sample(g, lp, y)
            }
            (Loss::MeanSquaredError, _) => mse_per_sample(g, pred, y),
        }
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
    let l = g.mul(per_sample, wm)?;
    let num = g.sum_all(l)?;
    let den = g.sum_all(wm)?;
    let tiny = g.scalar_like(den, 1e-30)?;
    let den = g.maximum(den, tiny)?;
    Ok(g.div(num, den)?)
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

/// The mean over the last axis, kept as size 1.
fn mean_last(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    let axis = g.ty(x).rank() - 1;
    Ok(g.mean(x, &[axis], true)?)
}
