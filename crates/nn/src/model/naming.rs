//! Declaring the parameters: each layer's names (PyTorch state-dict names with Keras's
//! numbering of repeated layers; stacked recurrent layers share a module), shapes and initial
//! values, and the optimiser state that goes with them.
//!
//! Names follow the PyTorch state dict of the equivalent model, with Keras's numbering of
//! repeated layers: the first module of a kind is `embedding`, `lstm`, `dense`; later modules
//! of that kind are `dense_1`, `dense_2`, ... An LSTM called once, directly on the output of
//! the layer before it (an LSTM with `return_sequences`, itself called once), stacks onto it
//! as the next layer of the same module (as `torch.nn.LSTM(num_layers=k)`):
//! `lstm.weight_ih_l0`, then `lstm.weight_ih_l1`. Any layer in between (a dropout, say)
//! starts a new module (`lstm_1.weight_ih_l0`).
//!
//! Shapes come from the graph: building runs the forward pass once at batch 1, and each layer
//! declares its parameters at its first call from the width of what it is called on. A shared
//! layer's later calls must see the same width.
use std::collections::HashMap;

use trellis_ir::{Graph, TensorType};

use super::topology::Ref;
use super::Model;
use crate::data::SplitMix64;
use crate::layers::{Act, ParamSpec, Scope};
use crate::{NnError, Result};

/// The sequence lengths ids are built at while their real length is unknown (declaring the
/// parameters, the summary), shortest first: every window (a convolution's kernel, a
/// pooling) on the way must fit in it. A parameter that depends on it (a Dense after a
/// Flatten) is refused.
const PLACEHOLDER_STEPS: [usize; 3] = [64, 1024, 16384];

impl Model {
    /// Declares and initialises the parameters (done by `compile` when the input shapes are
    /// known or the model takes token ids, else by the first `fit`). Idempotent.
    pub fn build(&mut self) -> Result<()> {
        if self.topo.layers.is_empty() {
            return Err(NnError::Model("the model has no layers".into()));
        }
        if !self.layer_params.is_empty() {
            return Ok(());
        }
        let (declared, steps) = self.at_placeholder_lengths(|rows| self.declare(rows))?;
        if self.builds_at_a_placeholder() {
            // The parameters must not depend on the length the model was built at (a Flatten
            // before a Dense would): the same at twice that length.
            let longer = self.declare(&self.rows_at(2 * steps)?)?;
            let differs = declared.iter().zip(&longer).position(|(a, b)| a != b);
            if let Some(l) = differs {
                return Err(NnError::Model(format!(
                    "layer {l} ({}): its parameters depend on the input's length, which is \
                     unknown: give it with with_input_shape",
                    self.topo.layers[l].kind()
                )));
            }
        }
        let mut specs = Vec::new();
        let mut ranges = Vec::new();
        for p in declared {
            let p = p.unwrap_or_default();
            ranges.push(specs.len()..specs.len() + p.len());
            specs.extend(p);
        }
        for s in &specs {
            s.regularizer.map_or(Ok(()), |r| r.check(&s.name))?;
        }
        let mut rng = SplitMix64::new(self.seed);
        self.weights.replace(
            specs
                .iter()
                .map(|s| s.init.sample(&s.shape, &mut rng))
                .collect(),
        );
        self.specs = specs;
        self.layer_params = ranges;
        self.init_opt_state();
        Ok(())
    }

    /// Each layer's parameters, declared by building the forward pass once at batch 1 on
    /// inputs of per-sample shapes `rows`.
    fn declare(&self, rows: &[Vec<usize>]) -> Result<Vec<Option<Vec<ParamSpec>>>> {
        let scopes = self.scopes();
        let mut declared: Vec<Option<Vec<ParamSpec>>> = vec![None; self.topo.layers.len()];
        let states = self
            .compiled
            .as_ref()
            .map_or(0, |c| c.optimizer.state_names().len());
        let mut g = Graph::new();
        let xs = self.input_nodes(&mut g, 1, rows)?;
        self.walk(&mut g, &xs, false, &mut |g, l, args| {
            let layer = &self.topo.layers[l];
            let p = layer.params_for(&scopes[l], &widths(g, args));
            if declared[l].is_none() {
                if let Some(z) = p.iter().find(|p| p.shape.contains(&0)) {
                    return Err(NnError::Model(format!(
                        "layer {l} ({}): parameter {} has shape {:?}: sizes must be positive",
                        layer.kind(),
                        z.name,
                        z.shape
                    )));
                }
                let all = declared.iter().flatten().flatten();
                if let Some(dup) = p.iter().find(|q| all.clone().any(|s| s.name == q.name)) {
                    return Err(NnError::Model(format!(
                        "layer {l} ({}): a parameter named {} exists already: give the layers \
                         different names",
                        layer.kind(),
                        dup.name
                    )));
                }
                // Before the layer's nodes are built: an absurd size is this error, not a
                // graph one.
                let mut with: Vec<ParamSpec> = all.cloned().collect();
                with.extend(p.iter().cloned());
                crate::memory::check_params(&with, states, self.memory_limit)?;
                declared[l] = Some(p.clone());
            }
            let have = declared[l].as_deref().unwrap_or_default();
            check_params(l, layer.kind(), &p, have)?;
            p.iter()
                .map(|s| Ok(g.try_param(&s.name, TensorType::f32(s.shape.as_slice()))?))
                .collect()
        })?;
        Ok(declared)
    }

