//! Normalisation as graph builders: layer normalisation over the last axis (Keras's
//! `LayerNormalization`, PyTorch's `nn.LayerNorm`) and batch normalisation over every axis but
//! the last (Keras's `BatchNormalization`, PyTorch's `nn.BatchNorm1d` on features last). Both
//! are composed of reductions and elementwise ops, so their gradients are autodiff's and the
//! compiler fuses them like any other elementwise chain.
use crate::{Graph, IrError, NodeId, Result};

/// `(x - mean) / sqrt(var + epsilon) * gamma + beta` over the last axis of `x`, `var` the
/// biased variance (both frameworks'); `gamma` and `beta` (`[F]`, optional) broadcast over the
/// leading axes.
pub fn layer_norm(
    g: &mut Graph,
    x: NodeId,
    gamma: Option<NodeId>,
    beta: Option<NodeId>,
    epsilon: f64,
) -> Result<NodeId> {
    check_features(
        g,
        "layer_norm",
        x,
        &[("gamma", gamma), ("beta", beta)],
        epsilon,
    )?;
    let ty = g.ty(x).clone();
    let axis = ty.rank() - 1;
    let mean = g.mean(x, &[axis], true)?;
    let xc = g.sub(x, mean)?;
    let sq = g.mul(xc, xc)?;
    let var = g.mean(sq, &[axis], true)?;
    scale_shift(g, xc, var, gamma, beta, epsilon)
}

/// `xc / sqrt(var + epsilon) * gamma + beta` (`gamma`, `beta` optional).
fn scale_shift(
    g: &mut Graph,
    xc: NodeId,
    var: NodeId,
    gamma: Option<NodeId>,
    beta: Option<NodeId>,
    epsilon: f64,
) -> Result<NodeId> {
    let eps = g.scalar(epsilon, g.ty(xc).dtype);
    let ve = g.add(var, eps)?;
    let sd = g.sqrt(ve)?;
    let mut y = g.div(xc, sd)?;
    if let Some(s) = gamma {
        y = g.mul(y, s)?;
    }
    if let Some(b) = beta {
        y = g.add(y, b)?;
    }
    Ok(y)
}

/// The feature count of `x` (its last axis) after checking `x`, `epsilon` and that each
/// per-feature vector in `per_feature` is `[F]`.
fn check_features(
    g: &Graph,
    what: &str,
    x: NodeId,
    per_feature: &[(&str, Option<NodeId>)],
    epsilon: f64,
) -> Result<usize> {
    let ty = g.ty(x);
    let f = match ty.dims().last() {
        Some(&f) if f > 0 && ty.dtype.is_float() => f,
        _ => {
            return Err(IrError::Invalid(format!(
                "{what}: needs a float tensor with a non-empty last axis, got {ty}"
            )))
        }
    };
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(IrError::Invalid(format!(
            "{what}: epsilon must be positive and finite, got {epsilon}"
        )));
    }
    for &(name, p) in per_feature {
        if let Some(p) = p {
            if g.ty(p).dims() != [f] {
                return Err(IrError::Invalid(format!(
                    "{what}: {name} must be [{f}] (the last axis of {ty}), got {}",
                    g.ty(p)
                )));
            }
        }
    }
    Ok(f)
}

/// What [`batch_norm_training`] gives: the output and the batch's moments (`[F]` each), which
/// a model folds into its moving averages.
pub struct BatchMoments {
    pub y: NodeId,
    pub mean: NodeId,
    pub var: NodeId,
}

/// Batch normalisation in training: `x` (`[..., F]`, rank 2 or more) normalised by the mean
/// and biased variance of each feature over every other axis (the batch, and the steps of a
/// sequence), then scaled and shifted. With `weights` (a 0/1 mask of `x`'s shape with a last
/// axis of 1), the moments are Keras's masked ones: `sum(w x) / (sum(w) + 1e-7)` and
/// `sum(w (x - mean)^2) / (sum(w) + 1e-7)`, so padding does not enter them.
pub fn batch_norm_training(
    g: &mut Graph,
    x: NodeId,
    weights: Option<NodeId>,
    gamma: Option<NodeId>,
    beta: Option<NodeId>,
    epsilon: f64,
) -> Result<BatchMoments> {
    let f = check_features(
        g,
        "batch_norm",
        x,
        &[("gamma", gamma), ("beta", beta)],
        epsilon,
    )?;
    let rank = g.ty(x).rank();
    if rank < 2 {
        return Err(IrError::Invalid(format!(
            "batch_norm: needs a batch axis before the features, got {}",
            g.ty(x)
        )));
    }
    let axes: Vec<usize> = (0..rank - 1).collect();
    let (mean, xc, var) = match weights {
        None => {
            let mean = g.mean(x, &axes, true)?;
            let xc = g.sub(x, mean)?;
            let sq = g.mul(xc, xc)?;
            (mean, xc, g.mean(sq, &axes, true)?)
        }
        Some(w) => {
            let mut want = g.ty(x).dims().to_vec();
            want[rank - 1] = 1;
            if g.ty(w).dims() != want.as_slice() || g.ty(w).dtype != g.ty(x).dtype {
                return Err(IrError::Invalid(format!(
                    "batch_norm: weights must be {:?} of {}'s dtype, got {}",
                    want,
                    g.ty(x),
                    g.ty(w)
                )));
            }
            let count = g.sum(w, &axes, true)?;
            let tiny = g.scalar(1e-7, g.ty(x).dtype);
            let count = g.add(count, tiny)?;
            let xw = g.mul(x, w)?;
            let total = g.sum(xw, &axes, true)?;
            let mean = g.div(total, count)?;
            let xc = g.sub(x, mean)?;
            let sq = g.mul(xc, xc)?;
            let sqw = g.mul(sq, w)?;
            let total = g.sum(sqw, &axes, true)?;
            (mean, xc, g.div(total, count)?)
        }
    };
    let y = scale_shift(g, xc, var, gamma, beta, epsilon)?;
    Ok(BatchMoments {
        y,
        mean: g.reshape(mean, [f])?,
        var: g.reshape(var, [f])?,
    })
}

/// Batch normalisation in inference: `x` normalised by the given per-feature `mean` and
/// `var` (the moving averages, `[F]`), then scaled and shifted.
pub fn batch_norm_inference(
    g: &mut Graph,
    x: NodeId,
    mean: NodeId,
    var: NodeId,
    gamma: Option<NodeId>,
    beta: Option<NodeId>,
    epsilon: f64,
) -> Result<NodeId> {
    let per_feature = [
        ("mean", Some(mean)),
        ("var", Some(var)),
        ("gamma", gamma),
        ("beta", beta),
    ];
    check_features(g, "batch_norm", x, &per_feature, epsilon)?;
    let xc = g.sub(x, mean)?;
    scale_shift(g, xc, var, gamma, beta, epsilon)
}
