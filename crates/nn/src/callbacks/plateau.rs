//! `ReduceLROnPlateau`: multiply the learning rate by `factor` when the monitored figure has
//! not improved for `patience` epochs (Keras's algorithm, cooldown and floor included).
use super::{Callback, Monitor, Run};
use crate::model::EpochLog;
use crate::{NnError, Result};

/// Keras's `ReduceLROnPlateau` (defaults: monitor `val_loss`, factor 0.1, patience 10,
/// min_delta 1e-4, cooldown 0, min_lr 0).
#[derive(Clone, Debug)]
pub struct ReduceLROnPlateau {
    pub monitor: Monitor,
    pub factor: f64,
    pub patience: usize,
    /// Epochs after a reduction during which no other is made.
    pub cooldown: usize,
    pub min_lr: f64,
    wait: usize,
    cooldown_left: usize,
    best: Option<f64>,
}

impl Default for ReduceLROnPlateau {
    fn default() -> Self {
        ReduceLROnPlateau::new("val_loss")
    }
}

impl ReduceLROnPlateau {
    pub fn new(monitor: &str) -> Self {
        ReduceLROnPlateau {
            monitor: Monitor {
                min_delta: 1e-4,
                ..Monitor::new(monitor)
            },
            factor: 0.1,
            patience: 10,
            cooldown: 0,
            min_lr: 0.0,
            wait: 0,
            cooldown_left: 0,
            best: None,
        }
    }
    pub fn with_factor(mut self, f: f64) -> Self {
        self.factor = f;
        self
    }
    pub fn with_patience(mut self, epochs: usize) -> Self {
        self.patience = epochs;
        self
    }
    pub fn with_cooldown(mut self, epochs: usize) -> Self {
        self.cooldown = epochs;
        self
    }
    pub fn with_min_lr(mut self, lr: f64) -> Self {
        self.min_lr = lr;
        self
    }
}

impl Callback for ReduceLROnPlateau {
    fn on_train_begin(&mut self, run: &mut Run) -> Result<()> {
        if !(self.factor >= 0.0 && self.factor < 1.0) {
            return Err(NnError::InvalidArgument {
                name: "factor",
                value: self.factor.to_string(),
                message: "ReduceLROnPlateau does not reduce the rate unless factor < 1".into(),
            });
        }
        self.monitor.validate("ReduceLROnPlateau", run)?;
        self.wait = 0;
        self.cooldown_left = 0;
        self.best = None;
        Ok(())
    }

    fn on_epoch_end(&mut self, log: &EpochLog, run: &mut Run) -> Result<()> {
        let current = self.monitor.value(log, "ReduceLROnPlateau")?;
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.wait = 0;
        }
        if self.monitor.improves(current, self.best)? {
            self.best = Some(current);
            self.wait = 0;
        } else if self.cooldown_left == 0 {
            self.wait += 1;
            if self.wait >= self.patience {
                let lr = run.learning_rate()?;
                if lr > self.min_lr as f32 as f64 {
                    run.set_learning_rate((lr * self.factor).max(self.min_lr))?;
                    self.cooldown_left = self.cooldown;
                    self.wait = 0;
                }
            }
        }
        Ok(())
    }
}

super::monitor::monitor_builders!(ReduceLROnPlateau);
