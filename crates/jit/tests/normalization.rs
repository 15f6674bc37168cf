//! Layer and batch normalisation compiled: PyTorch's values and gradients in the f32 plan on
//! one and two threads, and a larger layer-norm case (odd widths, many rows) against the
//! interpreter; no step is left to the interpreter.
#[allow(dead_code)]
mod common;
#[path = "../../../tests/common/golden_batchnorm.rs"]
mod golden_batchnorm;
#[path = "../../../tests/common/golden_graph.rs"]
mod golden_graph;
#[path = "../../../tests/common/golden_layernorm.rs"]
mod golden_layernorm;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
#[path = "../../../tests/common/golden_plan.rs"]
mod golden_plan;
use golden_lstm::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use trellis_autodiff::grad;
use trellis_ir::normalization::layer_norm;
use trellis_ir::{run, DType, Feeds, Graph, Precision, TensorType};
use trellis_jit::{compile, CompileOptions};

#[test]
fn layer_norm_plan_matches_torch() {
    for file in golden_layernorm::FIXTURES {
        let fx = Fixture::load(file);
        let gg = golden_layernorm::build(&fx, DType::F32);
        golden_plan::check_plan(&gg, &fx, 1e-4, 1e-5, file);
    }
}

#[test]
fn batch_norm_plan_matches_torch() {
    for file in golden_batchnorm::FIXTURES {
        let fx = Fixture::load(file);
        let gg = golden_batchnorm::build(&fx, DType::F32);
        golden_plan::check_plan(&gg, &fx, 1e-4, 1e-5, file);
    }
}

#[test]
fn layer_norm_plan_matches_the_interpreter_on_odd_widths() {
    let mut rng = StdRng::seed_from_u64(41);
    for (rows, t, f) in [(37, 3, 33), (8, 5, 128), (3, 1, 1)] {
        let mut g = Graph::new();
        let x = g.param("x", TensorType::f32([rows, t, f]));
        let gamma = g.param("gamma", TensorType::f32([f]));
        let beta = g.param("beta", TensorType::f32([f]));
        let y = layer_norm(&mut g, x, Some(gamma), Some(beta), 1e-3).unwrap();
        let r = g.input("r", TensorType::f32([rows, t, f]));
        let yr = g.mul(y, r).unwrap();
        let loss = g.sum_all(yr).unwrap();
        let grads = grad(&mut g, loss, &[x, gamma, beta]).unwrap();
        let mut outs = vec![y, loss];
        outs.extend(&grads);
        g.set_outputs(outs.clone());
        let mut feeds = Feeds::new();
        feeds.insert(x, common::rand_f32(&mut rng, &[rows, t, f], 3.0));
        feeds.insert(gamma, common::rand_f32(&mut rng, &[f], 1.5));
        feeds.insert(beta, common::rand_f32(&mut rng, &[f], 1.0));
        feeds.insert(r, common::rand_f32(&mut rng, &[rows, t, f], 1.0));
        let want = run(&g, &feeds, &outs, Precision::F64).unwrap();
        let mut plan = compile(&g, &CompileOptions::default()).unwrap();
        for (n, v) in &feeds {
            plan.set(*n, v).unwrap();
        }
        plan.run().unwrap();
        let what = format!("[{rows}, {t}, {f}]");
        let fallbacks = &plan.stats().fallbacks;
        assert!(
            fallbacks.is_empty(),
            "{what}: left to the interpreter: {fallbacks:?}"
        );
        // Against 1 + |reference|: normalised values near zero carry f32's absolute rounding
        // (about 1e-7 of the inputs' scale over their spread), not a relative one.
        for (k, &o) in outs.iter().enumerate() {
            let w = common::worst(&plan.get(o).unwrap(), &want[k], 1.0);
            assert!(w < 1e-5, "{what}, output {k}: error {w:e}");
        }
    }
}
