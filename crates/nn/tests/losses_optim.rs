//! Losses against hand-computed values; accuracy; losses and metrics through `fit`.
use std::collections::HashMap;

use trellis_ir::{run, Graph, Precision, Tensor, TensorType};
use trellis_nn::layers::Activation;
use trellis_nn::losses::{weighted_mean, Loss};
use trellis_nn::metrics::accuracy_counts;
use trellis_nn::Sgd;

/// Per-sample losses of `loss` for predictions/logits `z` `[n, k]` and targets `y` `[n, k]`,
/// and the weighted mean with `w = 1/n`, through the interpreter.
fn eval_loss(loss: Loss, act: Activation, z: &[f32], y: &[f32], k: usize) -> (Vec<f32>, f32) {
    let n = z.len() / k;
    let mut g = Graph::new();
    let zi = g.input("z", TensorType::f32([n, k]));
    let yi = g.input("y", TensorType::f32([n, k]));
    let wi = g.input("w", TensorType::f32([n, 1]));
    let pred = act.apply(&mut g, zi).unwrap();
    let per = loss.per_sample(&mut g, pred, Some((zi, act)), yi).unwrap();
    let total = weighted_mean(&mut g, per, wi, None).unwrap();
    let mut f = HashMap::new();
    f.insert(zi, Tensor::f32([n, k], z.to_vec()).unwrap());
    f.insert(yi, Tensor::f32([n, k], y.to_vec()).unwrap());
    f.insert(wi, Tensor::f32([n, 1], vec![1.0 / n as f32; n]).unwrap());
    let r = run(&g, &f, &[per, total], Precision::F32).unwrap();
    (r[0].to_f32_vec(), r[1].to_f32_vec()[0])
}

fn close(a: f32, b: f64, tol: f64) {
    assert!((a as f64 - b).abs() <= tol * b.abs().max(1.0), "{a} vs {b}");
}

#[test]
fn binary_crossentropy_from_logits() {
    // z=2, y=1: log(1 + e^-2); z=-1, y=0: log(1 + e^-1); z=100, y=0: 100 (stable, no inf).
    let (per, mean) = eval_loss(
        Loss::BinaryCrossentropy,
        Activation::Sigmoid,
        &[2.0, -1.0, 100.0],
        &[1.0, 0.0, 0.0],
        1,
    );
    close(per[0], 0.126_928_011_042_968_5, 1e-6);
    close(per[1], 0.313_261_687_518_222_8, 1e-6);
    close(per[2], 100.0, 1e-6);
    close(
        mean,
        (0.126_928_011_042_968_5 + 0.313_261_687_518_222_8 + 100.0) / 3.0,
        1e-6,
    );
    // Agrees with the ir's mean bce_with_logits.
    let mut g = Graph::new();
    let z = g.input("z", TensorType::f32([2, 1]));
    let y = g.input("y", TensorType::f32([2, 1]));
    let l = trellis_ir::models::bce_with_logits(&mut g, z, y).unwrap();
    let mut f = HashMap::new();
    f.insert(z, Tensor::f32([2, 1], vec![2.0, -1.0]).unwrap());
    f.insert(y, Tensor::f32([2, 1], vec![1.0, 0.0]).unwrap());
    let r = run(&g, &f, &[l], Precision::F32).unwrap()[0].to_f32_vec()[0];
    close(
        r,
        (0.126_928_011_042_968_5 + 0.313_261_687_518_222_8) / 2.0,
        1e-6,
    );
}

#[test]
fn binary_crossentropy_from_probabilities_is_clipped() {
    // No sigmoid: the output is taken as a probability. p=0.8, y=1: -ln 0.8; p=0.3, y=0: -ln 0.7;
    // p=0, y=1: -ln 1e-7 (clipped, finite).
    let (per, _) = eval_loss(
        Loss::BinaryCrossentropy,
        Activation::Linear,
        &[0.8, 0.3, 0.0],
        &[1.0, 0.0, 1.0],
        1,
    );
    close(per[0], -(0.8f64.ln()), 1e-6);
    close(per[1], -(0.7f64.ln()), 1e-6);
    close(per[2], -(1e-7f64.ln()), 1e-3);
}

