//! The options of `fit` (Keras's arguments and defaults).
use std::collections::HashMap;
use std::path::PathBuf;

use super::{Inputs, Targets};
use crate::{NnError, Result};

/// Options of [`Sequential::fit`] (Keras's arguments and defaults).
#[derive(Clone, Debug)]
pub struct FitOptions<'a> {
    pub epochs: usize,
    pub batch_size: usize,
    /// Fraction of the samples, taken from the end before shuffling (as Keras), held out for
    /// validation. Ignored when `validation_data` is given.
    pub validation_split: f32,
    pub validation_data: Option<(Inputs<'a>, Targets<'a>)>,
    /// Shuffle the training samples every epoch (with `seed + epoch`).
    pub shuffle: bool,
    /// Seeds the shuffling and the dropout masks.
    pub seed: u64,
    /// A progress bar per epoch (when stderr is a terminal) and a summary line per epoch.
    pub verbose: bool,
    /// Save a checkpoint here after every epoch (a [`ModelCheckpoint`] saving weights and
    /// optimiser state).
    ///
    /// [`ModelCheckpoint`]: crate::callbacks::ModelCheckpoint
    pub checkpoint: Option<PathBuf>,
    /// Stop at the first non-finite loss with an error, the model keeping its weights from
    /// before that batch ([`TerminateOnNaN`], default on). Off, a diverged run trains on
    /// and its history shows the NaN.
    ///
    /// [`TerminateOnNaN`]: crate::callbacks::TerminateOnNaN
    pub terminate_on_nan: bool,
    /// A weight per class (Keras's `class_weight`): each training sample's (or step's) loss is
    /// scaled by its label's weight; classes not listed weigh 1. The class of a label: the id
    /// (sparse), the rounded label (one unit) or the argmax (one-hot).
    pub class_weight: Option<HashMap<usize, f32>>,
    /// A weight per training sample (`n` values) or per output step (`n * T`), Keras's
    /// `sample_weight`, multiplying `class_weight`. The batch loss is `sum(w l) / rows`, as
    /// Keras's `sum_over_batch_size`; with an output mask it is `sum(w l m) / sum(w m)`.
    pub sample_weight: Option<Vec<f32>>,
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
            terminate_on_nan: true,
            class_weight: None,
            sample_weight: None,
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
    pub fn with_validation_data(
        mut self,
        x: impl Into<Inputs<'a>>,
        y: impl Into<Targets<'a>>,
    ) -> Self {
        self.validation_data = Some((x.into(), y.into()));
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

    pub fn with_class_weight(mut self, w: impl IntoIterator<Item = (usize, f32)>) -> Self {
        self.class_weight = Some(w.into_iter().collect());
        self
    }
    pub fn with_sample_weight(mut self, w: impl Into<Vec<f32>>) -> Self {
        self.sample_weight = Some(w.into());
        self
    }
    pub fn with_terminate_on_nan(mut self, yes: bool) -> Self {
        self.terminate_on_nan = yes;
        self
    }

    /// Refuses a zero batch size and a validation split outside `[0, 1)`.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(NnError::InvalidArgument {
                name: "batch_size",
                value: "0".into(),
                message: "must be positive".into(),
            });
        }
        if !(0.0..1.0).contains(&self.validation_split) {
            return Err(NnError::InvalidArgument {
                name: "validation_split",
                value: self.validation_split.to_string(),
                message: "must be in [0, 1)".into(),
            });
        }
        Ok(())
    }
}
