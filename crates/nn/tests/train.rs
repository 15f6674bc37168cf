//! Training end to end: loss falls, the compiled step matches the interpreter, fit handles
//! partial batches, shuffling is deterministic, and bad inputs give clear errors.
use std::collections::HashMap;

use trellis_ir::{run, Precision, Tensor};
use trellis_nn::prelude::*;
use trellis_nn::{NnError, Optimizer, StepGraph};

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
fn task(n: usize, t: usize, seed: u64) -> (Array2<i64>, Array1<f32>) {
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
    (Array2::from_shape_vec((n, t), x).unwrap(), Array1::from(y))
}

fn feeds_for(
    sg: &StepGraph,
    m: &Sequential,
    x: &Array2<i64>,
    y: &Array1<f32>,
    lr: f32,
) -> HashMap<trellis_ir::NodeId, Tensor> {
    let b = sg.batch;
    let t = x.ncols();
    let mut f = HashMap::new();
    f.insert(
        sg.inputs[0],
        Tensor::i64([b, t], x.iter().copied().collect()).unwrap(),
    );
    f.insert(sg.outputs[0].y, Tensor::f32([b, 1], y.to_vec()).unwrap());
    f.insert(
        sg.outputs[0].w,
        Tensor::f32([b, 1], vec![1.0 / b as f32; b]).unwrap(),
    );
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
    let sg = m.step_graph(b, &[&[t]], true).unwrap();
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

#[test]
fn fit_learns_a_separable_task() {
    let (x, y) = task(64, 6, 11);
    let (xt, yt) = task(32, 6, 12);
    let mut m = tiny(1);
    let h = m
        .fit(&x, &y, &FitOptions::new(25, 16).with_seed(5).quiet())
        .unwrap();
    assert_eq!(h.epochs.len(), 25);
    assert!(h.loss()[24] < 0.5 * h.loss()[0], "{:?}", h.loss());
    assert!(h.accuracy()[24] >= 0.95, "{:?}", h.accuracy());
    let ev = m.evaluate(&xt, &yt).unwrap();
    assert!(ev.accuracy.unwrap() >= 0.9, "{ev:?}");
    let p = m.predict(&xt).unwrap();
    assert_eq!(p.len(), 32);
    assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
    let e = h.last().unwrap();
    assert!(e.seconds > 0.0 && e.samples_per_sec > 0.0);
}

#[test]
fn last_partial_batch_trains_with_its_own_mean_gradient() {
    // 10 samples, batch 4: steps of 4, 4 and 2 samples.
    let (x, y) = task(10, 5, 3);
    let mut a = tiny(2);
    let h = a
        .fit(&x, &y, &FitOptions::new(1, 4).with_shuffle(false).quiet())
        .unwrap();
    assert_eq!(h.epochs[0].steps, 3);
    assert_eq!(a.step(), 3);
    // The same three steps as three separate fits; the last at batch 2 (a plan with no
    // padding rows) gives the same weights as the padded batch-4 plan.
    let mut b = tiny(2);
    for (rows, bs) in [(0..4, 4), (4..8, 4), (8..10, 2)] {
        let xs = x.slice(s![rows.clone(), ..]);
        let ys = y.slice(s![rows]);
        b.fit(xs, ys, &FitOptions::new(1, bs).with_shuffle(false).quiet())
            .unwrap();
    }
    assert_eq!(b.step(), 3);
    for ((wa, wb), s) in a.weights().iter().zip(b.weights()).zip(a.param_specs()) {
        for (p, q) in wa.iter().zip(wb) {
            assert!((p - q).abs() < 1e-6, "{}: {p} vs {q}", s.name);
        }
    }
    // And it differs from not training the last batch at all.
    let mut c = tiny(2);
    c.fit(
        x.slice(s![..8, ..]),
        y.slice(s![..8]),
        &FitOptions::new(1, 4).with_shuffle(false).quiet(),
    )
    .unwrap();
    assert_ne!(c.weights(), a.weights());
}

#[test]
fn shuffle_with_a_seed_is_deterministic() {
    let (x, y) = task(24, 5, 4);
    let fit = |seed| {
        let mut m = tiny(0);
        let h = m
            .fit(&x, &y, &FitOptions::new(3, 8).with_seed(seed).quiet())
            .unwrap();
        (h.loss(), m.weights().to_vec())
    };
    let (l1, w1) = fit(42);
    let (l2, w2) = fit(42);
    let (l3, _) = fit(43);
    assert_eq!(l1, l2);
    assert_eq!(w1, w2);
    assert_ne!(l1, l3);
}

#[test]
fn validation_split_and_data() {
    let (x, y) = task(20, 5, 8);
    let mut m = tiny(0);
    let h = m
        .fit(
            &x,
            &y,
            &FitOptions::new(2, 4).with_validation_split(0.2).quiet(),
        )
        .unwrap();
    assert_eq!(h.epochs[0].steps, 4); // 16 training samples
    assert_eq!(h.val_loss().len(), 2);
    assert_eq!(h.val_accuracy().len(), 2);
    // The held-out part is the last 20 %: evaluate on it gives the reported numbers.
    let ev = m
        .evaluate(x.slice(s![16.., ..]), y.slice(s![16..]))
        .unwrap();
    assert_eq!(Some(ev.loss), h.epochs[1].val_loss);
    let (vx, vy) = task(6, 5, 9);
    let h = m
        .fit(
            &x,
            &y,
            &FitOptions::new(1, 4).with_validation_data(&vx, &vy).quiet(),
        )
        .unwrap();
    assert_eq!(h.epochs[0].steps, 5);
    assert_eq!(h.epochs[0].epoch, 3); // epochs count over the model's life
    assert!(h.epochs[0].val_loss.is_some());
}

#[test]
fn dropout_trains_and_is_seeded() {
    let (x, y) = task(16, 5, 2);
    let run = || {
        let mut m = Sequential::new()
            .add(Embedding::new(30, 8))
            .add(Dropout::new(0.3))
            .add(Lstm::new(8))
            .add(Dense::new(1, Activation::Sigmoid));
        m.compile(
            Adam::new(0.01),
            Loss::BinaryCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
        let h = m
            .fit(&x, &y, &FitOptions::new(2, 8).with_seed(1).quiet())
            .unwrap();
        (h.loss(), m.predict(&x).unwrap())
    };
    let (l1, p1) = run();
    let (l2, p2) = run();
    assert_eq!(l1, l2);
    assert_eq!(p1, p2);
}

#[test]
fn sparse_categorical_training() {
    // Three classes by which of the tokens 1, 2, 3 the sequence starts with.
    let mut rng = data::SplitMix64::new(3);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..48 {
        let c = i % 3;
        x.push(1 + c as i64);
        x.extend((0..3).map(|_| 4 + rng.below(20) as i64));
        y.push(c as f32);
    }
    let (x, y) = (Array2::from_shape_vec((48, 4), x).unwrap(), Array1::from(y));
    let mut m = Sequential::new()
        .with_seed(2)
        .add(Embedding::new(30, 8))
        .add(Lstm::new(8))
        .add(Dense::new(3, Activation::Softmax));
    m.compile(
        Adam::new(0.02),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let h = m.fit(&x, &y, &FitOptions::new(30, 16).quiet()).unwrap();
    assert!(h.accuracy()[29] > 0.9, "{:?}", h.accuracy());
    let p = m.predict(x.slice(s![..1, ..])).unwrap();
    assert_eq!(p.shape(), [1, 3]);
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn bad_inputs_give_clear_errors() {
    let (x, mut y) = task(6, 5, 1);
    let mut m = tiny(0);
    let q = FitOptions::new(1, 4).quiet();
    y[3] = 2.0;
    let e = m.fit(&x, &y, &q).unwrap_err().to_string();
    assert_eq!(
        e,
        "label of sample 3 is 2: binary_crossentropy takes labels in [0, 1]"
    );
    y[3] = 1.0;
    let mut xb = x.clone();
    xb[[1, 2]] = 30;
    let e = m.fit(&xb, &y, &q).unwrap_err();
    assert!(matches!(
        e,
        NnError::TokenOutOfRange {
            id: 30,
            sample: 1,
            position: 2,
            vocab: 30
        }
    ));
    assert_eq!(
        e.to_string(),
        "token id 30 at sample 1, position 2 is out of range: the embedding has a vocabulary \
         of 30 (ids 0..30)"
    );
    xb[[1, 2]] = -1;
    assert!(m
        .fit(&xb, &y, &q)
        .unwrap_err()
        .to_string()
        .contains("token id -1"));
    let flat = x.as_slice().unwrap();
    let e = m
        .fit((&flat[..29], [6, 5]), &y, &q)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "x: shape [6, 5] does not hold its 29 values");
    let e = m
        .fit(&x, &y, &FitOptions::new(1, 0).quiet())
        .unwrap_err()
        .to_string();
    assert_eq!(e, "invalid argument `batch_size` = 0: must be positive");
    // Ids out of range are also caught by predict and evaluate, before the plan runs.
    m.fit(&x, &y, &q).unwrap();
    assert!(matches!(
        m.predict(&xb).unwrap_err(),
        NnError::TokenOutOfRange { id: -1, .. }
    ));
    // Floats for a model that takes ids.
    let xf = Array2::<f32>::zeros((6, 5));
    let e = m.fit(&xf, &y, &q).unwrap_err().to_string();
    assert!(e.contains("token ids"), "{e}");
    // Not compiled.
    let mut n = Sequential::new()
        .add(Embedding::new(3, 2))
        .add(Lstm::new(2));
    let e = n.fit(&x, &y, &q).unwrap_err().to_string();
    assert!(e.contains("compile"), "{e}");
}

#[test]
fn fit_compiles_for_the_samples_it_has() {
    // batch_size 1e9 used to allocate a 1e9-row plan and abort; now it is a batch of 6.
    let (x, y) = task(6, 5, 1);
    let mut a = tiny(2);
    let ha = a
        .fit(&x, &y, &FitOptions::new(2, 1_000_000_000).quiet())
        .unwrap();
    let mut b = tiny(2);
    let hb = b.fit(&x, &y, &FitOptions::new(2, 6).quiet()).unwrap();
    assert_eq!(ha.loss(), hb.loss());
    assert_eq!(ha.epochs[0].steps, 1);
    assert_eq!(a.weights(), b.weights());
    // evaluate and predict with an eval batch far above the data size.
    a.set_eval_batch_size(usize::MAX);
    assert_eq!(a.predict(&x).unwrap(), b.predict(&x).unwrap());
    assert_eq!(
        a.evaluate(&x, &y).unwrap().loss,
        b.evaluate(&x, &y).unwrap().loss
    );
}

#[test]
fn a_validation_split_of_zero_samples_is_an_error() {
    let (x, y) = task(10, 5, 1);
    let mut m = tiny(1);
    let e = m
        .fit(
            &x,
            &y,
            &FitOptions::new(1, 4).with_validation_split(0.01).quiet(),
        )
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid argument `validation_split` = 0.01: holds out 0 of the 10 samples, leaving 10 \
         to train on: both parts must have at least one sample"
    );
    let e = m
        .fit(
            x.slice(s![..1, ..]),
            y.slice(s![..1]),
            &FitOptions::new(1, 4).with_validation_split(0.6).quiet(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds out 1 of the 1 samples, leaving 0"), "{e}");
}

#[test]
fn gradients_by_name_match_f64_finite_differences() {
    let (b, t) = (4, 5);
    let (x, y) = task(b, t, 3);
    let mut m = tiny(1);
    let grads = m.gradients(&x, &y).unwrap();
    let names: Vec<&str> = m.param_specs().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        grads.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
        names
    );
    // The loss of the step graph in f64, through the interpreter, at perturbed weights.
    let sg = m.step_graph(b, &[&[t]], true).unwrap();
    let feeds: HashMap<_, _> = feeds_for(&sg, &m, &x, &y, 0.0)
        .into_iter()
        .map(|(k, v)| match v.dtype() {
            trellis_ir::DType::F32 => (k, v.cast(trellis_ir::DType::F64)),
            _ => (k, v),
        })
        .collect();
    let loss_at = |p: usize, i: usize, h: f64| {
        let mut f = feeds.clone();
        let mut v = f[&sg.params[p]].to_f64_vec();
        v[i] += h;
        let shape = m.param_specs()[p].shape.clone();
        f.insert(sg.params[p], Tensor::f64(shape.as_slice(), v).unwrap());
        run(&sg.graph, &f, &[sg.loss], Precision::F64).unwrap()[0].to_f64_vec()[0]
    };
    let mut checked = 0;
    for (p, (name, g)) in grads.iter().enumerate() {
        assert_eq!(g.len(), m.weights()[p].len(), "{name}");
        // Every 7th element, by central differences.
        for i in (0..g.len()).step_by(7) {
            let h = 1e-6;
            let fd = (loss_at(p, i, h) - loss_at(p, i, -h)) / (2.0 * h);
            let a = g[i] as f64;
            assert!(
                (a - fd).abs() <= 1e-5 + 1e-3 * fd.abs(),
                "{name}[{i}]: {a} vs finite difference {fd}"
            );
            checked += usize::from(fd.abs() > 1e-4);
        }
    }
    assert!(checked > 25, "only {checked} non-trivial gradients checked");
    // Nothing trained.
    assert_eq!(m.step(), 0);
}

/// `predict` sends the weights to its plan only when they changed since it last did: after a
/// `set_weight` or a `fit` its outputs follow the new weights, and equal a fresh model's with
/// the same weights.
#[test]
fn predict_follows_every_weight_change() {
    let (x, y) = task(16, 6, 3);
    let mut m = tiny(5);
    let first = m.predict(&x).unwrap();
    assert_eq!(m.predict(&x).unwrap(), first, "no change, same outputs");
    let fresh_with = |m: &Sequential| {
        let mut f = tiny(99);
        for (spec, w) in m.param_specs().iter().zip(m.weights()) {
            f.set_weight(&spec.name, w).unwrap();
        }
        f.predict(&x).unwrap()
    };
    let name = m.param_specs()[0].name.clone();
    let doubled: Vec<f32> = m.weight(&name).unwrap().iter().map(|v| v * 2.0).collect();
    m.set_weight(&name, &doubled).unwrap();
    let after_set = m.predict(&x).unwrap();
    assert_ne!(after_set, first);
    assert_eq!(after_set, fresh_with(&m));
    m.fit(&x, &y, &FitOptions::new(1, 8).quiet()).unwrap();
    let after_fit = m.predict(&x).unwrap();
    assert_ne!(after_fit, after_set);
    assert_eq!(after_fit, fresh_with(&m));
}
