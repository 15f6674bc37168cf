//! `Dropout(rate)`: in training, multiplies by a random keep-mask scaled by `1 / (1 - rate)`;
//! at inference, the identity. `SpatialDropout1D(rate)` drops whole feature channels of a
//! sequence (one mask per sample and feature, the same at every step).
use std::any::Any;

use trellis_ir::{Graph, NodeId, TensorType};

use super::{Act, BuildCtx, Layer, LayerConfig, MaskInput, ParamSpec, Scope};
use crate::{NnError, Result};

/// Configuration of a [`Dropout`] layer.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DropoutConfig {
    pub rate: f32,
}

impl DropoutConfig {
    pub fn new(rate: f32) -> Self {
        DropoutConfig { rate }
    }
    pub fn init(self) -> Dropout {
        Dropout { config: self }
    }
}

/// Dropout. The mask is a graph input of the activation's shape, filled by the model from a
/// seeded host RNG at every training step (no random op in the graph: the step stays one
/// deterministic plan). No parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Dropout {
    pub config: DropoutConfig,
}

impl Dropout {
    pub fn new(rate: f32) -> Self {
        DropoutConfig::new(rate).init()
    }
}

impl From<DropoutConfig> for Box<dyn Layer> {
    fn from(c: DropoutConfig) -> Self {
        Box::new(c.init())
    }
}

impl Layer for Dropout {
    fn kind(&self) -> &'static str {
        "dropout"
    }
    fn params(&self, _: &Scope, _: usize) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn build(&self, g: &mut Graph, x: Act, _: &[NodeId], ctx: &mut BuildCtx) -> Result<Act> {
        let rate = self.config.rate;
        check_rate("rate", rate)?;
        if !ctx.training || rate == 0.0 {
            return Ok(x);
        }
        let shape = g.ty(x.node).dims().to_vec();
        let mask = keep_mask(g, ctx, &shape, rate);
        Ok(x.with_node(g.mul(x.node, mask)?))
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Dropout(self.config.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Keras's `SpatialDropout1D`: dropout of whole features of a sequence `[B, T, F]` — a
/// feature is dropped at every step of a sample or at none (adjacent steps of an embedding
/// are correlated, so element dropout regularises them little). The identity at inference.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpatialDropout1D {
    pub rate: f32,
}

impl SpatialDropout1D {
    pub fn new(rate: f32) -> Self {
        SpatialDropout1D { rate }
    }
}

impl Layer for SpatialDropout1D {
    fn kind(&self) -> &'static str {
        "spatial_dropout1d"
    }
    fn params(&self, _: &Scope, _: usize) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn build(&self, g: &mut Graph, x: Act, _: &[NodeId], ctx: &mut BuildCtx) -> Result<Act> {
        check_rate("rate", self.rate)?;
        super::recurrent::check_sequence(g, self.kind(), &x)?;
        if !ctx.training || self.rate == 0.0 {
            return Ok(x);
        }
        // One mask value per (sample, feature), broadcast over the time axis.
        let mut shape = g.ty(x.node).dims().to_vec();
        shape[x.layout.time_axis()] = 1;
        let mask = keep_mask(g, ctx, &shape, self.rate);
        Ok(x.with_node(g.mul(x.node, mask)?))
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::SpatialDropout1D(self.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Checks a dropout rate (argument `name`): in [0, 1).
pub(crate) fn check_rate(name: &'static str, rate: f32) -> Result<()> {
    if (0.0..1.0).contains(&rate) {
        return Ok(());
    }
    Err(NnError::InvalidArgument {
        name,
        value: rate.to_string(),
        message: "dropout rate must be in [0, 1)".into(),
    })
}

/// A keep-mask input of `shape` for dropout at `rate`, registered in `ctx` so that the model
/// fills it at every training step (kept elements `1 / (1 - rate)`, dropped ones 0).
pub(crate) fn keep_mask(g: &mut Graph, ctx: &mut BuildCtx, shape: &[usize], rate: f32) -> NodeId {
    let name = format!("dropout{}.mask", ctx.masks.len());
    let mask = g.input(&name, TensorType::f32(shape));
    ctx.masks.push(MaskInput { node: mask, rate });
    mask
}
