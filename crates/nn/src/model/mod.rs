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
use crate::functional::{LayerRef, SymTensor};
use crate::layers::{Embedding, Layer, ParamSpec};
#[cfg(doc)]
use crate::losses::Loss;
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
mod losses;
mod naming;
mod options;
mod plans;
mod progress;
mod saved;
mod summary;
mod topology;
mod trainable;
mod weights;

pub(crate) use arrays::Values;
pub use arrays::{Inputs, Targets};
use checks::Shapes;
pub use graph::{OutputNodes, StepGraph};
pub use history::{EpochLog, Evaluation, History};
pub use losses::Losses;
pub use options::FitOptions;
pub(crate) use plans::Runner;
pub use saved::FORMAT_VERSION;
pub use summary::{Summary, SummaryRow};
use topology::{Ref, Topology};
use weights::Weights;

#[derive(Clone, Debug)]
pub(super) struct Compiled {
    optimizer: Optimizer,
    losses: Losses,
    metrics: Vec<Metric>,
}

/// A model: inputs, layers called on them, outputs (Keras's `Model`), trained with `compile`
/// and `fit`. Built from symbolic tensors ([`Model::new`], the functional API) or as a
/// [`Sequential`] stack; both are the same graph of layer calls underneath.
pub struct Model {
    topo: Topology,
    seed: u64,
    specs: Vec<ParamSpec>,
    /// Which of `specs` belong to each layer of `topo.layers`.
    layer_params: Vec<Range<usize>>,
    weights: Weights,
    compiled: Option<Compiled>,
    opt_state: HashMap<String, Vec<f32>>,
    /// The optimiser kind `opt_state` and `step` belong to.
    state_owner: Option<String>,
    /// Layers (indices into `topo.layers`) whose parameters do not train.
    frozen: std::collections::BTreeSet<usize>,
    step: u64,
    epochs_done: usize,
    eval_batch: usize,
    /// Host memory the parameters, and each step plan, may take (`None`: what the system has
    /// available).
    memory_limit: Option<u64>,
    /// The training plan's checkpoint interval when it recomputes its recurrences.
    recompute_every: Option<usize>,
    train: Option<Runner>,
    infer: Option<Runner>,
    /// Step plans compiled so far (training and inference).
    plans_compiled: u64,
    /// How raw texts become its input rows (kept by saved models).
    text: Option<crate::data::TextEncoder>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("layers", &self.topo.layers)
            .field("calls", &self.topo.calls)
            .field("params", &self.specs)
            .field("compiled", &self.compiled)
            .field("step", &self.step)
            .finish()
    }
}

/// A stack of layers, Keras's `Sequential`: a [`Model`] whose layers form one chain (every
/// `Model` method applies).
#[derive(Debug)]
pub struct Sequential {
    model: Model,
}

impl Default for Sequential {
    fn default() -> Self {
        Sequential::new()
    }
}

impl std::ops::Deref for Sequential {
    type Target = Model;
    fn deref(&self) -> &Model {
        &self.model
    }
}

impl std::ops::DerefMut for Sequential {
    fn deref_mut(&mut self) -> &mut Model {
        &mut self.model
    }
}

impl Sequential {
    pub fn new() -> Self {
        Sequential {
            model: Model::with_topology(Topology::chain(Vec::new(), None)),
        }
    }

    /// Appends a layer.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Into<Box<dyn Layer>>) -> Self {
        self.push(layer);
        self
    }
    pub fn push(&mut self, layer: impl Into<Box<dyn Layer>>) {
        let m = &mut self.model;
        let mut layers = std::mem::take(&mut m.topo.layers);
        layers.push(LayerRef::new(layer));
        let shape = m.topo.inputs[0].shape.take();
        m.topo = Topology::chain(layers, shape);
        m.unbuild();
    }
    /// Seeds the weight initialisers (default 0).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.model.seed = seed;
        self
    }
    /// See [`Model::with_memory_limit`].
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.model.memory_limit = Some(bytes);
        self
    }
    /// The shape of one sample (without the batch axis): `[T]` for token ids, `[F]` or `[T, F]`
    /// for floats. Inferred from the data by `fit` when not given.
    pub fn with_input_shape(mut self, shape: &[usize]) -> Self {
        self.model.topo.inputs[0].shape = Some(shape.to_vec());
        self
    }
    /// See [`Model::with_text_encoder`].
    pub fn with_text_encoder(mut self, text: crate::data::TextEncoder) -> Self {
        self.model.text = Some(text);
        self
    }
    /// Rebuilds a Sequential written by `save_model` (see [`Model::load_model`]).
    pub fn load_model(path: impl AsRef<Path>) -> Result<Sequential> {
        let model = Model::load_model(path.as_ref())?;
        if !model.topo.is_chain() {
            return Err(NnError::Model(format!(
                "{} holds a functional model, not a stack of layers: load it with \
                 Model::load_model",
                path.as_ref().display()
            )));
        }
        Ok(Sequential { model })
    }
    /// The model, as a [`Model`].
    pub fn into_model(self) -> Model {
        self.model
    }
}

