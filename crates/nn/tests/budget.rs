//! A model whose training plan does not fit in its memory limit recomputes its recurrences
//! from checkpoints (`Model::with_memory_limit`): it trains to the same losses in a smaller
//! plan, and a limit no interval can meet is an error naming what the plan needs.
use trellis_jit::{compile, CompileOptions};
use trellis_nn::data::SplitMix64;
use trellis_nn::prelude::*;
use trellis_nn::NnError;

const T: usize = 48;

fn data() -> (Array2<i64>, Array1<f32>) {
    let mut r = SplitMix64::new(5);
    let x = Array2::from_shape_fn((64, T), |_| (r.next_f64() * 40.0) as i64 + 1);
    let y = Array1::from_shape_fn(64, |i| ((x[[i, 3]] + x[[i, T - 2]]) % 2) as f32);
    (x, y)
}

fn model(limit: Option<u64>) -> Sequential {
    let mut m = Sequential::new().with_seed(2);
    if let Some(l) = limit {
        m = m.with_memory_limit(l);
    }
    let mut m = m
        .add(Embedding::new(41, 8))
        .add(LstmConfig::new(16).with_return_sequences(true))
        .add(Lstm::new(16))
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(
        Adam::default(),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

/// Bytes the training plan at batch 32 takes when it stores every step.
fn stored_plan_bytes() -> (usize, usize) {
    let mut m = model(None);
    let sg = m.step_graph(32, &[&[T]], true).unwrap();
    let opts = CompileOptions {
        updates: sg.optimizer.as_ref().unwrap().updates.clone(),
        ..Default::default()
    };
    let plan = compile(&sg.graph, &opts).unwrap();
    let s = plan.stats();
    (s.persistent_bytes, s.arena_bytes)
}

#[test]
fn a_training_plan_over_the_limit_recomputes_and_trains_alike() {
    let (x, y) = data();
    let opts = FitOptions::new(2, 32).quiet();
    let mut full = model(None);
    let hf = full.fit(&x, &y, &opts).unwrap();
    assert_eq!(full.recompute_every(), None, "no limit: every step stored");

    let (persistent, arena) = stored_plan_bytes();
    // One byte under what storing every step takes.
    let limit = persistent + arena - 1;
    let mut small = model(Some(limit as u64));
    let hs = small.fit(&x, &y, &opts).unwrap();
    let k = small.recompute_every().expect("over the limit: recomputed");
    assert!((1..T).contains(&k), "interval {k}");
    for (a, b) in hf.loss().iter().zip(hs.loss()) {
        assert!((a - b).abs() <= 1e-6 * a.abs(), "loss {a} vs {b}");
    }
    for (a, b) in full.weights().iter().zip(small.weights()) {
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        for (u, v) in a.iter().zip(b) {
            assert!((u - v).abs() <= 1e-5 * scale, "weight {u} vs {v}");
        }
    }
    assert!(hf.loss()[1] < hf.loss()[0], "it trains: {:?}", hf.loss());
}

#[test]
fn a_limit_no_interval_meets_is_an_error_naming_the_need() {
    let (x, y) = data();
    let (persistent, _) = stored_plan_bytes();
    // Room for the parameters (and their initialisation), not for the plan's values.
    let mut m = model(Some((persistent + (16 << 10)) as u64));
    let e = m.fit(&x, &y, &FitOptions::new(1, 32).quiet()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, NnError::TooLarge { .. }), "{msg}");
    assert!(msg.contains("the smallest plan tried"), "{msg}");
}
