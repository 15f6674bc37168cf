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

/// The mask as `[.., .., 1]` in the sequence's layout (broadcasts over the features).
pub(super) fn mask3(g: &mut Graph, m: NodeId) -> Result<NodeId> {
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
        let t = x.layout.time_axis();
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
        let t = x.layout.time_axis();
        let mut y = g.max(v, &[t], false)?; // [B, F]
        if let Some(m) = x.mask {
            // Zero where no step is real.
            let m3 = mask3(g, m)?;
            let any = g.sum(m3, &[t], false)?; // [B, 1]
            let zero = g.scalar_like(any, 0.0)?;
            let real = g.gt(any, zero)?;
            y = g.mul(y, real)?;
        }
        Ok(y)
    }
}

/// Keras's `MaxPooling1D` / `AveragePooling1D` (`padding="valid"`): windows of `pool_size`
/// steps, `strides` apart (by default `pool_size`: no overlap), reduced per feature. Like
/// Keras's, it does not take a mask (an error naming the fix).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaxPooling1D {
    pub pool_size: usize,
    pub strides: Option<usize>,
}

/// The mean over windows of steps; see [`MaxPooling1D`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AveragePooling1D {
    pub pool_size: usize,
    pub strides: Option<usize>,
}

/// Keras's default window: two steps.
macro_rules! window_pool {
    ($ty:ident, $kind:literal, $pool:expr) => {
        impl Default for $ty {
            fn default() -> Self {
                $ty::new(2)
            }
        }
        impl $ty {
            pub fn new(pool_size: usize) -> Self {
                $ty {
                    pool_size,
                    strides: None,
                }
            }
            pub fn with_strides(mut self, strides: usize) -> Self {
                self.strides = Some(strides);
                self
            }
            fn apply(&self, g: &mut Graph, x: Act) -> Result<Act> {
                check_sequence(g, $kind, &x)?;
                super::conv::refuse_mask($kind, &x)?;
                let stride = self.strides.unwrap_or(self.pool_size);
                let y = trellis_ir::conv::pool1d(
                    g,
                    x.node,
                    x.layout.time_axis(),
                    $pool,
                    self.pool_size,
                    stride,
                )?;
                Ok(Act::new(y, x.layout))
            }
        }
        parameterless_layer!($ty, $kind);
    };
}

window_pool!(MaxPooling1D, "max_pooling1d", trellis_ir::conv::Pool::Max);
window_pool!(
    AveragePooling1D,
    "average_pooling1d",
    trellis_ir::conv::Pool::Average
);
