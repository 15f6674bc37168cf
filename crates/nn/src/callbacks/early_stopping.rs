//! `EarlyStopping`: stop when the monitored figure has not improved for `patience` epochs,
//! optionally restoring the weights of the best epoch (Keras 3's behaviour: restored when
//! training ends, whether it stopped early or ran out of epochs).
use super::{Callback, Monitor, Run};
use crate::model::{EpochLog, History};
use crate::Result;

/// Keras's `EarlyStopping` (defaults: monitor `val_loss`, patience 0, min_delta 0, mode auto).
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    pub monitor: Monitor,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Training stops unless the figure beats this (Keras's `baseline`).
    pub baseline: Option<f64>,
    /// At the end of training, set the weights of the best epoch (bit for bit).
    pub restore_best_weights: bool,
    /// Epochs (of this run) to wait before watching at all.
    pub start_from_epoch: usize,
    wait: usize,
    best: Option<f64>,
    best_weights: Option<Vec<Vec<f32>>>,
    best_epoch: Option<usize>,
    stopped_epoch: Option<usize>,
    seen: usize,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping::new("val_loss")
    }
}

impl EarlyStopping {
    pub fn new(monitor: &str) -> Self {
        EarlyStopping {
            monitor: Monitor::new(monitor),
            patience: 0,
            baseline: None,
            restore_best_weights: false,
            start_from_epoch: 0,
            wait: 0,
            best: None,
            best_weights: None,
            best_epoch: None,
            stopped_epoch: None,
            seen: 0,
        }
    }
    pub fn with_patience(mut self, epochs: usize) -> Self {
        self.patience = epochs;
        self
    }
    pub fn with_baseline(mut self, b: f64) -> Self {
        self.baseline = Some(b);
        self
    }
    pub fn with_restore_best_weights(mut self, yes: bool) -> Self {
        self.restore_best_weights = yes;
        self
    }
    pub fn with_start_from_epoch(mut self, epochs: usize) -> Self {
        self.start_from_epoch = epochs;
        self
    }
    /// The epoch (as [`EpochLog::epoch`]) at which training was stopped, if it was.
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }
    /// The best epoch and its value of the monitored figure.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best_epoch.zip(self.best)
    }
}

impl Callback for EarlyStopping {
    fn on_train_begin(&mut self, run: &mut Run) -> Result<()> {
        self.monitor.validate("EarlyStopping", run)?;
        self.wait = 0;
        self.best = None;
        self.best_weights = None;
        self.best_epoch = None;
        self.stopped_epoch = None;
        self.seen = 0;
        Ok(())
    }

    fn on_epoch_end(&mut self, log: &EpochLog, run: &mut Run) -> Result<()> {
        let current = self.monitor.value(log, "EarlyStopping")?;
        self.seen += 1;
        if self.seen <= self.start_from_epoch {
            return Ok(());
        }
        if self.restore_best_weights && self.best_weights.is_none() {
            // Until something improves, the first watched epoch is the best.
            self.best_weights = Some(run.weights()?.to_vec());
            self.best_epoch = Some(log.epoch);
        }
        self.wait += 1;
        if self.monitor.improves(current, self.best)? {
            self.best = Some(current);
            self.best_epoch = Some(log.epoch);
            if self.restore_best_weights {
                self.best_weights = Some(run.weights()?.to_vec());
            }
            let beats_baseline = match self.baseline {
                None => true,
                Some(b) => self.monitor.improves(current, Some(b))?,
            };
            if beats_baseline {
                self.wait = 0;
            }
            return Ok(());
        }
        if self.wait >= self.patience && self.seen > 1 {
            self.stopped_epoch = Some(log.epoch);
            run.stop_training();
        }
        Ok(())
    }

    fn on_train_end(&mut self, _history: &History, run: &mut Run) -> Result<()> {
        if let (true, Some(w)) = (self.restore_best_weights, &self.best_weights) {
            run.set_weights(w)?;
        }
        Ok(())
    }
}

super::monitor::monitor_builders!(EarlyStopping);
