//! Shared by the tests that check `trellis_ir::normalization::layer_norm` against PyTorch
//! (`tests/fixtures/layernorm*.json`, from `scripts/golden/layernorm_golden.py`): the fixture's
//! layer norm and `loss = sum(output * R)` as a [`GoldenGraph`]. Included with `#[path]` beside
//! `golden_graph.rs` and `golden_lstm.rs`.
#![allow(dead_code)]
use crate::golden_graph::GoldenGraph;
use crate::golden_lstm::Fixture;
use trellis_ir::normalization::layer_norm;
use trellis_ir::DType;

/// The fixtures.
pub const FIXTURES: [&str; 2] = ["layernorm.json", "layernorm_plain.json"];

/// The fixture's layer norm (with `weight` and `bias` when it has them) as a graph of `dtype`.
pub fn build(fx: &Fixture, dtype: DType) -> GoldenGraph {
    let mut gg = GoldenGraph::new(dtype);
    let x = gg.leaf(fx, "x", true).unwrap();
    let weight = gg.leaf(fx, "weight", true);
    let bias = gg.leaf(fx, "bias", true);
    let eps = fx.get("epsilon").data[0];
    let y = layer_norm(&mut gg.g, x, weight, bias, eps).unwrap();
    let loss = gg.dot_loss(fx, y, "R");
    gg.finish(vec![(y, "output".into())], (loss, "loss".into()))
}
