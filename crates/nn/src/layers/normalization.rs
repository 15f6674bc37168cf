//! Normalisation layers, `(x - mean) / sqrt(var + epsilon) * gamma + beta`; the math is
//! [`trellis_ir::normalization`].
//! - `LayerNormalization()` normalises every position over its features (Keras's layer;
//!   PyTorch's `nn.LayerNorm(F)`, whose epsilon default is 1e-5 against Keras's 1e-3).
//! - `BatchNormalization()` normalises every feature over the batch (and a sequence's steps)
//!   in training, and by its moving averages of those moments in inference (Keras's layer;
//!   PyTorch's `nn.BatchNorm1d(F)` on features last, whose momentum 0.1 is Keras's 0.9 and
//!   whose running variance is the unbiased one).
use std::any::Any;

use trellis_ir::{Graph, NodeId};

use super::{Act, BuildCtx, Layer, LayerConfig, ParamSpec, Scope};
use crate::init::Init;
use crate::{NnError, Result};

/// The setters both normalisation configs have: the fields `epsilon`, `center`, `scale`,
/// `gamma_init` and `beta_init`.
macro_rules! normalization_setters {
    ($ty:ident) => {
        impl $ty {
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
        }
    };
}

normalization_setters!(LayerNormalizationConfig);
normalization_setters!(BatchNormalizationConfig);

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
        check_epsilon(c.epsilon)?;
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

/// An epsilon the f32 model can hold: positive and finite.
fn check_epsilon(epsilon: f64) -> Result<()> {
    if !(epsilon.is_finite() && epsilon > 0.0 && epsilon as f32 > 0.0) {
        return Err(NnError::InvalidArgument {
            name: "epsilon",
            value: epsilon.to_string(),
            message: "must be positive and finite (as f32)".into(),
        });
    }
    Ok(())
}

/// Configuration of a [`BatchNormalization`] layer. Keras defaults: `momentum 0.99`,
/// `epsilon 1e-3`, learned scale (`gamma`, ones) and offset (`beta`, zeros), moving mean
/// from zeros and moving variance from ones.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchNormalizationConfig {
    /// `moving = momentum * moving + (1 - momentum) * batch` after each training step.
    pub momentum: f64,
    pub epsilon: f64,
    /// Learn the offset `beta` (Keras `center`).
    pub center: bool,
    /// Learn the scale `gamma` (Keras `scale`).
    pub scale: bool,
    pub gamma_init: Init,
    pub beta_init: Init,
    pub moving_mean_init: Init,
    pub moving_variance_init: Init,
}

impl Default for BatchNormalizationConfig {
    fn default() -> Self {
        BatchNormalizationConfig {
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            gamma_init: Init::Constant(1.0),
            beta_init: Init::Zeros,
            moving_mean_init: Init::Zeros,
            moving_variance_init: Init::Constant(1.0),
        }
    }
}

impl BatchNormalizationConfig {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
    pub fn with_moving_mean_init(mut self, init: Init) -> Self {
        self.moving_mean_init = init;
        self
    }
    pub fn with_moving_variance_init(mut self, init: Init) -> Self {
        self.moving_variance_init = init;
        self
    }
    pub fn init(self) -> BatchNormalization {
        BatchNormalization { config: self }
    }
}

/// Batch normalisation over the last axis. Parameters (as `torch.nn.BatchNorm1d`):
/// `{module}.weight [F]` (gamma), `{module}.bias [F]` (beta), and the non-trainable
/// `{module}.running_mean [F]` and `{module}.running_var [F]`, which each training step moves
/// toward the batch's moments (a frozen layer runs as in inference and keeps them). Behind a
/// mask the moments are Keras's masked ones (padding does not enter them); the mask passes
/// through.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BatchNormalization {
    pub config: BatchNormalizationConfig,
}

impl BatchNormalization {
    pub fn new() -> Self {
        Self::default()
    }
}

impl From<BatchNormalizationConfig> for Box<dyn Layer> {
    fn from(c: BatchNormalizationConfig) -> Self {
        Box::new(c.init())
    }
}

impl Layer for BatchNormalization {
    fn kind(&self) -> &'static str {
        "batch_normalization"
    }
    fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        let c = &self.config;
        let m = &scope.module;
        let f = [in_features];
        let mut p = Vec::new();
        if c.scale {
            p.push(ParamSpec::new(
                format!("{m}.weight"),
                &f,
                c.gamma_init.clone(),
            ));
        }
        if c.center {
            p.push(ParamSpec::new(format!("{m}.bias"), &f, c.beta_init.clone()));
        }
        p.push(
            ParamSpec::new(format!("{m}.running_mean"), &f, c.moving_mean_init.clone())
                .non_trainable(),
        );
        p.push(
            ParamSpec::new(
                format!("{m}.running_var"),
                &f,
                c.moving_variance_init.clone(),
            )
            .non_trainable(),
        );
        p
    }
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], ctx: &mut BuildCtx) -> Result<Act> {
        let c = &self.config;
        check_epsilon(c.epsilon)?;
        if !(0.0..=1.0).contains(&c.momentum) {
            return Err(NnError::InvalidArgument {
                name: "momentum",
                value: c.momentum.to_string(),
                message: "must be in [0, 1]".into(),
            });
        }
        let mut params = params.iter().copied();
        let gamma = if c.scale { params.next() } else { None };
        let beta = if c.center { params.next() } else { None };
        let (Some(moving_mean), Some(moving_var)) = (params.next(), params.next()) else {
            return Err(NnError::Model(
                "batch_normalization: built without its moving mean and variance".into(),
            ));
        };
        use trellis_ir::normalization::{batch_norm_inference, batch_norm_training};
        if !ctx.training || ctx.frozen {
            let y =
                batch_norm_inference(g, x.node, moving_mean, moving_var, gamma, beta, c.epsilon)?;
            return Ok(x.with_node(y));
        }
        // Keras's masked moments: padding does not enter them.
        let weights = match x.mask {
            Some(m) => Some(super::pooling::mask3(g, m)?),
            None => None,
        };
        let b = batch_norm_training(g, x.node, weights, gamma, beta, c.epsilon)?;
        let keep = g.scalar(c.momentum, g.ty(x.node).dtype);
        let take = g.scalar(1.0 - c.momentum, g.ty(x.node).dtype);
        for (moving, batch) in [(moving_mean, b.mean), (moving_var, b.var)] {
            // A shared layer's later call moves the average on from the earlier call's
            // value (Keras applies the calls' updates in turn).
            let earlier = ctx.updates.iter().position(|u| u.0 == moving);
            let from = earlier.map_or(moving, |i| ctx.updates[i].1);
            let old = g.mul(from, keep)?;
            let new = g.mul(batch, take)?;
            let v = g.add(old, new)?;
            match earlier {
                Some(i) => ctx.updates[i].1 = v,
                None => ctx.updates.push((moving, v)),
            }
        }
        Ok(x.with_node(b.y))
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::BatchNormalization(self.config.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
