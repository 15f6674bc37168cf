//! 1-D convolution and pooling compiled: PyTorch's values and gradients in the f32 plan, on
//! batch-major and time-major sequences, at one and two threads, with no step left to the
//! interpreter.
#[path = "../../../tests/common/golden_conv.rs"]
mod golden_conv;
#[path = "../../../tests/common/golden_graph.rs"]
mod golden_graph;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
#[path = "../../../tests/common/golden_plan.rs"]
mod golden_plan;
use golden_lstm::*;
use trellis_ir::DType;

#[test]
fn conv_and_pool_plans_match_torch() {
    let fx = Fixture::load("conv1d.json");
    for (case, pool) in golden_conv::all_cases() {
        for time_major in [false, true] {
            let gg = golden_conv::build(&fx, case, pool, time_major, DType::F32);
            let tag = format!("{case} (time-major {time_major})");
            golden_plan::check_plan(&gg, &fx, 1e-4, 1e-5, &tag);
        }
    }
}
