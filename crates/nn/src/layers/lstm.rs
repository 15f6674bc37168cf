//! `LSTM(units)`: built on the unroller [`trellis_ir::lstm::lstm`] (gates i, f, g, o; one bias).
use std::any::Any;

use trellis_ir::lstm::{lstm, Direction, LstmOutput, LstmSpec, LstmWeights};
use trellis_ir::{Graph, NodeId};

use super::recurrent::{
    call_outputs, check_sequence, given_states, initial_states, return_state_error, seq_layout,
    sequence_back, step_dropout, weight_specs, Recurrent,
};
use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::init::Init;
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
}

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
        let rs = self.config.return_sequences;
        self.run(g, &x, params, Direction::Forward, rs, None, None)
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
        initial_state: Option<(NodeId, NodeId)>,
        h_mask: Option<NodeId>,
    ) -> Result<LstmOutput> {
        let spec = LstmSpec {
            layers: vec![LstmWeights {
                w_ih: params[0],
                w_hh: params[1],
                bias: Some(params[2]),
            }],
            layout: seq_layout(x.layout),
            return_sequences,
            initial_state: initial_state.map(|s| vec![s]),
            direction,
            mask: x.mask,
            recurrent_dropout: h_mask.map(|m| vec![m]),
        };
        Ok(lstm(g, x.node, &spec)?)
    }
}

impl Recurrent for Lstm {
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
        let init = initial_states::<2>("lstm", "h, c", initial_state)?.map(|[h, c]| (h, c));
        let (xd, h_mask) = step_dropout(g, x, self.config.units, self.rates(), ctx)?;
        let o = self.run(g, &xd, params, direction, true, init, h_mask)?;
        let seq = sequence_back(g, o.output, &xd, x)?;
        Ok((seq, vec![o.h[0], o.c[0]]))
    }
}

impl From<LstmConfig> for Box<dyn Layer> {
    fn from(c: LstmConfig) -> Self {
        Box::new(c.init())
    }
}

impl Layer for Lstm {
    fn kind(&self) -> &'static str {
        "lstm"
    }
    fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        let c = &self.config;
        let inits = (&c.kernel_init, &c.recurrent_init);
        weight_specs(
            scope,
            in_features,
            4,
            c.units,
            inits,
            &[("bias_ih", &c.bias_init)],
        )
    }
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], ctx: &mut BuildCtx) -> Result<Act> {
        if self.config.return_state {
            return Err(return_state_error("lstm", "three"));
        }
        Ok(self.build_many(g, &[x], params, ctx)?.remove(0))
    }
    /// `[x]` or `[x, h0, c0]` (Keras's `initial_state`).
    fn num_inputs(&self) -> (usize, usize) {
        (1, 3)
    }
    /// `output`, then `h` and `c` with `return_state`.
    fn num_outputs(&self) -> usize {
        if self.config.return_state {
            3
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
        check_sequence(g, "lstm", x)?;
        let given = given_states(xs);
        let init = initial_states::<2>("lstm", "h, c", given.as_deref())?.map(|[h, c]| (h, c));
        let rs = self.config.return_sequences;
        let (x, h_mask) = step_dropout(g, x, self.config.units, self.rates(), ctx)?;
        let x = &x;
        let out = self.run(g, x, params, Direction::Forward, rs, init, h_mask)?;
        let states = [out.h[0], out.c[0]];
        Ok(call_outputs(
            x,
            out.output,
            &states,
            rs,
            self.config.return_state,
        ))
    }
    fn stacks_on(&self, prev: &dyn Layer) -> bool {
        prev.as_any()
            .downcast_ref::<Lstm>()
            .is_some_and(|p| p.config.return_sequences)
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Lstm(self.config.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
