//! Shared by the tests that check trellis's attention against the Keras semantics computed in
//! PyTorch (`tests/fixtures/attention_*.json`, from `scripts/golden/attention_golden.py`):
//! builds the fixture's attention and loss as a graph. Included with `#[path]` beside
//! `golden_lstm.rs` (whose fixture loader it uses).
#![allow(dead_code)]
use crate::golden_lstm::{Fixture, Golden};
use trellis_autodiff::grad;
use trellis_ir::attention::{attention, AttentionOutput, AttentionSpec, Score};
use trellis_ir::{Graph, NodeId, TensorType};

pub struct AttnCase {
    pub g: Graph,
    pub feeds: Vec<(NodeId, Golden)>,
    pub out: AttentionOutput,
    pub loss: NodeId,
    /// `(leaf, torch gradient name)`, and the gradient nodes in the same order.
    pub wrt: Vec<(NodeId, String)>,
    pub grads: Vec<NodeId>,
}

/// The fixture's attention (dot-product when `dot`, else additive; scaled and masked when the
/// fixture has `scale` and masks), `loss = sum(context * R) + sum(weights * R2)` and its
/// gradients, as an f32 graph (the interpreter promotes it under `Precision::F64`).
pub fn build(fx: &Fixture, dot: bool) -> AttnCase {
    let mut g = Graph::new();
    let mut feeds = Vec::new();
    let mut wrt = Vec::new();
    let mut leaf = |g: &mut Graph, name: &str, param: bool| -> Option<NodeId> {
        let t = fx.tensors.get(name)?.clone();
        let ty = TensorType::f32(t.shape.clone());
        let id = if param {
            g.param(name, ty)
        } else {
            g.input(name, ty)
        };
        if param {
            wrt.push((id, format!("grad_{name}")));
        }
        feeds.push((id, t));
        Some(id)
    };
    let q = leaf(&mut g, "q", true).unwrap();
    let k = leaf(&mut g, "k", true).unwrap();
    let v = leaf(&mut g, "v", true).unwrap();
    let scale = leaf(&mut g, "scale", true);
    let spec = AttentionSpec {
        score: if dot {
            Score::Dot { scale }
        } else {
            Score::Additive { scale }
        },
        key_mask: leaf(&mut g, "key_mask", false),
        query_mask: leaf(&mut g, "query_mask", false),
    };
    let r = leaf(&mut g, "R", false).unwrap();
    let r2 = leaf(&mut g, "R2", false).unwrap();
    let out = attention(&mut g, q, k, v, &spec).unwrap();
    let cr = g.mul(out.context, r).unwrap();
    let s1 = g.sum_all(cr).unwrap();
    let wr = g.mul(out.weights, r2).unwrap();
    let s2 = g.sum_all(wr).unwrap();
    let loss = g.add(s1, s2).unwrap();
    let leaves: Vec<NodeId> = wrt.iter().map(|w| w.0).collect();
    let grads = grad(&mut g, loss, &leaves).unwrap();
    AttnCase {
        g,
        feeds,
        out,
        loss,
        wrt,
        grads,
    }
}

/// The fixtures: (file, dot-product?).
pub const FIXTURES: [(&str, bool); 4] = [
    ("attention_dot.json", true),
    ("attention_dot_masked.json", true),
    ("attention_additive.json", false),
    ("attention_additive_masked.json", false),
];
