//! Shared by the tests that check `trellis_ir::normalization::layer_norm` against PyTorch
//! (`tests/fixtures/layernorm*.json`, from `scripts/golden/layernorm_golden.py`): builds the
//! fixture's layer norm, `loss = sum(output * R)` and its gradients as a graph. Included with
//! `#[path]` beside `golden_lstm.rs` (whose fixture loader it uses).
#![allow(dead_code)]
use crate::golden_lstm::{Fixture, Golden};
use trellis_autodiff::grad;
use trellis_ir::normalization::layer_norm;
use trellis_ir::{DType, Graph, NodeId, TensorType};

pub struct LayerNormCase {
    pub g: Graph,
    pub feeds: Vec<(NodeId, Golden)>,
    pub output: NodeId,
    pub loss: NodeId,
    /// `(leaf, torch gradient name)`, and the gradient nodes in the same order.
    pub wrt: Vec<(NodeId, String)>,
    pub grads: Vec<NodeId>,
}

/// The fixtures.
pub const FIXTURES: [&str; 2] = ["layernorm.json", "layernorm_plain.json"];

/// The fixture's layer norm (with `weight` and `bias` when it has them) as a graph of `dtype`
/// (its constants, `1 / F` and epsilon, are of that type: an f32 graph run in f64 keeps their
/// f32 rounding, about 1e-8).
pub fn build(fx: &Fixture, dtype: DType) -> LayerNormCase {
    let mut g = Graph::new();
    let mut feeds = Vec::new();
    let mut wrt = Vec::new();
    let mut leaf = |g: &mut Graph, name: &str, param: bool| -> Option<NodeId> {
        let t = fx.tensors.get(name)?.clone();
        let ty = TensorType::new(t.shape.clone(), dtype);
        let id = if param {
            wrt.push((g.param(name, ty), format!("grad_{name}")));
            wrt.last().unwrap().0
        } else {
            g.input(name, ty)
        };
        feeds.push((id, t));
        Some(id)
    };
    let x = leaf(&mut g, "x", true).unwrap();
    let weight = leaf(&mut g, "weight", true);
    let bias = leaf(&mut g, "bias", true);
    let r = leaf(&mut g, "R", false).unwrap();
    let eps = fx.get("epsilon").data[0];
    let output = layer_norm(&mut g, x, weight, bias, eps).unwrap();
    let yr = g.mul(output, r).unwrap();
    let loss = g.sum_all(yr).unwrap();
    let leaves: Vec<NodeId> = wrt.iter().map(|w| w.0).collect();
    let grads = grad(&mut g, loss, &leaves).unwrap();
    LayerNormCase {
        g,
        feeds,
        output,
        loss,
        wrt,
        grads,
    }
}
