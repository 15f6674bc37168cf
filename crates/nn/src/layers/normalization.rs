//! `LayerNormalization()`: normalises every position over its features, `(x - mean) /
//! sqrt(var + epsilon) * gamma + beta` (Keras's layer; PyTorch's `nn.LayerNorm(F)`, whose
//! epsilon default is 1e-5 against Keras's 1e-3). The math is [`trellis_ir::normalization`].
use std::any::Any;

use trellis_ir::{Graph, NodeId};

use super::{Act, BuildCtx, Layer, LayerConfig, ParamSpec, Scope};
use crate::init::Init;
use crate::{NnError, Result};

/// Configuration of a [`LayerNormalization`] layer. Keras defaults: `epsilon 1e-3`, learned
/// scale (`gamma`, ones) and offset (`beta`, zeros).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerNormalizationConfig {
    pub epsilon: f64,
    /// Learn the offset `beta` (Keras `center`).
    pub center: bool,
    /// Learn the scale `gamma` (Keras `scale`).
    pub scale: bool,
    pub gamma_init: Init,
    pub beta_init: Init,
}

impl Default for LayerNormalizationConfig {
    fn default() -> Self {
        LayerNormalizationConfig {
            epsilon: 1e-3,
            center: true,
            scale: true,
            gamma_init: Init::Constant(1.0),
            beta_init: Init::Zeros,
        }
    }
}

impl LayerNormalizationConfig {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    pub fn with_center(mut self, yes: bool) -> Self {
        self.center = yes;
        self
    }
    pub fn with_scale(mut self, yes: bool) -> Self {
        self.scale = yes;
        self
    }
    pub fn with_gamma_init(mut self, init: Init) -> Self {
        self.gamma_init = init;
        self
    }
    pub fn with_beta_init(mut self, init: Init) -> Self {
        self.beta_init = init;
        self
    }
    pub fn init(self) -> LayerNormalization {
        LayerNormalization { config: self }
    }
}

/// Layer normalisation over the last axis. Parameters (as `torch.nn.LayerNorm`):
/// `{module}.weight [F]` (gamma) and `{module}.bias [F]` (beta). On a sequence it normalises
/// every step on its own, so a mask passes through unchanged.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LayerNormalization {
    pub config: LayerNormalizationConfig,
}

impl LayerNormalization {
    pub fn new() -> Self {
        Self::default()
    }
}

impl From<LayerNormalizationConfig> for Box<dyn Layer> {
    fn from(c: LayerNormalizationConfig) -> Self {
        Box::new(c.init())
    }
}

impl Layer for LayerNormalization {
    fn kind(&self) -> &'static str {
        "layer_normalization"
    }
    fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        let c = &self.config;
        let mut p = Vec::new();
        if c.scale {
            let name = format!("{}.weight", scope.module);
            p.push(ParamSpec::new(name, &[in_features], c.gamma_init.clone()));
        }
        if c.center {
            let name = format!("{}.bias", scope.module);
            p.push(ParamSpec::new(name, &[in_features], c.beta_init.clone()));
        }
        p
    }
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], _: &mut BuildCtx) -> Result<Act> {
        let c = &self.config;
        if !(c.epsilon.is_finite() && c.epsilon > 0.0 && c.epsilon as f32 > 0.0) {
            return Err(NnError::InvalidArgument {
                name: "epsilon",
                value: c.epsilon.to_string(),
                message: "must be positive and finite (as f32)".into(),
            });
        }
        let mut params = params.iter().copied();
        let gamma = if c.scale { params.next() } else { None };
        let beta = if c.center { params.next() } else { None };
        let y = trellis_ir::normalization::layer_norm(g, x.node, gamma, beta, c.epsilon)?;
        Ok(x.with_node(y))
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::LayerNormalization(self.config.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
