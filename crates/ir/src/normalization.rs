//! Layer normalisation over the last axis as a graph builder (Keras's `LayerNormalization`,
//! PyTorch's `nn.LayerNorm`): composed of reductions and elementwise ops, so its gradient is
//! autodiff's and the compiler fuses it like any other elementwise chain.
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
    let ty = g.ty(x).clone();
    let f = match ty.dims().last() {
        Some(&f) if f > 0 && ty.dtype.is_float() => f,
        _ => {
            return Err(IrError::Invalid(format!(
                "layer_norm: needs a float tensor with a non-empty last axis, got {ty}"
            )))
        }
    };
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(IrError::Invalid(format!(
            "layer_norm: epsilon must be positive and finite, got {epsilon}"
        )));
    }
    for (what, p) in [("gamma", gamma), ("beta", beta)] {
        if let Some(p) = p {
            if g.ty(p).dims() != [f] {
                return Err(IrError::Invalid(format!(
                    "layer_norm: {what} must be [{f}] (the last axis of {ty}), got {}",
                    g.ty(p)
                )));
            }
        }
    }
    let axis = ty.rank() - 1;
    let mean = g.mean(x, &[axis], true)?;
    let xc = g.sub(x, mean)?;
    let sq = g.mul(xc, xc)?;
    let var = g.mean(sq, &[axis], true)?;
    let eps = g.scalar(epsilon, ty.dtype);
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
