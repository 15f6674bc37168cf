//! The LSTM unroller: builds the graph of a stacked LSTM over T time steps.
//!
//! Per layer and step, with gates stacked in PyTorch / Keras order i, f, g, o:
//!
//! ```text
//! z_t = x_t W_ih^T + b + h_{t-1} W_hh^T          (x_t W_ih^T + b hoisted: one GEMM for all t)
//! i = σ(z[:, 0:H])   f = σ(z[:, H:2H])   g = tanh(z[:, 2H:3H])   o = σ(z[:, 3H:4H])
//! c_t = f ⊙ c_{t-1} + i ⊙ g                      h_t = o ⊙ tanh(c_t)
//! ```
//!
//! The steps of a layer are concatenated into one `[T·B, H]` value that feeds the next layer's
//! hoisted projection and, in the backward graph, the batched weight-gradient GEMM.
use crate::recurrent::recurrent_masks;
use crate::recurrent::{unroll, Cell, LayerWeights, StackSpec};
pub use crate::recurrent::{Direction, SeqLayout};
use crate::{Graph, NodeId, Result};

/// One layer's weights in PyTorch's layout: `w_ih [4H, in]`, `w_hh [4H, H]`, `bias [4H]`
/// (PyTorch's `b_ih + b_hh`; Keras's single bias).
#[derive(Clone, Copy, Debug)]
pub struct LstmWeights {
    pub w_ih: NodeId,
    pub w_hh: NodeId,
    pub bias: Option<NodeId>,
}

/// What to unroll: the layers, the input layout, what to return, and the initial state.
#[derive(Clone, Debug, Default)]
pub struct LstmSpec {
    pub layers: Vec<LstmWeights>,
    pub layout: SeqLayout,
    /// Return every step of the last layer (`[T, B, H]` / `[B, T, H]`), not only the last `[B, H]`.
    pub return_sequences: bool,
    /// `(h0, c0)` per layer, each `[B, H]`; zero when `None`.
    pub initial_state: Option<Vec<(NodeId, NodeId)>>,
    /// Walk the steps from last to first (every layer); sequence outputs stay in time order.
    pub direction: Direction,
    /// `[T, B]` / `[B, T]` (as `layout`), nonzero for real steps: masked steps carry the state
    /// over and output zeros (see [`crate::recurrent`]).
    pub mask: Option<NodeId>,
    /// Per layer, a `[B, H]` keep-mask multiplying `h` where `W_hh` reads it, the same at
    /// every step (Keras's `recurrent_dropout`, already scaled by `1 / (1 - rate)`).
    pub recurrent_dropout: Option<Vec<NodeId>>,
}

/// The unrolled LSTM's results.
#[derive(Clone, Debug)]
pub struct LstmOutput {
    /// The sequence of the last layer's hidden states, or its last hidden state.
    pub output: NodeId,
    /// Final hidden state of each layer, `[B, H]`.
    pub h: Vec<NodeId>,
    /// Final cell state of each layer, `[B, H]`.
    pub c: Vec<NodeId>,
}

/// The LSTM cell: gates i, f, g, o; state `(h, c)`.
pub(crate) struct LstmCell;

impl Cell for LstmCell {
    fn name(&self) -> &'static str {
        "lstm"
    }
    fn gates(&self) -> usize {
        4
    }
    fn states(&self) -> usize {
        2
    }
    fn step(
        &self,
        g: &mut Graph,
        zx: NodeId,
        prev: Option<&[NodeId]>,
        w: &LayerWeights,
        h: usize,
    ) -> Result<Vec<NodeId>> {
        let z = w.pre_activation(g, zx, prev.map(|p| p[0]))?;
        let zi = g.slice(z, 1, 0, h)?;
        let zf = g.slice(z, 1, h, 2 * h)?;
        let zg = g.slice(z, 1, 2 * h, 3 * h)?;
        let zo = g.slice(z, 1, 3 * h, 4 * h)?;
        let i = g.sigmoid(zi)?;
        let gg = g.tanh(zg)?;
        let o = g.sigmoid(zo)?;
        let ig = g.mul(i, gg)?;
        let c = match prev {
            Some(p) => {
                let f = g.sigmoid(zf)?;
                let fc = g.mul(f, p[1])?;
                g.add(fc, ig)?
            }
            None => ig,
        };
        let tc = g.tanh(c)?;
        let hn = g.mul(o, tc)?;
        Ok(vec![hn, c])
    }
}

/// Unrolls `spec` over the input `x` (`[T, B, in]` or `[B, T, in]`).
pub fn lstm(g: &mut Graph, x: NodeId, spec: &LstmSpec) -> Result<LstmOutput> {
    let h_masks = recurrent_masks("lstm", &spec.recurrent_dropout, spec.layers.len())?;
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
            .map(|s| s.iter().map(|&(h, c)| vec![h, c]).collect()),
        direction: spec.direction,
        mask: spec.mask,
    };
    let out = unroll(g, &LstmCell, x, &stack)?;
    Ok(LstmOutput {
        output: out.output,
        h: out.states.iter().map(|s| s[0]).collect(),
        c: out.states.iter().map(|s| s[1]).collect(),
    })
}
