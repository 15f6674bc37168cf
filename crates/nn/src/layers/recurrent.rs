//! What the recurrent layers (LSTM, GRU) share: the unroll in either direction over an
//! [`Act`] with its mask, what a layer returns (`return_sequences`), and how layers stack
//! into one PyTorch module.
use trellis_ir::lstm::{Direction, SeqLayout};
use trellis_ir::{Graph, NodeId};

use super::dropout::{check_rate, keep_mask};
use super::{Act, BuildCtx, Layer, Layout, ParamSpec, Scope};
use crate::init::Init;
use crate::{NnError, Result};

/// A layer that walks a sequence step by step (wrapped by
/// [`Bidirectional`](super::Bidirectional)).
pub trait Recurrent: Layer {
    fn return_sequences(&self) -> bool;
    /// Unrolls over `x` (`[T, B, F]` / `[B, T, F]` as `x.layout`, masked by `x.mask`) in
    /// `direction`, from `initial_state` (the cell's state tensors `[B, H]`, `h` first: Keras's
    /// `initial_state`; zeros when `None`): every step's output in `x.layout` (time order) and
    /// the final states (`h` first; Keras's `return_state`), so an encoder's final states
    /// start a decoder. In training, the layer's dropout masks are registered in `ctx`.
    fn unroll(
        &self,
        g: &mut Graph,
        x: &Act,
        params: &[NodeId],
        direction: Direction,
        initial_state: Option<&[NodeId]>,
        ctx: &mut BuildCtx,
    ) -> Result<(NodeId, Vec<NodeId>)>;
}

/// The ir's name for a layout.
pub(crate) fn seq_layout(l: Layout) -> SeqLayout {
    match l {
        Layout::TimeMajor => SeqLayout::TimeMajor,
        Layout::BatchMajor => SeqLayout::BatchMajor,
    }
}

/// Keras's `dropout` and `recurrent_dropout` for one unroll of a recurrent layer of `units`
/// in training: the input multiplied by a keep-mask drawn once for the whole sequence (per
/// sample and feature, the same at every step, as Keras draws it), and the `[B, H]` mask for
/// `h` where `W_hh` reads it. Outside training, or at rates of 0, the input as it is and no
/// mask. A masked input comes back time-major: as a `[T, B·F]` grid every row reads the one
/// `[B·F]` mask (batch-major, the mask would repeat inside each sample's rows).
pub(crate) fn step_dropout(
    g: &mut Graph,
    x: &Act,
    units: usize,
    (dropout, recurrent_dropout): (f32, f32),
    ctx: &mut BuildCtx,
) -> Result<(Act, Option<NodeId>)> {
    check_rate("dropout", dropout)?;
    check_rate("recurrent_dropout", recurrent_dropout)?;
    if !ctx.training {
        return Ok((*x, None));
    }
    let mut x = *x;
    if dropout > 0.0 {
        x = x.time_major(g)?;
        let (t, b, f) = match g.ty(x.node).dims() {
            &[t, b, f] => (t, b, f),
            _ => unreachable!("checked to be a sequence"),
        };
        let keep = keep_mask(g, ctx, &[b * f], dropout);
        let grid = g.reshape(x.node, [t, b * f])?;
        let kept = g.mul(grid, keep)?;
        x.node = g.reshape(kept, [t, b, f])?;
    }
    let h_mask = if recurrent_dropout > 0.0 {
        let b = g.ty(x.node).dims()[match x.layout {
            Layout::TimeMajor => 1,
            Layout::BatchMajor => 0,
        }];
        Some(keep_mask(g, ctx, &[b, units], recurrent_dropout))
    } else {
        None
    };
    Ok((x, h_mask))
}

/// A layer's output sequence `seq`, unrolled over `ran` (the input after [`step_dropout`]),
/// in the layout of the input `given`, as [`Recurrent::unroll`] returns it.
pub(crate) fn sequence_back(g: &mut Graph, seq: NodeId, ran: &Act, given: &Act) -> Result<NodeId> {
    Ok(Act::new(seq, ran.layout).in_layout(g, given.layout)?.node)
}

