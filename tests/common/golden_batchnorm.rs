//! Shared by the tests that check `trellis_ir::normalization::batch_norm_*` against PyTorch
//! (`tests/fixtures/batchnorm*.json`, from `scripts/golden/batchnorm_golden.py`): the
//! fixture's batch norm in training (its output, the batch's moments, `loss = sum(output *
//! R)`) and in inference from the fixture's moving moments, as one [`GoldenGraph`]. Included
//! with `#[path]` beside `golden_graph.rs` and `golden_lstm.rs`.
#![allow(dead_code)]
use crate::golden_graph::GoldenGraph;
use crate::golden_lstm::Fixture;
use trellis_ir::normalization::{batch_norm_inference, batch_norm_training};
use trellis_ir::DType;

/// The fixtures.
pub const FIXTURES: [&str; 3] = [
    "batchnorm.json",
    "batchnorm_plain.json",
    "batchnorm_masked.json",
];

/// The fixture's batch norm (with `weight` and `bias` when it has them) as a graph of `dtype`.
pub fn build(fx: &Fixture, dtype: DType) -> GoldenGraph {
    let mut gg = GoldenGraph::new(dtype);
    let x = gg.leaf(fx, "x", true).unwrap();
    let weight = gg.leaf(fx, "weight", true);
    let bias = gg.leaf(fx, "bias", true);
    let moving_mean = gg.leaf(fx, "moving_mean", false).unwrap();
    let moving_var = gg.leaf(fx, "moving_var", false).unwrap();
    // A 0/1 mask of the steps (the masked fixture): Keras's masked moments.
    let weights = gg.leaf(fx, "weights", false);
    let eps = fx.get("epsilon").data[0];
    let b = batch_norm_training(&mut gg.g, x, weights, weight, bias, eps).unwrap();
    let inf =
        batch_norm_inference(&mut gg.g, x, moving_mean, moving_var, weight, bias, eps).unwrap();
    let loss = gg.dot_loss(fx, b.y, "R");
    gg.finish(
        vec![
            (b.y, "output".into()),
            (b.mean, "batch_mean".into()),
            (b.var, "batch_var".into()),
            (inf, "inference_output".into()),
        ],
        (loss, "loss".into()),
    )
}
