//! The Keras-style model: [`Sequential`] composes layers; `compile` picks the optimiser, loss
//! and metrics; `fit`, `evaluate` and `predict` run compiled plans.
//!
//! ## One plan per step, partial batches included
//!
//! A training step (forward, backward, optimiser update) is one graph compiled once into a
//! [`trellis_jit::Plan`] at the full batch size `B`. The loss is `sum(per_sample_loss * w)`
//! with a per-sample weight input `w [B, 1]`: `1/n` on the `n` real rows of a batch, 0 on the
//! padding rows of the last partial batch, so that batch trains with exactly its own mean-loss
//! gradient. `evaluate` and `predict` use a forward-only plan the same way.
//!
//! ## Parameter names
//!
//! Names follow the PyTorch state dict of the equivalent model, with Keras's numbering of
//! repeated layers: the first module of a kind is `embedding`, `lstm`, `dense`; later modules
//! of that kind are `dense_1`, `dense_2`, ... An LSTM that directly follows an LSTM with
//! `return_sequences` stacks onto it as the next layer of the same module (as
//! `torch.nn.LSTM(num_layers=k)`): `lstm.weight_ih_l0`, then `lstm.weight_ih_l1`. Any layer in
//! between (a dropout, say) starts a new module (`lstm_1.weight_ih_l0`).
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use trellis_ir::{Graph, NodeId, TensorType};
use trellis_jit::{CompileOptions, Plan};

use crate::checkpoint::LoadOptions;
use crate::data::{batch_ranges, SplitMix64};
use crate::layers::{Act, BuildCtx, Embedding, Layer, Layout, MaskInput, ParamSpec, Scope};
use crate::losses::{weighted_sum, Loss};
use crate::memory::checked_numel;
use crate::metrics::{accuracy_counts, Metric};
use crate::optim::{Optimizer, OptimizerGraph};
use crate::{NnError, Result};

mod fit;
mod saved;
mod summary;

pub use saved::FORMAT_VERSION;
pub use summary::{Summary, SummaryRow};

/// Model inputs: token ids (for a model that starts with an [`Embedding`]) or floats, row-major
/// `[n, per-sample shape]`.
#[derive(Clone, Copy, Debug)]
pub enum Inputs<'a> {
    Ids(&'a [i64]),
    Floats(&'a [f32]),
}

impl Inputs<'_> {
    pub fn len(&self) -> usize {
        match self {
            Inputs::Ids(v) => v.len(),
            Inputs::Floats(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn slice(&self, r: Range<usize>) -> Inputs<'_> {
        match self {
            Inputs::Ids(v) => Inputs::Ids(&v[r]),
            Inputs::Floats(v) => Inputs::Floats(&v[r]),
        }
    }
}

impl<'a> From<&'a [i64]> for Inputs<'a> {
    fn from(v: &'a [i64]) -> Self {
        Inputs::Ids(v)
    }
}
impl<'a> From<&'a Vec<i64>> for Inputs<'a> {
    fn from(v: &'a Vec<i64>) -> Self {
        Inputs::Ids(v)
    }
}
impl<'a> From<&'a [f32]> for Inputs<'a> {
    fn from(v: &'a [f32]) -> Self {
        Inputs::Floats(v)
    }
}
impl<'a> From<&'a Vec<f32>> for Inputs<'a> {
    fn from(v: &'a Vec<f32>) -> Self {
        Inputs::Floats(v)
    }
}

/// Options of [`Sequential::fit`] (Keras's arguments and defaults).
#[derive(Clone, Debug)]
pub struct FitOptions<'a> {
    pub epochs: usize,
    pub batch_size: usize,
    /// Fraction of the samples, taken from the end before shuffling (as Keras), held out for
    /// validation. Ignored when `validation_data` is given.
    pub validation_split: f32,
    pub validation_data: Option<(Inputs<'a>, &'a [f32])>,
    /// Shuffle the training samples every epoch (with `seed + epoch`).
    pub shuffle: bool,
    /// Seeds the shuffling and the dropout masks.
    pub seed: u64,
    /// A progress bar per epoch (when stderr is a terminal) and a summary line per epoch.
    pub verbose: bool,
    /// Save a checkpoint here after every epoch.
    pub checkpoint: Option<PathBuf>,
}

