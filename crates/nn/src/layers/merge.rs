//! Merge layers (Keras's): `Concatenate(axis)`, `Add`, `Multiply` over two or more values of
//! one shape, `Subtract` of two, and `Dot(axes)`, the products of two values summed over an axis each. A merged
//! value's mask is the product of its inputs' masks (a step is real where every input's is).
use std::any::Any;

use trellis_ir::{Graph, NodeId};

use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::{NnError, Result};

/// The inputs of a merge in one layout: as they are when they agree, else all batch-major.
pub(crate) fn one_layout(g: &mut Graph, xs: &[Act]) -> Result<Vec<Act>> {
    if xs.iter().all(|x| x.layout == xs[0].layout) {
        return Ok(xs.to_vec());
    }
    xs.iter().map(|x| x.batch_major(g)).collect()
}

/// Each input's shape batch-major, for error messages.
pub(crate) fn shapes(g: &Graph, xs: &[Act]) -> String {
    let s: Vec<String> = xs
        .iter()
        .map(|x| {
            let mut d = g.ty(x.node).dims().to_vec();
            if x.layout == Layout::TimeMajor && d.len() >= 2 {
                d.swap(0, 1);
            }
            format!("{d:?}")
        })
        .collect();
    s.join(", ")
}

/// The product of the inputs' masks (inputs in one layout), when any has one.
fn merged_mask(g: &mut Graph, xs: &[Act]) -> Result<Option<NodeId>> {
    let mut m: Option<NodeId> = None;
    for x in xs {
        if let Some(xm) = x.mask {
            m = Some(match m {
                None => xm,
                Some(a) => g.mul(a, xm)?,
            });
        }
    }
    Ok(m)
}

/// A Keras axis (`-1` the last; 0 the batch) of a batch-major value of `rank`, for layer
/// `what`, as an index; the batch axis is refused.
pub(crate) fn axis_index(what: &str, axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { rank as i64 + axis } else { axis };
    if a < 1 || a >= rank as i64 {
        return Err(NnError::InvalidArgument {
            name: "axis",
            value: axis.to_string(),
            message: format!(
                "{what}: must name a non-batch axis of a rank-{rank} value (1..{rank} or -1..-{})",
                rank - 1
            ),
        });
    }
    Ok(a as usize)
}

/// An elementwise merge: `Add` or `Multiply`.
fn elementwise(
    g: &mut Graph,
    what: &str,
    xs: &[Act],
    op: fn(&mut Graph, NodeId, NodeId) -> trellis_ir::Result<NodeId>,
) -> Result<Act> {
    let xs = one_layout(g, xs)?;
    let first = g.ty(xs[0].node).dims().to_vec();
    if xs.iter().any(|x| g.ty(x.node).dims() != first.as_slice()) {
        return Err(NnError::Shape(format!(
            "{what}: inputs must have one shape, got {}",
            shapes(g, &xs)
        )));
    }
    let mut y = xs[0].node;
    for x in &xs[1..] {
        y = op(g, y, x.node)?;
    }
    let mask = merged_mask(g, &xs)?;
    Ok(Act {
        mask,
        ..Act::new(y, xs[0].layout)
    })
}

/// Keras's `Add`: the sum of two or more values of one shape.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Add {}

/// Keras's `Subtract`: the first of two values of one shape minus the second.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Subtract {}

impl Subtract {
    pub fn new() -> Self {
        Subtract {}
    }
}

/// Keras's `Multiply`: the elementwise product of two or more values of one shape.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Multiply {}

impl Add {
    pub fn new() -> Self {
        Add {}
    }
}

impl Multiply {
    pub fn new() -> Self {
        Multiply {}
    }
}

/// Keras's `Concatenate(axis)`: values joined along `axis` (`-1`, the features, by default;
/// counted batch-major with the batch as 0); every other axis must agree.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Concatenate {
    pub axis: i64,
}

