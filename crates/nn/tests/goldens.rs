//! Losses and metrics against committed goldens: each loss's mean and gradient from PyTorch
//! (`scripts/golden/losses_golden.py`), the epoch metrics from scikit-learn
//! (`scripts/golden/metrics_golden.py`), both in `tests/fixtures/`.
use std::collections::HashMap;

use serde_json::Value;
use trellis_ir::{run, Graph, Precision, Tensor, TensorType};
use trellis_nn::losses::{weighted_mean, Loss, LossConfig};
use trellis_nn::metrics::{Metric, Tally};

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// A tensor of the fixture: `(shape, values)`.
fn tensor(v: &Value, name: &str) -> (Vec<usize>, Vec<f64>) {
    let t = &v["tensors"][name];
    let shape = t["shape"]
        .as_array()
        .unwrap_or_else(|| panic!("no tensor {name}"));
    let shape = shape.iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data = t["data"].as_array().unwrap();
    (shape, data.iter().map(|x| x.as_f64().unwrap()).collect())
}

fn scalar(v: &Value, name: &str) -> f64 {
    tensor(v, name).1[0]
}

fn loss_config(c: &Value) -> LossConfig {
    let kind = match c["loss"].as_str().unwrap() {
        "BinaryCrossentropy" => Loss::BinaryCrossentropy,
        "SparseCategoricalCrossentropy" => Loss::SparseCategoricalCrossentropy,
        "CategoricalCrossentropy" => Loss::CategoricalCrossentropy,
        "Huber" => Loss::Huber,
        "MeanSquaredError" => Loss::MeanSquaredError,
        "MeanAbsoluteError" => Loss::MeanAbsoluteError,
        k => panic!("unknown loss {k}"),
    };
    kind.from_logits(c["from_logits"].as_bool().unwrap())
        .with_label_smoothing(c["label_smoothing"].as_f64().unwrap())
        .with_delta(c["delta"].as_f64().unwrap())
}

#[test]
fn losses_and_their_gradients_match_pytorch() {
    let f = fixture("losses.json");
    let cases = f["config"].as_object().unwrap();
    assert_eq!(cases.len(), 15);
    for (name, c) in cases {
        let loss = loss_config(c);
        loss.validate().unwrap();
        let (shape, input) = tensor(&f, &format!("{name}.input"));
        let (n, k) = (shape[0], shape[1]);
        let (_, mut target) = tensor(&f, &format!("{name}.target"));
        if loss.kind == Loss::SparseCategoricalCrossentropy {
            // The model feeds the sparse loss its labels one-hot.
            let mut onehot = vec![0.0; n * k];
            for (i, &c) in target.iter().enumerate() {
                onehot[i * k + c as usize] = 1.0;
            }
            target = onehot;
        }
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32([n, k]));
        let y = g.input("y", TensorType::f32([n, k]));
        let w = g.input("w", TensorType::f32([n, 1]));
        let per = loss.per_sample(&mut g, x, None, y).unwrap();
        let mean = weighted_mean(&mut g, per, w, None).unwrap();
        let grad = trellis_autodiff::grad(&mut g, mean, &[x]).unwrap()[0];
        let mut feeds = HashMap::new();
        feeds.insert(x, Tensor::f64([n, k], input).unwrap());
        feeds.insert(y, Tensor::f64([n, k], target).unwrap());
        feeds.insert(w, Tensor::f64([n, 1], vec![1.0 / n as f64; n]).unwrap());
        let r = run(&g, &feeds, &[mean, grad], Precision::F64).unwrap();
        // f64 throughout, but the graph's constants (1 - s, delta, ...) are f32: ~1e-9.
        let tol = 1e-7;
        let want = scalar(&f, &format!("{name}.loss"));
        let got = r[0].to_f64_vec()[0];
        assert!(
            (got - want).abs() <= tol * want.abs().max(1.0),
            "{name}: {got} vs {want}"
        );
        let (_, want) = tensor(&f, &format!("{name}.grad"));
        for (i, (a, b)) in r[1].to_f64_vec().iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= tol, "{name}: grad[{i}] {a} vs {b}");
        }
    }
}

/// The fixture's predictions and labels, added to a tally in uneven batches with masked
/// garbage rows between them: the result is exact over the whole, not a mean of batches.
fn tally(f: &Value, case: &str, loss: LossConfig, metrics: &[Metric]) -> Tally {
    let (shape, pred) = tensor(
        f,
        &format!(
            "{case}.{}",
            if case == "binary" { "scores" } else { "probs" }
        ),
    );
    let (_, labels) = tensor(
        f,
        &format!("{case}.{}", if case == "binary" { "labels" } else { "ids" }),
    );
    let (n, k) = (shape[0], shape[1]);
    let mut t = Tally::new(loss, metrics, k);
    let mut start = 0;
    for size in [1, 7, 64, 128].into_iter().cycle() {
        let end = (start + size).min(n);
        let mut p: Vec<f32> = pred[start * k..end * k].iter().map(|&v| v as f32).collect();
        let mut y: Vec<f32> = labels[start..end].iter().map(|&v| v as f32).collect();
        let mut keep = vec![1.0; end - start];
        // A masked step that would change every figure if it counted.
        p.extend(std::iter::repeat_n(0.9, k));
        y.push(0.0);
        keep.push(0.0);
        t.add(&p, &y, Some(&keep));
        start = end;
        if start == n {
            return t;
        }
    }
    unreachable!()
}

fn check(t: &Tally, f: &Value, case: &str, names: &[(&str, &str)]) {
    let got: HashMap<String, f64> = t.results("").into_iter().collect();
    for (ours, theirs) in names {
        let want = scalar(f, &format!("{case}.{theirs}"));
        let v = got[*ours];
        assert!((v - want).abs() <= 1e-6, "{case} {ours}: {v} vs {want}");
    }
    let want = scalar(f, &format!("{case}.accuracy"));
    let acc = t.accuracy().unwrap();
    assert!(
        (acc - want).abs() <= 1e-6,
        "{case} accuracy: {acc} vs {want}"
    );
}

#[test]
fn epoch_metrics_match_scikit_learn() {
    let f = fixture("metrics.json");
    let all = [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::F1Score,
        Metric::Auc,
        Metric::Perplexity,
    ];
    let t = tally(&f, "binary", Loss::BinaryCrossentropy.into(), &all);
    let names = [
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1_score", "f1"),
        ("auc", "auc"),
        ("perplexity", "perplexity"),
    ];
    check(&t, &f, "binary", &names);
    let mc = [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::F1Score,
        Metric::TopKCategoricalAccuracy(2),
        Metric::Perplexity,
    ];
    let t = tally(
        &f,
        "multiclass",
        Loss::SparseCategoricalCrossentropy.into(),
        &mc,
    );
    let names = [
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1_score", "f1"),
        ("top_k_categorical_accuracy", "top_k"),
        ("perplexity", "perplexity"),
    ];
    check(&t, &f, "multiclass", &names);
}

#[test]
fn auc_counts_ties_as_one_half() {
    use trellis_nn::metrics::roc_auc;
    // Of the 2 x 2 (positive, negative) pairs, 0.8 beats both negatives (2), 0.5 ties one
    // (0.5) and beats the other (1): 3.5 / 4.
    let mut s = [(0.8, true), (0.5, true), (0.5, false), (0.2, false)];
    assert_eq!(roc_auc(&mut s), Some(0.875));
    assert_eq!(roc_auc(&mut [(0.3, true), (0.4, true)]), None);
}
