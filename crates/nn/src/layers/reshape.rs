//! Layers that reshape or renormalise a value without parameters: `RepeatVector(n)`,
//! `Flatten`, `Reshape(shape)`, `Softmax(axis)` (Keras's).
use std::any::Any;

use trellis_ir::{Graph, NodeId, Shape};

use super::merge::axis_index;
use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::{NnError, Result};

/// Keras's `RepeatVector(n)`: `[B, F] -> [B, n, F]`, the vector at every step (a decoder's
/// input from an encoder's summary).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RepeatVector {
    pub n: usize,
}

impl RepeatVector {
    pub fn new(n: usize) -> Self {
        RepeatVector { n }
    }
}

/// Keras's `Flatten`: `[B, ...] -> [B, product]` (no mask passes it).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Flatten {}

impl Flatten {
    pub fn new() -> Self {
        Flatten {}
    }
}

/// Keras's `Reshape(target_shape)`: each sample to `target_shape` (the batch axis kept; one
/// entry may be `-1`, inferred), e.g. a series `[B, T]` to `[B, T, 1]` for a recurrent layer.
/// A masked input is refused by name (the steps the mask names would move).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reshape {
    pub target_shape: Vec<i64>,
}

impl Reshape {
    pub fn new(target_shape: &[i64]) -> Self {
        Reshape {
            target_shape: target_shape.to_vec(),
        }
    }

    /// The per-sample shape for `n` values, naming what does not fit.
    fn resolve(&self, n: usize) -> Result<Vec<usize>> {
        let bad = |why: String| {
            NnError::Shape(format!(
                "reshape({:?}): {why} (a sample has {n} values)",
                self.target_shape
            ))
        };
        let free = self.target_shape.iter().filter(|&&d| d == -1).count();
        if free > 1 || self.target_shape.iter().any(|&d| d == 0 || d < -1) {
            return Err(bad("sizes must be positive, with at most one -1".into()));
        }
        let known = self
            .target_shape
            .iter()
            .filter(|&&d| d > 0)
            .try_fold(1usize, |p, &d| p.checked_mul(d as usize))
            .ok_or_else(|| bad("the sizes' product overflows".into()))?;
        if (free == 0 && known != n) || (free == 1 && !n.is_multiple_of(known)) {
            return Err(bad("the sizes do not hold every value".into()));
        }
        Ok(self
            .target_shape
            .iter()
            .map(|&d| if d == -1 { n / known } else { d as usize })
            .collect())
    }

    fn apply(&self, g: &mut Graph, x: Act) -> Result<Act> {
        if x.mask.is_some() {
            return Err(NnError::Model(
                "reshape: the input carries a mask, which a reshape would move; reshape before \
                 the masking layer or drop the mask"
                    .into(),
            ));
        }
        let x = x.batch_major(g)?;
        let dims = g.ty(x.node).dims().to_vec();
        let Some((&b, rest)) = dims.split_first() else {
            return Err(NnError::Shape(
                "reshape: takes a value with a batch axis, got a scalar".into(),
            ));
        };
        let mut to = vec![b];
        to.extend(self.resolve(rest.iter().product())?);
        let y = g.reshape(x.node, to.as_slice())?;
        Ok(Act::new(y, Layout::BatchMajor))
    }
}

/// Keras's `Softmax(axis)` layer: a softmax along `axis` (`-1`, the features, by default),
/// the stable one of [`trellis_ir::softmax`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Softmax {
    pub axis: i64,
}

impl Softmax {
    pub fn new(axis: i64) -> Self {
        Softmax { axis }
    }
}

impl Default for Softmax {
    fn default() -> Self {
        Softmax::new(-1)
    }
}

parameterless_layer!(RepeatVector, "repeat_vector");
parameterless_layer!(Flatten, "flatten");
parameterless_layer!(Reshape, "reshape");
parameterless_layer!(Softmax, "softmax");