#[test]
fn sparse_categorical_crossentropy_from_logits() {
    // logits [1, 2, 3]: log-sum-exp = 3.4076059644443806.
    let lse = 3.407_605_964_444_380_6;
    let (per, _) = eval_loss(
        Loss::SparseCategoricalCrossentropy,
        Activation::Softmax,
        &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1000.0, 0.0, -1000.0],
        &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0], // one-hot of 2, 0, 0
        3,
    );
    close(per[0], lse - 3.0, 1e-6);
    close(per[1], lse - 1.0, 1e-6);
    close(per[2], 0.0, 1e-6); // stable with huge logits
                              // Softmax sums to one and matches by hand.
    let mut g = Graph::new();
    let z = g.input("z", TensorType::f32([1, 5]));
    let p = Activation::Softmax.apply(&mut g, z).unwrap();
    let mut f = HashMap::new();
    let zs = [0.5f32, -1.0, 2.0, 0.0, 1.5];
    f.insert(z, Tensor::f32([1, 5], zs.to_vec()).unwrap());
    let r = run(&g, &f, &[p], Precision::F32).unwrap()[0].to_f32_vec();
    let s: f64 = zs.iter().map(|&v| (v as f64).exp()).sum();
    for (a, v) in r.iter().zip(zs) {
        close(*a, (v as f64).exp() / s, 1e-6);
    }
}

#[test]
fn mean_squared_error() {
    let (per, mean) = eval_loss(
        Loss::MeanSquaredError,
        Activation::Linear,
        &[1.0, 2.0, 0.5, 0.5],
        &[0.0, 4.0, 0.5, 1.5],
        2,
    );
    close(per[0], 2.5, 1e-7); // (1 + 4) / 2
    close(per[1], 0.5, 1e-7); // (0 + 1) / 2
    close(mean, 1.5, 1e-7);
}

#[test]
fn accuracy_binary_and_categorical() {
    // Binary: threshold 0.5 on the probability.
    let (ok, n) = accuracy_counts(
        Loss::BinaryCrossentropy,
        &[0.9, 0.2, 0.6, 0.4],
        &[1.0, 0.0, 0.0, 0.0],
        4,
        1,
        None,
    );
    assert_eq!((ok, n), (3, 4));
    // Sparse categorical: argmax against the class id.
    let (ok, n) = accuracy_counts(
        Loss::SparseCategoricalCrossentropy,
        &[0.1, 0.7, 0.2, 0.5, 0.3, 0.2],
        &[1.0, 2.0],
        2,
        3,
        None,
    );
    assert_eq!((ok, n), (1, 2));
}

/// 32 samples of 3 features; label 1 iff the first feature is positive.
fn float_task() -> (Vec<f32>, Vec<f32>) {
    let mut rng = trellis_nn::data::SplitMix64::new(11);
    let x: Vec<f32> = (0..32 * 3).map(|_| rng.next_f64() as f32 - 0.5).collect();
    let y = x.chunks(3).map(|r| f32::from(r[0] > 0.0)).collect();
    (x, y)
}

fn head(act: Activation) -> trellis_nn::Sequential {
    trellis_nn::Sequential::new()
        .with_seed(5)
        .with_input_shape(&[3])
        .add(trellis_nn::Dense::new(1, act))
}

#[test]
fn probabilities_and_logits_are_not_mixed_up() {
    use trellis_nn::FitOptions;
    let (x, y) = float_task();
    let opts = FitOptions::new(1, 8).quiet();
    // A linear output under a probability loss: refused, naming the activation and the fix.
    let mut m = head(Activation::Linear);
    m.compile(Sgd::new(0.1), Loss::BinaryCrossentropy, &[])
        .unwrap();
    let e = m
        .fit((&x, [32, 3]), (&y, [32, 1]), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Linear") && e.contains("from_logits(true)") && !e.contains("  "),
        "{e}"
    );
    assert_eq!(m.epochs_done(), 0);
    // from_logits on a sigmoid output: refused too.
    let mut m = head(Activation::Sigmoid);
    m.compile(
        Sgd::new(0.1),
        Loss::BinaryCrossentropy.from_logits(true),
        &[],
    )
    .unwrap();
    let e = m
        .fit((&x, [32, 3]), (&y, [32, 1]), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("already a probability") && !e.contains("  "),
        "{e}"
    );
    // Options a loss does not have are refused by compile.
    let bad = [
        Loss::MeanSquaredError.from_logits(true),
        Loss::Huber.with_label_smoothing(0.1),
        Loss::BinaryCrossentropy.with_label_smoothing(1.0),
        Loss::Huber.with_delta(0.0),
        Loss::BinaryCrossentropy.with_delta(2.0),
    ];
    for l in bad {
        assert!(m.compile(Sgd::new(0.1), l, &[]).is_err(), "{l:?}");
    }
}

