//! Training end to end: loss falls, the compiled step matches the interpreter, fit handles
//! partial batches, shuffling is deterministic, and bad inputs give clear errors.
use std::collections::HashMap;

use trellis_ir::{run, Precision, Tensor};
use trellis_nn::prelude::*;
use trellis_nn::{Optimizer, StepGraph};

/// vocab 30, embed 8, LSTM 8, Dense 1 (sigmoid).
fn tiny(seed: u64) -> Sequential {
    let mut m = Sequential::new()
        .with_seed(seed)
        .add(Embedding::new(30, 8))
        .add(Lstm::new(8))
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(
        Adam::new(0.01),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

/// A separable task: label 1 iff the sequence contains token 1 somewhere (else tokens 2..29).
fn task(n: usize, t: usize, seed: u64) -> (Vec<i64>, Vec<f32>) {
    let mut rng = data::SplitMix64::new(seed);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let label = i % 2;
        let mut row: Vec<i64> = (0..t).map(|_| 2 + rng.below(28) as i64).collect();
        if label == 1 {
            row[rng.below(t as u64) as usize] = 1;
        }
        x.extend(row);
        y.push(label as f32);
    }
    (x, y)
}

fn feeds_for(
    sg: &StepGraph,
    m: &Sequential,
    x: &[i64],
    y: &[f32],
    lr: f32,
) -> HashMap<trellis_ir::NodeId, Tensor> {
    let b = sg.batch;
    let t = x.len() / b;
    let mut f = HashMap::new();
    f.insert(sg.x, Tensor::i64([b, t], x.to_vec()).unwrap());
    f.insert(sg.y, Tensor::f32([b, 1], y.to_vec()).unwrap());
    f.insert(sg.w, Tensor::f32([b, 1], vec![1.0 / b as f32; b]).unwrap());
    for ((p, w), s) in sg.params.iter().zip(m.weights()).zip(m.param_specs()) {
        f.insert(*p, Tensor::f32(s.shape.as_slice(), w.clone()).unwrap());
    }
    let o = sg.optimizer.as_ref().unwrap();
    f.insert(o.lr, Tensor::f32([], vec![lr]).unwrap());
    for (_, n) in &o.states {
        let ty = sg.graph.ty(*n).clone();
        f.insert(*n, Tensor::zeros(&ty));
    }
    f
}

#[test]
fn fifty_adam_steps_interpreter_and_plan_agree_and_loss_falls() {
    let (b, t) = (4, 6);
    let (x, y) = task(b, t, 7);
    let opt = Optimizer::from(Adam::new(0.01));
    // Interpreter: run the step graph and apply the updates by hand.
    let mut m = tiny(3);
    let sg = m.step_graph(b, &[t], true).unwrap();
    let o = sg.optimizer.clone().unwrap();
    let mut feeds = feeds_for(&sg, &m, &x, &y, 0.0);
    let mut outs = vec![sg.loss];
    outs.extend(o.updates.iter().map(|u| u.1));
    let mut interp = Vec::new();
    for step in 0..50 {
        feeds.insert(o.lr, Tensor::f32([], vec![opt.lr_for_step(step)]).unwrap());
        let r = run(&sg.graph, &feeds, &outs, Precision::F32).unwrap();
        interp.push(r[0].to_f32_vec()[0]);
        for ((target, _), v) in o.updates.iter().zip(&r[1..]) {
            feeds.insert(*target, v.clone());
        }
    }
    // Compiled plan: the same 50 steps through fit (no shuffle, one batch per epoch).
    let mut m2 = tiny(3);
    let h = m2
        .fit(&x, &y, &FitOptions::new(50, b).with_shuffle(false).quiet())
        .unwrap();
    let plan = h.loss();
    assert_eq!(m2.step(), 50);
    for (i, (a, p)) in interp.iter().zip(&plan).enumerate() {
        let rel = ((*a as f64 - p).abs()) / p.abs().max(1e-6);
        assert!(
            rel < 1e-4,
            "step {i}: interpreter {a} vs plan {p} (rel {rel:e})"
        );
    }
    assert!(
        plan[49] < 0.5 * plan[0],
        "loss should fall: first {} last {}",
        plan[0],
        plan[49]
    );
}
