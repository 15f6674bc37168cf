//! Weight penalties (Keras's `kernel_regularizer=L2(0.01)` and kin): a layer attaches one to a
//! parameter's [`ParamSpec`], and the training step adds `l1 sum|w| + l2 sum w^2` of every
//! trainable parameter that has one to the loss, as Keras does (the reported loss includes
//! them, in training and in `evaluate`).
use trellis_ir::{Graph, NodeId};

use crate::layers::ParamSpec;
use crate::{NnError, Result};

/// `l1 sum|w| + l2 sum w^2` over a parameter's elements. Keras's `L2(0.01)` is
/// [`Regularizer::l2`]`(0.01)` (no factor 1/2; PyTorch's `weight_decay = 2 l2` under SGD).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Regularizer {
    pub l1: f32,
    pub l2: f32,
}

impl Regularizer {
    /// Keras's `L1(l1)`: `l1 sum|w|`.
    pub fn l1(l1: f32) -> Self {
        Regularizer { l1, l2: 0.0 }
    }
    /// Keras's `L2(l2)`: `l2 sum w^2`.
    pub fn l2(l2: f32) -> Self {
        Regularizer { l1: 0.0, l2 }
    }
    /// Keras's `L1L2(l1, l2)`: both.
    pub fn l1_l2(l1: f32, l2: f32) -> Self {
        Regularizer { l1, l2 }
    }

    /// An error naming `param` and the factor that is negative or not finite (checked when
    /// the model declares its parameters).
    pub(crate) fn check(self, param: &str) -> Result<()> {
        for (what, v) in [("l1", self.l1), ("l2", self.l2)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(NnError::Model(format!(
                    "{param}: regularizer {what} must be a finite number >= 0, got {v}"
                )));
            }
        }
        Ok(())
    }

    /// The penalty of `w` (a scalar node); `None` when both factors are 0.
    fn penalty(self, g: &mut Graph, w: NodeId) -> Result<Option<NodeId>> {
        let mut total = None;
        for (factor, square) in [(self.l1, false), (self.l2, true)] {
            if factor == 0.0 {
                continue;
            }
            let m = if square { g.mul(w, w)? } else { g.abs(w)? };
            let s = g.sum_all(m)?;
            let f = g.scalar_like(s, f64::from(factor))?;
            let p = g.mul(f, s)?;
            total = Some(match total {
                None => p,
                Some(t) => g.add(t, p)?,
            });
        }
        Ok(total)
    }
}

/// A recurrent layer's three penalties, Keras's `kernel_regularizer` (on `weight_ih`),
/// `recurrent_regularizer` (`weight_hh`) and `bias_regularizer`; flattened into the layer's
/// config, so a saved config names them as Keras does.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecurrentRegularizers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_regularizer: Option<Regularizer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrent_regularizer: Option<Regularizer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias_regularizer: Option<Regularizer>,
}

impl RecurrentRegularizers {
    /// Kernel, recurrent kernel, biases: the order `weight_specs` takes.
    pub(crate) fn in_order(&self) -> [Option<Regularizer>; 3] {
        [
            self.kernel_regularizer,
            self.recurrent_regularizer,
            self.bias_regularizer,
        ]
    }
}

/// `loss` plus the penalty of every parameter that has a regularizer and is trained
/// (`trains[i]`; a frozen or non-trainable parameter adds nothing, as in Keras). `params` are
/// the graph's parameter nodes in `specs` order. Without regularizers it is `loss` itself.
pub(crate) fn with_penalties(
    g: &mut Graph,
    loss: NodeId,
    specs: &[ParamSpec],
    params: &[NodeId],
    trains: &[bool],
) -> Result<NodeId> {
    let mut total = loss;
    for ((spec, &p), &trained) in specs.iter().zip(params).zip(trains) {
        let Some(r) = spec.regularizer.filter(|_| trained) else {
            continue;
        };
        if let Some(pen) = r.penalty(g, p)? {
            total = g.add(total, pen)?;
        }
    }
    Ok(total)
}
