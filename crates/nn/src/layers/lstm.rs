//! `LSTM(units)`: built on the unroller [`trellis_ir::lstm::lstm`] (gates i, f, g, o; one bias).
use std::any::Any;

use trellis_ir::lstm::{lstm, Direction, LstmOutput, LstmSpec, LstmWeights};
use trellis_ir::{Graph, NodeId};

use super::recurrent::{
    build_cell, call_cell, cell_layer, names, recurrent_config_setters, seq_layout, unroll_cell,
    weight_specs, CellLayer, Recurrent, RecurrentOptions, Unroll,
};
use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::init::Init;
use crate::regularizers::RecurrentRegularizers;
use crate::Result;

/// Configuration of an [`Lstm`]. Keras defaults: `return_sequences=False`,
/// `return_state=False`, Glorot-uniform kernel, orthogonal recurrent kernel, zero bias with the
/// forget gate at 1.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LstmConfig {
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

recurrent_config_setters!(LstmConfig);

impl LstmConfig {
    pub fn new(units: usize) -> Self {
        LstmConfig {
            units,
            return_sequences: false,
            return_state: false,
            kernel_init: Init::GlorotUniform,
            recurrent_init: Init::Orthogonal,
            bias_init: Init::LstmBias,
            dropout: 0.0,
            recurrent_dropout: 0.0,
            regularizers: RecurrentRegularizers::default(),
        }
    }
    pub fn init(self) -> Lstm {
        Lstm { config: self }
    }
}

/// A single LSTM layer. Parameters, in PyTorch's layout and names (`k` is the layer's index in
/// its stacked module, see [`Sequential`](crate::Sequential)): `{module}.weight_ih_l{k}
/// [4H, in]`, `{module}.weight_hh_l{k} [4H, H]`, `{module}.bias_ih_l{k} [4H]` (trellis's one
/// bias; checkpoints add `bias_hh_l{k}` as zeros for PyTorch).
#[derive(Clone, Debug, PartialEq)]
pub struct Lstm {
    pub config: LstmConfig,
}

impl Lstm {
    pub fn new(units: usize) -> Self {
        LstmConfig::new(units).init()
    }

    /// Unrolls the layer over `x` (`[T, B, in]` or `[B, T, in]` per `layout`) with its
    /// `params` (`w_ih, w_hh, bias`): every step's output when `return_sequences`, and the
    /// final `h` and `c` (what `return_state` returns).
    pub fn forward(
        &self,
        g: &mut Graph,
        x: NodeId,
        layout: Layout,
        params: &[NodeId],
    ) -> Result<LstmOutput> {
        let x = Act::new(x, layout);
        let u = Unroll {
            direction: Direction::Forward,
            return_sequences: self.config.return_sequences,
            initial_state: None,
            h_mask: None,
        };
        self.unrolled(g, &x, params, &u)
    }

    fn unrolled(
        &self,
        g: &mut Graph,
        x: &Act,
        params: &[NodeId],
        u: &Unroll,
    ) -> Result<LstmOutput> {
        let spec = LstmSpec {
            layers: vec![LstmWeights {
                w_ih: params[0],
                w_hh: params[1],
                bias: Some(params[2]),
            }],
            layout: seq_layout(x.layout),
            return_sequences: u.return_sequences,
            initial_state: u.initial_state.map(|s| vec![(s[0], s[1])]),
            direction: u.direction,
            mask: x.mask,
            recurrent_dropout: u.h_mask.map(|m| vec![m]),
        };
        Ok(lstm(g, x.node, &spec)?)
    }
}

impl CellLayer for Lstm {
    fn kind_name(&self) -> &'static str {
        "lstm"
    }
    fn state_names(&self) -> Vec<String> {
        names(&["h", "c"])
    }
    type Config = LstmConfig;
    fn options(&self) -> &LstmConfig {
        &self.config
    }
    fn run(
        &self,
        g: &mut Graph,
        x: &Act,
        params: &[NodeId],
        u: &Unroll,
    ) -> Result<(NodeId, Vec<NodeId>)> {
        let o = self.unrolled(g, x, params, u)?;
        Ok((o.output, vec![o.h[0], o.c[0]]))
    }
    fn param_specs(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        let c = &self.config;
        let inits = (&c.kernel_init, &c.recurrent_init);
        weight_specs(
            scope,
            in_features,
            4,
            c.units,
            inits,
            &[("bias_ih", &c.bias_init)],
            c.regularizers.in_order(),
        )
    }
    fn continues(&self, prev: &Self) -> bool {
        prev.config.return_sequences
    }
    fn layer_config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Lstm(self.config.clone()))
    }
}

cell_layer!(Lstm, LstmConfig);