impl RepeatVector {
    fn apply(&self, g: &mut Graph, x: Act) -> Result<Act> {
        let ty = g.ty(x.node).clone();
        if ty.rank() != 2 || self.n == 0 {
            return Err(NnError::Shape(format!(
                "repeat_vector({}): takes a vector [batch, features] and n > 0, got {ty}",
                self.n
            )));
        }
        let (b, f) = (ty.dims()[0], ty.dims()[1]);
        // Time-major, what a recurrent layer after it reads without a transpose.
        let one = g.reshape(x.node, [1, b, f])?;
        let y = g.broadcast_to(one, &Shape::new(&[self.n, b, f]))?;
        Ok(Act::new(y, Layout::TimeMajor))
    }
}

impl Flatten {
    fn apply(&self, g: &mut Graph, x: Act) -> Result<Act> {
        let x = x.batch_major(g)?;
        let dims = g.ty(x.node).dims().to_vec();
        let Some((&b, rest)) = dims.split_first() else {
            return Err(NnError::Shape(
                "flatten: takes a value with a batch axis, got a scalar".into(),
            ));
        };
        let y = g.reshape(x.node, [b, rest.iter().product::<usize>()])?;
        Ok(Act::new(y, Layout::BatchMajor))
    }
}

impl Softmax {
    fn apply(&self, g: &mut Graph, x: Act) -> Result<Act> {
        let rank = g.ty(x.node).rank();
        let axis = axis_index("softmax", self.axis, rank)?;
        if axis == rank - 1 {
            let y = trellis_ir::softmax::softmax(g, x.node)?;
            return Ok(x.with_node(y));
        }
        // Another axis: moved last (batch-major), back after.
        let x = x.batch_major(g)?;
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(axis, rank - 1);
        let t = g.transpose(x.node, &perm)?;
        let s = trellis_ir::softmax::softmax(g, t)?;
        let y = g.transpose(s, &perm)?;
        Ok(x.with_node(y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_ir::interp::{run, Feeds, Precision};
    use trellis_ir::{Tensor, TensorType};

    #[test]
    fn reshape_resolves_one_free_size_and_names_what_does_not_fit() {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32([2, 12]));
        let mut ctx = BuildCtx::default();
        let act = Act::new(x, Layout::BatchMajor);
        let y = Reshape::new(&[-1, 3])
            .build(&mut g, act, &[], &mut ctx)
            .unwrap();
        assert_eq!(g.ty(y.node).dims(), [2, 4, 3]);
        let xs: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let feeds: Feeds = [(x, Tensor::f32([2, 12], xs.clone()).unwrap())].into();
        assert_eq!(
            run(&g, &feeds, &[y.node], Precision::F32).unwrap()[0].to_f32_vec(),
            xs
        );
        for bad in [
            &[5, -1][..],
            &[-1, -1],
            &[0, 12],
            &[4, 4],
            &[i64::MAX, i64::MAX, -1],
        ] {
            let e = Reshape::new(bad)
                .build(&mut g, act, &[], &mut ctx)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("reshape") && e.contains("12 values"),
                "{bad:?}: {e}"
            );
            if bad.contains(&i64::MAX) {
                assert!(e.contains("overflows"), "{e}");
            }
        }
        let masked = Act {
            mask: Some(x),
            ..act
        };
        let e = Reshape::new(&[12])
            .build(&mut g, masked, &[], &mut ctx)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mask"), "{e}");
    }

    #[test]
    fn repeat_vector_repeats_each_sample_time_major_and_refuses_bad_input() {
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
            e.contains("[batch, features]") && e.contains("[2,5,3]"),
            "{e}"
        );
        let e = RepeatVector::new(0)
            .build(&mut g, Act::new(x, Layout::BatchMajor), &[], &mut ctx)
            .unwrap_err()
            .to_string();
        assert!(e.contains("repeat_vector(0)"), "{e}");
    }
}
