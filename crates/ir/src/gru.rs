//! The GRU unroller: PyTorch's `nn.GRU` (Keras's `GRU(reset_after=True)`), gates r, z, n:
//!
//! ```text
//! gx = x_t W_ih^T + b_ih                 (hoisted: one GEMM for all t)
//! gh = h_{t-1} W_hh^T + b_hh
//! r = σ(gx_r + gh_r)    z = σ(gx_z + gh_z)    n = tanh(gx_n + r ⊙ gh_n)
//! h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}  =  n + z ⊙ (h_{t-1} - n)
//! ```
//!
//! `b_hh` stays apart from `b_ih` because its `n` block is scaled by `r`.
use crate::recurrent::{
    recurrent_masks, unroll, Cell, Direction, LayerWeights, SeqLayout, StackSpec,
};
use crate::{Graph, NodeId, Result};

/// One layer's weights in PyTorch's layout and names: `w_ih [3H, in]`, `w_hh [3H, H]`,
/// `b_ih [3H]`, `b_hh [3H]` (gates r, z, n).
#[derive(Clone, Copy, Debug)]
pub struct GruWeights {
    pub w_ih: NodeId,
    pub w_hh: NodeId,
    pub b_ih: Option<NodeId>,
    pub b_hh: Option<NodeId>,
}

/// What to unroll (as [`crate::lstm::LstmSpec`], with one state tensor per layer).
#[derive(Clone, Debug, Default)]
pub struct GruSpec {
    pub layers: Vec<GruWeights>,
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

/// The unrolled GRU's results.
#[derive(Clone, Debug)]
pub struct GruOutput {
    /// The sequence of the last layer's hidden states, or its last hidden state.
    pub output: NodeId,
    /// Final hidden state of each layer, `[B, H]`.
    pub h: Vec<NodeId>,
}

/// The GRU cell.
pub(crate) struct GruCell;

impl Cell for GruCell {
    fn name(&self) -> &'static str {
        "gru"
    }
    fn gates(&self) -> usize {
        3
    }
    fn states(&self) -> usize {
        1
    }
    fn step(
        &self,
        g: &mut Graph,
        gx: NodeId,
        prev: Option<&[NodeId]>,
        w: &LayerWeights,
        h: usize,
    ) -> Result<Vec<NodeId>> {
        // gh = h_{t-1} W_hh^T + b_hh; with no earlier state, b_hh alone (or nothing).
        let gh = match (prev, w.b_hh) {
            (Some(p), b) => {
                let hin = w.recurrent_input(g, p[0])?;
                let r = g.matmul_t(hin, w.w_hh, false, true)?;
                match b {
                    Some(b) => Some(g.add(r, b)?),
                    None => Some(r),
                }
            }
            (None, Some(b)) => Some(b),
            (None, None) => None,
        };
        // The gate blocks of gx [B, 3H] and gh ([B, 3H], or the bias [3H]).
        let block = |g: &mut Graph, v: NodeId, k: usize| {
            let axis = g.ty(v).rank() - 1;
            g.slice(v, axis, k * h, (k + 1) * h)
        };
        let gate = |g: &mut Graph, k: usize| -> Result<NodeId> {
            let x = block(g, gx, k)?;
            match gh {
                Some(gh) => {
                    let y = block(g, gh, k)?;
                    g.add(x, y)
                }
                None => Ok(x),
            }
        };
        let r = gate(g, 0)?;
        let r = g.sigmoid(r)?;
        let z = gate(g, 1)?;
        let z = g.sigmoid(z)?;
        let nx = block(g, gx, 2)?;
        let n = match gh {
            Some(gh) => {
                let nh = block(g, gh, 2)?;
                let rn = g.mul(r, nh)?;
                g.add(nx, rn)?
            }
            None => nx,
        };
        let n = g.tanh(n)?;
        let hn = match prev {
            Some(p) => {
                let d = g.sub(p[0], n)?;
                let zd = g.mul(z, d)?;
                g.add(n, zd)?
            }
            None => {
                let zn = g.mul(z, n)?;
                g.sub(n, zn)?
            }
        };
        Ok(vec![hn])
    }
}

/// Unrolls `spec` over the input `x` (`[T, B, in]` or `[B, T, in]`).
pub fn gru(g: &mut Graph, x: NodeId, spec: &GruSpec) -> Result<GruOutput> {
    let h_masks = recurrent_masks("gru", &spec.recurrent_dropout, spec.layers.len())?;
    let stack = StackSpec {
        layers: spec
            .layers
            .iter()
            .zip(h_masks)
            .map(|(w, h_mask)| LayerWeights {
                w_ih: w.w_ih,
                w_hh: w.w_hh,
                b_ih: w.b_ih,
                b_hh: w.b_hh,
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
    let out = unroll(g, &GruCell, x, &stack)?;
    Ok(GruOutput {
        output: out.output,
        h: out.states.iter().map(|s| s[0]).collect(),
    })
}
