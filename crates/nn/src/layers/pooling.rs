//! `GlobalAveragePooling1D` and `GlobalMaxPooling1D` (Keras's): a sequence `[B, T, F]` to one
//! vector `[B, F]` over its steps, skipping masked steps. A sequence with every step masked
//! pools to zeros (no division by zero, no `-inf`).
use std::any::Any;

use trellis_ir::{Graph, NodeId};

use super::recurrent::check_sequence;
use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::Result;

/// The masked mean over the steps: `sum_t m_t x_t / max(sum_t m_t, tiny)`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GlobalAveragePooling1D {}

/// The maximum over the real steps: `max_t (x_t - 1e9 (1 - m_t))`, zero for a sequence with
/// no real step.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GlobalMaxPooling1D {}

impl GlobalAveragePooling1D {
    pub fn new() -> Self {
        GlobalAveragePooling1D {}
    }
}

impl GlobalMaxPooling1D {
    pub fn new() -> Self {
        GlobalMaxPooling1D {}
    }
}

/// The time axis of a sequence in `layout`.
fn time_axis(layout: Layout) -> usize {
    match layout {
        Layout::TimeMajor => 0,
        Layout::BatchMajor => 1,
    }
}

/// The mask as `[.., .., 1]` in the sequence's layout (broadcasts over the features).
fn mask3(g: &mut Graph, m: NodeId) -> Result<NodeId> {
    let d = g.ty(m).dims().to_vec();
    Ok(g.reshape(m, [d[0], d[1], 1])?)
}

/// A pooled sequence: `pool` of a checked sequence `x`, as `[B, F]`.
fn pooled(
    g: &mut Graph,
    kind: &str,
    x: Act,
    pool: impl FnOnce(&mut Graph, &Act) -> Result<NodeId>,
) -> Result<Act> {
    check_sequence(g, kind, &x)?;
    Ok(Act::new(pool(g, &x)?, Layout::BatchMajor))
}

parameterless_layer!(GlobalAveragePooling1D, "global_average_pooling1d");
parameterless_layer!(GlobalMaxPooling1D, "global_max_pooling1d");

impl GlobalAveragePooling1D {
    fn apply(&self, g: &mut Graph, x: Act) -> Result<Act> {
        pooled(g, self.kind(), x, |g, x| self.pool(g, x))
    }
    fn pool(&self, g: &mut Graph, x: &Act) -> Result<NodeId> {
        let t = time_axis(x.layout);
        let Some(m) = x.mask else {
            return Ok(g.mean(x.node, &[t], false)?);
        };
        let m3 = mask3(g, m)?;
        let xm = g.mul(x.node, m3)?;
        let num = g.sum(xm, &[t], false)?; // [B, F]
        let den = g.sum(m3, &[t], false)?; // [B, 1]
        let tiny = g.scalar_like(den, 1e-30)?;
        let den = g.maximum(den, tiny)?;
        Ok(g.div(num, den)?)
    }
}

impl GlobalMaxPooling1D {
    fn apply(&self, g: &mut Graph, x: Act) -> Result<Act> {
        pooled(g, self.kind(), x, |g, x| self.pool(g, x))
    }
    fn pool(&self, g: &mut Graph, x: &Act) -> Result<NodeId> {
        let mut v = x.node;
        if let Some(m) = x.mask {
            let m3 = mask3(g, m)?;
            let one = g.scalar_like(m3, 1.0)?;
            let pad = g.sub(m3, one)?; // -1 on padding
            let big = g.scalar_like(m3, 1e9)?;
            let pen = g.mul(pad, big)?;
            v = g.add(v, pen)?;
        }
        // The steps last: [B, F, T].
        let perm = match x.layout {
            Layout::TimeMajor => [1, 2, 0],
            Layout::BatchMajor => [0, 2, 1],
        };
        let vt = g.transpose(v, &perm)?;
        let mx = trellis_ir::softmax::max_last(g, vt)?; // [B, F, 1]
        let d = g.ty(mx).dims().to_vec();
        let mut y = g.reshape(mx, [d[0], d[1]])?;
        if let Some(m) = x.mask {
            // Zero where no step is real.
            let t = time_axis(x.layout);
            let m3 = mask3(g, m)?;
            let any = g.sum(m3, &[t], false)?; // [B, 1]
            let zero = g.scalar_like(any, 0.0)?;
            let real = g.gt(any, zero)?;
            y = g.mul(y, real)?;
        }
        Ok(y)
    }
}