impl Model {
    /// Keras's `Model(inputs, outputs)`: the layers called between the symbolic `inputs`
    /// ([`Input::new`](crate::Input::new)) and `outputs`. A layer called several times is one
    /// layer (one set of weights).
    pub fn new(inputs: &[&SymTensor], outputs: &[&SymTensor]) -> Result<Model> {
        let topo = Topology::from_symbolic(inputs, outputs)?;
        Ok(Model::with_topology(topo))
    }

    pub(super) fn with_topology(topo: Topology) -> Model {
        Model {
            topo,
            seed: 0,
            specs: Vec::new(),
            layer_params: Vec::new(),
            weights: Weights::default(),
            compiled: None,
            opt_state: HashMap::new(),
            state_owner: None,
            frozen: Default::default(),
            step: 0,
            epochs_done: 0,
            eval_batch: 32,
            memory_limit: None,
            train: None,
            infer: None,
            plans_compiled: 0,
            recompute_every: None,
            text: None,
        }
    }

    /// Forgets the parameters and plans (the layers changed).
    fn unbuild(&mut self) {
        self.specs.clear();
        self.layer_params.clear();
        self.weights.edit().clear();
        self.train = None;
        self.infer = None;
    }

    /// Seeds the weight initialisers (default 0).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Caps the host memory, in bytes, that building the model may take for its parameters
    /// (weights, optimiser state, initialiser workspace) and that each compiled step plan may
    /// take; by default the memory the system has available. A model whose parameters are over
    /// it is an error naming its largest parameter. A training plan over it recomputes its
    /// recurrences in the backward pass from a state kept every `k` steps, `k` chosen to fit
    /// ([`Model::recompute_every`] says which; the results are the same): long sequences train
    /// in bounded memory. A plan that cannot fit even so is an error naming the bytes needed.
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// The layers, each once (a shared layer too), in the order of their first call.
    pub fn layers(&self) -> &[LayerRef] {
        &self.topo.layers
    }
    /// Whether the model is a stack of layers (one input, each layer called once on the one
    /// before), as a [`Sequential`] builds.
    pub fn is_sequential(&self) -> bool {
        self.topo.is_chain()
    }
    /// How many inputs and outputs the model has.
    pub fn num_inputs(&self) -> usize {
        self.topo.inputs.len()
    }
    pub fn num_outputs(&self) -> usize {
        self.topo.outputs.len()
    }
    /// Parameter declarations (names, shapes, initialisers), once built.
    pub fn param_specs(&self) -> &[ParamSpec] {
        &self.specs
    }
    /// Which of [`Model::param_specs`] belong to each layer, once built.
    pub fn layer_param_ranges(&self) -> &[Range<usize>] {
        &self.layer_params
    }
    /// Current parameter values, in [`Model::param_specs`] order.
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
        self.weights.edit()[i].copy_from_slice(values);
        Ok(())
    }
    /// Step plans (training or inference) this model has compiled: a learning-rate change
    /// compiles none, a new batch size or input shape does.
    pub fn plans_compiled(&self) -> u64 {
        self.plans_compiled
    }

    /// The checkpoint interval of the current training plan when it did not fit in the memory
    /// limit storing every step and recomputes its recurrences instead (`None`: every step
    /// stored, or no training plan yet).
    pub fn recompute_every(&self) -> Option<usize> {
        self.recompute_every
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
    /// The per-sample input shape of a one-input model, when set or inferred by `fit`.
    pub fn input_shape(&self) -> Option<&[usize]> {
        match self.topo.inputs.as_slice() {
            [i] => i.shape.as_deref(),
            _ => None,
        }
    }
    pub(crate) fn set_input_shape_if_unknown(&mut self, shape: Vec<usize>) {
        if let [i] = self.topo.inputs.as_mut_slice() {
            if i.shape.is_none() {
                i.shape = Some(shape);
            }
        }
    }
    pub(crate) fn optimizer_state(&self) -> &HashMap<String, Vec<f32>> {
        &self.opt_state
    }
    /// The compiled optimiser's [`Optimizer::state_kind`].
    pub(crate) fn optimizer_state_kind(&self) -> Option<&'static str> {
        self.compiled.as_ref().map(|c| c.optimizer.state_kind())
    }
    /// Restored weights, optimiser `(kind, state, step)` when usable, and epochs done.
    pub(crate) fn set_restored(
        &mut self,
        weights: Vec<Vec<f32>>,
        optimizer: Option<(String, HashMap<String, Vec<f32>>, u64)>,
        epochs: usize,
    ) {
        self.weights.replace(weights);
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

    /// The embeddings that read input `i` (its ids must be below each one's vocabulary).
    pub(super) fn embeddings_of(&self, i: usize) -> Vec<&Embedding> {
        self.topo
            .calls
            .iter()
            .filter(|c| c.args.first() == Some(&Ref::Input(i)))
            .filter_map(|c| {
                self.topo.layers[c.layer]
                    .as_any()
                    .downcast_ref::<Embedding>()
            })
            .collect()
    }
    /// Whether input `i` takes token ids (a layer that takes ids reads it).
    pub(super) fn input_takes_ids(&self, i: usize) -> bool {
        self.topo.calls.iter().any(|c| {
            c.args.first() == Some(&Ref::Input(i)) && self.topo.layers[c.layer].takes_ids()
        })
    }
    /// Whether every input's shape is known, or the model takes ids (then any length shows
    /// the parameters): what building needs.
    fn can_build(&self) -> bool {
        self.topo
            .inputs
            .iter()
            .enumerate()
            .all(|(i, s)| s.shape.is_some() || self.input_takes_ids(i))
    }

    /// Sets the optimiser, loss and metrics (Keras's `compile`). Optimiser state (and the step
    /// count) restored by [`Model::load`], before or after, is kept when the optimiser is
    /// of the same kind; a different kind starts from zero state at step 0.
    ///
    /// `loss` is one [`Loss`] (for every output) or a [`Losses`]: a loss and a weight per
    /// output; the model minimises the weighted sum.
    ///
    /// When the model cannot be built, `compile` returns that error and leaves the model as
    /// it was (uncompiled, or compiled as before).
    pub fn compile(
        &mut self,
        optimizer: impl Into<Optimizer>,
        loss: impl Into<Losses>,
        metrics: &[Metric],
    ) -> Result<()> {
        let optimizer = optimizer.into();
        let losses = loss.into().for_outputs(self.topo.outputs.len())?;
        optimizer.validate()?;
        losses.losses.iter().try_for_each(|l| l.validate())?;
        let owner = optimizer.state_kind().to_string();
        let previous = self.compiled.replace(Compiled {
            optimizer,
            losses,
            metrics: metrics.to_vec(),
        });
        // A model that cannot be built keeps what it had: the error leaves no half-compiled
        // state behind.
        if self.can_build() {
            if let Err(e) = self.build() {
                self.compiled = previous;
                return Err(e);
            }
        }
        if self.state_owner.as_deref().is_some_and(|o| o != owner) {
            self.opt_state.clear();
            self.step = 0;
        }
        self.state_owner = Some(owner);
        self.train = None;
        self.infer = None;
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
    /// Restores weights, optimiser state and step count from [`Model::save`]'s file.
    /// A file holding NaN or infinite values is refused (see [`Model::load_with`]).
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load_with(path, LoadOptions::default())
    }
    /// [`Model::load`] with options (e.g. accepting non-finite values).
    pub fn load_with(&mut self, path: impl AsRef<Path>, opts: LoadOptions) -> Result<()> {
        self.build()?;
        crate::checkpoint::load(self, path.as_ref(), opts)
    }
}
