//! What the recurrent layers (LSTM, GRU, SimpleRNN) share: their configs' setters, the unroll
//! in either direction over an [`Act`] with its mask, dropout, what a layer returns
//! (`return_sequences`, `return_state`), and how layers stack into one PyTorch module.
use std::fmt::Debug;

use trellis_ir::lstm::{Direction, SeqLayout};
use trellis_ir::{Graph, NodeId};

use super::dropout::{check_rate, keep_mask};
use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::init::Init;
use crate::regularizers::Regularizer;
use crate::{NnError, Result};

/// The `with_*` setters every recurrent layer's config has (Keras's arguments of the same
/// names), and its [`RecurrentOptions`], for a config with the fields `units`,
/// `return_sequences`, `return_state`, `kernel_init`, `recurrent_init`, `bias_init`, `dropout`
/// and `recurrent_dropout`.
macro_rules! recurrent_config_setters {
    ($config:ty) => {
        impl $config {
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
            /// Keras's `dropout` (in [0, 1)): the fraction of the input's features dropped in
            /// training, per sample, the same ones at every step.
            pub fn with_dropout(mut self, rate: f32) -> Self {
                self.dropout = rate;
                self
            }
            /// Keras's `recurrent_dropout` (in [0, 1)): the fraction of `h`'s units dropped
            /// where the recurrent kernel reads them in training, per sample, the same ones at
            /// every step.
            pub fn with_recurrent_dropout(mut self, rate: f32) -> Self {
                self.recurrent_dropout = rate;
                self
            }
            /// Keras's `kernel_regularizer`: `r`'s penalty on `weight_ih` in the training loss.
            pub fn with_kernel_regularizer(mut self, r: $crate::regularizers::Regularizer) -> Self {
                self.regularizers.kernel_regularizer = Some(r);
                self
            }
            /// Keras's `recurrent_regularizer`: on `weight_hh`.
            pub fn with_recurrent_regularizer(
                mut self,
                r: $crate::regularizers::Regularizer,
            ) -> Self {
                self.regularizers.recurrent_regularizer = Some(r);
                self
            }
            /// Keras's `bias_regularizer`: on the biases.
            pub fn with_bias_regularizer(mut self, r: $crate::regularizers::Regularizer) -> Self {
                self.regularizers.bias_regularizer = Some(r);
                self
            }
        }

        impl RecurrentOptions for $config {
            fn units(&self) -> usize {
                self.units
            }
            fn rates(&self) -> (f32, f32) {
                (self.dropout, self.recurrent_dropout)
            }
            fn return_sequences(&self) -> bool {
                self.return_sequences
            }
            fn return_state(&self) -> bool {
                self.return_state
            }
        }
    };
}
pub(crate) use recurrent_config_setters;

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

/// What the shared code reads from a recurrent layer's config (see
/// [`recurrent_config_setters!`]).
pub(crate) trait RecurrentOptions {
    fn units(&self) -> usize;
    /// `(dropout, recurrent_dropout)`, as [`step_dropout`] takes them.
    fn rates(&self) -> (f32, f32);
    fn return_sequences(&self) -> bool;
    fn return_state(&self) -> bool;
}

/// What a cell layer (LSTM, GRU, SimpleRNN) says about itself; [`cell_layer!`] makes its
/// [`Recurrent`] and [`Layer`] impls from it, so the unroll, the call with Keras's
/// `initial_state` / `return_state`, dropout and stacking are written once.
pub(crate) trait CellLayer: Clone + Debug + PartialEq + Send + Sync + 'static {
    /// The layer's kind (`lstm`): its module name and the name errors give.
    fn kind_name(&self) -> &'static str;
    /// Its state tensors' names, `h` first (`["h", "c"]`).
    fn state_names(&self) -> Vec<String>;
    type Config: RecurrentOptions;
    fn options(&self) -> &Self::Config;
    /// One unroll of the layer over `x` (already through [`step_dropout`]) as `u` says: the
    /// output (every step when `u.return_sequences`, else the last `h`) and the final states,
    /// `h` first.
    fn run(
        &self,
        g: &mut Graph,
        x: &Act,
        params: &[NodeId],
        u: &Unroll,
    ) -> Result<(NodeId, Vec<NodeId>)>;
    fn param_specs(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec>;
    /// Whether this layer continues `prev`'s PyTorch module (as `num_layers` stacks them).
    fn continues(&self, prev: &Self) -> bool;
    /// The layer as data for saved models (`None` for a cell defined outside trellis).
    fn layer_config(&self) -> Option<LayerConfig>;
}

