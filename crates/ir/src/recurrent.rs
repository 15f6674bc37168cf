//! The recurrent unroller the cells share (LSTM in `lstm`, GRU in `gru`): one layer over T
//! steps, in either direction, with an optional mask, the input projection hoisted out of the
//! recurrence.
//!
//! Per layer:
//!
//! ```text
//! xw = x W_ih^T + b_ih                 all steps at once: one [T·B, in] x [in, G·H] GEMM
//! for t in 0..T (or T-1..=0 reversed):  state_t = cell(xw[t], state_{t-1})
//! ```
//!
//! **Masking** (Keras semantics): `mask` is `[T·B, 1]` (time-major rows, 1 for a real step,
//! 0 for padding). A masked step carries the state over unchanged and outputs zero:
//! `s_t = s_{t-1} + m (s'_t - s_{t-1})`, `out_t = m s'_t` (with no earlier state, `s_t = m s'_t`).
//! So a sequence's state starts at its first real step in either direction: a reversed layer
//! over post-padded data starts at each sequence's own last real step, and pre- and
//! post-padding give the same final state.
use crate::{Graph, IrError, NodeId, Result, Shape};

/// Which way a layer walks the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Forward,
    /// From the last step to the first (the backward half of a bidirectional layer).
    Reverse,
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

/// One step of a cell: from the step's rows of the hoisted projection `[B, G·H]` and the
/// state before it (`None` at the first step: zeros), the new state; `state[0]` is the
/// output `h`.
///
/// The LSTM, GRU and simple RNN are cells; so can yours be (a new gating, a minimal gated
/// unit, a research cell): implement this trait with graph-building code and [`unroll`] runs
/// it over a sequence in either direction, with masking, initial states, recurrent dropout and
/// stacking, the input projection hoisted into one GEMM. Autodiff differentiates it and the
/// JIT fuses its elementwise work like a built-in's (`crates/nn/tests/custom_cell.rs`).
/// Every state tensor is `[B, H]`; [`unroll`] checks what `step` returns.
pub trait Cell {
    /// What the cell is called in errors and module names (`lstm`, `gru`).
    fn name(&self) -> &'static str;
    /// Gate blocks stacked in `W_ih` / `W_hh` (LSTM 4, GRU 3).
    fn gates(&self) -> usize;
    /// State tensors carried between steps (LSTM 2: `h, c`; GRU 1: `h`).
    fn states(&self) -> usize;
    /// The new state from the step's projected input `zx` (`[B, G·H]`: `x_t W_ih^T + b_ih`),
    /// the state before (`None` at the first step without an initial state: read as zeros),
    /// the layer's weights `w` and the width `h` (H).
    fn step(
        &self,
        g: &mut Graph,
        zx: NodeId,
        prev: Option<&[NodeId]>,
        w: &LayerWeights,
        h: usize,
    ) -> Result<Vec<NodeId>>;
}

/// One layer's weights in PyTorch's layout: `w_ih [G·H, in]`, `w_hh [G·H, H]`, biases `[G·H]`.
#[derive(Clone, Copy, Debug)]
pub struct LayerWeights {
    pub w_ih: NodeId,
    pub w_hh: NodeId,
    /// Added to the hoisted projection.
    pub b_ih: Option<NodeId>,
    /// Added to `h W_hh^T` at each step (only where the cell needs it apart: GRU's `b_hn`).
    pub b_hh: Option<NodeId>,
    /// `[B, H]`, multiplying `h` where `W_hh` reads it at every step (Keras's
    /// `recurrent_dropout`: one keep-mask for the whole sequence); the state itself is
    /// unmasked.
    pub h_mask: Option<NodeId>,
}

impl LayerWeights {
    /// `h` as the recurrent product reads it: masked when the layer has an `h_mask`.
    pub fn recurrent_input(&self, g: &mut Graph, h: NodeId) -> Result<NodeId> {
        match self.h_mask {
            Some(m) => g.mul(h, m),
            None => Ok(h),
        }
    }
    /// A step's gate pre-activations when `b_hh` is folded into the projection (LSTM, simple
    /// RNN): `zx + h_{t-1} W_hh^T` (`h` masked as [`LayerWeights::recurrent_input`] says), or
    /// `zx` alone at the first step, which reads no state.
    pub fn pre_activation(&self, g: &mut Graph, zx: NodeId, h: Option<NodeId>) -> Result<NodeId> {
        match h {
            Some(h) => {
                let hin = self.recurrent_input(g, h)?;
                let r = g.matmul_t(hin, self.w_hh, false, true)?;
                g.add(zx, r)
            }
            None => Ok(zx),
        }
    }
}

