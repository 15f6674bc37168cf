//! The CRF compiled: PyTorch's nll, Viterbi path and gradients (`tests/fixtures/crf.json`) in
//! the f32 plan at one and two threads, nothing left to the interpreter.
#[path = "../../../tests/common/golden_crf.rs"]
mod golden_crf;
#[path = "../../../tests/common/golden_graph.rs"]
mod golden_graph;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
#[path = "../../../tests/common/golden_plan.rs"]
mod golden_plan;
use golden_lstm::*;
use trellis_ir::DType;

#[test]
fn crf_plan_matches_pytorch() {
    let fx = Fixture::load(golden_crf::FIXTURE);
    let gg = golden_crf::build(&fx, DType::F32);
    golden_plan::check_plan(&gg, &fx, 1e-4, 1e-5, "crf chain");
}
