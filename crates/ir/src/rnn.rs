//! The simple recurrent unroller: PyTorch's `nn.RNN`, Keras's `SimpleRNN`, one gate block:
//!
//! ```text
//! zx = x_t W_ih^T + b                    (hoisted: one GEMM for all t; b = b_ih + b_hh)
//! h_t = act(zx + h_{t-1} W_hh^T)         act = tanh (both frameworks' default) or relu
//! ```
use crate::recurrent::{
    recurrent_masks, unroll, Cell, Direction, LayerWeights, SeqLayout, StackSpec,
};
use crate::{Graph, NodeId, Result};

/// The nonlinearity of a simple recurrent cell (PyTorch's `nonlinearity`, Keras's
/// `activation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RnnActivation {
    #[default]
    Tanh,
    Relu,
}

/// One layer's weights in PyTorch's layout and names: `w_ih [H, in]`, `w_hh [H, H]`, and one
/// bias `[H]` (PyTorch's `b_ih + b_hh`, Keras's one bias).
#[derive(Clone, Copy, Debug)]
pub struct RnnWeights {
    pub w_ih: NodeId,
    pub w_hh: NodeId,
    pub bias: Option<NodeId>,
}

/// What to unroll (as [`crate::gru::GruSpec`], with the cell's nonlinearity).
#[derive(Clone, Debug, Default)]
pub struct RnnSpec {
    pub layers: Vec<RnnWeights>,
    pub activation: RnnActivation,
    pub layout: SeqLayout,
    /// Return every step of the last layer, not only the last `[B, H]`.
    pub return_sequences: bool,
    /// `h0` per layer, each `[B, H]`; zero when `None`.
    pub initial_state: Option<Vec<NodeId>>,
    pub direction: Direction,
    /// `[T, B]` / `[B, T]` (as `layout`), nonzero for real steps.
    pub mask: Option<NodeId>,
    /// Per layer, a `[B, H]` keep-mask multiplying `h` where `W_hh` reads it (as
    /// [`crate::lstm::LstmSpec::recurrent_dropout`]).
    pub recurrent_dropout: Option<Vec<NodeId>>,
}

/// The unrolled layers' results.
#[derive(Clone, Debug)]
pub struct RnnOutput {
    /// The sequence of the last layer's hidden states, or its last hidden state.
    pub output: NodeId,
    /// Final hidden state of each layer, `[B, H]`.
    pub h: Vec<NodeId>,
}

/// The simple cell.
struct RnnCell(RnnActivation);

impl Cell for RnnCell {
    fn name(&self) -> &'static str {
        "simple_rnn"
    }
    fn gates(&self) -> usize {
        1
    }
    fn states(&self) -> usize {
        1
    }
    fn step(
        &self,
        g: &mut Graph,
        zx: NodeId,
        prev: Option<&[NodeId]>,
        w: &LayerWeights,
        _h: usize,
    ) -> Result<Vec<NodeId>> {
        let z = w.pre_activation(g, zx, prev.map(|p| p[0]))?;
        let h = match self.0 {
            RnnActivation::Tanh => g.tanh(z)?,
            RnnActivation::Relu => g.relu(z)?,
        };
        Ok(vec![h])
    }
}

/// Unrolls `spec` over the input `x` (`[T, B, in]` or `[B, T, in]`).
pub fn simple_rnn(g: &mut Graph, x: NodeId, spec: &RnnSpec) -> Result<RnnOutput> {
    let h_masks = recurrent_masks("simple_rnn", &spec.recurrent_dropout, spec.layers.len())?;
    let stack = StackSpec {
        layers: spec
            .layers
            .iter()
            .zip(h_masks)
            .map(|(w, h_mask)| LayerWeights {
                w_ih: w.w_ih,
                w_hh: w.w_hh,
                b_ih: w.bias,
                b_hh: None,
                h_mask,
            })
            .collect(),
        layout: spec.layout,
        return_sequences: spec.return_sequences,
        initial_state: spec
            .initial_state
            .as_ref()
            .map(|s| s.iter().map(|&h| vec![h]).collect()),
        direction: spec.direction,
        mask: spec.mask,
    };
    let out = unroll(g, &RnnCell(spec.activation), x, &stack)?;
    Ok(RnnOutput {
        output: out.output,
        h: out.states.iter().map(|s| s[0]).collect(),
    })
}