    /// Each input's per-sample shape for building: as given, or `steps` for ids of a length
    /// not known yet.
    fn rows_at(&self, steps: usize) -> Result<Vec<Vec<usize>>> {
        self.topo
            .inputs
            .iter()
            .enumerate()
            .map(|(i, s)| match &s.shape {
                Some(s) if !s.is_empty() || self.input_takes_ids(i) => Ok(s.clone()),
                None if self.input_takes_ids(i) => Ok(vec![steps]),
                _ => Err(NnError::Model(
                    "the input shape is unknown: call with_input_shape (or fit) first".into(),
                )),
            })
            .collect()
    }

    /// Whether building uses a placeholder length (ids of a length not known yet).
    pub(super) fn builds_at_a_placeholder(&self) -> bool {
        self.topo.inputs.iter().any(|s| s.shape.is_none())
    }

    /// Runs `f` on each input's per-sample shape for building ([`Model::rows_at`]), at each of
    /// [`PLACEHOLDER_STEPS`] in turn while a window (a kernel, a pooling) does not fit the
    /// placeholder: a deep stack of windows shrinks a short one below a kernel. Returns `f`'s
    /// result and the length used.
    pub(super) fn at_placeholder_lengths<T>(
        &self,
        mut f: impl FnMut(&[Vec<usize>]) -> Result<T>,
    ) -> Result<(T, usize)> {
        let placeholder = self.builds_at_a_placeholder();
        let mut steps = PLACEHOLDER_STEPS.iter().copied().peekable();
        while let Some(n) = steps.next() {
            match f(&self.rows_at(n)?) {
                Ok(v) => return Ok((v, n)),
                Err(e) if placeholder && window_too_long(&e) && steps.peek().is_some() => {}
                Err(e) if placeholder && window_too_long(&e) => {
                    return Err(NnError::Model(format!(
                        "{e} (the input's length is unknown, so the model was built at \
                         placeholder lengths up to {n} steps: give it with with_input_shape)"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("PLACEHOLDER_STEPS is not empty")
    }

    /// Each layer's module name and index in its module (see the module doc).
    pub(super) fn scopes(&self) -> Vec<Scope> {
        let t = &self.topo;
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        let mut scopes: Vec<Scope> = Vec::with_capacity(t.layers.len());
        for (i, l) in t.layers.iter().enumerate() {
            let stacked = i > 0
                && l.name() == t.layers[i - 1].name()
                && l.stacks_on(&*t.layers[i - 1])
                && {
                    let (mine, prev) = (single_call(t, i), single_call(t, i - 1));
                    matches!((mine, prev), (Some(m), Some(p)) if t.calls[m].args == [Ref::Call(p, 0)])
                };
            let s = match (scopes.last(), stacked) {
                (Some(prev), true) => Scope {
                    module: prev.module.clone(),
                    index: prev.index + 1,
                },
                _ if l.name().is_some() => Scope {
                    module: l.name().unwrap_or_default().to_string(),
                    index: 0,
                },
                _ => {
                    let c = counts.entry(l.kind()).or_default();
                    let module = super::topology::numbered(l.kind(), *c);
                    *c += 1;
                    Scope { module, index: 0 }
                }
            };
            scopes.push(s);
        }
        scopes
    }

    /// Starting optimiser state ([`Optimizer::state_init`](crate::Optimizer::state_init)) for
    /// every parameter that has none yet (compiled and built).
    pub(super) fn init_opt_state(&mut self) {
        let Some(c) = &self.compiled else { return };
        for s in self.specs.iter().filter(|s| s.trainable) {
            for st in c.optimizer.state_names() {
                let n: usize = s.shape.iter().product();
                let v = c.optimizer.state_init(st);
                self.opt_state
                    .entry(format!("optimizer.{st}.{}", s.name))
                    .or_insert_with(|| vec![v; n]);
            }
        }
    }
}

/// The one call of layer `l`, when it is called once.
fn single_call(t: &super::Topology, l: usize) -> Option<usize> {
    let mut calls = t.calls_of(l);
    match (calls.next(), calls.next()) {
        (Some((c, _)), None) => Some(c),
        _ => None,
    }
}

/// The last-axis width of each of a call's inputs (1 for a scalar): what a layer's parameters
/// follow.
pub(super) fn widths(g: &Graph, args: &[Act]) -> Vec<usize> {
    args.iter()
        .map(|a| g.ty(a.node).dims().last().copied().unwrap_or(1))
        .collect()
}

/// That a call of layer `l` needs the parameters `have` it was built with: a shared layer
/// called on inputs of another width, or data of another shape than the model was built for,
/// is an error naming the layer and both shapes.
pub(super) fn check_params(
    l: usize,
    kind: &str,
    want: &[ParamSpec],
    have: &[ParamSpec],
) -> Result<()> {
    let shapes = |p: &[ParamSpec]| -> Vec<(String, Vec<usize>)> {
        p.iter()
            .map(|s| (s.name.clone(), s.shape.clone()))
            .collect()
    };
    if shapes(want) != shapes(have) {
        return Err(NnError::Shape(format!(
            "layer {l} ({kind}): called on an input that needs parameters {:?}, but it was built \
             with {:?} (a shared layer must be called on inputs of one width; data must have \
             the shape the model was built for)",
            shapes(want),
            shapes(have)
        )));
    }
    Ok(())
}

/// Whether `e` is a window (a kernel, a pooling) longer than its sequence: the error a longer
/// placeholder length would not give.
fn window_too_long(e: &NnError) -> bool {
    fn ir(e: &trellis_ir::IrError) -> bool {
        match e {
            trellis_ir::IrError::WindowTooLong { .. } => true,
            trellis_ir::IrError::AtNode { source, .. } => ir(source),
            _ => false,
        }
    }
    matches!(e, NnError::Ir(e) if ir(e))
}
