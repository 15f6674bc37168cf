//! The seed model's training step built by `nn` compiles to the same plan structure as the
//! reference graph `trellis_ir::models::seed_model` (same GEMMs; fused kernels within a few:
//! the optimiser). Ignored by default (full size, T = 200): run with
//! `cargo test --release -p trellis-nn --test seed_step -- --ignored --nocapture`.
use std::time::Instant;

use trellis_jit::{compile, CompileOptions};
use trellis_nn::prelude::*;

#[test]
#[ignore]
fn nn_seed_step_compiles_like_the_ir_seed_model() {
    let mut m = Sequential::new()
        .add(Embedding::new(10_000, 128))
        .add(LstmConfig::new(128).with_return_sequences(true))
        .add(Lstm::new(128))
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(
        Adam::default(),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let sg = m.step_graph(128, &[&[200]], true).unwrap();
    let opts = CompileOptions {
        updates: sg.optimizer.as_ref().unwrap().updates.clone(),
        ..Default::default()
    };
    let t = Instant::now();
    let plan = compile(&sg.graph, &opts).unwrap();
    eprintln!("nn step: compile {:.2?}, {:?}", t.elapsed(), plan.stats());

    use trellis_ir::models::{seed_model, SeedConfig};
    let mut g = trellis_ir::Graph::new();
    let s = seed_model(&mut g, &SeedConfig::default()).unwrap();
    let grads = trellis_autodiff::grad(&mut g, s.loss, &s.params).unwrap();
    let mut outs = vec![s.loss];
    outs.extend(grads);
    g.set_outputs(outs);
    let ir = compile(&g, &CompileOptions::default()).unwrap();
    eprintln!("ir seed step: {:?}", ir.stats());
    assert_eq!(plan.stats().gemms, ir.stats().gemms);
    assert_eq!(plan.stats().fallbacks, ir.stats().fallbacks);

    let x: Vec<i64> = (0..128 * 200).map(|i| (i % 9000) as i64).collect();
    let y: Vec<f32> = (0..128).map(|i| (i % 2) as f32).collect();
    let (x, y) = ((&x, [128, 200]), (&y, [128]));
    m.fit(x, y, &FitOptions::new(1, 128).quiet()).unwrap();
    let t = Instant::now();
    let h = m.fit(x, y, &FitOptions::new(3, 128).quiet()).unwrap();
    eprintln!("{:.2?} per step; losses {:?}", t.elapsed() / 3, h.loss());
    assert!(h.loss()[2] < h.loss()[0]);
}
