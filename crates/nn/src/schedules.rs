//! Learning-rate schedules: the base learning rate as a function of the optimiser step (Keras's
//! `keras.optimizers.schedules`). A [`LearningRateScheduler`](crate::callbacks::LearningRateScheduler)
//! feeds one to the compiled step before every update; the rate is an input of the step, so a
//! schedule never recompiles.
use crate::{NnError, Result};

/// A learning rate per optimiser step (`step` counts the updates done before this one, from 0,
/// over the model's life: it continues after a resume).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LrSchedule {
    /// `initial * decay_rate ^ (step / decay_steps)` (the exponent floored when `staircase`):
    /// Keras's `ExponentialDecay`.
    ExponentialDecay {
        initial: f64,
        decay_steps: u64,
        decay_rate: f64,
        staircase: bool,
    },
    /// `initial * drop ^ floor(step / every)`: the rate drops by `drop` every `every` steps.
    StepDecay { initial: f64, drop: f64, every: u64 },
    /// Keras's `CosineDecay`: a linear warm-up from `initial` to `warmup_target` over
    /// `warmup_steps` (none when `warmup_steps` is 0), then from the peak (`warmup_target`, or
    /// `initial` without warm-up) `peak * ((1 - alpha) * 0.5 (1 + cos(pi s / decay_steps)) +
    /// alpha)` with `s = min(step - warmup_steps, decay_steps)`.
    CosineDecay {
        initial: f64,
        decay_steps: u64,
        alpha: f64,
        warmup_steps: u64,
        warmup_target: Option<f64>,
    },
}

impl LrSchedule {
    pub fn exponential(initial: f64, decay_steps: u64, decay_rate: f64) -> Self {
        LrSchedule::ExponentialDecay {
            initial,
            decay_steps,
            decay_rate,
            staircase: false,
        }
    }
    pub fn step_decay(initial: f64, drop: f64, every: u64) -> Self {
        LrSchedule::StepDecay {
            initial,
            drop,
            every,
        }
    }
    /// Cosine decay to `alpha * initial` over `decay_steps`, without warm-up.
    pub fn cosine(initial: f64, decay_steps: u64, alpha: f64) -> Self {
        LrSchedule::CosineDecay {
            initial,
            decay_steps,
            alpha,
            warmup_steps: 0,
            warmup_target: None,
        }
    }
    /// Cosine decay after a linear warm-up from `initial` to `target` over `warmup_steps`.
    pub fn cosine_with_warmup(
        initial: f64,
        target: f64,
        warmup_steps: u64,
        decay_steps: u64,
        alpha: f64,
    ) -> Self {
        LrSchedule::CosineDecay {
            initial,
            decay_steps,
            alpha,
            warmup_steps,
            warmup_target: Some(target),
        }
    }
    /// `ExponentialDecay` with the exponent floored (the rate changes every `decay_steps`).
    pub fn with_staircase(mut self, yes: bool) -> Self {
        if let LrSchedule::ExponentialDecay { staircase, .. } = &mut self {
            *staircase = yes;
        }
        self
    }

    /// The learning rate of the update after `step` updates.
    pub fn at(&self, step: u64) -> f64 {
        let s = step as f64;
        match *self {
            LrSchedule::ExponentialDecay {
                initial,
                decay_steps,
                decay_rate,
                staircase,
            } => {
                let p = s / decay_steps as f64;
                initial * decay_rate.powf(if staircase { p.floor() } else { p })
            }
            LrSchedule::StepDecay {
                initial,
                drop,
                every,
            } => initial * drop.powf((step / every) as f64),
            LrSchedule::CosineDecay {
                initial,
                decay_steps,
                alpha,
                warmup_steps,
                warmup_target,
            } => {
                let peak = warmup_target.unwrap_or(initial);
                if step < warmup_steps {
                    return initial + (peak - initial) * s / warmup_steps as f64;
                }
                let t = (step - warmup_steps).min(decay_steps) as f64 / decay_steps as f64;
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
                peak * ((1.0 - alpha) * cosine + alpha)
            }
        }
    }

    /// Refuses a schedule whose rate is not finite and non-negative, or that divides by a zero
    /// step count; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, value: String, message: &str| {
            Err(NnError::InvalidArgument {
                name,
                value,
                message: message.into(),
            })
        };
        let rate = |name: &'static str, v: f64| {
            if v.is_finite() && v >= 0.0 && v <= f32::MAX as f64 {
                Ok(())
            } else {
                bad(name, v.to_string(), "must be finite and non-negative")
            }
        };
        let steps = |name: &'static str, v: u64| {
            if v > 0 {
                Ok(())
            } else {
                bad(name, "0".into(), "must be positive")
            }
        };
        match *self {
            LrSchedule::ExponentialDecay {
                initial,
                decay_steps,
                decay_rate,
                ..
            } => {
                rate("initial", initial)?;
                steps("decay_steps", decay_steps)?;
                rate("decay_rate", decay_rate)
            }
            LrSchedule::StepDecay {
                initial,
                drop,
                every,
            } => {
                rate("initial", initial)?;
                steps("every", every)?;
                rate("drop", drop)
            }
            LrSchedule::CosineDecay {
                initial,
                decay_steps,
                alpha,
                warmup_target,
                ..
            } => {
                rate("initial", initial)?;
                steps("decay_steps", decay_steps)?;
                if !(0.0..=1.0).contains(&alpha) {
                    return bad("alpha", alpha.to_string(), "must be in [0, 1]");
                }
                warmup_target.map_or(Ok(()), |t| rate("warmup_target", t))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_match_keras_formulas() {
        let e = LrSchedule::exponential(0.1, 10, 0.5);
        assert_eq!(e.at(0), 0.1);
        assert!((e.at(5) - 0.1 * 0.5f64.sqrt()).abs() < 1e-15);
        assert_eq!(e.clone().with_staircase(true).at(19), 0.05);
        let s = LrSchedule::step_decay(1.0, 0.5, 3);
        assert_eq!([s.at(2), s.at(3), s.at(6)], [1.0, 0.5, 0.25]);
        let c = LrSchedule::cosine_with_warmup(0.0, 1.0, 4, 10, 0.1);
        assert_eq!([c.at(0), c.at(2), c.at(4)], [0.0, 0.5, 1.0]);
        // Half-way through the decay: (1 - alpha) / 2 + alpha; after it: alpha.
        assert!((c.at(9) - 0.55).abs() < 1e-15);
        assert!((c.at(14) - 0.1).abs() < 1e-15 && (c.at(100) - 0.1).abs() < 1e-15);
        assert!(LrSchedule::step_decay(1.0, 0.5, 0).validate().is_err());
        assert!(LrSchedule::cosine(1.0, 5, 2.0).validate().is_err());
        assert!(LrSchedule::exponential(f64::NAN, 5, 0.5)
            .validate()
            .is_err());
    }
}
