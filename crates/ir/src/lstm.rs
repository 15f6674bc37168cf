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
use crate::{Graph, IrError, NodeId, Result, Shape};

/// One layer's weights in PyTorch's layout: `w_ih [4H, in]`, `w_hh [4H, H]`, `bias [4H]`
/// (PyTorch's `b_ih + b_hh`; Keras's single bias).
#[derive(Clone, Copy, Debug)]
pub struct LstmWeights {
    pub w_ih: NodeId,
    pub w_hh: NodeId,
    pub bias: Option<NodeId>,
}

/// Where the time axis of the input and of a sequence output sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SeqLayout {
    /// `[T, B, features]`
    #[default]
    TimeMajor,
    /// `[B, T, features]`
    BatchMajor,
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

fn err(layer: usize, msg: String) -> IrError {
    IrError::Invalid(format!("lstm layer {layer}: {msg}"))
}

/// Unrolls `spec` over the input `x` (`[T, B, in]` or `[B, T, in]`).
pub fn lstm(g: &mut Graph, x: NodeId, spec: &LstmSpec) -> Result<LstmOutput> {
    let xt = g.ty(x).clone();
    if xt.rank() != 3 || !xt.dtype.is_float() {
        return Err(IrError::Invalid(format!(
            "lstm: input must be a float [T, B, in] or [B, T, in], got {xt}"
        )));
    }
    if spec.layers.is_empty() {
        return Err(IrError::Invalid("lstm: no layers".into()));
    }
    let x = match spec.layout {
        SeqLayout::TimeMajor => x,
        SeqLayout::BatchMajor => g.transpose(x, &[1, 0, 2])?,
    };
    let d = g.ty(x).dims().to_vec();
    let (t_len, batch, mut width) = (d[0], d[1], d[2]);
    if t_len == 0 {
        return Err(IrError::Invalid("lstm: sequence length 0".into()));
    }
    if let Some(init) = &spec.initial_state {
        if init.len() != spec.layers.len() {
            return Err(IrError::Invalid(format!(
                "lstm: {} initial states for {} layers",
                init.len(),
                spec.layers.len()
            )));
        }
    }
    // All steps of the current layer's input, [T·B, width].
    let mut seq = g.reshape(x, [t_len * batch, width])?;
    let (mut hs, mut cs) = (Vec::new(), Vec::new());
    let mut steps = Vec::new();
    for (l, w) in spec.layers.iter().enumerate() {
        let (wi, wh) = (g.ty(w.w_ih).dims().to_vec(), g.ty(w.w_hh).dims().to_vec());
        if wi.len() != 2 || wi[0] % 4 != 0 || wi[1] != width {
            return Err(err(
                l,
                format!("w_ih must be [4H, {width}], got {}", Shape::new(&wi)),
            ));
        }
        let h = wi[0] / 4;
        if wh != [4 * h, h] {
            return Err(err(
                l,
                format!("w_hh must be [{}, {h}], got {}", 4 * h, Shape::new(&wh)),
            ));
        }
        // Hoisted input projection for every step: [T·B, 4H].
        let mut xw = g.matmul_t(seq, w.w_ih, false, true)?;
        if let Some(b) = w.bias {
            if g.ty(b).dims() != [4 * h] {
                return Err(err(
                    l,
                    format!("bias must be [{}], got {}", 4 * h, g.ty(b).shape),
                ));
            }
            xw = g.add(xw, b)?;
        }
        g.set_name(xw, format!("l{l}.xw"));
        let (mut h_prev, mut c_prev) = match &spec.initial_state {
            Some(init) => {
                let (h0, c0) = init[l];
                for s in [h0, c0] {
                    if g.ty(s).dims() != [batch, h] {
                        return Err(err(
                            l,
                            format!(
                                "initial state must be [{batch}, {h}], got {}",
                                g.ty(s).shape
                            ),
                        ));
                    }
                }
                (Some(init[l].0), Some(init[l].1))
            }
            None => (None, None),
        };
        steps.clear();
        for t in 0..t_len {
            let mut z = g.slice(xw, 0, t * batch, (t + 1) * batch)?;
            if let Some(hp) = h_prev {
                let r = g.matmul_t(hp, w.w_hh, false, true)?;
                z = g.add(z, r)?;
            }
            g.set_name(z, format!("l{l}.t{t}.z"));
            let zi = g.slice(z, 1, 0, h)?;
            let zf = g.slice(z, 1, h, 2 * h)?;
            let zg = g.slice(z, 1, 2 * h, 3 * h)?;
            let zo = g.slice(z, 1, 3 * h, 4 * h)?;
            let i = g.sigmoid(zi)?;
            let gg = g.tanh(zg)?;
            let o = g.sigmoid(zo)?;
            let ig = g.mul(i, gg)?;
            let c = match c_prev {
                Some(cp) => {
                    let f = g.sigmoid(zf)?;
                    let fc = g.mul(f, cp)?;
                    g.add(fc, ig)?
                }
                None => ig,
            };
            let tc = g.tanh(c)?;
            let hn = g.mul(o, tc)?;
            g.set_name(c, format!("l{l}.t{t}.c"));
            g.set_name(hn, format!("l{l}.t{t}.h"));
            steps.push(hn);
            h_prev = Some(hn);
            c_prev = Some(c);
        }
        hs.push(h_prev.expect("t_len > 0"));
        cs.push(c_prev.expect("t_len > 0"));
        width = h;
        if l + 1 < spec.layers.len() || spec.return_sequences {
            seq = g.concat(&steps, 0)?;
            g.set_name(seq, format!("l{l}.h_all"));
        }
    }
    let output = if spec.return_sequences {
        let s = g.reshape(seq, [t_len, batch, width])?;
        match spec.layout {
            SeqLayout::TimeMajor => s,
            SeqLayout::BatchMajor => g.transpose(s, &[1, 0, 2])?,
        }
    } else {
        *hs.last().expect("one layer at least")
    };
    Ok(LstmOutput {
        output,
        h: hs,
        c: cs,
    })
}