impl Default for FitOptions<'_> {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            batch_size: 32,
            validation_split: 0.0,
            validation_data: None,
            shuffle: true,
            seed: 0,
            verbose: true,
            checkpoint: None,
        }
    }
}

impl<'a> FitOptions<'a> {
    pub fn new(epochs: usize, batch_size: usize) -> Self {
        FitOptions {
            epochs,
            batch_size,
            ..Self::default()
        }
    }
    pub fn with_validation_split(mut self, f: f32) -> Self {
        self.validation_split = f;
        self
    }
    pub fn with_validation_data(mut self, x: impl Into<Inputs<'a>>, y: &'a [f32]) -> Self {
        self.validation_data = Some((x.into(), y));
        self
    }
    pub fn with_shuffle(mut self, yes: bool) -> Self {
        self.shuffle = yes;
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn quiet(mut self) -> Self {
        self.verbose = false;
        self
    }
    pub fn with_checkpoint(mut self, path: impl Into<PathBuf>) -> Self {
        self.checkpoint = Some(path.into());
        self
    }
}

/// One epoch of [`History`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochLog {
    /// Epoch number over the model's life (continues after a resume), from 1.
    pub epoch: usize,
    pub loss: f64,
    pub accuracy: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_sec: f64,
    /// Optimiser steps this epoch.
    pub steps: usize,
}

/// What [`Sequential::fit`] returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub epochs: Vec<EpochLog>,
}

impl History {
    pub fn loss(&self) -> Vec<f64> {
        self.epochs.iter().map(|e| e.loss).collect()
    }
    pub fn accuracy(&self) -> Vec<f64> {
        self.epochs.iter().filter_map(|e| e.accuracy).collect()
    }
    pub fn val_loss(&self) -> Vec<f64> {
        self.epochs.iter().filter_map(|e| e.val_loss).collect()
    }
    pub fn val_accuracy(&self) -> Vec<f64> {
        self.epochs.iter().filter_map(|e| e.val_accuracy).collect()
    }
    pub fn last(&self) -> Option<&EpochLog> {
        self.epochs.last()
    }
}

/// What [`Sequential::evaluate`] returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: Option<f64>,
}

/// A step graph (training or inference) with its interface nodes. Outputs: `[loss, pred]`.
#[derive(Clone, Debug)]
pub struct StepGraph {
    pub graph: Graph,
    /// `[B, per-sample shape]`, i64 ids or f32.
    pub x: NodeId,
    /// Targets `[B, K]` (the sparse loss: one-hot).
    pub y: NodeId,
    /// Per-sample weights `[B, 1]`.
    pub w: NodeId,
    /// Parameters, in [`Sequential::param_specs`] order.
    pub params: Vec<NodeId>,
    /// Dropout masks to feed at every training step.
    pub masks: Vec<MaskInput>,
    /// Weighted loss, a scalar.
    pub loss: NodeId,
    /// The model output `[B, K]`.
    pub pred: NodeId,
    pub batch: usize,
    pub out_width: usize,
    /// Training graphs: the optimiser's learning-rate input, states and updates.
    pub optimizer: Option<OptimizerGraph>,
}

struct Runner {
    key: (usize, Vec<usize>),
    plan: Plan,
    sg: StepGraph,
}

#[derive(Clone, Debug)]
struct Compiled {
    optimizer: Optimizer,
    loss: Loss,
    metrics: Vec<Metric>,
}

/// A stack of layers, Keras's `Sequential` (also exported as [`Model`]).
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
    input_shape: Option<Vec<usize>>,
    seed: u64,
    specs: Vec<ParamSpec>,
    layer_params: Vec<Range<usize>>,
    weights: Vec<Vec<f32>>,
    compiled: Option<Compiled>,
    opt_state: HashMap<String, Vec<f32>>,
    /// The optimiser kind `opt_state` and `step` belong to.
    state_owner: Option<String>,
    step: u64,
    epochs_done: usize,
    eval_batch: usize,
    /// Host memory the parameters may take (`None`: what the system has available).
    memory_limit: Option<u64>,
    train: Option<Runner>,
    infer: Option<Runner>,
    /// How raw texts become its input rows (kept by saved models).
    text: Option<crate::data::TextEncoder>,
}

