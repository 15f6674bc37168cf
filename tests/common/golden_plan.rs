//! The compiled check of a [`GoldenGraph`](crate::golden_graph::GoldenGraph): the f32 plan at
//! one and two threads, no step left to the interpreter, every checked tensor within
//! tolerance of PyTorch's. Included with `#[path]` by the jit's tests.
#![allow(dead_code)]
use crate::golden_graph::GoldenGraph;
use crate::golden_lstm::{assert_close, Fixture};
use trellis_ir::Precision;
use trellis_jit::{compile, CompileOptions};

pub fn check_plan(gg: &GoldenGraph, fx: &Fixture, rtol: f64, atol: f64, tag: &str) {
    for threads in [2, 1] {
        let opts = CompileOptions {
            threads,
            ..Default::default()
        };
        let mut plan = compile(&gg.g, &opts).unwrap();
        for (id, t) in gg.feeds_at(Precision::F32) {
            plan.set(id, &t).unwrap();
        }
        plan.run().unwrap();
        let tag = format!("{tag}, {threads} threads");
        let fallbacks = &plan.stats().fallbacks;
        assert!(
            fallbacks.is_empty(),
            "{tag}: left to the interpreter: {fallbacks:?}"
        );
        for (n, name) in &gg.checks {
            let got = plan.get(*n).unwrap();
            assert_close(&format!("{tag}: {name}"), &got, fx.get(name), rtol, atol);
        }
    }
}
