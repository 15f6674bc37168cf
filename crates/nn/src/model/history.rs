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
    /// The base learning rate at the epoch's end (Keras logs it as `learning_rate`).
    pub learning_rate: Option<f64>,
    /// The other metrics by their Keras names (`precision`, `auc`, ...; validation ones as
    /// `val_precision`, ...), in the order compiled.
    pub metrics: Vec<(String, f64)>,
}

impl EpochLog {
    /// A figure by its Keras name: `loss`, `accuracy`, `val_loss`, `learning_rate`, a
    /// metric's name or `val_` and a metric's name.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => Some(self.loss),
            "accuracy" => self.accuracy,
            "val_loss" => self.val_loss,
            "val_accuracy" => self.val_accuracy,
            "learning_rate" => self.learning_rate,
            _ => self.metrics.iter().find(|m| m.0 == name).map(|m| m.1),
        }
    }
    /// The names [`EpochLog::get`] answers, training figures before validation ones.
    pub fn names(&self) -> Vec<String> {
        let fixed = [
            ("loss", Some(self.loss)),
            ("accuracy", self.accuracy),
            ("learning_rate", self.learning_rate),
        ];
        let val = [
            ("val_loss", self.val_loss),
            ("val_accuracy", self.val_accuracy),
        ];
        let named = |v: &[(&str, Option<f64>)]| -> Vec<String> {
            v.iter()
                .filter(|p| p.1.is_some())
                .map(|p| p.0.to_string())
                .collect()
        };
        let (val_m, train_m): (Vec<_>, Vec<_>) = self
            .metrics
            .iter()
            .map(|m| m.0.clone())
            .partition(|n| n.starts_with("val_"));
        [named(&fixed), train_m, named(&val), val_m].concat()
    }
}

/// What [`Model::fit`] returns.
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
    /// A figure per epoch by its Keras name (epochs that do not log it are left out).
    pub fn get(&self, name: &str) -> Vec<f64> {
        self.epochs.iter().filter_map(|e| e.get(name)).collect()
    }
    pub fn last(&self) -> Option<&EpochLog> {
        self.epochs.last()
    }
}

/// What [`Model::evaluate`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: Option<f64>,
    /// The other compiled metrics by their Keras names, in the order compiled.
    pub metrics: Vec<(String, f64)>,
}

impl Evaluation {
    /// A figure by its Keras name (`loss`, `accuracy`, a metric's name).
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => Some(self.loss),
            "accuracy" => self.accuracy,
            _ => self.metrics.iter().find(|m| m.0 == name).map(|m| m.1),
        }
    }
}
