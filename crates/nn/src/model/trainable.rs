//! Keras's `layer.trainable = False`: a frozen layer's parameters stay fixed in training (a
//! pretrained embedding, a pretrained encoder) but still feed the forward pass. The training
//! graph differentiates and updates only the trainable parameters.
use super::Model;
use crate::{NnError, Result};

impl Model {
    /// Freezes (`false`) or unfreezes layer `layer` (its index in [`Model::layers`]; Keras's
    /// `model.layers[i].trainable = ...`). Takes effect at the next `fit` or `evaluate` (a
    /// frozen layer's weight penalties leave the loss): the plans are rebuilt, weights and
    /// optimiser state are kept.
    pub fn set_trainable(&mut self, layer: usize, trainable: bool) -> Result<()> {
        let n = self.topo.layers.len();
        if layer >= n {
            return Err(NnError::InvalidArgument {
                name: "layer",
                value: layer.to_string(),
                message: format!("the model has {n} layers (0..{n})"),
            });
        }
        let changed = if trainable {
            self.frozen.remove(&layer)
        } else {
            self.frozen.insert(layer)
        };
        if changed {
            self.train = None;
            self.infer = None;
        }
        Ok(())
    }

    /// Whether layer `layer` trains (every layer does until [`Model::set_trainable`]).
    pub fn is_trainable(&self, layer: usize) -> bool {
        !self.frozen.contains(&layer)
    }

    /// Whether each of [`Model::param_specs`] trains (once built): a trainable parameter of a
    /// layer that is not frozen.
    pub(super) fn trains_param(&self) -> Vec<bool> {
        let mut t: Vec<bool> = self.specs.iter().map(|s| s.trainable).collect();
        for &l in &self.frozen {
            if let Some(r) = self.layer_params.get(l) {
                t[r.clone()].iter_mut().for_each(|v| *v = false);
            }
        }
        t
    }
}
