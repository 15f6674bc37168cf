//! The figure a callback watches (`monitor`, `mode`, `min_delta`), shared by EarlyStopping,
//! ModelCheckpoint and ReduceLROnPlateau so that "improved" means one thing.
use super::Run;
use crate::model::EpochLog;
use crate::{NnError, Result};

/// The builder methods of a callback's [`Monitor`] (its `monitor` field): `with_monitor`,
/// `with_mode`, `with_min_delta`, written once for every callback that watches a figure.
macro_rules! monitor_builders {
    ($t:ty) => {
        impl $t {
            /// The figure to watch, by its Keras name (`"val_loss"`, `"accuracy"`, ...).
            pub fn with_monitor(mut self, name: &str) -> Self {
                self.monitor.name = name.to_string();
                self
            }
            pub fn with_mode(mut self, mode: $crate::callbacks::Mode) -> Self {
                self.monitor.mode = mode;
                self
            }
            /// The least change that counts as an improvement.
            pub fn with_min_delta(mut self, d: f64) -> Self {
                self.monitor.min_delta = d;
                self
            }
        }
    };
}
pub(crate) use monitor_builders;

/// Whether a smaller or larger value of the monitored figure is better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Read from the name: losses and perplexity are minimised; accuracy, precision, recall,
    /// F1 and AUC maximised; any other name is an error.
    #[default]
    Auto,
    Min,
    Max,
}

/// The metric a logged name is of: `val_` and a multi-output model's `output{o}_` stripped
/// (`"val_output1_auc"` is an AUC).
fn metric_base(name: &str) -> &str {
    let base = name.strip_prefix("val_").unwrap_or(name);
    match base.strip_prefix("output").and_then(|r| r.split_once('_')) {
        Some((o, rest)) if !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => base,
    }
}

/// A figure of the epoch logs by its Keras name (`"val_loss"`, `"accuracy"`, ...), which way
/// it improves, and by how much it must change to count (Keras's `min_delta`).
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    pub name: String,
    pub mode: Mode,
    pub min_delta: f64,
}

impl Monitor {
    pub fn new(name: &str) -> Self {
        Monitor {
            name: name.to_string(),
            mode: Mode::Auto,
            min_delta: 0.0,
        }
    }

    /// Whether larger is better; an `Auto` mode that the name does not settle is an error.
    pub fn maximises(&self) -> Result<bool> {
        match self.mode {
            Mode::Min => Ok(false),
            Mode::Max => Ok(true),
            Mode::Auto => {
                let base = metric_base(&self.name);
                if base.ends_with("loss") || base == "perplexity" {
                    Ok(false)
                } else if ["accuracy", "precision", "recall", "f1", "auc"]
                    .iter()
                    .any(|m| base.starts_with(m) || base.starts_with("top_k"))
                {
                    Ok(true)
                } else {
                    Err(NnError::InvalidArgument {
                        name: "mode",
                        value: "Auto".into(),
                        message: format!(
                            "cannot tell whether `{}` improves up or down: set Mode::Min or \
                             Mode::Max",
                            self.name
                        ),
                    })
                }
            }
        }
    }

    /// Checks the settings and that the run logs the figure, when training begins (so a
    /// typo or a missing validation set fails before the first epoch, not after it).
    pub fn validate(&self, who: &str, run: &Run) -> Result<()> {
        self.check(who, run.logged(), |n| run.logged().iter().any(|l| l == n))?;
        self.validate_settings()
    }

    fn validate_settings(&self) -> Result<()> {
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return Err(NnError::InvalidArgument {
                name: "min_delta",
                value: self.min_delta.to_string(),
                message: "must be finite and non-negative".into(),
            });
        }
        self.maximises().map(drop)
    }

    /// The monitored value in `log` (checked by [`Monitor::validate`] to be there).
    pub fn value(&self, log: &EpochLog, who: &str) -> Result<f64> {
        self.check(who, &log.names(), |n| log.get(n).is_some())?;
        Ok(log.get(&self.name).unwrap_or(f64::NAN))
    }

    /// A name the run does not log is an error listing the names it does (Keras only warns,
    /// and the callback then silently does nothing).
    fn check(&self, who: &str, logged: &[String], has: impl Fn(&str) -> bool) -> Result<()> {
        if has(&self.name) {
            return Ok(());
        }
        let hint = if self.name.starts_with("val_") {
            " (validation figures need validation_data or validation_split)"
        } else {
            ""
        };
        Err(NnError::InvalidArgument {
            name: "monitor",
            value: self.name.clone(),
            message: format!(
                "{who} watches a figure this run does not log{hint}; it logs: {}",
                logged.join(", ")
            ),
        })
    }

    /// Whether `current` improves on `best` by more than `min_delta` (Keras's
    /// `_is_improvement`; a NaN never improves, anything improves on no best).
    pub fn improves(&self, current: f64, best: Option<f64>) -> Result<bool> {
        let Some(best) = best else {
            return Ok(!current.is_nan());
        };
        Ok(if self.maximises()? {
            current - self.min_delta > best
        } else {
            current + self.min_delta < best
        })
    }
}