/// Per layer, the optional `h_mask` of [`LayerWeights`], checked against the layer count.
pub(crate) fn recurrent_masks(
    cell: &str,
    masks: &Option<Vec<NodeId>>,
    layers: usize,
) -> Result<Vec<Option<NodeId>>> {
    match masks {
        None => Ok(vec![None; layers]),
        Some(m) if m.len() == layers => Ok(m.iter().copied().map(Some).collect()),
        Some(m) => Err(IrError::Invalid(format!(
            "{cell}: {} recurrent dropout masks for {layers} layers",
            m.len()
        ))),
    }
}

/// One unrolled layer, as the unroller records it in the graph ([`Graph::recurrences`]) for
/// passes that work a step at a time (autodiff's recomputation): which nodes each step made and
/// the state it hands on. Node ids, so valid until a pass rewrites the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recurrence {
    /// The state before the first step (`None`: zeros; the first step then reads no state).
    pub initial: Option<Vec<NodeId>>,
    /// The steps in the order taken (from the last time step first in a reversed layer).
    pub steps: Vec<RecurrentStep>,
}

/// One step of a [`Recurrence`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecurrentStep {
    /// The node indices the step created (`Graph::node_ids_in`): its row slices, the cell, the
    /// masking.
    pub nodes: std::ops::Range<usize>,
    /// The state after the step (`state[0]` is `h`); the next step reads it.
    pub state: Vec<NodeId>,
}

/// A layer's results.
struct LayerOutput {
    /// Each step's output `[B, H]`, in time order (also for a reversed layer).
    pub steps: Vec<NodeId>,
    /// The state after the last step taken (for a reversed layer, after step 0).
    pub state: Vec<NodeId>,
}

fn err(cell: &str, layer: usize, msg: String) -> IrError {
    IrError::Invalid(format!("{cell} layer {layer}: {msg}"))
}

/// Brings `x` (`[T, B, in]` or `[B, T, in]`) to its rows `[T·B, in]`; returns `(rows, T, B, in)`.
fn sequence_rows(
    g: &mut Graph,
    cell: &str,
    x: NodeId,
    layout: SeqLayout,
) -> Result<(NodeId, usize, usize, usize)> {
    let xt = g.ty(x).clone();
    if xt.rank() != 3 || !xt.dtype.is_float() {
        return Err(IrError::Invalid(format!(
            "{cell}: input must be a float [T, B, in] or [B, T, in], got {xt}"
        )));
    }
    let x = match layout {
        SeqLayout::TimeMajor => x,
        SeqLayout::BatchMajor => g.transpose(x, &[1, 0, 2])?,
    };
    let d = g.ty(x).dims().to_vec();
    let (t_len, batch, width) = (d[0], d[1], d[2]);
    if t_len == 0 {
        return Err(IrError::Invalid(format!("{cell}: sequence length 0")));
    }
    let rows = g.reshape(x, [t_len * batch, width])?;
    Ok((rows, t_len, batch, width))
}

/// Brings a mask (`[T, B]` or `[B, T]` per `layout`; floats 1 for a real step and 0 for
/// padding, or integers, nonzero for a real step) to the float rows `[T·B, 1]` the unroller
/// reads.
fn mask_rows(
    g: &mut Graph,
    cell: &str,
    mask: NodeId,
    layout: SeqLayout,
    t_len: usize,
    batch: usize,
    dtype: crate::DType,
) -> Result<NodeId> {
    let want = match layout {
        SeqLayout::TimeMajor => [t_len, batch],
        SeqLayout::BatchMajor => [batch, t_len],
    };
    if g.ty(mask).dims() != want {
        return Err(IrError::Invalid(format!(
            "{cell}: the mask must be {} like the input's first two axes, got {}",
            Shape::new(&want),
            g.ty(mask)
        )));
    }
    let m = match layout {
        SeqLayout::TimeMajor => mask,
        SeqLayout::BatchMajor => g.transpose(mask, &[1, 0])?,
    };
    let m = if g.ty(m).dtype == dtype {
        m
    } else {
        let f = g.cast(m, dtype)?;
        let zero = g.scalar(0.0, dtype);
        g.not_equal(f, zero)?
    };
    g.reshape(m, [t_len * batch, 1])
}

