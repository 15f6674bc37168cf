//! The Keras-style model: [`Sequential`] composes layers; `compile` picks the optimiser, loss
//! and metrics; `fit`, `evaluate` and `predict` run compiled plans.
//!
//! ## One plan per step, partial batches included
//!
//! A training step (forward, backward, optimiser update) is one graph compiled once into a
//! [`trellis_jit::Plan`] at the full batch size `B`. The loss is `sum(loss * w)` with a weight
//! input `w` per sample (`[B, 1]`) or per step (`[B, T, 1]` for a `[B, T, K]` output): `1/n`
//! (`1/(n T)`) on the `n` real rows of a batch, 0 on the padding rows of the last partial
//! batch, so that batch trains with exactly its own mean-loss gradient. When the output
//! carries a mask (Embedding `mask_zero`, Masking), the loss is `sum(l w m) / sum(w m)`: padded
//! steps count for nothing, in the loss and in the accuracy. `evaluate` and `predict` use a
//! forward-only plan the same way.
//!
//! ## Layout
//!
//! One module per job: [`arrays`](Inputs) (shaped data), `checks` (x, y and the model must
//! agree), `naming` (parameter names and initial values), `graph` (the step graph), `plans`
//! (plan caching, weights in and out), `feed` (a batch into a plan, loss weights), `fit` (the
//! training loop, calling the [`callbacks`](crate::callbacks)), `gradients` (the loss's
//! parameter gradients by name), `inference` (`evaluate`, `predict`), `progress` (the
//! display), `summary` (Keras's layer table), `saved` (standalone saved models); this file
//! holds the model's state and `compile`/`save`/`load`.
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use crate::checkpoint::LoadOptions;
use crate::layers::{Embedding, Layer, ParamSpec};
use crate::losses::LossConfig;
use crate::metrics::Metric;
use crate::optim::Optimizer;
use crate::{NnError, Result};

mod arrays;
mod checks;
mod feed;
mod fit;
mod gradients;
mod graph;
mod history;
mod inference;
mod naming;
mod options;
mod plans;
mod progress;
mod saved;
mod summary;

pub(crate) use arrays::Values;
pub use arrays::{Inputs, Targets};
use checks::Shapes;
pub use graph::StepGraph;
pub use history::{EpochLog, Evaluation, History};
pub use options::FitOptions;
pub(crate) use plans::Runner;
pub use saved::FORMAT_VERSION;
pub use summary::{Summary, SummaryRow};

#[derive(Clone, Debug)]
pub(super) struct Compiled {
    optimizer: Optimizer,
    loss: LossConfig,
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
    /// Step plans compiled so far (training and inference).
    plans_compiled: u64,
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
    /// Step plans (training or inference) this model has compiled: a learning-rate change
    /// compiles none, a new batch size or input shape does.
    pub fn plans_compiled(&self) -> u64 {
        self.plans_compiled
    }
    /// The optimiser's base learning rate, once compiled.
    pub fn learning_rate(&self) -> Option<f64> {
        self.compiled.as_ref().map(|c| c.optimizer.learning_rate())
    }
    /// Sets the optimiser's base learning rate (Keras's `model.optimizer.learning_rate = lr`).
    /// The rate is an input of the compiled step, so nothing is recompiled.
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        let c = self
            .compiled
            .as_mut()
            .ok_or_else(|| NnError::Model("call compile(optimizer, loss, metrics) first".into()))?;
        c.optimizer.set_learning_rate(lr)
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
    pub(super) fn embedding(&self) -> Option<&Embedding> {
        self.layers
            .first()
            .and_then(|l| l.as_any().downcast_ref::<Embedding>())
    }
    pub(super) fn takes_ids(&self) -> bool {
        self.layers.first().is_some_and(|l| l.takes_ids())
    }

    /// Sets the optimiser, loss and metrics (Keras's `compile`). Optimiser state (and the step
    /// count) restored by [`Sequential::load`], before or after, is kept when the optimiser is
    /// of the same kind; a different kind starts from zero state at step 0.
    pub fn compile(
        &mut self,
        optimizer: impl Into<Optimizer>,
        loss: impl Into<LossConfig>,
        metrics: &[Metric],
    ) -> Result<()> {
        let optimizer = optimizer.into();
        optimizer.validate()?;
        let loss = loss.into();
        loss.validate()?;
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

    pub(super) fn compiled(&self) -> Result<&Compiled> {
        self.compiled
            .as_ref()
            .ok_or_else(|| NnError::Model("call compile(optimizer, loss, metrics) first".into()))
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