/// Keras's `Dot(axes)`: `sum_i a[.., i, ..] b[.., i, ..]` over axis `axes.0` of the first
/// value and `axes.1` of the second (batch-major, `-1` the last): `[B, D] . [B, D] -> [B, 1]`,
/// `[B, Ta, D] . [B, Tb, D]` (axes `(2, 2)`) `-> [B, Ta, Tb]`. With `normalize`, each is
/// first divided by its L2 norm along that axis (the cosine similarity).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dot {
    pub axes: (i64, i64),
    pub normalize: bool,
}

macro_rules! merge_layer {
    ($ty:ident, $kind:literal, $op:expr) => {
        impl Layer for $ty {
            fn kind(&self) -> &'static str {
                $kind
            }
            fn params(&self, _: &Scope, _: usize) -> Vec<ParamSpec> {
                Vec::new()
            }
            fn build(&self, g: &mut Graph, x: Act, p: &[NodeId], c: &mut BuildCtx) -> Result<Act> {
                Ok(self.build_many(g, &[x], p, c)?.remove(0))
            }
            fn num_inputs(&self) -> (usize, usize) {
                (2, usize::MAX)
            }
            fn build_many(
                &self,
                g: &mut Graph,
                xs: &[Act],
                _: &[NodeId],
                _: &mut BuildCtx,
            ) -> Result<Vec<Act>> {
                if xs.len() < 2 {
                    return Err(NnError::Model(format!(
                        "{}: merges two or more inputs, called on {}",
                        $kind,
                        xs.len()
                    )));
                }
                Ok(vec![$op(self, g, xs)?])
            }
            fn config(&self) -> Option<LayerConfig> {
                Some(LayerConfig::$ty(self.clone()))
            }
            fn as_any(&self) -> &dyn Any {
                self
            }
        }
    };
}

merge_layer!(Add, "add", |_: &Add, g: &mut Graph, xs: &[Act]| {
    elementwise(g, "add", xs, Graph::add)
});
merge_layer!(
    Subtract,
    "subtract",
    |_: &Subtract, g: &mut Graph, xs: &[Act]| {
        if xs.len() != 2 {
            return Err(NnError::Model(format!(
                "subtract: takes two inputs, called on {}",
                xs.len()
            )));
        }
        elementwise(g, "subtract", xs, Graph::sub)
    }
);
merge_layer!(
    Multiply,
    "multiply",
    |_: &Multiply, g: &mut Graph, xs: &[Act]| { elementwise(g, "multiply", xs, Graph::mul) }
);
merge_layer!(
    Concatenate,
    "concatenate",
    |l: &Concatenate, g: &mut Graph, xs: &[Act]| l.concat(g, xs)
);
merge_layer!(Dot, "dot", |l: &Dot, g: &mut Graph, xs: &[Act]| l
    .dot(g, xs));

impl Concatenate {
    /// Joined along `axis` (Keras's: `-1` the last, counted with the batch axis as 0).
    pub fn new(axis: i64) -> Self {
        Concatenate { axis }
    }

    fn concat(&self, g: &mut Graph, xs: &[Act]) -> Result<Act> {
        let rank = g.ty(xs[0].node).rank();
        let axis = axis_index("concatenate", self.axis, rank)?;
        // Along the features any layout will do; elsewhere, batch-major.
        let xs = if axis == rank - 1 {
            one_layout(g, xs)?
        } else {
            xs.iter()
                .map(|x| x.batch_major(g))
                .collect::<Result<Vec<_>>>()?
        };
        let dims = |g: &Graph, x: &Act| {
            let mut d = g.ty(x.node).dims().to_vec();
            d.remove(axis);
            d
        };
        let first = dims(g, &xs[0]);
        if xs
            .iter()
            .any(|x| g.ty(x.node).rank() != rank || dims(g, x) != first)
        {
            return Err(NnError::Shape(format!(
                "concatenate: inputs must agree on every axis but {axis}, got {}",
                shapes(g, &xs)
            )));
        }
        let nodes: Vec<NodeId> = xs.iter().map(|x| x.node).collect();
        let y = g.concat(&nodes, axis)?;
        let mask = if axis == rank - 1 {
            merged_mask(g, &xs)?
        } else {
            None
        };
        Ok(Act {
            mask,
            ..Act::new(y, xs[0].layout)
        })
    }
}

