//! What `fit` and `evaluate` return: per-epoch figures and the evaluation.

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
