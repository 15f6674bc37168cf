//! `GRU(units)`: Keras's `GRU(reset_after=True)`, i.e. `torch.nn.GRU`, built on the unroller
//! [`trellis_ir::gru::gru`] (gates r, z, n; the input and recurrent biases kept apart).
use std::any::Any;

use trellis_ir::gru::{gru, GruSpec, GruWeights};
use trellis_ir::lstm::Direction;
use trellis_ir::{Graph, NodeId};

use super::recurrent::{
    build_cell, call_cell, cell_layer, names, recurrent_config_setters, seq_layout, unroll_cell,
    weight_specs, CellLayer, Recurrent, RecurrentOptions, Unroll,
};
use super::{Act, BuildCtx, Layer, LayerConfig, ParamSpec, Scope};
use crate::init::Init;
use crate::regularizers::RecurrentRegularizers;
use crate::Result;

/// Configuration of a [`Gru`]. Keras defaults: `return_sequences=False`,
/// `return_state=False`, Glorot-uniform kernel, orthogonal recurrent kernel, zero biases.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GruConfig {
    pub units: usize,
    pub return_sequences: bool,
    pub return_state: bool,
    pub kernel_init: Init,
    pub recurrent_init: Init,
    pub bias_init: Init,
    /// Keras's `dropout`: the fraction of the input's features dropped in training, per
    /// sample, the same ones at every step.
    #[serde(default)]
    pub dropout: f32,
    /// Keras's `recurrent_dropout`: the fraction of `h`'s units dropped where the recurrent
    /// kernel reads them in training, per sample, the same ones at every step.
    #[serde(default)]
    pub recurrent_dropout: f32,
    /// Keras's `kernel_regularizer`, `recurrent_regularizer` and `bias_regularizer`.
    #[serde(flatten)]
    pub regularizers: RecurrentRegularizers,
}

recurrent_config_setters!(GruConfig);

impl GruConfig {
    pub fn new(units: usize) -> Self {
        GruConfig {
            units,
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
    pub fn init(self) -> Gru {
        Gru { config: self }
    }
}

/// A single GRU layer. Parameters, in PyTorch's layout and names: `{module}.weight_ih_l{k}
/// [3H, in]`, `{module}.weight_hh_l{k} [3H, H]`, `{module}.bias_ih_l{k} [3H]`,
/// `{module}.bias_hh_l{k} [3H]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gru {
    pub config: GruConfig,
}

impl Gru {
    pub fn new(units: usize) -> Self {
        GruConfig::new(units).init()
    }
}

impl CellLayer for Gru {
    fn kind_name(&self) -> &'static str {
        "gru"
    }
    fn state_names(&self) -> Vec<String> {
        names(&["h"])
    }
    type Config = GruConfig;
    fn options(&self) -> &GruConfig {
        &self.config
    }
    fn run(
        &self,
        g: &mut Graph,
        x: &Act,
        params: &[NodeId],
        u: &Unroll,
    ) -> Result<(NodeId, Vec<NodeId>)> {
        let spec = GruSpec {
            layers: vec![GruWeights {
                w_ih: params[0],
                w_hh: params[1],
                b_ih: Some(params[2]),
                b_hh: Some(params[3]),
            }],
            layout: seq_layout(x.layout),
            return_sequences: u.return_sequences,
            initial_state: u.initial_state.map(|s| s.to_vec()),
            direction: u.direction,
            mask: x.mask,
            recurrent_dropout: u.h_mask.map(|m| vec![m]),
        };
        let o = gru(g, x.node, &spec)?;
        Ok((o.output, o.h))
    }
    fn param_specs(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        let c = &self.config;
        let inits = (&c.kernel_init, &c.recurrent_init);
        let biases = [("bias_ih", &c.bias_init), ("bias_hh", &c.bias_init)];
        weight_specs(
            scope,
            in_features,
            3,
            c.units,
            inits,
            &biases,
            c.regularizers.in_order(),
        )
    }
    fn continues(&self, prev: &Self) -> bool {
        prev.config.return_sequences
    }
    fn layer_config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Gru(self.config.clone()))
    }
}

cell_layer!(Gru, GruConfig);