impl Dot {
    /// Summed over `axis` of both values (Keras's `Dot(axes=axis)`).
    pub fn new(axis: i64) -> Self {
        Dot::with_axes(axis, axis)
    }
    /// Summed over axis `a` of the first value and `b` of the second.
    pub fn with_axes(a: i64, b: i64) -> Self {
        Dot {
            axes: (a, b),
            normalize: false,
        }
    }
    pub fn with_normalize(mut self, yes: bool) -> Self {
        self.normalize = yes;
        self
    }

    fn dot(&self, g: &mut Graph, xs: &[Act]) -> Result<Act> {
        if xs.len() != 2 {
            return Err(NnError::Model(format!(
                "dot: takes two inputs, called on {}",
                xs.len()
            )));
        }
        let a = xs[0].batch_major(g)?;
        let b = xs[1].batch_major(g)?;
        let (ra, rb) = (g.ty(a.node).rank(), g.ty(b.node).rank());
        let (axa, axb) = self.axes;
        let (ia, ib) = (axis_index("dot", axa, ra)?, axis_index("dot", axb, rb)?);
        let (da, db) = (g.ty(a.node).dims().to_vec(), g.ty(b.node).dims().to_vec());
        let ok = ra == rb && (ra == 2 || ra == 3) && da[0] == db[0] && da[ia] == db[ib];
        if !ok {
            return Err(NnError::Shape(format!(
                "dot: takes two [batch, D] or two [batch, T, D] values of one size along axes \
                 ({axa}, {axb}), got {da:?} and {db:?}"
            )));
        }
        let mut an = self.moved_last(g, a.node, ia)?;
        let mut bn = self.moved_last(g, b.node, ib)?;
        if self.normalize {
            an = l2_normalize(g, an)?;
            bn = l2_normalize(g, bn)?;
        }
        let y = if ra == 2 {
            let p = g.mul(an, bn)?;
            g.sum(p, &[1], true)?
        } else {
            // [B, Ta, 1, D] * [B, 1, Tb, D], summed over D.
            let (sa, sb) = (g.ty(an).dims().to_vec(), g.ty(bn).dims().to_vec());
            let a4 = g.reshape(an, [sa[0], sa[1], 1, sa[2]])?;
            let b4 = g.reshape(bn, [sb[0], 1, sb[1], sb[2]])?;
            let full = trellis_ir::Shape::new(&[sa[0], sa[1], sb[1], sa[2]]);
            let a4 = g.broadcast_to(a4, &full)?;
            let b4 = g.broadcast_to(b4, &full)?;
            let p = g.mul(a4, b4)?;
            g.sum(p, &[3], false)?
        };
        Ok(Act::new(y, Layout::BatchMajor))
    }

    /// `x` with axis `axis` moved last (a rank-3 value's axis 1).
    fn moved_last(&self, g: &mut Graph, x: NodeId, axis: usize) -> Result<NodeId> {
        let rank = g.ty(x).rank();
        if axis == rank - 1 {
            return Ok(x);
        }
        Ok(g.transpose(x, &[0, 2, 1])?)
    }
}

/// `x / sqrt(max(sum(x^2), 1e-12))` over the last axis (Keras's `l2_normalize`).
fn l2_normalize(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    let axis = g.ty(x).rank() - 1;
    let sq = g.mul(x, x)?;
    let s = g.sum(sq, &[axis], true)?;
    let eps = g.scalar_like(s, 1e-12)?;
    let s = g.maximum(s, eps)?;
    let n = g.sqrt(s)?;
    Ok(g.div(x, n)?)
}
