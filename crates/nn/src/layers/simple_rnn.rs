//! `SimpleRNN(units)`: Keras's `SimpleRNN`, i.e. `torch.nn.RNN`, built on the unroller
//! [`trellis_ir::rnn::simple_rnn`]: `h_t = act(x_t W_ih^T + b + h_{t-1} W_hh^T)`, `act` tanh
//! (the default) or relu.
use std::any::Any;

use trellis_ir::lstm::Direction;
use trellis_ir::rnn::{simple_rnn, RnnActivation, RnnSpec, RnnWeights};
use trellis_ir::{Graph, NodeId};

use super::recurrent::{
    build_cell, call_cell, cell_layer, names, recurrent_config_setters, seq_layout, unroll_cell,
    weight_specs, CellLayer, Recurrent, RecurrentOptions, Unroll,
};
use super::{Act, Activation, BuildCtx, Layer, LayerConfig, ParamSpec, Scope};
use crate::init::Init;
use crate::regularizers::RecurrentRegularizers;
use crate::{NnError, Result};

/// Configuration of a [`SimpleRnn`]. Keras defaults: `activation="tanh"`,
/// `return_sequences=False`, `return_state=False`, Glorot-uniform kernel, orthogonal recurrent
/// kernel, zero bias.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SimpleRnnConfig {
    pub units: usize,
    /// `Tanh` or `Relu` (PyTorch's two nonlinearities).
    pub activation: Activation,
    pub return_sequences: bool,
    pub return_state: bool,
    pub kernel_init: Init,
    pub recurrent_init: Init,
    pub bias_init: Init,
    /// Keras's `dropout` (see [`SimpleRnnConfig::with_dropout`]).
    pub dropout: f32,
    /// Keras's `recurrent_dropout` (see [`SimpleRnnConfig::with_recurrent_dropout`]).
    pub recurrent_dropout: f32,
    /// Keras's `kernel_regularizer`, `recurrent_regularizer` and `bias_regularizer`.
    #[serde(flatten)]
    pub regularizers: RecurrentRegularizers,
}

recurrent_config_setters!(SimpleRnnConfig);

impl SimpleRnnConfig {
    pub fn new(units: usize) -> Self {
        SimpleRnnConfig {
            units,
            activation: Activation::Tanh,
            return_sequences: false,
            return_state: false,
            kernel_init: Init::GlorotUniform,
            recurrent_init: Init::Orthogonal,
            bias_init: Init::Zeros,
            dropout: 0.0,
            recurrent_dropout: 0.0,
            regularizers: RecurrentRegularizers::default(),
        }
    }
    /// Keras's `activation`: `Tanh` (default) or `Relu`.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }
    pub fn init(self) -> SimpleRnn {
        SimpleRnn { config: self }
    }
}

/// A single simple recurrent layer. Parameters, in PyTorch's layout and names:
/// `{module}.weight_ih_l{k} [H, in]`, `{module}.weight_hh_l{k} [H, H]`,
/// `{module}.bias_ih_l{k} [H]` (trellis's one bias; checkpoints add `bias_hh_l{k}` as zeros for
/// PyTorch, as for the LSTM).
#[derive(Clone, Debug, PartialEq)]
pub struct SimpleRnn {
    pub config: SimpleRnnConfig,
}

impl SimpleRnn {
    pub fn new(units: usize) -> Self {
        SimpleRnnConfig::new(units).init()
    }

    /// The ir's nonlinearity, or an error naming the activation the cell does not offer.
    fn activation(&self) -> Result<RnnActivation> {
        match self.config.activation {
            Activation::Tanh => Ok(RnnActivation::Tanh),
            Activation::Relu => Ok(RnnActivation::Relu),
            other => Err(NnError::Model(format!(
                "simple_rnn: activation must be Tanh or Relu (PyTorch's nn.RNN nonlinearities), \
                 got {other:?}"
            ))),
        }
    }
}

impl CellLayer for SimpleRnn {
    fn kind_name(&self) -> &'static str {
        "simple_rnn"
    }
    fn state_names(&self) -> Vec<String> {
        names(&["h"])
    }
    type Config = SimpleRnnConfig;
    fn options(&self) -> &SimpleRnnConfig {
        &self.config
    }
    fn run(
        &self,
        g: &mut Graph,
        x: &Act,
        params: &[NodeId],
        u: &Unroll,
    ) -> Result<(NodeId, Vec<NodeId>)> {
        let spec = RnnSpec {
            layers: vec![RnnWeights {
                w_ih: params[0],
                w_hh: params[1],
                bias: Some(params[2]),
            }],
            activation: self.activation()?,
            layout: seq_layout(x.layout),
            return_sequences: u.return_sequences,
            initial_state: u.initial_state.map(|s| s.to_vec()),
            direction: u.direction,
            mask: x.mask,
            recurrent_dropout: u.h_mask.map(|m| vec![m]),
        };
        let o = simple_rnn(g, x.node, &spec)?;
        Ok((o.output, o.h))
    }
    fn param_specs(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        let c = &self.config;
        let inits = (&c.kernel_init, &c.recurrent_init);
        weight_specs(
            scope,
            in_features,
            1,
            c.units,
            inits,
            &[("bias_ih", &c.bias_init)],
            c.regularizers.in_order(),
        )
    }
    /// Layers of one activation stack into one module, as `nn.RNN(num_layers=k)` has one.
    fn continues(&self, prev: &Self) -> bool {
        prev.config.return_sequences && prev.config.activation == self.config.activation
    }
    fn layer_config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::SimpleRnn(self.config.clone()))
    }
}

cell_layer!(SimpleRnn, SimpleRnnConfig);
