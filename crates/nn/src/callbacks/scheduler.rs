//! `LearningRateScheduler`: sets the learning rate from a schedule of the optimiser step
//! (before every update) or from a function of the epoch (before every epoch, Keras's form).
use super::{Callback, Run};
use crate::schedules::LrSchedule;
use crate::Result;

/// Where the rate comes from.
enum Source {
    Steps(LrSchedule),
    /// `f(epoch index of this run from 0, current rate) -> rate`, as Keras calls it.
    Epochs(Box<dyn FnMut(usize, f64) -> f64>),
}

/// Keras's `LearningRateScheduler`, also driving the step schedules of
/// `keras.optimizers.schedules` ([`LrSchedule`]). The rate is an input of the compiled step:
/// no recompiling.
pub struct LearningRateScheduler {
    source: Source,
    epoch: usize,
}

impl std::fmt::Debug for LearningRateScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Steps(s) => f.debug_tuple("LearningRateScheduler").field(s).finish(),
            Source::Epochs(_) => f.write_str("LearningRateScheduler(fn(epoch, lr))"),
        }
    }
}

impl LearningRateScheduler {
    /// The rate of each update from `schedule` at the model's step count.
    pub fn new(schedule: LrSchedule) -> Self {
        LearningRateScheduler {
            source: Source::Steps(schedule),
            epoch: 0,
        }
    }
    /// Keras's form: before each epoch, `rate = f(epoch, rate)` (`epoch` from 0 in this run).
    pub fn per_epoch(f: impl FnMut(usize, f64) -> f64 + 'static) -> Self {
        LearningRateScheduler {
            source: Source::Epochs(Box::new(f)),
            epoch: 0,
        }
    }
}

impl Callback for LearningRateScheduler {
    fn on_train_begin(&mut self, _run: &mut Run) -> Result<()> {
        self.epoch = 0;
        match &self.source {
            Source::Steps(s) => s.validate(),
            Source::Epochs(_) => Ok(()),
        }
    }
    fn on_epoch_begin(&mut self, _epoch: usize, run: &mut Run) -> Result<()> {
        if let Source::Epochs(f) = &mut self.source {
            let lr = f(self.epoch, run.learning_rate()?);
            run.set_learning_rate(lr)?;
        }
        self.epoch += 1;
        Ok(())
    }
    fn on_batch_begin(&mut self, _batch: usize, run: &mut Run) -> Result<()> {
        if let Source::Steps(s) = &self.source {
            run.set_learning_rate(s.at(run.step()))?;
        }
        Ok(())
    }
}
