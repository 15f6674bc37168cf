//! `TimeDistributed(layer)` (Keras's wrapper): a layer applied to every step of a sequence on
//! its own, with one set of weights — the sequence `[B, T, F]` is seen as `B·T` rows, the layer
//! runs once on them, and its output is folded back into steps. (`Dense` and the per-feature
//! layers already act on every step; the wrapper is for code written the Keras way and for any
//! layer that takes rows.)
use std::any::Any;

use trellis_ir::{Graph, NodeId};

use super::recurrent::check_sequence;
use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::Result;

#[derive(Debug)]
pub struct TimeDistributed {
    pub layer: Box<dyn Layer>,
}

impl TimeDistributed {
    pub fn new(layer: impl Into<Box<dyn Layer>>) -> Self {
        TimeDistributed {
            layer: layer.into(),
        }
    }
}

impl Layer for TimeDistributed {
    fn kind(&self) -> &'static str {
        "time_distributed"
    }
    fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        self.layer.params(scope, in_features)
    }
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], ctx: &mut BuildCtx) -> Result<Act> {
        check_sequence(g, self.kind(), &x)?;
        let dims = g.ty(x.node).dims().to_vec();
        let rows = g.reshape(x.node, [dims[0] * dims[1], dims[2]])?;
        let y = self
            .layer
            .build(g, Act::new(rows, Layout::BatchMajor), params, ctx)?;
        // Rows back into steps, in the input's layout: `[d0, d1, rest..]`.
        let unfold = |g: &mut Graph, n: NodeId| -> Result<NodeId> {
            let mut out = dims[..2].to_vec();
            out.extend(&g.ty(n).dims()[1..]);
            Ok(g.reshape(n, out.as_slice())?)
        };
        let node = unfold(g, y.node)?;
        let logits = match y.logits {
            Some((z, act)) => Some((unfold(g, z)?, act)),
            None => None,
        };
        Ok(Act {
            logits,
            ..x.with_node(node)
        })
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::TimeDistributed {
            layer: Box::new(self.layer.config()?),
        })
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
