//! The seed model's compiled training step (ignored by default: run with `--release --ignored`).
use std::time::Instant;

use trellis_nn::prelude::*;

#[test]
#[ignore]
fn seed_step_stats() {
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
    let t = Instant::now();
    let sg = m.step_graph(128, &[200], true).unwrap();
    eprintln!(
        "graph: {} nodes in {:.2?}",
        sg.graph.node_count(),
        t.elapsed()
    );
    let t = Instant::now();
    let plan = trellis_jit::compile(
        &sg.graph,
        &trellis_jit::CompileOptions {
            updates: sg.optimizer.as_ref().unwrap().updates.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    eprintln!("compile {:.2?}: {:?}", t.elapsed(), plan.stats());
    let x: Vec<i64> = (0..128 * 200).map(|i| (i % 9000) as i64).collect();
    let y: Vec<f32> = (0..128).map(|i| (i % 2) as f32).collect();
    let t = Instant::now();
    m.fit(&x, &y, &FitOptions::new(1, 128).quiet()).unwrap();
    eprintln!("first fit (compile + 1 step) {:.2?}", t.elapsed());
    let t = Instant::now();
    m.fit(&x, &y, &FitOptions::new(2, 128).quiet()).unwrap();
    eprintln!("2 steps {:.2?}", t.elapsed());
}

#[test]
#[ignore]
fn ir_seed_step_stats() {
    use trellis_ir::models::{seed_model, SeedConfig};
    let mut g = trellis_ir::Graph::new();
    let m = seed_model(&mut g, &SeedConfig::default()).unwrap();
    let grads = trellis_autodiff::grad(&mut g, m.loss, &m.params).unwrap();
    let mut outs = vec![m.loss];
    outs.extend(grads);
    g.set_outputs(outs);
    let t = Instant::now();
    let plan = trellis_jit::compile(&g, &trellis_jit::CompileOptions::default()).unwrap();
    eprintln!("ir seed compile {:.2?}: {:?}", t.elapsed(), plan.stats());
}