#[test]
fn a_logit_output_trains_the_same_as_a_sigmoid_one() {
    use trellis_nn::{FitOptions, Metric};
    // sigmoid(z) with the loss read from z, and z with from_logits: the same loss and
    // gradients; accuracy thresholds the logit at 0, the probability at 0.5.
    let (x, y) = float_task();
    let opts = FitOptions::new(10, 8).quiet();
    let fit = |act, loss: trellis_nn::losses::LossConfig| {
        let mut m = head(act);
        m.compile(Sgd::new(2.0), loss, &[Metric::Accuracy, Metric::Auc])
            .unwrap();
        let h = m.fit((&x, [32, 3]), (&y, [32, 1]), &opts).unwrap();
        (h, m.weights().to_vec())
    };
    let (hp, wp) = fit(Activation::Sigmoid, Loss::BinaryCrossentropy.into());
    let (hl, wl) = fit(
        Activation::Linear,
        Loss::BinaryCrossentropy.from_logits(true),
    );
    assert_eq!(wp, wl);
    assert_eq!(hp.loss(), hl.loss());
    assert_eq!(hp.accuracy(), hl.accuracy());
    assert_eq!(hp.get("auc"), hl.get("auc"));
    assert!(hl.accuracy()[9] > 0.8, "{:?}", hl.accuracy());
}

#[test]
fn class_and_sample_weights_scale_each_loss() {
    use trellis_nn::FitOptions;
    let (x, y) = float_task();
    let fit = |opts: FitOptions| {
        let mut m = head(Activation::Sigmoid);
        m.compile(Sgd::new(0.5), Loss::BinaryCrossentropy, &[])
            .unwrap();
        let h = m.fit((&x, [32, 3]), (&y, [32, 1]), &opts.quiet()).unwrap();
        (m.weights().to_vec(), h.loss())
    };
    let base = FitOptions::new(2, 8);
    // class_weight {0: 3} is sample_weight 3 on the class-0 samples, bit for bit.
    let sw: Vec<f32> = y
        .iter()
        .map(|&c| if c == 0.0 { 3.0 } else { 1.0 })
        .collect();
    let by_class = fit(base.clone().with_class_weight([(0, 3.0)]));
    assert_eq!(by_class, fit(base.clone().with_sample_weight(sw)));
    assert_ne!(by_class, fit(base.clone()));
    // Weights of 1 change nothing, bit for bit.
    assert_eq!(
        fit(base.clone().with_sample_weight(vec![1.0; 32])),
        fit(base.clone())
    );
    // Keras's reduction: a batch's loss is sum(w l) / rows, so zero weights on half the
    // samples halve it.
    let mut m = head(Activation::Sigmoid);
    m.compile(Sgd::new(0.0), Loss::BinaryCrossentropy, &[])
        .unwrap();
    let ev = m.evaluate((&x, [32, 3]), (&y, [32, 1])).unwrap().loss;
    let half: Vec<f32> = (0..32)
        .map(|i| f32::from(u8::from(i % 2 == 0)) * 2.0)
        .collect();
    let opts = FitOptions::new(1, 32)
        .with_shuffle(false)
        .quiet()
        .with_sample_weight(half);
    let h = m.fit((&x, [32, 3]), (&y, [32, 1]), &opts).unwrap();
    let even: f64 = {
        let per: Vec<f32> = (0..32)
            .step_by(2)
            .flat_map(|i| x[i * 3..i * 3 + 3].to_vec())
            .collect();
        let ys: Vec<f32> = (0..32).step_by(2).map(|i| y[i]).collect();
        m.evaluate((&per, [16, 3]), (&ys, [16, 1])).unwrap().loss
    };
    assert!(
        (h.loss()[0] - even).abs() < 1e-6,
        "{} vs {even} (all: {ev})",
        h.loss()[0]
    );
    // Bad weights are refused, naming them.
    let mut m = head(Activation::Sigmoid);
    m.compile(Sgd::new(0.5), Loss::BinaryCrossentropy, &[])
        .unwrap();
    for (opts, what) in [
        (
            base.clone().with_sample_weight(vec![1.0; 5]),
            "sample_weight",
        ),
        (
            base.clone().with_sample_weight(vec![-1.0; 32]),
            "sample_weight",
        ),
        (base.clone().with_class_weight([(2, 1.0)]), "class_weight"),
    ] {
        let e = m
            .fit((&x, [32, 3]), (&y, [32, 1]), &opts.quiet())
            .unwrap_err()
            .to_string();
        assert!(e.contains(what), "{e}");
    }
    assert_eq!(m.epochs_done(), 0);
}