/// A stack of layers of one cell: what [`unroll`] takes besides the cell and the input.
pub struct StackSpec {
    pub layers: Vec<LayerWeights>,
    pub layout: SeqLayout,
    pub return_sequences: bool,
    /// Per layer, the cell's state tensors (`[B, H]` each).
    pub initial_state: Option<Vec<Vec<NodeId>>>,
    pub direction: Direction,
    pub mask: Option<NodeId>,
}

/// The stack's results: its output and, per layer, the final state tensors.
pub struct StackOutput {
    pub output: NodeId,
    pub states: Vec<Vec<NodeId>>,
}

/// Unrolls a stack of `cell` layers over `x` (`[T, B, in]` or `[B, T, in]`).
pub fn unroll(g: &mut Graph, cell: &dyn Cell, x: NodeId, spec: &StackSpec) -> Result<StackOutput> {
    let name = cell.name();
    if cell.gates() == 0 || cell.states() == 0 {
        return Err(IrError::Invalid(format!(
            "{name}: a cell needs a gate block and a state at least, it declares {} and {}",
            cell.gates(),
            cell.states()
        )));
    }
    let (mut seq, t_len, batch, _) = sequence_rows(g, name, x, spec.layout)?;
    if spec.layers.is_empty() {
        return Err(IrError::Invalid(format!("{name}: no layers")));
    }
    if let Some(init) = &spec.initial_state {
        if init.len() != spec.layers.len() {
            return Err(IrError::Invalid(format!(
                "{name}: {} initial states for {} layers",
                init.len(),
                spec.layers.len()
            )));
        }
    }
    let dtype = g.ty(x).dtype;
    let mask = match spec.mask {
        Some(m) => Some(mask_rows(g, name, m, spec.layout, t_len, batch, dtype)?),
        None => None,
    };
    let mut states = Vec::new();
    for (l, w) in spec.layers.iter().enumerate() {
        let init = spec.initial_state.as_ref().map(|s| &s[l][..]);
        let out = unroll_layer(
            g,
            cell,
            l,
            seq,
            (t_len, batch),
            w,
            spec.direction,
            mask,
            init,
        )?;
        states.push(out.state);
        if l + 1 < spec.layers.len() || spec.return_sequences {
            seq = steps_to_rows(g, l, &out.steps)?;
        }
    }
    let output = if spec.return_sequences {
        rows_to_sequence(g, seq, t_len, batch, spec.layout)?
    } else {
        states.last().expect("one layer at least")[0]
    };
    Ok(StackOutput { output, states })
}

