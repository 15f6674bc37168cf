//! Keras's `Lambda`: a function of the graph as a layer, for an op no layer offers (a maximum
//! or minimum over any axes, `stop_gradient`, a score of one's own) without writing a
//! [`Layer`]. The function sees Keras's shapes (batch first) and builds with the ir's ops, so
//! its gradient, fusion and compilation come with them.
use std::any::Any;
use std::fmt;
use std::sync::Arc;

use trellis_ir::{Graph, NodeId};

use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::{NnError, Result};

/// What a [`Lambda`] runs: the inputs' nodes (batch-major) to the output's.
pub type LambdaFn = dyn Fn(&mut Graph, &[NodeId]) -> trellis_ir::Result<NodeId> + Send + Sync;

/// A layer computing `f(inputs)` with the ir's graph builders, without weights:
/// `Lambda::new(|g, x| g.max(x, &[1], false))` is a maximum over the steps of `[B, T, F]`.
/// Like Keras's, it drops its input's mask unless told the output keeps the steps
/// ([`Lambda::with_mask_kept`]), and a saved model cannot describe it (its code is not data):
/// [`Model::save_model`](crate::Model::save_model) refuses by name; `save` keeps the weights
/// of the other layers.
#[derive(Clone)]
pub struct Lambda {
    f: Arc<LambdaFn>,
    inputs: usize,
    keep_mask: bool,
}

impl fmt::Debug for Lambda {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lambda")
            .field("inputs", &self.inputs)
            .field("keep_mask", &self.keep_mask)
            .finish_non_exhaustive()
    }
}

impl Lambda {
    /// A function of one input.
    pub fn new(
        f: impl Fn(&mut Graph, NodeId) -> trellis_ir::Result<NodeId> + Send + Sync + 'static,
    ) -> Self {
        Lambda {
            f: Arc::new(move |g: &mut Graph, xs: &[NodeId]| f(g, xs[0])),
            inputs: 1,
            keep_mask: false,
        }
    }

    /// A function of `inputs` inputs (a functional model's `layer.call([&a, &b])`).
    pub fn of_inputs(
        inputs: usize,
        f: impl Fn(&mut Graph, &[NodeId]) -> trellis_ir::Result<NodeId> + Send + Sync + 'static,
    ) -> Self {
        Lambda {
            f: Arc::new(f),
            inputs: inputs.max(1),
            keep_mask: false,
        }
    }

    /// The output keeps the first input's steps (`[B, T, ..]` in, `[B, T, ..]` out), so its
    /// mask passes on (Keras's `mask` argument); an output of another shape is refused.
    pub fn with_mask_kept(mut self) -> Self {
        self.keep_mask = true;
        self
    }
}

impl Layer for Lambda {
    fn kind(&self) -> &'static str {
        "lambda"
    }
    fn params(&self, _: &Scope, _: usize) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], ctx: &mut BuildCtx) -> Result<Act> {
        let mut out = self.build_many(g, &[x], params, ctx)?;
        Ok(out.remove(0))
    }
    fn num_inputs(&self) -> (usize, usize) {
        (self.inputs, self.inputs)
    }
    fn build_many(
        &self,
        g: &mut Graph,
        xs: &[Act],
        _: &[NodeId],
        _: &mut BuildCtx,
    ) -> Result<Vec<Act>> {
        if xs.len() != self.inputs {
            return Err(NnError::Model(format!(
                "lambda: takes {} input(s), called on {}",
                self.inputs,
                xs.len()
            )));
        }
        let xs = xs
            .iter()
            .map(|x| x.batch_major(g))
            .collect::<Result<Vec<Act>>>()?;
        let nodes: Vec<NodeId> = xs.iter().map(|x| x.node).collect();
        let y = (self.f)(g, &nodes).map_err(|e| NnError::Model(format!("lambda: {e}")))?;
        let mut out = Act::new(y, Layout::BatchMajor);
        if let (true, Some(mask)) = (self.keep_mask, xs[0].mask) {
            let (din, dout) = (g.ty(nodes[0]).dims(), g.ty(y).dims());
            if dout.len() < 2 || din[..2] != dout[..2] {
                return Err(NnError::Shape(format!(
                    "lambda: keeps its input's mask, so its output must keep the steps \
                     ({:?} first), got {dout:?}",
                    &din[..2]
                )));
            }
            out.mask = Some(mask);
        }
        Ok(vec![out])
    }
    fn config(&self) -> Option<LayerConfig> {
        None
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