/// State names as [`CellLayer::state_names`] gives them.
pub(crate) fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

/// How one unroll of a cell layer runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Unroll<'a> {
    pub direction: Direction,
    /// Every step's output, not only the last `h`.
    pub return_sequences: bool,
    /// The state tensors to start from, `h` first (zeros when `None`).
    pub initial_state: Option<&'a [NodeId]>,
    /// Recurrent dropout's `[B, H]` keep-mask on `h` where `W_hh` reads it.
    pub h_mask: Option<NodeId>,
}

/// A given initial state (Keras's `initial_state`): one tensor per state of `l`, or an error.
fn initial_state<'s, L: CellLayer>(l: &L, s: Option<&'s [NodeId]>) -> Result<Option<&'s [NodeId]>> {
    let names = l.state_names();
    match s {
        Some(s) if s.len() != names.len() => Err(NnError::Shape(format!(
            "{}: initial_state needs {} tensors ({}), got {}",
            l.kind_name(),
            names.len(),
            names.join(", "),
            s.len()
        ))),
        s => Ok(s),
    }
}

/// [`Recurrent::unroll`] of a cell layer: dropout, the unroll from a checked initial state,
/// every step back in the input's layout.
pub(crate) fn unroll_cell<L: CellLayer>(
    l: &L,
    g: &mut Graph,
    x: &Act,
    params: &[NodeId],
    direction: Direction,
    init: Option<&[NodeId]>,
    ctx: &mut BuildCtx,
) -> Result<(NodeId, Vec<NodeId>)> {
    let init = initial_state(l, init)?;
    let o = l.options();
    let (xd, h_mask) = step_dropout(g, x, o.units(), o.rates(), ctx)?;
    let u = Unroll {
        direction,
        return_sequences: true,
        initial_state: init,
        h_mask,
    };
    let (out, states) = l.run(g, &xd, params, &u)?;
    Ok((sequence_back(g, out, &xd, x)?, states))
}

/// [`Layer::build_many`] of a cell layer: `[x]` or `[x, states...]` (Keras's
/// `initial_state`); the output, then with `return_state` the final states `[B, H]`, as
/// Keras's `[output, h, c]`.
pub(crate) fn call_cell<L: CellLayer>(
    l: &L,
    g: &mut Graph,
    xs: &[Act],
    params: &[NodeId],
    ctx: &mut BuildCtx,
) -> Result<Vec<Act>> {
    let x = &xs[0];
    check_sequence(g, l.kind_name(), x)?;
    let given: Option<Vec<NodeId>> =
        (xs.len() > 1).then(|| xs[1..].iter().map(|a| a.node).collect());
    let init = initial_state(l, given.as_deref())?;
    let o = l.options();
    let rs = o.return_sequences();
    let (x, h_mask) = step_dropout(g, x, o.units(), o.rates(), ctx)?;
    let u = Unroll {
        direction: Direction::Forward,
        return_sequences: rs,
        initial_state: init,
        h_mask,
    };
    let (seq, states) = l.run(g, &x, params, &u)?;
    let mut out = vec![output(&x, seq, states[0], rs)];
    if o.return_state() {
        out.extend(states.iter().map(|&s| Act::new(s, Layout::BatchMajor)));
    }
    Ok(out)
}

