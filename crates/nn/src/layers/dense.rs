//! `Dense(units, activation)`: `y = act(x W^T + b)` over the last axis.
use std::any::Any;

use trellis_ir::{Graph, NodeId};

use super::{Act, Activation, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::init::Init;
use crate::regularizers::Regularizer;
use crate::Result;

/// Configuration of a [`Dense`] layer. Keras defaults: no activation, Glorot-uniform kernel,
/// zero bias.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DenseConfig {
    pub units: usize,
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

impl DenseConfig {
    pub fn new(units: usize) -> Self {
        DenseConfig {
            units,
            activation: Activation::Linear,
            use_bias: true,
            kernel_init: Init::GlorotUniform,
            bias_init: Init::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
        }
    }
    pub fn init(self) -> Dense {
        Dense { config: self }
    }
}

kernel_setters!(DenseConfig);

/// A fully connected layer. Parameters (as `torch.nn.Linear`): `{module}.weight [units, in]`,
/// `{module}.bias [units]`. On a sequence it applies to every step.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    pub config: DenseConfig,
}

impl Dense {
    pub fn new(units: usize, activation: Activation) -> Self {
        DenseConfig::new(units).with_activation(activation).init()
    }
}

impl From<DenseConfig> for Box<dyn Layer> {
    fn from(c: DenseConfig) -> Self {
        Box::new(c.init())
    }
}

/// `x W^T + bias` over the last axis of `x` (rows or a sequence), `w` PyTorch's `[out, in]`:
/// one GEMM over every row, the leading axes kept.
pub(crate) fn linear(g: &mut Graph, x: NodeId, w: NodeId, bias: Option<NodeId>) -> Result<NodeId> {
    let dims = g.ty(x).dims().to_vec();
    let f = *dims.last().unwrap_or(&1);
    let rows: usize = dims[..dims.len().saturating_sub(1)].iter().product();
    let x2 = g.reshape(x, [rows, f])?;
    let mut z = g.matmul_t(x2, w, false, true)?;
    if let Some(b) = bias {
        z = g.add(z, b)?;
    }
    let mut out_dims = dims;
    *out_dims.last_mut().expect("rank >= 1") = g.ty(w).dims()[0];
    Ok(g.reshape(z, out_dims.as_slice())?)
}

impl Layer for Dense {
    fn kind(&self) -> &'static str {
        "dense"
    }
    fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        let c = &self.config;
        let mut p = vec![ParamSpec::new(
            format!("{}.weight", scope.module),
            &[c.units, in_features],
            c.kernel_init.clone(),
        )
        .with_regularizer(c.kernel_regularizer)];
        if c.use_bias {
            p.push(
                ParamSpec::new(
                    format!("{}.bias", scope.module),
                    &[c.units],
                    c.bias_init.clone(),
                )
                .with_regularizer(c.bias_regularizer),
            );
        }
        p
    }
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], _: &mut BuildCtx) -> Result<Act> {
        let bias = self.config.use_bias.then(|| params[1]);
        let z = linear(g, x.node, params[0], bias)?;
        let y = self.config.activation.apply(g, z)?;
        let out = if g.ty(x.node).rank() == 3 {
            x.with_node(y)
        } else {
            Act::new(y, Layout::BatchMajor)
        };
        Ok(Act {
            logits: Some((z, self.config.activation)),
            ..out
        })
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Dense(self.config.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