/// Keras's name for a compiled model.
pub type Model = Sequential;

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequential")
            .field("layers", &self.layers)
            .field("params", &self.specs)
            .field("compiled", &self.compiled)
            .field("step", &self.step)
            .finish()
    }
}

impl Sequential {
    pub fn new() -> Self {
        Sequential {
            eval_batch: 32,
            ..Default::default()
        }
    }

    /// Appends a layer.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Into<Box<dyn Layer>>) -> Self {
        self.push(layer);
        self
    }
    pub fn push(&mut self, layer: impl Into<Box<dyn Layer>>) {
        self.layers.push(layer.into());
        self.specs.clear();
        self.weights.clear();
        self.train = None;
        self.infer = None;
    }
    /// Seeds the weight initialisers (default 0).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Caps the host memory that building the model may take for its parameters (weights,
    /// optimiser state, initialiser workspace), in bytes; by default the memory the system has
    /// available. A model over it is an error naming its largest parameter.
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }
    /// The shape of one sample (without the batch axis): `[T]` for token ids, `[F]` or `[T, F]`
    /// for floats. Inferred from the data by `fit` when not given.
    pub fn with_input_shape(mut self, shape: &[usize]) -> Self {
        self.input_shape = Some(shape.to_vec());
        self
    }

    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }
    /// Parameter declarations (names, shapes, initialisers), once built.
    pub fn param_specs(&self) -> &[ParamSpec] {
        &self.specs
    }
    /// Which of [`Sequential::param_specs`] belong to each layer, once built.
    pub fn layer_param_ranges(&self) -> &[Range<usize>] {
        &self.layer_params
    }
    /// Current parameter values, in [`Sequential::param_specs`] order.
    pub fn weights(&self) -> &[Vec<f32>] {
        &self.weights
    }
    /// A parameter's values by name.
    pub fn weight(&self, name: &str) -> Option<&[f32]> {
        let i = self.specs.iter().position(|s| s.name == name)?;
        Some(&self.weights[i])
    }
    /// Replaces a parameter's values (same length).
    pub fn set_weight(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let i = self
            .specs
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| NnError::Model(format!("no parameter named {name}")))?;
        if values.len() != self.weights[i].len() {
            return Err(NnError::Shape(format!(
                "{name}: expected {} values ({:?}), got {}",
                self.weights[i].len(),
                self.specs[i].shape,
                values.len()
            )));
        }
        self.weights[i].copy_from_slice(values);
        Ok(())
    }
    /// Optimiser updates done so far.
    pub fn step(&self) -> u64 {
        self.step
    }
    /// Epochs trained so far (continues after a resume).
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }
    /// The per-sample input shape, when set or inferred by `fit`.
    pub fn input_shape(&self) -> Option<&[usize]> {
        self.input_shape.as_deref()
    }
    pub(crate) fn set_input_shape_if_unknown(&mut self, shape: Vec<usize>) {
        if self.input_shape.is_none() {
            self.input_shape = Some(shape);
        }
    }
    pub(crate) fn optimizer_state(&self) -> &HashMap<String, Vec<f32>> {
        &self.opt_state
    }
    pub(crate) fn optimizer_name(&self) -> Option<&'static str> {
        self.compiled.as_ref().map(|c| c.optimizer.name())
    }
    /// Restored weights, optimiser `(kind, state, step)` when usable, and epochs done.
    pub(crate) fn set_restored(
        &mut self,
        weights: Vec<Vec<f32>>,
        optimizer: Option<(String, HashMap<String, Vec<f32>>, u64)>,
        epochs: usize,
    ) {
        self.weights = weights;
        if let Some((kind, state, step)) = optimizer {
            self.opt_state = state;
            self.step = step;
            self.state_owner = Some(kind);
            self.init_opt_state();
        }
        self.epochs_done = epochs;
    }
    /// Batch size of `evaluate` and `predict` (default 32; `fit` sets it to its batch size).
    pub fn set_eval_batch_size(&mut self, b: usize) {
        self.eval_batch = b;
    }

    /// The first layer's embedding, when the model takes token ids.
    fn embedding(&self) -> Option<&Embedding> {
        self.layers
            .first()
            .and_then(|l| l.as_any().downcast_ref::<Embedding>())
    }
    fn takes_ids(&self) -> bool {
        self.layers.first().is_some_and(|l| l.takes_ids())
    }

    /// Declares and initialises the parameters (done by `compile` when the first layer is an
    /// embedding or the input shape is set, else by the first `fit`). Idempotent.
    pub fn build(&mut self) -> Result<()> {
        if !self.specs.is_empty() || self.layers.is_empty() {
            if self.layers.is_empty() {
                return Err(NnError::Model("the model has no layers".into()));
            }
            return Ok(());
        }
        let mut features = if self.takes_ids() {
            0
        } else {
            match &self.input_shape {
                Some(s) if !s.is_empty() => *s.last().expect("non-empty"),
                _ => {
                    return Err(NnError::Model(
                        "the input shape is unknown: call with_input_shape (or fit) first".into(),
                    ))
                }
            }
        };
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        let mut scope: Option<Scope> = None;
        let mut specs = Vec::new();
        let mut ranges = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            if i > 0 && l.takes_ids() {
                return Err(NnError::Model(format!(
                    "layer {i} ({}) takes token ids: only the first layer can",
                    l.kind()
                )));
            }
            // A layer stacks onto the one before it only under the same name (or none).
            let stacked =
                i > 0 && l.name() == self.layers[i - 1].name() && l.stacks_on(&*self.layers[i - 1]);
            let s = match (&scope, stacked) {
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
                    let module = if *c == 0 {
                        l.kind().to_string()
                    } else {
                        format!("{}_{c}", l.kind())
                    };
                    *c += 1;
                    Scope { module, index: 0 }
                }
            };
            let p = l.params(&s, features);
            if let Some(z) = p.iter().find(|p| p.shape.contains(&0)) {
                return Err(NnError::Model(format!(
                    "layer {i} ({}): parameter {} has shape {:?}: sizes must be positive",
                    l.kind(),
                    z.name,
                    z.shape
                )));
            }
            if let Some(dup) = p
                .iter()
                .find(|q| specs.iter().any(|s: &ParamSpec| s.name == q.name))
            {
                return Err(NnError::Model(format!(
                    "layer {i} ({}): a parameter named {} exists already: give the layers \
                     different names",
                    l.kind(),
                    dup.name
                )));
            }
            ranges.push(specs.len()..specs.len() + p.len());
            specs.extend(p);
            features = l.out_features(features);
            scope = Some(s);
        }
        let states = self
            .compiled
            .as_ref()
            .map_or(0, |c| c.optimizer.state_names().len());
        crate::memory::check_params(&specs, states, self.memory_limit)?;
        let mut rng = SplitMix64::new(self.seed);
        self.weights = specs
            .iter()
            .map(|s| s.init.sample(&s.shape, &mut rng))
            .collect();
        self.specs = specs;
        self.layer_params = ranges;
        self.init_opt_state();
        Ok(())
    }

    /// Zero optimiser state for every parameter that has none yet (compiled and built).
    fn init_opt_state(&mut self) {
        let Some(c) = &self.compiled else { return };
        for s in &self.specs {
            for st in c.optimizer.state_names() {
                let n: usize = s.shape.iter().product();
                self.opt_state
                    .entry(format!("optimizer.{st}.{}", s.name))
                    .or_insert_with(|| vec![0.0; n]);
            }
        }
    }

    /// Sets the optimiser, loss and metrics (Keras's `compile`). Optimiser state (and the step
    /// count) restored by [`Sequential::load`], before or after, is kept when the optimiser is
    /// of the same kind; a different kind starts from zero state at step 0.
    pub fn compile(
        &mut self,
        optimizer: impl Into<Optimizer>,
        loss: Loss,
        metrics: &[Metric],
    ) -> Result<()> {
        let optimizer = optimizer.into();
        optimizer.validate()?;
        if self
            .state_owner
            .as_deref()
            .is_some_and(|o| o != optimizer.name())
        {
            self.opt_state.clear();
            self.step = 0;
        }
        self.state_owner = Some(optimizer.name().to_string());
        self.compiled = Some(Compiled {
            optimizer,
            loss,
            metrics: metrics.to_vec(),
        });
        self.train = None;
        self.infer = None;
        if self.takes_ids() || self.input_shape.is_some() {
            self.build()?;
        }
        self.init_opt_state();
        Ok(())
    }

    fn compiled(&self) -> Result<&Compiled> {
        self.compiled
            .as_ref()
            .ok_or_else(|| NnError::Model("call compile(optimizer, loss, metrics) first".into()))
    }

    /// Builds the step graph for `batch` samples of `row` shape: forward, loss, and (when
    /// `training`) backward and the optimiser update. Public so that the same step can be run
    /// through the reference interpreter.
    pub fn step_graph(&mut self, batch: usize, row: &[usize], training: bool) -> Result<StepGraph> {
        self.build()?;
        let c = self.compiled()?.clone();
        let mut g = Graph::new();
        let mut xdims = vec![batch];
        xdims.extend_from_slice(row);
        let x = if self.takes_ids() {
            g.input("x", TensorType::i64(xdims.as_slice()))
        } else {
            g.input("x", TensorType::f32(xdims.as_slice()))
        };
        let params: Vec<NodeId> = self
            .specs
            .iter()
            .map(|s| g.param(&s.name, TensorType::f32(s.shape.as_slice())))
            .collect();
        let mut ctx = BuildCtx {
            training,
            masks: Vec::new(),
        };
        let mut act = Act::new(x, Layout::BatchMajor);
        for (l, r) in self.layers.iter().zip(&self.layer_params) {
            act = l.build(&mut g, act, &params[r.clone()], &mut ctx)?;
        }
        let (mut pred, mut logits) = (act.node, act.logits);
        if act.layout == Layout::TimeMajor && g.ty(pred).rank() == 3 {
            pred = g.transpose(pred, &[1, 0, 2])?;
            if let Some((z, a)) = logits {
                logits = Some((g.transpose(z, &[1, 0, 2])?, a));
            }
        }
        let pty = g.ty(pred).clone();
        if pty.rank() != 2 {
            return Err(NnError::Model(format!(
                "the model output must be [batch, units] for a loss, got {pty} (end with an \
                 LSTM without return_sequences or a Dense on a vector)"
            )));
        }
        let k = pty.dims()[1];
        let y = g.input("y", TensorType::f32([batch, k]));
        let w = g.input("sample_weight", TensorType::f32([batch, 1]));
        let per = c.loss.per_sample(&mut g, pred, logits, y)?;
        let loss = weighted_sum(&mut g, per, w)?;
        g.set_name(loss, "loss");
        let optimizer = if training {
            // Before differentiating: an embedding followed by a projection projects the table
            // once, and the backward graph follows that cheaper form.
            trellis_ir::passes::gather_before_matmul(&mut g);
            let grads = trellis_autodiff::grad(&mut g, loss, &params)?;
            let named: Vec<(String, NodeId)> = self
                .specs
                .iter()
                .map(|s| s.name.clone())
                .zip(params.iter().copied())
                .collect();
            Some(c.optimizer.build(&mut g, &named, &grads)?)
        } else {
            None
        };
        g.set_outputs(vec![loss, pred]);
        Ok(StepGraph {
            graph: g,
            x,
            y,
            w,
            params,
            masks: ctx.masks,
            loss,
            pred,
            batch,
            out_width: k,
            optimizer,
        })
    }

    fn runner(&mut self, training: bool, batch: usize, row: &[usize]) -> Result<Runner> {
        let key = (batch, row.to_vec());
        let slot = if training {
            self.train.take()
        } else {
            self.infer.take()
        };
        if let Some(r) = slot.filter(|r| r.key == key) {
            return Ok(r);
        }
        let sg = self.step_graph(batch, row, training)?;
        let updates = sg
            .optimizer
            .as_ref()
            .map(|o| o.updates.clone())
            .unwrap_or_default();
        let plan = trellis_jit::compile(
            &sg.graph,
            &CompileOptions {
                updates,
                ..Default::default()
            },
        )?;
        Ok(Runner { key, plan, sg })
    }

    /// Copies the host weights (and optimiser state) into a plan.
    fn push_weights(&mut self, r: &mut Runner) -> Result<()> {
        for (p, w) in r.sg.params.iter().zip(&self.weights) {
            r.plan.set_f32(*p, w)?;
        }
        if let Some(o) = &r.sg.optimizer {
            for (name, n) in &o.states {
                let len = r.sg.graph.ty(*n).numel();
                let v = self
                    .opt_state
                    .entry(name.clone())
                    .or_insert_with(|| vec![0.0; len]);
                r.plan.set_f32(*n, v)?;
            }
        }
        Ok(())
    }

    /// Copies the weights (and optimiser state) a training plan has updated back to the host.
    fn pull_weights(&mut self, r: &Runner) -> Result<()> {
        for (p, w) in r.sg.params.iter().zip(self.weights.iter_mut()) {
            read_into(&r.plan, *p, w)?;
        }
        if let Some(o) = &r.sg.optimizer {
            for (name, n) in &o.states {
                let v = self.opt_state.entry(name.clone()).or_default();
                v.resize(r.sg.graph.ty(*n).numel(), 0.0);
                read_into(&r.plan, *n, v)?;
            }
        }
        Ok(())
    }

    /// Validates `x` (and `y`) and returns `(samples, per-sample shape)`.
    fn check_data(&self, x: &Inputs, y: Option<&[f32]>) -> Result<(usize, Vec<usize>)> {
        let c = self.compiled()?;
        match (x, self.takes_ids()) {
            (Inputs::Floats(_), true) => {
                return Err(NnError::Shape(
                    "x: the model starts with an Embedding and takes token ids (i64), got floats"
                        .into(),
                ))
            }
            (Inputs::Ids(_), false) => {
                return Err(NnError::Shape(
                    "x: the model takes floats, got token ids (only an Embedding takes ids)".into(),
                ))
            }
            _ => {}
        }
        let n = match y {
            Some(y) => {
                let k = self.out_width()?;
                let per = c.loss.targets_per_sample(k);
                if per == 0 {
                    return Err(NnError::Model(
                        "the model's output width is unknown: it has no layers, or its input \
                         shape is unknown (call with_input_shape or fit first)"
                            .into(),
                    ));
                }
                if !y.len().is_multiple_of(per) {
                    return Err(NnError::Shape(format!(
                        "y has {} values, not a multiple of the {per} targets per sample",
                        y.len()
                    )));
                }
                let n = y.len() / per;
                if n == 0 {
                    return Err(NnError::Shape("no samples: y is empty".into()));
                }
                if !x.len().is_multiple_of(n) {
                    return Err(NnError::Shape(format!(
                        "x has {} values, which is not a whole number of rows for the {n} \
                         samples of y (x and y lengths do not match)",
                        x.len()
                    )));
                }
                n
            }
            None => {
                let shape = self.input_shape.as_ref().ok_or_else(|| {
                    NnError::Model(
                        "the input shape is unknown: call with_input_shape or fit first".into(),
                    )
                })?;
                let row = checked_numel(shape).unwrap_or(0);
                if row == 0 || !x.len().is_multiple_of(row) || x.is_empty() {
                    return Err(NnError::Shape(format!(
                        "x has {} values, not a whole number of rows of {row}",
                        x.len()
                    )));
                }
                x.len() / row
            }
        };
        let row_len = x.len() / n;
        if row_len == 0 {
            return Err(NnError::Shape(format!("x is empty, for {n} samples of y")));
        }
        let row = match &self.input_shape {
            Some(s) => {
                if checked_numel(s) != Some(row_len) {
                    return Err(NnError::Shape(format!(
                        "x has {row_len} values per sample ({} values for {n} samples), the \
                         model's input shape is {s:?}",
                        x.len()
                    )));
                }
                s.clone()
            }
            None => vec![row_len],
        };
        if let (Inputs::Ids(ids), Some(e)) = (x, self.embedding()) {
            let vocab = e.vocab();
            if let Some(i) = ids.iter().position(|&id| id < 0 || id as usize >= vocab) {
                return Err(NnError::TokenOutOfRange {
                    id: ids[i],
                    sample: i / row_len,
                    position: i % row_len,
                    vocab,
                });
            }
        }
        if let Inputs::Floats(v) = x {
            if let Some(i) = v.iter().position(|f| !f.is_finite()) {
                return Err(NnError::NonFiniteInput {
                    sample: i / row_len,
                    position: i % row_len,
                    value: v[i],
                });
            }
        }
        if let Some(y) = y {
            check_targets(c.loss, y, self.out_width()?)?;
        }
        Ok((n, row))
    }

    /// Width of the model's output (after build).
    fn out_width(&self) -> Result<usize> {
        let mut f = match &self.input_shape {
            Some(s) => s.last().copied().unwrap_or(0),
            None => 0,
        };
        for l in &self.layers {
            f = l.out_features(f);
        }
        Ok(f)
    }

    /// Fills the x, y and w inputs with the samples `rows` (padding rows: zeros, weight 0).
    fn feed(
        &self,
        r: &mut Runner,
        x: &Inputs,
        y: Option<&[f32]>,
        rows: &[usize],
        row_len: usize,
    ) -> Result<()> {
        let b = r.sg.batch;
        let k = r.sg.out_width;
        match x {
            Inputs::Ids(v) => {
                let mut xb = vec![0i64; b * row_len];
                for (i, &s) in rows.iter().enumerate() {
                    xb[i * row_len..(i + 1) * row_len]
                        .copy_from_slice(&v[s * row_len..(s + 1) * row_len]);
                }
                r.plan.set_i64(r.sg.x, &xb)?;
            }
            Inputs::Floats(v) => {
                let mut xb = vec![0f32; b * row_len];
                for (i, &s) in rows.iter().enumerate() {
                    xb[i * row_len..(i + 1) * row_len]
                        .copy_from_slice(&v[s * row_len..(s + 1) * row_len]);
                }
                r.plan.set_f32(r.sg.x, &xb)?;
            }
        }
        let mut yb = vec![0f32; b * k];
        if let Some(y) = y {
            let sparse = self.compiled()?.loss == Loss::SparseCategoricalCrossentropy;
            for (i, &s) in rows.iter().enumerate() {
                if sparse {
                    yb[i * k + y[s] as usize] = 1.0;
                } else {
                    yb[i * k..(i + 1) * k].copy_from_slice(&y[s * k..(s + 1) * k]);
                }
            }
        }
        r.plan.set_f32(r.sg.y, &yb)?;
        let n = rows.len();
        let mut w = vec![0f32; b];
        w[..n].fill(1.0 / n as f32);
        r.plan.set_f32(r.sg.w, &w)?;
        Ok(())
    }

    /// Runs the forward plan over `x` in batches; calls `f(rows, predictions)` per batch.
    fn forward_batches(
        &mut self,
        x: &Inputs,
        y: Option<&[f32]>,
        mut f: impl FnMut(&[usize], &[f32], f64),
    ) -> Result<usize> {
        let (n, row) = self.check_data(x, y)?;
        let row_len: usize = row.iter().product();
        // A plan for more rows than there are samples would only add padding.
        let b = self.eval_batch.min(n).max(1);
        let mut r = self.runner(false, b, &row)?;
        let res = (|| -> Result<()> {
            self.push_weights(&mut r)?;
            let all: Vec<usize> = (0..n).collect();
            for range in batch_ranges(n, b)? {
                let rows = &all[range];
                self.feed(&mut r, x, y, rows, row_len)?;
                r.plan.run()?;
                let l = scalar(&r.plan, r.sg.loss)?;
                let p = values(&r.plan, r.sg.pred)?;
                let p = &p[..rows.len() * r.sg.out_width];
                if let Some(i) = p.iter().position(|v| !v.is_finite()) {
                    return Err(NnError::NonFinite(format!(
                        "the model's output for sample {} is {} (its weights or inputs are too \
                         large for f32)",
                        rows[i / r.sg.out_width],
                        p[i]
                    )));
                }
                if y.is_some() && !l.is_finite() {
                    return Err(NnError::NonFinite(format!(
                        "the loss of samples {}..{} is {l}",
                        rows[0],
                        rows[0] + rows.len()
                    )));
                }
                f(rows, p, l);
            }
            Ok(())
        })();
        self.infer = Some(r);
        res.map(|_| n)
    }

    /// Loss and metrics on `(x, y)` (Keras's `evaluate`).
    pub fn evaluate<'a>(&mut self, x: impl Into<Inputs<'a>>, y: &[f32]) -> Result<Evaluation> {
        let x = x.into();
        let c = self.compiled()?.clone();
        let acc = c.metrics.contains(&Metric::Accuracy);
        let k = self.out_width()?;
        let per_y = c.loss.targets_per_sample(k);
        let (mut loss_sum, mut correct, mut counted) = (0f64, 0u64, 0u64);
        let n = self.forward_batches(&x, Some(y), |rows, p, l| {
            loss_sum += l * rows.len() as f64;
            if acc {
                let s = rows[0];
                let yr = &y[s * per_y..(s + rows.len()) * per_y];
                let (ok, cnt) = accuracy_counts(c.loss, p, yr, rows.len(), k);
                correct += ok;
                counted += cnt;
            }
        })?;
        Ok(Evaluation {
            loss: loss_sum / n as f64,
            accuracy: acc.then(|| correct as f64 / counted.max(1) as f64),
        })
    }

    /// The model's outputs for `x`, row-major `[n, units]` (Keras's `predict`).
    pub fn predict<'a>(&mut self, x: impl Into<Inputs<'a>>) -> Result<Vec<f32>> {
        let x = x.into();
        let mut out = Vec::new();
        self.forward_batches(&x, None, |_, p, _| out.extend_from_slice(p))?;
        Ok(out)
    }

    /// Writes weights and optimiser state to a safetensors file (see [`crate::checkpoint`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::checkpoint::save(self, path.as_ref())
    }
    /// Restores weights, optimiser state and step count from [`Sequential::save`]'s file.
    /// A file holding NaN or infinite values is refused (see [`Sequential::load_with`]).
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load_with(path, LoadOptions::default())
    }
    /// [`Sequential::load`] with options (e.g. accepting non-finite values).
    pub fn load_with(&mut self, path: impl AsRef<Path>, opts: LoadOptions) -> Result<()> {
        self.build()?;
        crate::checkpoint::load(self, path.as_ref(), opts)
    }
}