/// Checks that `x` is a sequence `[*, *, F]` for layer `what`.
pub(crate) fn check_sequence(g: &Graph, what: &str, x: &Act) -> Result<()> {
    let ty = g.ty(x.node);
    if ty.rank() != 3 {
        return Err(NnError::Shape(format!(
            "{what}: input must be a sequence [batch, time, features], got {ty}"
        )));
    }
    Ok(())
}

/// What a recurrent layer passes on: every step (keeping the input's layout and mask) or the
/// last state `[B, H]` (batch-major, no mask: every sample has one).
pub(crate) fn output(x: &Act, seq: NodeId, last: NodeId, return_sequences: bool) -> Act {
    if return_sequences {
        Act {
            mask: x.mask,
            ..Act::new(seq, x.layout)
        }
    } else {
        Act::new(last, Layout::BatchMajor)
    }
}

/// The error of a layer built with `return_state` where one value is passed on (a
/// Sequential): `kind` returns `outputs` values.
pub(crate) fn return_state_error(kind: &str, outputs: &str) -> NnError {
    NnError::Model(format!(
        "{kind}: return_state gives {outputs} outputs, which a Sequential cannot pass on: \
         call the layer in a functional model (call_outputs: [output, states...])"
    ))
}

/// The values a recurrent layer's call returns: the output, then (with `return_state`) the
/// final states `[B, H]`, as Keras's `[output, h, c]`.
pub(crate) fn call_outputs(
    x: &Act,
    seq: NodeId,
    states: &[NodeId],
    rs: bool,
    return_state: bool,
) -> Vec<Act> {
    let mut out = vec![output(x, seq, states[0], rs)];
    if return_state {
        out.extend(states.iter().map(|&s| Act::new(s, Layout::BatchMajor)));
    }
    out
}

/// The initial state tensors a call passes after the sequence (Keras's `initial_state`:
/// `layer([x, h0, c0])`), each `[B, H]` batch-major.
pub(crate) fn given_states(xs: &[Act]) -> Option<Vec<NodeId>> {
    (xs.len() > 1).then(|| xs[1..].iter().map(|a| a.node).collect())
}

/// A given initial state: the `N` state tensors `names` of layer `kind`, or an error.
pub(crate) fn initial_states<const N: usize>(
    kind: &str,
    names: &str,
    s: Option<&[NodeId]>,
) -> Result<Option<[NodeId; N]>> {
    s.map(|s| {
        <[NodeId; N]>::try_from(s).map_err(|_| {
            NnError::Shape(format!(
                "{kind}: initial_state needs {N} tensors ({names}), got {}",
                s.len()
            ))
        })
    })
    .transpose()
}

/// A recurrent layer's parameters in PyTorch's names and layout, for `gates` gate blocks:
/// `{module}.weight_ih_l{k} [G·H, in]`, `{module}.weight_hh_l{k} [G·H, H]`, then one `[G·H]`
/// vector per name in `biases` (`bias_ih`, `bias_hh`). `G·H` saturates, so an absurd `units`
/// fails the model's size check with a clear error instead of wrapping.
pub(crate) fn weight_specs(
    scope: &Scope,
    in_features: usize,
    gates: usize,
    units: usize,
    (kernel, recurrent): (&Init, &Init),
    biases: &[(&str, &Init)],
) -> Vec<ParamSpec> {
    let (m, k) = (&scope.module, scope.index);
    let gh = units.saturating_mul(gates);
    let mut specs = vec![
        ParamSpec::new(
            format!("{m}.weight_ih_l{k}"),
            &[gh, in_features],
            kernel.clone(),
        ),
        ParamSpec::new(
            format!("{m}.weight_hh_l{k}"),
            &[gh, units],
            recurrent.clone(),
        ),
    ];
    for (name, init) in biases {
        specs.push(ParamSpec::new(
            format!("{m}.{name}_l{k}"),
            &[gh],
            (*init).clone(),
        ));
    }
    specs
}
