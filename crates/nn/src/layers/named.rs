//! `layer.named("fc")`: a layer whose parameters live under a module name the user chose, so
//! any PyTorch state dict loads (`fc.weight` for a head called `fc`), whatever the layer's
//! place in the model.
use std::any::Any;

use trellis_ir::{Graph, NodeId};

use super::{Act, BuildCtx, Layer, LayerConfig, ParamSpec, Scope};
use crate::Result;

/// A layer under a chosen module name. Consecutive layers of one name that stack (as
/// `torch.nn.LSTM(num_layers=2)` stacks) share it: `rnn.weight_ih_l0`, `rnn.weight_ih_l1`.
#[derive(Debug)]
pub struct Named {
    pub layer: Box<dyn Layer>,
    pub name: String,
}

/// Gives any layer (or layer config) a module name: `Dense::new(1, Sigmoid).named("fc")`.
pub trait Name {
    fn named(self, name: impl Into<String>) -> Named;
}

impl<T: Into<Box<dyn Layer>>> Name for T {
    fn named(self, name: impl Into<String>) -> Named {
        Named {
            layer: self.into(),
            name: name.into(),
        }
    }
}

impl Layer for Named {
    fn kind(&self) -> &'static str {
        self.layer.kind()
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        self.layer.params(scope, in_features)
    }
    fn params_for(&self, scope: &Scope, widths: &[usize]) -> Vec<ParamSpec> {
        self.layer.params_for(scope, widths)
    }
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], ctx: &mut BuildCtx) -> Result<Act> {
        self.layer.build(g, x, params, ctx)
    }
    fn num_inputs(&self) -> (usize, usize) {
        self.layer.num_inputs()
    }
    fn num_outputs(&self) -> usize {
        self.layer.num_outputs()
    }
    fn build_many(
        &self,
        g: &mut Graph,
        xs: &[Act],
        params: &[NodeId],
        ctx: &mut BuildCtx,
    ) -> Result<Vec<Act>> {
        self.layer.build_many(g, xs, params, ctx)
    }
    fn stacks_on(&self, prev: &dyn Layer) -> bool {
        self.layer.stacks_on(prev)
    }
    fn takes_ids(&self) -> bool {
        self.layer.takes_ids()
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Named {
            name: self.name.clone(),
            layer: Box::new(self.layer.config()?),
        })
    }
    /// The wrapped layer's, so that code asking "is this an embedding?" sees through the name.
    fn as_any(&self) -> &dyn Any {
        self.layer.as_any()
    }
}