fn check_targets(loss: Loss, y: &[f32], k: usize) -> Result<()> {
    let bad = |sample: usize, value: f32, expected: String| NnError::BadTarget {
        sample,
        value,
        expected,
    };
    match loss {
        Loss::BinaryCrossentropy => {
            if let Some(i) = y.iter().position(|&v| v != 0.0 && v != 1.0) {
                return Err(bad(
                    i / k.max(1),
                    y[i],
                    "binary cross-entropy takes labels 0 or 1".into(),
                ));
            }
        }
        Loss::SparseCategoricalCrossentropy => {
            if let Some(i) = y
                .iter()
                .position(|&v| !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < k))
            {
                return Err(bad(
                    i,
                    y[i],
                    format!("sparse categorical cross-entropy takes class ids 0..{k}"),
                ));
            }
        }
        Loss::MeanSquaredError => {
            if let Some(i) = y.iter().position(|v| !v.is_finite()) {
                return Err(bad(i / k.max(1), y[i], "targets must be finite".into()));
            }
        }
    }
    Ok(())
}

fn read_into(plan: &Plan, n: NodeId, out: &mut [f32]) -> Result<()> {
    match plan.f32_slice(n) {
        Some(s) => out.copy_from_slice(s),
        None => out.copy_from_slice(plan.get(n)?.as_f32().expect("f32 value")),
    }
    Ok(())
}

