//! Shared by the tests that check trellis's attention against the Keras semantics computed in
//! PyTorch (`tests/fixtures/attention_*.json`, from `scripts/golden/attention_golden.py`):
//! builds the fixture's attention and loss as a [`GoldenGraph`]. Included with `#[path]`
//! beside `golden_graph.rs` and `golden_lstm.rs`.
#![allow(dead_code)]
use crate::golden_graph::GoldenGraph;
use crate::golden_lstm::Fixture;
use trellis_ir::attention::{attention, AttentionSpec, Score};
use trellis_ir::DType;

/// The fixture's attention (dot-product when `dot`, else additive; scaled and masked when the
/// fixture has `scale` and masks), `loss = sum(context * R) + sum(weights * R2)` and its
/// gradients, as an f32 graph (the interpreter promotes it under `Precision::F64`).
pub fn build(fx: &Fixture, dot: bool) -> GoldenGraph {
    let mut gg = GoldenGraph::new(DType::F32);
    let q = gg.leaf(fx, "q", true).unwrap();
    let k = gg.leaf(fx, "k", true).unwrap();
    let v = gg.leaf(fx, "v", true).unwrap();
    let scale = gg.leaf(fx, "scale", true);
    let spec = AttentionSpec {
        score: if dot {
            Score::Dot { scale }
        } else {
            Score::Additive { scale }
        },
        key_mask: gg.leaf(fx, "key_mask", false),
        query_mask: gg.leaf(fx, "query_mask", false),
        causal: false,
    };
    let out = attention(&mut gg.g, q, k, v, &spec).unwrap();
    let s1 = gg.dot_loss(fx, out.context, "R");
    let s2 = gg.dot_loss(fx, out.weights, "R2");
    let loss = gg.g.add(s1, s2).unwrap();
    let outputs = vec![
        (out.context, "context".to_string()),
        (out.weights, "weights".to_string()),
    ];
    gg.finish(outputs, (loss, "loss".into()))
}

/// The fixtures: (file, dot-product?).
pub const FIXTURES: [(&str, bool); 4] = [
    ("attention_dot.json", true),
    ("attention_dot_masked.json", true),
    ("attention_additive.json", false),
    ("attention_additive_masked.json", false),
];
