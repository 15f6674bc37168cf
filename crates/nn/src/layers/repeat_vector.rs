//! `RepeatVector(n)`: a vector `[B, F]` repeated `n` times into a sequence `[B, n, F]`
//! (Keras's layer), the bridge from an encoder's last state to a decoder that reads it at
//! every step (Keras's seq2seq addition example).
use std::any::Any;

use trellis_ir::{Graph, NodeId, Shape};

use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::{NnError, Result};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RepeatVector {
    pub n: usize,
}

impl RepeatVector {
    pub fn new(n: usize) -> Self {
        RepeatVector { n }
    }
}

impl Layer for RepeatVector {
    fn kind(&self) -> &'static str {
        "repeat_vector"
    }
    fn out_features(&self, in_features: usize) -> usize {
        in_features
    }
    fn params(&self, _: &Scope, _: usize) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn build(&self, g: &mut Graph, x: Act, _: &[NodeId], _: &mut BuildCtx) -> Result<Act> {
        if self.n == 0 {
            return Err(NnError::InvalidArgument {
                name: "repeat_vector",
                value: "RepeatVector(0)".into(),
                message: "the number of repeats must be positive".into(),
            });
        }
        let ty = g.ty(x.node).clone();
        if ty.rank() != 2 || x.layout != Layout::BatchMajor {
            return Err(NnError::Shape(format!(
                "repeat_vector: input must be a vector per sample [batch, features], got {ty}"
            )));
        }
        let (b, f) = (ty.dims()[0], ty.dims()[1]);
        // Time-major [n, B, F] (what the recurrent layers read): a broadcast, i.e. a view.
        let row = g.reshape(x.node, [1, b, f])?;
        let seq = g.broadcast_to(row, &Shape::new(&[self.n, b, f]))?;
        Ok(Act::new(seq, Layout::TimeMajor))
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::RepeatVector(self.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
