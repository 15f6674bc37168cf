//! `ModelCheckpoint`: save the model (or its weights) after epochs, every epoch or only when
//! the monitored figure improved. It writes through the one writer of each format:
//! [`Model::save`] (weights and optimiser state, `save_weights_only`) and
//! [`Model::save_model`] (the model that stands alone).
use std::path::{Path, PathBuf};

use super::{Callback, Monitor, Run};
use crate::model::EpochLog;
use crate::Result;

/// Keras's `ModelCheckpoint` (defaults: monitor `val_loss`, save every epoch, the whole model).
/// `{epoch}` in the path is replaced by the epoch number ([`EpochLog::epoch`]), so each epoch
/// can keep its own file.
#[derive(Clone, Debug)]
pub struct ModelCheckpoint {
    pub path: PathBuf,
    pub monitor: Monitor,
    /// Save only when the monitored figure improved on the best so far.
    pub save_best_only: bool,
    /// Save weights and optimiser state ([`Model::save`](crate::Model::save))
    /// rather than the whole model.
    pub save_weights_only: bool,
    best: Option<f64>,
}

impl ModelCheckpoint {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ModelCheckpoint {
            path: path.into(),
            monitor: Monitor::new("val_loss"),
            save_best_only: false,
            save_weights_only: false,
            best: None,
        }
    }
    pub fn with_save_best_only(mut self, yes: bool) -> Self {
        self.save_best_only = yes;
        self
    }
    pub fn with_save_weights_only(mut self, yes: bool) -> Self {
        self.save_weights_only = yes;
        self
    }

    fn path_for(&self, epoch: usize) -> PathBuf {
        match self.path.to_str() {
            Some(s) if s.contains("{epoch}") => s.replace("{epoch}", &epoch.to_string()).into(),
            _ => self.path.clone(),
        }
    }
}

impl Callback for ModelCheckpoint {
    /// Checks the path before the first epoch, so a bad one fails before any training.
    fn on_train_begin(&mut self, run: &mut Run) -> Result<()> {
        if self.save_best_only {
            self.monitor.validate("ModelCheckpoint", run)?;
        }
        self.best = None;
        let first = self.path_for(run.epochs_done() + 1);
        crate::checkpoint::check_writable(Path::new(&first))
    }

    fn on_epoch_end(&mut self, log: &EpochLog, run: &mut Run) -> Result<()> {
        if self.save_best_only {
            let current = self.monitor.value(log, "ModelCheckpoint")?;
            if !self.monitor.improves(current, self.best)? {
                return Ok(());
            }
            self.best = Some(current);
        }
        let path = self.path_for(log.epoch);
        let model = run.model()?;
        if self.save_weights_only {
            model.save(&path)
        } else {
            model.save_model(&path)
        }
    }
}

super::monitor::monitor_builders!(ModelCheckpoint);
