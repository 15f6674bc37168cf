//! Shared by the tests that check trellis's CRF against PyTorch (`tests/fixtures/crf.json`,
//! from `scripts/golden/crf_golden.py`): builds the fixture's `chain` case as a
//! [`GoldenGraph`]. Included with `#[path]` beside `golden_graph.rs` and `golden_lstm.rs`.
#![allow(dead_code)]
use crate::golden_graph::GoldenGraph;
use crate::golden_lstm::Fixture;
use trellis_ir::crf::{crf_decode, crf_nll, CrfWeights};
use trellis_ir::DType;

pub const FIXTURE: &str = "crf.json";

/// The `chain` case: the nll of the tags, `loss = sum(nll * R)` and its gradients by the
/// emissions and the three CRF parameters, and the decoded path, as a graph of `dtype`.
pub fn build(fx: &Fixture, dtype: DType) -> GoldenGraph {
    let mut gg = GoldenGraph::new(dtype);
    let e = gg.leaf(fx, "chain.e", true).unwrap();
    let w = CrfWeights {
        transitions: gg.leaf(fx, "chain.transitions", true).unwrap(),
        start: gg.leaf(fx, "chain.start", true).unwrap(),
        end: gg.leaf(fx, "chain.end", true).unwrap(),
    };
    let mask = gg.leaf(fx, "chain.mask", false);
    let tags = gg.leaf(fx, "chain.tags", false).unwrap();
    let nll = crf_nll(&mut gg.g, e, tags, mask, &w).unwrap();
    let decoded = crf_decode(&mut gg.g, e, mask, &w).unwrap();
    let loss = gg.dot_loss(fx, nll, "chain.R");
    let outputs = vec![
        (nll, "chain.nll".to_string()),
        (decoded, "chain.decoded".to_string()),
    ];
    gg.finish(outputs, (loss, "chain.loss".into()))
}
