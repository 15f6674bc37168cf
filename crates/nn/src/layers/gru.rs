//! `GRU(units)`: Keras's `GRU(reset_after=True)`, i.e. `torch.nn.GRU`, built on the unroller
//! [`trellis_ir::gru::gru`] (gates r, z, n; the input and recurrent biases kept apart).
use std::any::Any;

use trellis_ir::gru::{gru, GruOutput, GruSpec, GruWeights};
use trellis_ir::lstm::Direction;
use trellis_ir::{Graph, NodeId};

use super::recurrent::{
    call_outputs, check_sequence, given_states, initial_states, return_state_error, seq_layout,
    sequence_back, step_dropout, weight_specs, Recurrent,
};
use super::{Act, BuildCtx, Layer, LayerConfig, ParamSpec, Scope};
use crate::init::Init;
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
}

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
        }
    }
    pub fn with_return_sequences(mut self, yes: bool) -> Self {
        self.return_sequences = yes;
        self
    }
    pub fn with_return_state(mut self, yes: bool) -> Self {
        self.return_state = yes;
        self
    }
    pub fn with_kernel_init(mut self, init: Init) -> Self {
        self.kernel_init = init;
        self
    }
    pub fn with_recurrent_init(mut self, init: Init) -> Self {
        self.recurrent_init = init;
        self
    }
    pub fn with_bias_init(mut self, init: Init) -> Self {
        self.bias_init = init;
        self
    }
    /// Keras's `dropout` (in [0, 1)).
    pub fn with_dropout(mut self, rate: f32) -> Self {
        self.dropout = rate;
        self
    }
    /// Keras's `recurrent_dropout` (in [0, 1)).
    pub fn with_recurrent_dropout(mut self, rate: f32) -> Self {
        self.recurrent_dropout = rate;
        self
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

    /// `(dropout, recurrent_dropout)`.
    fn rates(&self) -> (f32, f32) {
        (self.config.dropout, self.config.recurrent_dropout)
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        g: &mut Graph,
        x: &Act,
        params: &[NodeId],
        direction: Direction,
        return_sequences: bool,
        initial_state: Option<NodeId>,
        h_mask: Option<NodeId>,
    ) -> Result<GruOutput> {
        let spec = GruSpec {
            layers: vec![GruWeights {
                w_ih: params[0],
                w_hh: params[1],
                b_ih: Some(params[2]),
                b_hh: Some(params[3]),
            }],
            layout: seq_layout(x.layout),
            return_sequences,
            initial_state: initial_state.map(|h| vec![h]),
            direction,
            mask: x.mask,
            recurrent_dropout: h_mask.map(|m| vec![m]),
        };
        Ok(gru(g, x.node, &spec)?)
    }
}

impl From<GruConfig> for Box<dyn Layer> {
    fn from(c: GruConfig) -> Self {
        Box::new(c.init())
    }
}

impl Recurrent for Gru {
    fn return_sequences(&self) -> bool {
        self.config.return_sequences
    }
    fn unroll(
        &self,
        g: &mut Graph,
        x: &Act,
        params: &[NodeId],
        direction: Direction,
        initial_state: Option<&[NodeId]>,
        ctx: &mut BuildCtx,
    ) -> Result<(NodeId, Vec<NodeId>)> {
        let init = initial_states::<1>("gru", "h", initial_state)?.map(|[h]| h);
        let (xd, h_mask) = step_dropout(g, x, self.config.units, self.rates(), ctx)?;
        let o = self.run(g, &xd, params, direction, true, init, h_mask)?;
        let seq = sequence_back(g, o.output, &xd, x)?;
        Ok((seq, o.h))
    }
}

impl Layer for Gru {
    fn kind(&self) -> &'static str {
        "gru"
    }
    fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        let c = &self.config;
        let inits = (&c.kernel_init, &c.recurrent_init);
        let biases = [("bias_ih", &c.bias_init), ("bias_hh", &c.bias_init)];
        weight_specs(scope, in_features, 3, c.units, inits, &biases)
    }
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], ctx: &mut BuildCtx) -> Result<Act> {
        if self.config.return_state {
            return Err(return_state_error("gru", "two"));
        }
        Ok(self.build_many(g, &[x], params, ctx)?.remove(0))
    }
    /// `[x]` or `[x, h0]` (Keras's `initial_state`).
    fn num_inputs(&self) -> (usize, usize) {
        (1, 2)
    }
    /// `output`, then `h` with `return_state`.
    fn num_outputs(&self) -> usize {
        if self.config.return_state {
            2
        } else {
            1
        }
    }
    fn build_many(
        &self,
        g: &mut Graph,
        xs: &[Act],
        params: &[NodeId],
        ctx: &mut BuildCtx,
    ) -> Result<Vec<Act>> {
        let x = &xs[0];
        check_sequence(g, "gru", x)?;
        let given = given_states(xs);
        let init = initial_states::<1>("gru", "h", given.as_deref())?.map(|[h]| h);
        let rs = self.config.return_sequences;
        let (x, h_mask) = step_dropout(g, x, self.config.units, self.rates(), ctx)?;
        let x = &x;
        let o = self.run(g, x, params, Direction::Forward, rs, init, h_mask)?;
        Ok(call_outputs(
            x,
            o.output,
            &o.h,
            rs,
            self.config.return_state,
        ))
    }
    fn stacks_on(&self, prev: &dyn Layer) -> bool {
        prev.as_any()
            .downcast_ref::<Gru>()
            .is_some_and(|p| p.config.return_sequences)
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Gru(self.config.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
