//! Keras's `RNN(cell)`: a recurrent layer around a cell written outside trellis (an
//! [`ir::recurrent::Cell`](trellis_ir::recurrent::Cell): a few lines of graph-building code for
//! one step). The layer gives it what the built-in cells have: PyTorch-named weights, masking,
//! Keras's `initial_state` / `return_state`, dropout and recurrent dropout, regularizers,
//! [`Bidirectional`](super::Bidirectional), the functional API, and the compiled,
//! differentiated step.
use std::any::Any;
use std::fmt::Debug;

use trellis_ir::recurrent::{unroll, Cell, Direction, LayerWeights, StackSpec};
use trellis_ir::{Graph, NodeId};

use super::recurrent::{
    build_cell, call_cell, cell_layer, recurrent_config_setters, seq_layout, unroll_cell,
    weight_specs, CellLayer, Recurrent, RecurrentOptions, Unroll,
};
use super::{Act, BuildCtx, Layer, LayerConfig, ParamSpec, Scope};
use crate::init::Init;
use crate::regularizers::RecurrentRegularizers;
use crate::Result;

/// What a cell type needs to sit in a layer: the ir's [`Cell`] plus what layers are (cloned
/// into plans, compared, sent across threads). Every such type has it.
pub trait RecurrentCell: Cell + Clone + Debug + PartialEq + Send + Sync + 'static {}
impl<C: Cell + Clone + Debug + PartialEq + Send + Sync + 'static> RecurrentCell for C {}

/// The options of an [`Rnn`] around any cell. Keras's defaults: `return_sequences=False`,
/// `return_state=False`, Glorot-uniform kernel, orthogonal recurrent kernel, zero bias.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RnnConfig {
    pub units: usize,
    pub return_sequences: bool,
    pub return_state: bool,
    pub kernel_init: Init,
    pub recurrent_init: Init,
    pub bias_init: Init,
    /// Keras's `dropout` (see [`RnnConfig::with_dropout`]).
    pub dropout: f32,
    /// Keras's `recurrent_dropout` (see [`RnnConfig::with_recurrent_dropout`]).
    pub recurrent_dropout: f32,
    /// Keras's `kernel_regularizer`, `recurrent_regularizer` and `bias_regularizer`.
    #[serde(flatten)]
    pub regularizers: RecurrentRegularizers,
}

recurrent_config_setters!(RnnConfig);

impl RnnConfig {
    pub fn new(units: usize) -> Self {
        RnnConfig {
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
    /// The layer around `cell`.
    pub fn init<C: RecurrentCell>(self, cell: C) -> Rnn<C> {
        Rnn { cell, config: self }
    }
}

/// A recurrent layer around `cell`. Parameters, in PyTorch's layout: `{module}.weight_ih_l0
/// [G·H, in]`, `{module}.weight_hh_l0 [G·H, H]`, `{module}.bias_ih_l0 [G·H]` (added to the
/// hoisted input projection, so the cell's `zx` already holds it), `G` the cell's gate
/// blocks; the module is named after the cell (`Cell::name`). A saved model needs the cell's
/// code to rebuild it, so `save_model` refuses the layer by name; `save` / `load` keep the
/// weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Rnn<C> {
    pub cell: C,
    pub config: RnnConfig,
}

impl<C: RecurrentCell> Rnn<C> {
    /// `cell` over `units`, with Keras's defaults.
    pub fn new(cell: C, units: usize) -> Self {
        RnnConfig::new(units).init(cell)
    }
}

impl<C: RecurrentCell> CellLayer for Rnn<C> {
    fn kind_name(&self) -> &'static str {
        self.cell.name()
    }
    fn state_names(&self) -> Vec<String> {
        (0..self.cell.states())
            .map(|i| match i {
                0 => "h".to_string(),
                i => format!("state {i}"),
            })
            .collect()
    }
    type Config = RnnConfig;
    fn options(&self) -> &RnnConfig {
        &self.config
    }
    fn run(
        &self,
        g: &mut Graph,
        x: &Act,
        params: &[NodeId],
        u: &Unroll,
    ) -> Result<(NodeId, Vec<NodeId>)> {
        let spec = StackSpec {
            layers: vec![LayerWeights {
                w_ih: params[0],
                w_hh: params[1],
                b_ih: Some(params[2]),
                b_hh: None,
                h_mask: u.h_mask,
            }],
            layout: seq_layout(x.layout),
            return_sequences: u.return_sequences,
            initial_state: u.initial_state.map(|s| vec![s.to_vec()]),
            direction: u.direction,
            mask: x.mask,
        };
        let mut o = unroll(g, &self.cell, x.node, &spec)?;
        Ok((o.output, o.states.remove(0)))
    }
    fn param_specs(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        let c = &self.config;
        weight_specs(
            scope,
            in_features,
            self.cell.gates(),
            c.units,
            (&c.kernel_init, &c.recurrent_init),
            &[("bias_ih", &c.bias_init)],
            c.regularizers.in_order(),
        )
    }
    /// Each layer its own module: a cell of unknown kind is not stacked into another's (a
    /// `Bidirectional` around it stacks on another around the same cell, as for the built-ins,
    /// by the cell's name).
    fn continues(&self, _prev: &Self) -> bool {
        false
    }
    fn layer_config(&self) -> Option<LayerConfig> {
        None
    }
}

cell_layer!(impl[C: RecurrentCell] Rnn<C>);
