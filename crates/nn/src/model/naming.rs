//! Declaring the parameters: each layer's names (PyTorch state-dict names with Keras's
//! numbering of repeated layers; stacked recurrent layers share a module), shapes and initial
//! values, and the optimiser state that goes with them.
//!
//! Names follow the PyTorch state dict of the equivalent model, with Keras's numbering of
//! repeated layers: the first module of a kind is `embedding`, `lstm`, `dense`; later modules
//! of that kind are `dense_1`, `dense_2`, ... An LSTM that directly follows an LSTM with
//! `return_sequences` stacks onto it as the next layer of the same module (as
//! `torch.nn.LSTM(num_layers=k)`): `lstm.weight_ih_l0`, then `lstm.weight_ih_l1`. Any layer in
//! between (a dropout, say) starts a new module (`lstm_1.weight_ih_l0`).
use std::collections::HashMap;

use super::Sequential;
use crate::data::SplitMix64;
use crate::layers::{ParamSpec, Scope};
use crate::{NnError, Result};

impl Sequential {
    /// Declares and initialises the parameters (done by `compile` when the first layer is an
    /// embedding or the input shape is set, else by the first `fit`). Idempotent.
    pub fn build(&mut self) -> Result<()> {
        if !self.specs.is_empty() || self.layers.is_empty() {
            if self.layers.is_empty() {
                return Err(NnError::Model("the model has no layers".into()));
            }
            return Ok(());
        }
        let mut features = if self.takes_ids() {
            0
        } else {
            match &self.input_shape {
                Some(s) if !s.is_empty() => *s.last().expect("non-empty"),
                _ => {
                    return Err(NnError::Model(
                        "the input shape is unknown: call with_input_shape (or fit) first".into(),
                    ))
                }
            }
        };
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        let mut scope: Option<Scope> = None;
        let mut specs = Vec::new();
        let mut ranges = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            if i > 0 && l.takes_ids() {
                return Err(NnError::Model(format!(
                    "layer {i} ({}) takes token ids: only the first layer can",
                    l.kind()
                )));
            }
            // A layer stacks onto the one before it only under the same name (or none).
            let stacked =
                i > 0 && l.name() == self.layers[i - 1].name() && l.stacks_on(&*self.layers[i - 1]);
            let s = match (&scope, stacked) {
                (Some(prev), true) => Scope {
                    module: prev.module.clone(),
                    index: prev.index + 1,
                },
                _ if l.name().is_some() => Scope {
                    module: l.name().unwrap_or_default().to_string(),
                    index: 0,
                },
                _ => {
                    let c = counts.entry(l.kind()).or_default();
                    let module = if *c == 0 {
                        l.kind().to_string()
                    } else {
                        format!("{}_{c}", l.kind())
                    };
                    *c += 1;
                    Scope { module, index: 0 }
                }
            };
            let p = l.params(&s, features);
            if let Some(z) = p.iter().find(|p| p.shape.contains(&0)) {
                return Err(NnError::Model(format!(
                    "layer {i} ({}): parameter {} has shape {:?}: sizes must be positive",
                    l.kind(),
                    z.name,
                    z.shape
                )));
            }
            if let Some(dup) = p
                .iter()
                .find(|q| specs.iter().any(|s: &ParamSpec| s.name == q.name))
            {
                return Err(NnError::Model(format!(
                    "layer {i} ({}): a parameter named {} exists already: give the layers \
                     different names",
                    l.kind(),
                    dup.name
                )));
            }
            ranges.push(specs.len()..specs.len() + p.len());
            specs.extend(p);
            features = l.out_features(features);
            scope = Some(s);
        }
        let states = self
            .compiled
            .as_ref()
            .map_or(0, |c| c.optimizer.state_names().len());
        crate::memory::check_params(&specs, states, self.memory_limit)?;
        let mut rng = SplitMix64::new(self.seed);
        self.weights = specs
            .iter()
            .map(|s| s.init.sample(&s.shape, &mut rng))
            .collect();
        self.specs = specs;
        self.layer_params = ranges;
        self.init_opt_state();
        Ok(())
    }

    /// Zero optimiser state for every parameter that has none yet (compiled and built).
    pub(super) fn init_opt_state(&mut self) {
        let Some(c) = &self.compiled else { return };
        for s in &self.specs {
            for st in c.optimizer.state_names() {
                let n: usize = s.shape.iter().product();
                self.opt_state
                    .entry(format!("optimizer.{st}.{}", s.name))
                    .or_insert_with(|| vec![0.0; n]);
            }
        }
    }
}