/// [`Layer::build`] of a cell layer: one value passed on, so `return_state` is an error.
pub(crate) fn build_cell<L: CellLayer>(
    l: &L,
    g: &mut Graph,
    x: Act,
    params: &[NodeId],
    ctx: &mut BuildCtx,
) -> Result<Act> {
    if l.options().return_state() {
        let outputs = match l.state_names().len() {
            1 => "two",
            2 => "three",
            _ => "several",
        };
        return Err(NnError::Model(format!(
            "{}: return_state gives {outputs} outputs, which a Sequential cannot pass on: call \
             the layer in a functional model (call_outputs: [output, states...])",
            l.kind_name(),
        )));
    }
    Ok(call_cell(l, g, &[x], params, ctx)?.remove(0))
}

/// The [`Recurrent`] and [`Layer`] impls of a [`CellLayer`] type, and its config's
/// conversion into a layer (`config.init()`); `impl[generics] Type` for a generic layer
/// without a config of its own.
macro_rules! cell_layer {
    ($ty:ident, $config:ident) => {
        cell_layer!(impl[] $ty);

        impl From<$config> for Box<dyn Layer> {
            fn from(c: $config) -> Self {
                Box::new(c.init())
            }
        }
    };
    (impl[$($gen:tt)*] $ty:ty) => {
        impl<$($gen)*> Recurrent for $ty {
            fn return_sequences(&self) -> bool {
                self.options().return_sequences()
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
                unroll_cell(self, g, x, params, direction, initial_state, ctx)
            }
        }

        impl<$($gen)*> Layer for $ty {
            fn kind(&self) -> &'static str {
                self.kind_name()
            }
            fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
                self.param_specs(scope, in_features)
            }
            fn build(
                &self,
                g: &mut Graph,
                x: Act,
                params: &[NodeId],
                ctx: &mut BuildCtx,
            ) -> Result<Act> {
                build_cell(self, g, x, params, ctx)
            }
            /// `[x]` or `[x, states...]` (Keras's `initial_state`).
            fn num_inputs(&self) -> (usize, usize) {
                (1, 1 + self.state_names().len())
            }
            /// `output`, then the states with `return_state`.
            fn num_outputs(&self) -> usize {
                if self.options().return_state() {
                    1 + self.state_names().len()
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
                call_cell(self, g, xs, params, ctx)
            }
            fn stacks_on(&self, prev: &dyn Layer) -> bool {
                prev.as_any()
                    .downcast_ref::<Self>()
                    .is_some_and(|p| self.continues(p))
            }
            fn config(&self) -> Option<LayerConfig> {
                self.layer_config()
            }
            fn as_any(&self) -> &dyn Any {
                self
            }
        }
    };
}
pub(crate) use cell_layer;

/// A recurrent layer's parameters in PyTorch's names and layout, for `gates` gate blocks:
/// `{module}.weight_ih_l{k} [G·H, in]`, `{module}.weight_hh_l{k} [G·H, H]`, then one `[G·H]`
/// vector per name in `biases` (`bias_ih`, `bias_hh`), each with its penalty from `regs`
/// (kernel, recurrent, bias). `G·H` saturates, so an absurd `units` fails the model's size
/// check with a clear error instead of wrapping.
pub(crate) fn weight_specs(
    scope: &Scope,
    in_features: usize,
    gates: usize,
    units: usize,
    (kernel, recurrent): (&Init, &Init),
    biases: &[(&str, &Init)],
    [kernel_reg, recurrent_reg, bias_reg]: [Option<Regularizer>; 3],
) -> Vec<ParamSpec> {
    let (m, k) = (&scope.module, scope.index);
    let gh = units.saturating_mul(gates);
    let mut specs = vec![
        ParamSpec::new(
            format!("{m}.weight_ih_l{k}"),
            &[gh, in_features],
            kernel.clone(),
        )
        .with_regularizer(kernel_reg),
        ParamSpec::new(
            format!("{m}.weight_hh_l{k}"),
            &[gh, units],
            recurrent.clone(),
        )
        .with_regularizer(recurrent_reg),
    ];
    for (name, init) in biases {
        specs.push(
            ParamSpec::new(format!("{m}.{name}_l{k}"), &[gh], (*init).clone())
                .with_regularizer(bias_reg),
        );
    }
    specs
}
