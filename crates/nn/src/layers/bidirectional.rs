//! `Bidirectional(layer)`: a recurrent layer run forward and, with its own weights, backward
//! over the sequence; the two outputs merged (Keras's wrapper, PyTorch's `bidirectional=True`
//! parameter names: the backward direction's end in `_reverse`).
use std::any::Any;

use trellis_ir::lstm::Direction;
use trellis_ir::{Graph, NodeId};

use super::recurrent::{check_sequence, output, Recurrent};
use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::Result;

/// How the two directions' outputs combine (Keras's `merge_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Merge {
    /// Forward features, then backward ones (`2 * units` wide).
    #[default]
    Concat,
    Sum,
    /// The mean of the two.
    Ave,
    Mul,
}

/// Runs `layer` in both directions. With masking, the backward direction starts at each
/// sequence's own last real step; without `return_sequences`, the output is the forward
/// direction's last state beside the backward direction's state after the first step.
#[derive(Debug)]
pub struct Bidirectional {
    pub layer: Box<dyn Recurrent>,
    pub merge: Merge,
}

impl Bidirectional {
    pub fn new(layer: impl Recurrent + 'static) -> Self {
        Bidirectional {
            layer: Box::new(layer),
            merge: Merge::Concat,
        }
    }
    pub fn with_merge(mut self, merge: Merge) -> Self {
        self.merge = merge;
        self
    }

    fn merge(&self, g: &mut Graph, f: NodeId, b: NodeId) -> Result<NodeId> {
        Ok(match self.merge {
            Merge::Concat => {
                let axis = g.ty(f).rank() - 1;
                g.concat(&[f, b], axis)?
            }
            Merge::Sum => g.add(f, b)?,
            Merge::Ave => {
                let s = g.add(f, b)?;
                let half = g.scalar_like(s, 0.5)?;
                g.mul(s, half)?
            }
            Merge::Mul => g.mul(f, b)?,
        })
    }
}

impl Layer for Bidirectional {
    fn kind(&self) -> &'static str {
        self.layer.kind()
    }
    fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        let forward = self.layer.params(scope, in_features);
        let backward: Vec<ParamSpec> = forward
            .iter()
            .map(|p| ParamSpec {
                name: format!("{}_reverse", p.name),
                ..p.clone()
            })
            .collect();
        forward.into_iter().chain(backward).collect()
    }
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], ctx: &mut BuildCtx) -> Result<Act> {
        check_sequence(g, "bidirectional", &x)?;
        let (fp, bp) = params.split_at(params.len() / 2);
        // Each direction draws its own dropout masks (Keras copies the layer for the backward
        // direction).
        let (fseq, fstate) = self
            .layer
            .unroll(g, &x, fp, Direction::Forward, None, ctx)?;
        let (bseq, bstate) = self
            .layer
            .unroll(g, &x, bp, Direction::Reverse, None, ctx)?;
        if self.layer.return_sequences() {
            let seq = self.merge(g, fseq, bseq)?;
            Ok(output(&x, seq, seq, true))
        } else {
            let last = self.merge(g, fstate[0], bstate[0])?;
            Ok(Act::new(last, Layout::BatchMajor))
        }
    }
    fn stacks_on(&self, prev: &dyn Layer) -> bool {
        prev.as_any()
            .downcast_ref::<Bidirectional>()
            .is_some_and(|p| p.layer.kind() == self.layer.kind() && p.layer.return_sequences())
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Bidirectional {
            layer: Box::new(self.layer.config()?),
            merge: self.merge,
        })
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
