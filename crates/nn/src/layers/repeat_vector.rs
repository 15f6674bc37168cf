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

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_ir::interp::{run, Feeds, Precision};
    use trellis_ir::{Tensor, TensorType};

    #[test]
    fn repeats_each_sample_n_times_time_major_and_refuses_bad_input() {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32([2, 3]));
        let mut ctx = BuildCtx::default();
        let rv = RepeatVector::new(4);
        let y = rv
            .build(&mut g, Act::new(x, Layout::BatchMajor), &[], &mut ctx)
            .unwrap();
        assert_eq!(y.layout, Layout::TimeMajor);
        assert_eq!(g.ty(y.node).dims(), [4, 2, 3]);
        let xs = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let feeds: Feeds = [(x, Tensor::f32([2, 3], xs.clone()).unwrap())].into();
        let out = run(&g, &feeds, &[y.node], Precision::F32).unwrap();
        assert_eq!(out[0].to_f32_vec(), xs.repeat(4));

        let seq = g.input("seq", TensorType::f32([2, 5, 3]));
        let e = rv
            .build(&mut g, Act::new(seq, Layout::BatchMajor), &[], &mut ctx)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[batch, features]") && e.contains("[2, 5, 3]"),
            "{e}"
        );
        let e = RepeatVector::new(0)
            .build(&mut g, Act::new(x, Layout::BatchMajor), &[], &mut ctx)
            .unwrap_err()
            .to_string();
        assert!(e.contains("RepeatVector(0)"), "{e}");
    }
}