/// Unrolls one layer of `cell` over `rows` (`[T·B, in]`, time-major rows).
#[allow(clippy::too_many_arguments)]
fn unroll_layer(
    g: &mut Graph,
    cell: &dyn Cell,
    l: usize,
    rows: NodeId,
    (t_len, batch): (usize, usize),
    w: &LayerWeights,
    direction: Direction,
    mask: Option<NodeId>,
    initial: Option<&[NodeId]>,
) -> Result<LayerOutput> {
    let name = cell.name();
    let gates = cell.gates();
    let width = g.ty(rows).dims()[1];
    let (wi, wh) = (g.ty(w.w_ih).dims().to_vec(), g.ty(w.w_hh).dims().to_vec());
    if wi.len() != 2 || wi[0] % gates != 0 || wi[0] == 0 || wi[1] != width {
        return Err(err(
            name,
            l,
            format!("w_ih must be [{gates}H, {width}], got {}", Shape::new(&wi)),
        ));
    }
    let h = wi[0] / gates;
    if wh != [gates * h, h] {
        return Err(err(
            name,
            l,
            format!("w_hh must be [{}, {h}], got {}", gates * h, Shape::new(&wh)),
        ));
    }
    for b in [w.b_ih, w.b_hh].into_iter().flatten() {
        if g.ty(b).dims() != [gates * h] {
            return Err(err(
                name,
                l,
                format!("biases must be [{}], got {}", gates * h, g.ty(b).shape),
            ));
        }
    }
    if let Some(m) = w.h_mask {
        let want = crate::TensorType::new([batch, h], g.ty(rows).dtype);
        if *g.ty(m) != want {
            return Err(err(
                name,
                l,
                format!("recurrent dropout mask must be {want}, got {}", g.ty(m)),
            ));
        }
    }
    if let Some(init) = initial {
        if init.len() != cell.states() {
            return Err(err(
                name,
                l,
                format!(
                    "{} initial states for {} state tensors",
                    init.len(),
                    cell.states()
                ),
            ));
        }
        let want = crate::TensorType::new([batch, h], g.ty(rows).dtype);
        for &s in init {
            if *g.ty(s) != want {
                return Err(err(
                    name,
                    l,
                    format!("initial state must be {want}, got {}", g.ty(s)),
                ));
            }
        }
    }
    // Hoisted input projection for every step: [T·B, G·H].
    let mut xw = g.matmul_t(rows, w.w_ih, false, true)?;
    if let Some(b) = w.b_ih {
        xw = g.add(xw, b)?;
    }
    g.set_name(xw, format!("l{l}.xw"));
    let mut prev: Option<Vec<NodeId>> = initial.map(<[NodeId]>::to_vec);
    let mut steps = vec![None; t_len];
    let mut record = Recurrence {
        initial: prev.clone(),
        steps: Vec::with_capacity(t_len),
    };
    for k in 0..t_len {
        let first = g.node_bound();
        let t = match direction {
            Direction::Forward => k,
            Direction::Reverse => t_len - 1 - k,
        };
        let zx = g.slice(xw, 0, t * batch, (t + 1) * batch)?;
        let new = cell.step(g, zx, prev.as_deref(), w, h)?;
        check_step(g, cell, l, &new, [batch, h], g.ty(rows).dtype)?;
        let (state, out) = match mask {
            None => (new.clone(), new[0]),
            Some(m) => {
                let mt = g.slice(m, 0, t * batch, (t + 1) * batch)?; // [B, 1]
                let out = g.mul(mt, new[0])?;
                let state = match &prev {
                    None => {
                        let mut s = vec![out];
                        for &n in &new[1..] {
                            s.push(g.mul(mt, n)?);
                        }
                        s
                    }
                    Some(p) => {
                        let mut s = Vec::with_capacity(new.len());
                        for (&n, &q) in new.iter().zip(p) {
                            let d = g.sub(n, q)?;
                            let md = g.mul(mt, d)?;
                            s.push(g.add(q, md)?);
                        }
                        s
                    }
                };
                (state, out)
            }
        };
        g.set_name(state[0], format!("l{l}.t{t}.h"));
        steps[t] = Some(out);
        record.steps.push(RecurrentStep {
            nodes: first..g.node_bound(),
            state: state.clone(),
        });
        prev = Some(state);
    }
    g.note_recurrence(record);
    Ok(LayerOutput {
        steps: steps.into_iter().map(|s| s.expect("every step")).collect(),
        state: prev.expect("t_len > 0"),
    })
}

/// That a cell's step returned its `states()` tensors, each `[B, H]` of the input's dtype: a
/// cell written outside trellis gets an error naming it, not a malformed graph.
fn check_step(
    g: &Graph,
    cell: &dyn Cell,
    l: usize,
    new: &[NodeId],
    bh: [usize; 2],
    dtype: crate::DType,
) -> Result<()> {
    let want = crate::TensorType::new(bh, dtype);
    if new.len() != cell.states() {
        return Err(err(
            cell.name(),
            l,
            format!(
                "step returned {} state tensors, the cell declares {}",
                new.len(),
                cell.states()
            ),
        ));
    }
    if let Some((i, &s)) = new.iter().enumerate().find(|(_, &s)| *g.ty(s) != want) {
        return Err(err(
            cell.name(),
            l,
            format!("step returned state {i} as {}, it must be {want}", g.ty(s)),
        ));
    }
    Ok(())
}

/// The steps `[B, H]` (time order) as the rows `[T·B, H]` the next layer reads.
fn steps_to_rows(g: &mut Graph, l: usize, steps: &[NodeId]) -> Result<NodeId> {
    let seq = g.concat(steps, 0)?;
    g.set_name(seq, format!("l{l}.h_all"));
    Ok(seq)
}

/// Rows `[T·B, H]` as a sequence output in `layout`.
fn rows_to_sequence(
    g: &mut Graph,
    rows: NodeId,
    t_len: usize,
    batch: usize,
    layout: SeqLayout,
) -> Result<NodeId> {
    let width = g.ty(rows).dims()[1];
    let s = g.reshape(rows, [t_len, batch, width])?;
    match layout {
        SeqLayout::TimeMajor => Ok(s),
        SeqLayout::BatchMajor => g.transpose(s, &[1, 0, 2]),
    }
}
