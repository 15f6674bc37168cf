//! A recurrent cell written outside trellis: the minimal gated unit (Zhou et al. 2016, "Minimal
//! gated unit for recurrent neural networks"), one gate where the GRU has two. Implementing
//! `trellis_ir::recurrent::Cell` is all it takes: `nn::Rnn` gives it weights, masking,
//! dropout, `Bidirectional` and the compiled step. Used by `examples/custom_cell.rs` and
//! `crates/nn/tests/custom_cell.rs`.
use trellis_ir::recurrent::{Cell, LayerWeights};
use trellis_ir::{Graph, IrError, NodeId};

/// The minimal gated unit: `f = sigmoid(zx_f + h U_f)`, `n = tanh(zx_n + (f h) U_n)`,
/// `h' = h + f (n - h)`; `W_hh` stacks `U_f` over `U_n`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mgu;

impl Cell for Mgu {
    fn name(&self) -> &'static str {
        "mgu"
    }
    fn gates(&self) -> usize {
        2
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
        h: usize,
    ) -> Result<Vec<NodeId>, IrError> {
        let (zf, zn) = (g.slice(zx, 1, 0, h)?, g.slice(zx, 1, h, 2 * h)?);
        let Some(p) = prev else {
            // From a zero state: f = sigmoid(zx_f), h' = f tanh(zx_n).
            let f = g.sigmoid(zf)?;
            let n = g.tanh(zn)?;
            return Ok(vec![g.mul(f, n)?]);
        };
        let hin = w.recurrent_input(g, p[0])?;
        let (uf, un) = (g.slice(w.w_hh, 0, 0, h)?, g.slice(w.w_hh, 0, h, 2 * h)?);
        let rf = g.matmul_t(hin, uf, false, true)?;
        let af = g.add(zf, rf)?;
        let f = g.sigmoid(af)?;
        let fh = g.mul(f, hin)?;
        let rn = g.matmul_t(fh, un, false, true)?;
        let an = g.add(zn, rn)?;
        let n = g.tanh(an)?;
        let d = g.sub(n, p[0])?;
        let fd = g.mul(f, d)?;
        Ok(vec![g.add(p[0], fd)?])
    }
}