fn values(plan: &Plan, n: NodeId) -> Result<Vec<f32>> {
    Ok(match plan.f32_slice(n) {
        Some(s) => s.to_vec(),
        None => plan.get(n)?.to_f32_vec(),
    })
}

fn scalar(plan: &Plan, n: NodeId) -> Result<f64> {
    Ok(values(plan, n)?[0] as f64)
}

fn progress_bar(verbose: bool, n: usize, e: usize, epochs: usize) -> Option<ProgressBar> {
    if !verbose {
        return None;
    }
    let bar = ProgressBar::new(n as u64);
    let style = ProgressStyle::with_template("{prefix} [{bar:25}] {pos}/{len} {msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(format!("Epoch {}/{epochs}", e + 1));
    Some(bar)
}

fn format_log(l: &EpochLog, epochs: usize, e: usize) -> String {
    let mut s = format!("Epoch {e}/{epochs}: loss {:.4}", l.loss);
    if let Some(a) = l.accuracy {
        s += &format!(" - accuracy {a:.4}");
    }
    if let Some(v) = l.val_loss {
        s += &format!(" - val_loss {v:.4}");
    }
    if let Some(v) = l.val_accuracy {
        s += &format!(" - val_accuracy {v:.4}");
    }
    s + &format!(" - {:.1} s - {:.0} samples/s", l.seconds, l.samples_per_sec)
}