#[test]
fn evaluate_reports_metrics_exact_over_all_batches() {
    use trellis_nn::metrics::{Metric, Tally};
    let (x, y) = float_task();
    let mut m = head(Activation::Sigmoid);
    let metrics = [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::F1Score,
        Metric::Auc,
    ];
    m.compile(Sgd::new(0.5), Loss::BinaryCrossentropy, &metrics)
        .unwrap();
    m.set_eval_batch_size(5);
    let ev = m.evaluate((&x, [32, 3]), (&y, [32, 1])).unwrap();
    let p = m.predict((&x, [32, 3])).unwrap();
    let mut t = Tally::new(Loss::BinaryCrossentropy, &metrics, 1);
    t.add(p.as_slice().unwrap(), &y, None);
    assert_eq!(ev.accuracy, t.accuracy());
    assert_eq!(ev.metrics, t.results(""));
    let names: Vec<&str> = ev.metrics.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names, ["precision", "recall", "f1_score", "auc"]);
    // And fit logs them by Keras name, validation ones with val_.
    let opts = trellis_nn::FitOptions::new(1, 8)
        .quiet()
        .with_validation_data((&x, [32, 3]), (&y, [32, 1]));
    let h = m.fit((&x, [32, 3]), (&y, [32, 1]), &opts).unwrap();
    let e = &h.epochs[0];
    assert!(
        e.get("f1_score").is_some() && e.get("val_auc").is_some(),
        "{:?}",
        e.names()
    );
    let after = m.evaluate((&x, [32, 3]), (&y, [32, 1])).unwrap();
    assert_eq!(e.get("val_auc"), after.get("auc"));
    // A metric the output cannot have is refused before any work.
    m.compile(
        Sgd::new(0.5),
        Loss::BinaryCrossentropy,
        &[Metric::TopKCategoricalAccuracy(2)],
    )
    .unwrap();
    let e = m
        .evaluate((&x, [32, 3]), (&y, [32, 1]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("top_k_categorical_accuracy"), "{e}");
}

/// Regression: MAE as the loss, `mae` and `mse` as metrics, computed from the predictions by
/// hand over all batches; `mse` equals the MSE loss when that is the loss; class ids refused.
#[test]
fn regression_losses_and_metrics_match_the_predictions() {
    use trellis_nn::metrics::Metric;
    let (x, _) = float_task();
    let y: Vec<f32> = x.chunks(3).map(|r| 2.0 * r[0] - r[1] + 0.3).collect();
    let metrics = [Metric::MeanAbsoluteError, Metric::MeanSquaredError];
    for loss in [Loss::MeanAbsoluteError, Loss::MeanSquaredError] {
        let mut m = head(Activation::Linear);
        m.compile(Sgd::new(0.1), loss, &metrics).unwrap();
        let h = m
            .fit(
                (&x, [32, 3]),
                (&y, [32, 1]),
                &trellis_nn::FitOptions::new(30, 8).quiet(),
            )
            .unwrap();
        assert!(h.loss()[29] < 0.2 * h.loss()[0], "{loss:?}: {:?}", h.loss());
        m.set_eval_batch_size(5);
        let ev = m.evaluate((&x, [32, 3]), (&y, [32, 1])).unwrap();
        let p = m.predict((&x, [32, 3])).unwrap();
        let d: Vec<f64> = p.iter().zip(&y).map(|(a, b)| (a - b) as f64).collect();
        let mae = d.iter().map(|v| v.abs()).sum::<f64>() / 32.0;
        let mse = d.iter().map(|v| v * v).sum::<f64>() / 32.0;
        assert!(
            (ev.get("mae").unwrap() - mae).abs() < 1e-6,
            "{ev:?} vs {mae}"
        );
        assert!(
            (ev.get("mse").unwrap() - mse).abs() < 1e-6,
            "{ev:?} vs {mse}"
        );
        let want = if loss == Loss::MeanAbsoluteError {
            mae
        } else {
            mse
        };
        assert!(
            (ev.loss - want).abs() < 1e-5,
            "{loss:?}: {} vs {want}",
            ev.loss
        );
    }
    let mut m = trellis_nn::Sequential::new()
        .with_input_shape(&[3])
        .add(trellis_nn::Dense::new(2, Activation::Softmax));
    m.compile(
        Sgd::new(0.1),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::MeanAbsoluteError],
    )
    .unwrap();
    let ids = vec![0.0f32; 32];
    let e = m
        .fit(
            (&x, [32, 3]),
            (&ids, [32]),
            &trellis_nn::FitOptions::new(1, 8).quiet(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("mae") && e.contains("class ids"), "{e}");
}
