//! 1-D convolution and pooling compiled: PyTorch's values and gradients in the f32 plan, on
//! batch-major and time-major sequences, at one and two threads, with no step left to the
//! interpreter.
#[path = "../../../tests/common/golden_conv.rs"]
mod golden_conv;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::*;
use trellis_ir::{DType, Precision};
use trellis_jit::{compile, CompileOptions};

#[test]
fn conv_and_pool_plans_match_torch() {
    let fx = Fixture::load("conv1d.json");
    for (case, pool) in golden_conv::all_cases() {
        for time_major in [false, true] {
            let mut c = golden_conv::build(&fx, case, pool, time_major, DType::F32);
            let mut outs = vec![c.output, c.loss];
            outs.extend(&c.grads);
            c.g.set_outputs(outs.clone());
            for threads in [2, 1] {
                let opts = CompileOptions {
                    threads,
                    ..Default::default()
                };
                let mut plan = compile(&c.g, &opts).unwrap();
                for (id, t) in &c.feeds {
                    plan.set(*id, &feed(t, Precision::F32)).unwrap();
                }
                plan.run().unwrap();
                let tag = format!("{case} (time-major {time_major}), {threads} threads");
                let fallbacks = &plan.stats().fallbacks;
                assert!(
                    fallbacks.is_empty(),
                    "{tag}: left to the interpreter: {fallbacks:?}"
                );
                let names = [format!("{case}.output"), format!("{case}.loss")];
                let names = names.into_iter().chain(c.wrt.iter().map(|w| w.1.clone()));
                for (n, name) in outs.iter().zip(names) {
                    let got = plan.get(*n).unwrap();
                    assert_close(&format!("{tag}: {name}"), &got, fx.get(&name), 1e-4, 1e-5);
                }
            }
        }
    }
}
