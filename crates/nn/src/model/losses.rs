//! [`Losses`]: the loss of each model output and its weight (Keras's `loss=[...]` with
//! `loss_weights=[...]`); the model minimises `sum_o weight_o * loss_o`.
use serde::{Deserialize, Serialize};

use crate::losses::Loss;
use crate::{NnError, Result};

/// A loss per output, each with a weight. From one [`Loss`]: that loss, weight 1, for every
/// output (as Keras applies a single loss to each output).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Losses {
    pub losses: Vec<Loss>,
    /// One per loss; all 1 when not given.
    pub weights: Vec<f32>,
}

impl Losses {
    /// One loss per output, in the order of `Model::new`'s outputs, weight 1 each.
    pub fn new(losses: &[Loss]) -> Self {
        Losses {
            losses: losses.to_vec(),
            weights: vec![1.0; losses.len()],
        }
    }
    /// The weight of each output's loss (Keras's `loss_weights`).
    pub fn with_weights(mut self, weights: &[f32]) -> Self {
        self.weights = weights.to_vec();
        self
    }

    /// One loss and weight per output of a model with `outputs` outputs, or an error naming
    /// what does not match.
    pub(crate) fn for_outputs(self, outputs: usize) -> Result<Losses> {
        if self.weights.len() != self.losses.len() {
            return Err(NnError::InvalidArgument {
                name: "loss_weights",
                value: format!("{:?}", self.weights),
                message: format!("needs one weight per loss ({})", self.losses.len()),
            });
        }
        if let Some(w) = self.weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
            return Err(NnError::InvalidArgument {
                name: "loss_weights",
                value: w.to_string(),
                message: "weights must be finite and not negative".into(),
            });
        }
        match self.losses.len() {
            1 if outputs > 1 => Ok(Losses {
                losses: vec![self.losses[0]; outputs],
                weights: vec![self.weights[0]; outputs],
            }),
            n if n == outputs => Ok(self),
            n => Err(NnError::Model(format!(
                "compile: {n} losses for a model with {outputs} outputs: give one loss, or one \
                 per output"
            ))),
        }
    }
}

impl From<Loss> for Losses {
    fn from(l: Loss) -> Self {
        Losses::new(&[l])
    }
}

impl<const N: usize> From<[Loss; N]> for Losses {
    fn from(l: [Loss; N]) -> Self {
        Losses::new(&l)
    }
}
