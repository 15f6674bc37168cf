//! `Conv1D(filters, kernel_size)` (Keras's): a 1-D convolution along a sequence's steps, for
//! n-gram features in text classifiers and local patterns in time series; the math is
//! [`trellis_ir::conv`]. Parameters as `torch.nn.Conv1d`: `{module}.weight [filters, F, k]`,
//! `{module}.bias [filters]`.
use std::any::Any;

use trellis_ir::conv::{conv1d, Conv1dSpec, Padding};
use trellis_ir::{Graph, NodeId};

use super::recurrent::check_sequence;
use super::{Act, Activation, BuildCtx, Layer, LayerConfig, ParamSpec, Scope};
use crate::init::Init;
use crate::regularizers::Regularizer;
use crate::{NnError, Result};

/// Keras's `padding` as saved models write it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(remote = "Padding")]
pub(crate) enum PaddingDef {
    Valid,
    Same,
    Causal,
}

/// Configuration of a [`Conv1D`] layer. Keras defaults: stride 1, `"valid"` padding, dilation
/// 1, no activation, Glorot-uniform kernel, zero bias.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Conv1DConfig {
    pub filters: usize,
    pub kernel_size: usize,
    pub strides: usize,
    #[serde(with = "PaddingDef")]
    pub padding: Padding,
    pub dilation_rate: usize,
    pub activation: Activation,
    pub use_bias: bool,
    pub kernel_init: Init,
    pub bias_init: Init,
    /// Keras's `kernel_regularizer`: a penalty on the kernel in the training loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_regularizer: Option<Regularizer>,
    /// Keras's `bias_regularizer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias_regularizer: Option<Regularizer>,
}

impl Conv1DConfig {
    pub fn new(filters: usize, kernel_size: usize) -> Self {
        Conv1DConfig {
            filters,
            kernel_size,
            strides: 1,
            padding: Padding::Valid,
            dilation_rate: 1,
            activation: Activation::Linear,
            use_bias: true,
            kernel_init: Init::GlorotUniform,
            bias_init: Init::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
        }
    }
    pub fn with_strides(mut self, strides: usize) -> Self {
        self.strides = strides;
        self
    }
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
    pub fn with_dilation_rate(mut self, rate: usize) -> Self {
        self.dilation_rate = rate;
        self
    }
    pub fn init(self) -> Conv1D {
        Conv1D { config: self }
    }
}

kernel_setters!(Conv1DConfig);

/// A 1-D convolution over the steps of `[B, T, F]`, giving `[B, T_out, filters]`. Like Keras's,
/// it does not take a mask (a masked input is an error naming the fix, not a silently wrong
/// result): padding steps would leak into their neighbours' windows.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv1D {
    pub config: Conv1DConfig,
}

impl Conv1D {
    pub fn new(filters: usize, kernel_size: usize, activation: Activation) -> Self {
        Conv1DConfig::new(filters, kernel_size)
            .with_activation(activation)
            .init()
    }
}

impl From<Conv1DConfig> for Box<dyn Layer> {
    fn from(c: Conv1DConfig) -> Self {
        Box::new(c.init())
    }
}

/// Refuses a masked input to a layer whose windows would mix padding into real steps.
pub(crate) fn refuse_mask(what: &str, x: &Act) -> Result<()> {
    if x.mask.is_some() {
        return Err(NnError::Model(format!(
            "{what}: the input carries a mask (mask_zero or Masking), which a window over the \
             steps cannot honour; put {what} before the masking layer or drop the mask"
        )));
    }
    Ok(())
}

impl Layer for Conv1D {
    fn kind(&self) -> &'static str {
        "conv1d"
    }
    fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        let c = &self.config;
        let mut p = vec![ParamSpec::new(
            format!("{}.weight", scope.module),
            &[c.filters, in_features, c.kernel_size],
            c.kernel_init.clone(),
        )
        .with_regularizer(c.kernel_regularizer)];
        if c.use_bias {
            p.push(
                ParamSpec::new(
                    format!("{}.bias", scope.module),
                    &[c.filters],
                    c.bias_init.clone(),
                )
                .with_regularizer(c.bias_regularizer),
            );
        }
        p
    }
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], _: &mut BuildCtx) -> Result<Act> {
        check_sequence(g, self.kind(), &x)?;
        refuse_mask(self.kind(), &x)?;
        let c = &self.config;
        for (name, v) in [
            ("filters", c.filters),
            ("kernel_size", c.kernel_size),
            ("strides", c.strides),
            ("dilation_rate", c.dilation_rate),
        ] {
            if v == 0 {
                return Err(NnError::InvalidArgument {
                    name,
                    value: "0".into(),
                    message: "must be positive".into(),
                });
            }
        }
        let axis = x.layout.time_axis();
        let t = g.ty(x.node).dims()[axis];
        let spec = Conv1dSpec {
            stride: c.strides,
            dilation: c.dilation_rate,
            padding: c
                .padding
                .amounts(t, c.kernel_size, c.strides, c.dilation_rate),
        };
        let bias = c.use_bias.then(|| params[1]);
        let z = conv1d(g, x.node, axis, params[0], bias, &spec)?;
        let y = c.activation.apply(g, z)?;
        Ok(Act {
            logits: Some((z, c.activation)),
            ..Act::new(y, x.layout)
        })
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Conv1D(self.config.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
