//! Softmax and log-softmax over the last axis, as graph builders: the one place both the
//! losses and activations of `nn` and the attention builders ([`crate::attention`]) take them
//! from.
//!
//! Both subtract the row maximum `m` first (`exp` then never overflows). Any `m` gives the same
//! value and gradient, so `m` is taken through `stop_gradient`: the backward graph gets the
//! textbook derivative and none of the maximum's (which cancels, to rounding).
use crate::{Graph, IrError, NodeId, Result};

/// The last axis of `z`, which must exist and be non-empty (`what` names the caller).
fn last_axis(g: &Graph, what: &str, z: NodeId) -> Result<usize> {
    let ty = g.ty(z);
    match ty.dims().last() {
        Some(&c) if c > 0 && ty.dtype.is_float() => Ok(ty.rank() - 1),
        _ => Err(IrError::Invalid(format!(
            "{what}: needs a float tensor with a non-empty last axis, got {ty}"
        ))),
    }
}

/// Row-wise maximum over the last axis, keeping it (`[.., 1]`).
pub fn max_last(g: &mut Graph, z: NodeId) -> Result<NodeId> {
    let axis = last_axis(g, "max_last", z)?;
    g.max(z, &[axis], true)
}

/// What both softmaxes start from: `s = z - m` (`m` the row maximum), `e = exp(s)` and the
/// row sums `sum(e)`.
fn shifted_exp(g: &mut Graph, what: &str, z: NodeId) -> Result<[NodeId; 3]> {
    let axis = last_axis(g, what, z)?;
    let m = max_last(g, z)?;
    let m = g.stop_gradient(m)?;
    let s = g.sub(z, m)?;
    let e = g.exp(s)?;
    let se = g.sum(e, &[axis], true)?;
    Ok([s, e, se])
}

/// Stable log-softmax over the last axis: `z - m - log(sum(exp(z - m)))`, `m` the row maximum.
pub fn log_softmax(g: &mut Graph, z: NodeId) -> Result<NodeId> {
    let [s, _, se] = shifted_exp(g, "log_softmax", z)?;
    let lse = g.log(se)?;
    g.sub(s, lse)
}

/// Stable `log(sum(exp(z)))` over the last axis, kept as size 1 (`[.., 1]`): `m + log(sum(exp(z
/// - m)))`, `m` the row maximum (a CRF's forward algorithm sums paths with it). A row of
/// `-inf` (every path ruled out, as a CRF's forbidden transitions do) gives `-inf`, as
/// PyTorch's `logsumexp`, with a zero gradient: such a row is selected around, since its
/// shift `-inf - -inf` and its `log(0)`'s derivative `0 / 0` are NaN.
pub fn logsumexp_last(g: &mut Graph, z: NodeId) -> Result<NodeId> {
    let axis = last_axis(g, "logsumexp_last", z)?;
    let dtype = g.ty(z).dtype;
    let m = max_last(g, z)?;
    let m = g.stop_gradient(m)?;
    let none = g.scalar(f64::NEG_INFINITY, dtype);
    let ruled_out = g.equal(m, none)?;
    let zero = g.scalar(0.0, dtype);
    let one = g.scalar(1.0, dtype);
    let m = g.select(ruled_out, zero, m)?;
    let s = g.sub(z, m)?;
    let e = g.exp(s)?;
    let se = g.sum(e, &[axis], true)?;
    let se = g.select(ruled_out, one, se)?;
    let l = g.log(se)?;
    let l = g.add(m, l)?;
    g.select(ruled_out, none, l)
}

/// Stable softmax over the last axis: `e / sum(e)` with `e = exp(z - m)`, `m` the row maximum.
/// Compiled, it is two reductions and two kernels: the row maximum, `exp(z - m)`, the row
/// sum, the division (the `softmax_kernels` test of `crates/jit/tests/attention.rs`).
pub fn softmax(g: &mut Graph, z: NodeId) -> Result<NodeId> {
    let [_, e, se] = shifted_exp(g, "softmax", z)?;
    g.div(e, se)
}
