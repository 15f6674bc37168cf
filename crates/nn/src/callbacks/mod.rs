//! Callbacks: code that `fit` calls at the start and end of training, of each epoch and of
//! each batch (Keras's `keras.callbacks`), to stop training, change the learning rate, keep or
//! restore weights, or save and log.
//!
//! The learning rate is an input of the compiled step, fed before every update, so a callback
//! that changes it ([`Run::set_learning_rate`]) never recompiles the step. During an epoch the
//! weights live in the compiled plan; they are read and written ([`Run::weights`],
//! [`Run::set_weights`], [`Run::model`]) at epoch and training boundaries only.
//!
//! The set: [`EarlyStopping`], [`ModelCheckpoint`], [`ReduceLROnPlateau`],
//! [`LearningRateScheduler`] (with an [`LrSchedule`](crate::schedules::LrSchedule) or a
//! function of the epoch), [`CsvLogger`] and [`TerminateOnNaN`] (on by default:
//! [`FitOptions::terminate_on_nan`](crate::FitOptions)). `fit`'s own per-epoch checkpoint is a
//! [`ModelCheckpoint`] too.
use crate::model::{EpochLog, History, Runner};
use crate::{Model, NnError, Result};

mod csv;
mod early_stopping;
mod model_checkpoint;
mod monitor;
mod plateau;
mod scheduler;
mod terminate;

pub use csv::CsvLogger;
pub use early_stopping::EarlyStopping;
pub use model_checkpoint::ModelCheckpoint;
pub use monitor::{Mode, Monitor};
pub use plateau::ReduceLROnPlateau;
pub use scheduler::LearningRateScheduler;
pub use terminate::TerminateOnNaN;

/// What one training batch gave (Keras's batch `logs`).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchLog {
    /// The batch's index in its epoch, from 0.
    pub batch: usize,
    /// Real samples in the batch.
    pub size: usize,
    /// The batch's mean loss.
    pub loss: f64,
    /// The learning rate this batch's update used (the base rate, before Adam's correction).
    pub learning_rate: f64,
}

/// Hooks `fit` calls; each defaults to doing nothing. A hook returning an error ends `fit`
/// with it (the model keeping the weights it had at that point).
#[allow(unused_variables)]
pub trait Callback {
    fn on_train_begin(&mut self, run: &mut Run) -> Result<()> {
        Ok(())
    }
    /// `epoch` counts over the model's life, from 1 (as [`EpochLog::epoch`]).
    fn on_epoch_begin(&mut self, epoch: usize, run: &mut Run) -> Result<()> {
        Ok(())
    }
    fn on_batch_begin(&mut self, batch: usize, run: &mut Run) -> Result<()> {
        Ok(())
    }
    fn on_batch_end(&mut self, log: &BatchLog, run: &mut Run) -> Result<()> {
        Ok(())
    }
    /// After the epoch's validation; `log` holds every figure by its Keras name
    /// ([`EpochLog::get`]).
    fn on_epoch_end(&mut self, log: &EpochLog, run: &mut Run) -> Result<()> {
        Ok(())
    }
    fn on_train_end(&mut self, history: &History, run: &mut Run) -> Result<()> {
        Ok(())
    }
}

/// What callbacks asked of the run (owned by `fit`).
#[derive(Debug, Default)]
pub(crate) struct RunState {
    /// Stop after the current batch (the epoch still ends: validation, epoch-end hooks).
    pub stop: bool,
    /// Stop now: this batch went non-finite; roll back to before it and fail with this.
    pub failure: Option<String>,
    /// A callback may have changed the host weights: copy them into the plan.
    pub weights_changed: bool,
    /// The names every epoch log of this run will hold.
    pub logged: Vec<String>,
}

/// A callback's view of the training run: the learning rate, stopping, and (between epochs)
/// the model and its weights.
pub struct Run<'a> {
    model: &'a mut Model,
    state: &'a mut RunState,
    /// The training plan, inside an epoch (its weights are the current ones).
    plan: Option<&'a Runner>,
    /// Whether this is the epoch's last batch.
    last_batch: bool,
}

impl<'a> Run<'a> {
    pub(crate) fn new(
        model: &'a mut Model,
        state: &'a mut RunState,
        plan: Option<&'a Runner>,
        last_batch: bool,
    ) -> Self {
        Run {
            model,
            state,
            plan,
            last_batch,
        }
    }

    /// Optimiser updates done so far (over the model's life).
    pub fn step(&self) -> u64 {
        self.model.step()
    }
    /// Epochs completed so far (over the model's life).
    pub fn epochs_done(&self) -> usize {
        self.model.epochs_done()
    }
    /// The base learning rate the next update uses.
    pub fn learning_rate(&self) -> Result<f64> {
        self.model
            .learning_rate()
            .ok_or_else(|| NnError::Model("the model is not compiled".into()))
    }
    /// Sets the base learning rate from the next update on (fed to the compiled step: no
    /// recompiling). A rate that is not finite and non-negative is an error naming it.
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        self.model.set_learning_rate(lr)
    }
    /// The names (Keras's) every epoch log of this run holds: `loss`, the metrics,
    /// `learning_rate`, and with validation data `val_loss` and the `val_` metrics.
    pub fn logged(&self) -> &[String] {
        &self.state.logged
    }
    /// Stops training after the current batch (Keras's `model.stop_training = True`).
    pub fn stop_training(&mut self) {
        self.state.stop = true;
    }
    /// Whether a callback asked to stop.
    pub fn stopping(&self) -> bool {
        self.state.stop
    }
    /// Ends training at once because this batch went non-finite: the model keeps its weights
    /// from before the batch and `fit` returns [`NnError::NonFinite`] with `what` in it.
    pub fn terminate_non_finite(&mut self, what: String) {
        self.state.failure = Some(what);
    }
    /// Inside an epoch: whether this is its last batch.
    pub fn is_last_batch(&self) -> bool {
        self.last_batch
    }
    /// Inside an epoch: whether every weight and optimiser state in the plan is finite (a
    /// scan of all of them; `None` between epochs, when [`Run::weights`] has them).
    pub fn plan_state_finite(&self) -> Result<Option<bool>> {
        self.plan.map(Runner::state_finite).transpose()
    }

    fn boundary(&self, what: &str) -> Result<()> {
        match self.plan {
            None => Ok(()),
            Some(_) => Err(NnError::Model(format!(
                "{what}: during an epoch the weights live in the compiled plan; read and write \
                 them in on_epoch_begin / on_epoch_end / on_train_begin / on_train_end"
            ))),
        }
    }
    /// The current weights, in [`Model::param_specs`] order (between epochs).
    pub fn weights(&self) -> Result<&[Vec<f32>]> {
        self.boundary("Run::weights")?;
        Ok(self.model.weights())
    }
    /// Replaces every weight (between epochs): as many tensors as the model has, each of its
    /// parameter's length.
    pub fn set_weights(&mut self, weights: &[Vec<f32>]) -> Result<()> {
        self.boundary("Run::set_weights")?;
        let names: Vec<String> = self
            .model
            .param_specs()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        if weights.len() != names.len() {
            return Err(NnError::Shape(format!(
                "set_weights: the model has {} parameters, got {} tensors",
                names.len(),
                weights.len()
            )));
        }
        for (name, w) in names.iter().zip(weights) {
            self.model.set_weight(name, w)?;
        }
        self.state.weights_changed = true;
        Ok(())
    }
    /// The model itself (between epochs), to save it or change it.
    pub fn model(&mut self) -> Result<&mut Model> {
        self.boundary("Run::model")?;
        self.state.weights_changed = true;
        Ok(self.model)
    }
}
