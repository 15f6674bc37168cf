//! `LayerNormalization` and `BatchNormalization` in models: PyTorch's values through the layer
//! API (with and without gamma and beta), Keras's moving averages, PyTorch's parameter names
//! and Keras's parameter counts, masks passing through both (batch norm's moments skipping
//! the padding), training and saving, frozen batch norm, and the settings they refuse.
mod common;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::{assert_f32_close, Fixture};

/// f32 against torch's f64.
const TOL: (f32, f32) = (1e-5, 1e-5);
use trellis_nn::ndarray::{Array1, Array2, Array3, ArrayD};
use trellis_nn::prelude::*;
use trellis_nn::{
    BatchNormalization, BatchNormalizationConfig, LayerNormalization, LayerNormalizationConfig,
};

#[test]
fn layer_normalization_matches_torch() {
    let cases = [
        ("layernorm.json", LayerNormalizationConfig::new()),
        (
            "layernorm_plain.json",
            LayerNormalizationConfig::new()
                .with_epsilon(1e-5)
                .with_center(false)
                .with_scale(false),
        ),
    ];
    for (file, config) in cases {
        let fx = Fixture::load(file);
        let mut m = Sequential::new()
            .with_input_shape(&[4, 5])
            .add(config.clone());
        m.compile(Adam::default(), Loss::MeanSquaredError, &[])
            .unwrap();
        for spec in m.param_specs().to_vec() {
            let leaf = spec.name.strip_prefix("layer_normalization.").unwrap();
            m.set_weight(&spec.name, &fx.f32s(leaf)).unwrap();
        }
        assert_eq!(m.param_specs().len(), if config.scale { 2 } else { 0 });
        let x = Array3::from_shape_vec((3, 4, 5), fx.f32s("x")).unwrap();
        let got: ArrayD<f32> = m.predict(&x).unwrap();
        let want = fx.f32s("output");
        assert_eq!(got.shape(), &[3, 4, 5]);
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            // f32 against torch's f64: the nearly constant row (spread 1e-3 around 0.7)
            // keeps f32's rounding of 0.7 over its spread, about 1e-4 relative.
            assert!(
                (a - b).abs() <= 1e-5 + 1e-4 * b.abs(),
                "{file}: output[{k}] {a} vs torch {b}"
            );
        }
    }
}

#[test]
fn summary_names_and_counts_like_keras_and_torch() {
    let mut m = Sequential::new()
        .with_input_shape(&[7, 3])
        .add(LstmConfig::new(6).with_return_sequences(true))
        .add(LayerNormalization::new())
        .add(LayerNormalizationConfig::new().with_center(false));
    let s = m.summary().unwrap();
    assert_eq!(s.rows[1].class, "LayerNormalization");
    assert_eq!(s.rows[1].name, "layer_normalization");
    assert_eq!(s.rows[1].params, 12); // gamma and beta, [6] each
    assert_eq!(s.rows[2].name, "layer_normalization_1");
    assert_eq!(s.rows[2].params, 6); // gamma only
    assert_eq!(s.rows[1].output_shape, vec![None, Some(7), Some(6)]);
    let names: Vec<&str> = m.param_specs().iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"layer_normalization.weight"), "{names:?}");
    assert!(names.contains(&"layer_normalization.bias"), "{names:?}");
    assert!(names.contains(&"layer_normalization_1.weight"), "{names:?}");
    assert!(!names.contains(&"layer_normalization_1.bias"), "{names:?}");
    // Keras's starting values: gamma ones, beta zeros.
    assert!(m
        .weight("layer_normalization.weight")
        .unwrap()
        .iter()
        .all(|&v| v == 1.0));
    assert!(m
        .weight("layer_normalization.bias")
        .unwrap()
        .iter()
        .all(|&v| v == 0.0));
}

/// Token sequences whose label is whether token 1 occurs; lengths 2..=6, zero-padded at the
/// front or back.
fn task(pre: bool) -> (Array2<i64>, Array1<f32>) {
    let mut rng = trellis_nn::data::SplitMix64::new(3);
    let (n, t) = (64, 6);
    let mut x = Array2::<i64>::zeros((n, t));
    let mut y = Vec::new();
    for r in 0..n {
        let len = 2 + (rng.next_f64() * 5.0) as usize;
        let toks: Vec<i64> = (0..len)
            .map(|_| 1 + (rng.next_f64() * 8.0) as i64)
            .collect();
        y.push(f32::from(toks.contains(&1)));
        let start = if pre { t - len } else { 0 };
        for (k, &v) in toks.iter().enumerate() {
            x[[r, start + k]] = v;
        }
    }
    (x, Array1::from(y))
}

fn masked_model() -> Sequential {
    let mut m = Sequential::new()
        .with_seed(9)
        .add(EmbeddingConfig::new(10, 8).with_mask_zero(true))
        .add(LstmConfig::new(8).with_return_sequences(true))
        .add(LayerNormalization::new())
        .add(Lstm::new(8))
        .add(LayerNormalization::new())
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(
        Adam::new(0.02),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

#[test]
fn masks_pass_through_and_a_normalised_model_trains_and_saves() {
    // The mask reaches the second LSTM through the normalisation: pre- and post-padded inputs
    // give the same predictions.
    let mut m = masked_model();
    let (pre, y) = task(true);
    let (post, _) = task(false);
    let (a, b): (ArrayD<f32>, ArrayD<f32>) = (m.predict(&pre).unwrap(), m.predict(&post).unwrap());
    for (p, q) in a.iter().zip(b.iter()) {
        assert!((p - q).abs() < 1e-5, "pre {p} vs post {q}");
    }
    let h = m.fit(&post, &y, &FitOptions::new(25, 16).quiet()).unwrap();
    let acc = h.accuracy();
    assert!(
        *acc.last().unwrap() > 0.9 && *h.loss().last().unwrap() < 0.5 * h.loss()[0],
        "loss {:?}, accuracy {acc:?}",
        h.loss()
    );
    let gamma = m.weight("layer_normalization.weight").unwrap();
    assert!(gamma.iter().any(|&v| v != 1.0), "gamma never trained");
    common::assert_reloads_the_same(&mut m, &post, 16);
}

#[test]
fn a_bad_epsilon_is_named() {
    for eps in [0.0, -1.0, f64::NAN, 1e-50] {
        let mut m = Sequential::new()
            .with_input_shape(&[3])
            .add(LayerNormalizationConfig::new().with_epsilon(eps));
        let e = m
            .compile(Adam::default(), Loss::MeanSquaredError, &[])
            .and_then(|_| {
                m.predict(Array2::<f32>::zeros((2, 3)))
                    .map(|_: ArrayD<f32>| ())
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("epsilon"), "{eps}: {e}");
    }
}

/// Inference normalises by the moving moments (PyTorch's eval output); one training step
/// moves them toward the batch's by Keras's rule (`m * momentum + batch * (1 - momentum)`,
/// biased variance), on a sequence and on rows, with and without gamma and beta.
#[test]
fn batch_normalization_matches_torch_and_moves_as_keras() {
    let cases = [
        ("batchnorm.json", BatchNormalizationConfig::new()),
        (
            "batchnorm_plain.json",
            BatchNormalizationConfig::new()
                .with_epsilon(1e-5)
                .with_center(false)
                .with_scale(false),
        ),
    ];
    for (file, config) in cases {
        let fx = Fixture::load(file);
        let shape: Vec<usize> = fx.get("x").shape.clone();
        let mut m = Sequential::new()
            .with_input_shape(&shape[1..])
            .add(config.clone());
        m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
            .unwrap();
        fn key(name: &str) -> &str {
            match name {
                "running_mean" => "moving_mean",
                "running_var" => "moving_var",
                other => other,
            }
        }
        for spec in m.param_specs().to_vec() {
            let leaf = spec.name.strip_prefix("batch_normalization.").unwrap();
            m.set_weight(&spec.name, &fx.f32s(key(leaf))).unwrap();
        }
        assert_eq!(m.param_specs().len(), if config.scale { 4 } else { 2 });
        let x = ArrayD::from_shape_vec(shape.clone(), fx.f32s("x")).unwrap();
        let got: ArrayD<f32> = m.predict(&x).unwrap();
        assert_f32_close(
            got.as_slice().unwrap(),
            &fx.f32s("inference_output"),
            TOL,
            file,
        );
        // One step on the whole batch: the moving moments take the batch's.
        let y = ArrayD::<f32>::zeros(shape.clone());
        m.fit(&x, &y, &FitOptions::new(1, shape[0]).quiet())
            .unwrap();
        for (name, want) in [
            ("running_mean", "new_moving_mean"),
            ("running_var", "new_moving_var"),
        ] {
            let got = m.weight(&format!("batch_normalization.{name}")).unwrap();
            assert_f32_close(got, &fx.f32s(want), TOL, &format!("{file}: {name}"));
        }
    }
}

#[test]
fn batch_normalization_summary_and_names_like_keras_and_torch() {
    let mut m = Sequential::new()
        .with_input_shape(&[7, 3])
        .add(LstmConfig::new(6).with_return_sequences(true))
        .add(BatchNormalization::new())
        .add(Lstm::new(4))
        .add(BatchNormalizationConfig::new().with_scale(false));
    let s = m.summary().unwrap();
    assert_eq!(s.rows[1].class, "BatchNormalization");
    assert_eq!(s.rows[1].name, "batch_normalization");
    assert_eq!(s.rows[1].params, 4 * 6);
    assert_eq!(s.rows[3].name, "batch_normalization_1");
    assert_eq!(s.rows[3].params, 3 * 4);
    // The moving moments do not train (Keras's "Non-trainable params").
    assert_eq!(s.total - s.trainable, 2 * 6 + 2 * 4);
    let names: Vec<&str> = m.param_specs().iter().map(|p| p.name.as_str()).collect();
    for n in [
        "batch_normalization.weight",
        "batch_normalization.bias",
        "batch_normalization.running_mean",
        "batch_normalization.running_var",
        "batch_normalization_1.bias",
    ] {
        assert!(names.contains(&n), "{n}: {names:?}");
    }
    assert!(
        !names.contains(&"batch_normalization_1.weight"),
        "{names:?}"
    );
    let var = m.weight("batch_normalization.running_var").unwrap();
    assert!(var.iter().all(|&v| v == 1.0), "{var:?}");
}

/// A series regression with badly scaled features learns with batch norm in front, saves and
/// reloads; the optimiser keeps no state for the moving moments; frozen, the layer runs as in
/// inference and keeps them.
#[test]
fn a_batch_normalized_model_trains_saves_and_freezes() {
    let n = 64;
    let x = Array3::from_shape_fn((n, 5, 2), |(r, t, f)| {
        let v = ((r * 7 + t * 3) % 11) as f32 / 11.0;
        if f == 0 {
            1000.0 + 300.0 * v
        } else {
            0.01 * v
        }
    });
    let y = Array2::from_shape_fn((n, 1), |(r, _)| ((r * 7) % 11) as f32 / 11.0);
    let mut m = Sequential::new()
        .with_seed(4)
        .add(BatchNormalization::new())
        .add(Lstm::new(8))
        .add(Dense::new(1, Activation::Linear));
    m.compile(Adam::new(0.02), Loss::MeanSquaredError, &[])
        .unwrap();
    let h = m.fit(&x, &y, &FitOptions::new(20, 16).quiet()).unwrap();
    let loss = h.loss();
    assert!(loss.last().unwrap() < &(0.3 * loss[0]), "{loss:?}");
    let mean = m.weight("batch_normalization.running_mean").unwrap();
    assert!(mean[0] > 100.0, "the moving mean never moved: {mean:?}");
    common::assert_reloads_the_same(&mut m, &x, 16);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    m.save(&path).unwrap();
    let buf = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&buf).unwrap();
    let names: Vec<String> = st.names().into_iter().cloned().collect();
    let has = |n: &str| names.iter().any(|m| m == n);
    assert!(has("batch_normalization.running_mean"), "{names:?}");
    assert!(has("optimizer.m.batch_normalization.weight"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("optimizer.") && n.contains("running")),
        "{names:?}"
    );
    // Frozen: neither gamma nor the moving moments change.
    m.set_trainable(0, false).unwrap();
    let before = m.weights().to_vec();
    m.fit(&x, &y, &FitOptions::new(1, 16).quiet()).unwrap();
    let after = m.weights().to_vec();
    for (spec, (a, b)) in m.param_specs().iter().zip(before.iter().zip(&after)) {
        if spec.name.starts_with("batch_normalization.") {
            assert_eq!(a, b, "{} moved while frozen", spec.name);
        }
    }
}

#[test]
fn batch_normalization_refuses_bad_settings_by_name() {
    for (config, what) in [
        (
            BatchNormalizationConfig::new().with_momentum(1.5),
            "momentum",
        ),
        (
            BatchNormalizationConfig::new().with_momentum(f64::NAN),
            "momentum",
        ),
        (BatchNormalizationConfig::new().with_epsilon(0.0), "epsilon"),
    ] {
        let mut m = Sequential::new().with_input_shape(&[3]).add(config);
        let e = m
            .compile(Adam::default(), Loss::MeanSquaredError, &[])
            .and_then(|_| {
                m.predict(Array2::<f32>::zeros((2, 3)))
                    .map(|_: ArrayD<f32>| ())
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains(what), "{e}");
    }
}

/// A batch norm shared by two inputs moves its averages once per call, in call order, as
/// Keras applies the two calls' updates in turn.
#[test]
fn a_shared_batch_norm_moves_its_averages_once_per_call() {
    let (a, b) = (Input::new(&[2]), Input::new(&[2]));
    let bn = BatchNormalizationConfig::new().with_momentum(0.5).shared();
    let (pa, pb) = (bn.call(&a).unwrap(), bn.call(&b).unwrap());
    let mut m = Model::new(&[&a, &b], &[&pa, &pb]).unwrap();
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let xa = Array2::from_shape_vec((2, 2), vec![1.0f32, 2.0, 3.0, 6.0]).unwrap();
    let xb = Array2::from_shape_vec((2, 2), vec![10.0f32, 0.0, 20.0, 4.0]).unwrap();
    let y = Array2::<f32>::zeros((2, 2));
    let opts = FitOptions::new(1, 2).quiet();
    m.fit([Inputs::from(&xa), Inputs::from(&xb)], [&y, &y], &opts)
        .unwrap();
    // Means: a [2, 4], b [15, 2]; from 0: 0.5 * (0.5 * 0 + 0.5 * a) + 0.5 * b.
    let got = m.weight("batch_normalization.running_mean").unwrap();
    assert_eq!(got, vec![0.25 * 2.0 + 0.5 * 15.0, 0.25 * 4.0 + 0.5 * 2.0]);
    // Biased variances: a [1, 4], b [25, 4]; from 1.
    let got = m.weight("batch_normalization.running_var").unwrap();
    assert_eq!(
        got,
        vec![
            0.25 + 0.25 * 1.0 + 0.5 * 25.0,
            0.25 + 0.25 * 4.0 + 0.5 * 4.0
        ]
    );
}

/// Behind a mask the moments skip the padding (Keras's masked moments, the fixture's formula):
/// the moving averages after one step are the real steps' whatever the padding holds.
#[test]
fn masked_batch_normalization_moves_by_the_real_steps() {
    let fx = Fixture::load("batchnorm_masked.json");
    let mut x = fx.f32s("x");
    let w = fx.f32s("weights");
    // Padding as zeros, which Masking(0) marks.
    for (k, v) in x.iter_mut().enumerate() {
        *v *= w[k / 5];
    }
    let x = Array3::from_shape_vec((4, 3, 5), x).unwrap();
    let mut m = Sequential::new()
        .with_input_shape(&[3, 5])
        .add(Masking::new(0.0))
        .add(BatchNormalization::new());
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    m.set_weight("batch_normalization.running_mean", &fx.f32s("moving_mean"))
        .unwrap();
    m.set_weight("batch_normalization.running_var", &fx.f32s("moving_var"))
        .unwrap();
    let y = Array3::<f32>::zeros((4, 3, 5));
    m.fit(&x, &y, &FitOptions::new(1, 4).quiet()).unwrap();
    for (name, want) in [
        ("running_mean", "new_moving_mean"),
        ("running_var", "new_moving_var"),
    ] {
        let got = m.weight(&format!("batch_normalization.{name}")).unwrap();
        assert_f32_close(got, &fx.f32s(want), TOL, name);
    }
}

/// A masked text model with batch norm between its LSTMs trains the same on pre- and
/// post-padded copies of the data: the mask passes through the batch norm to the second LSTM
/// and the loss. (The first LSTM's padded steps are zeros either way, so this does not tell
/// masked moments from plain ones; the test above does.)
#[test]
fn masked_batch_normalization_ignores_where_the_padding_is() {
    let model = || {
        let mut m = Sequential::new()
            .with_seed(5)
            .add(EmbeddingConfig::new(10, 8).with_mask_zero(true))
            .add(LstmConfig::new(8).with_return_sequences(true))
            .add(BatchNormalization::new())
            .add(Lstm::new(8))
            .add(Dense::new(1, Activation::Sigmoid));
        m.compile(Adam::new(0.02), Loss::BinaryCrossentropy, &[])
            .unwrap();
        m
    };
    let (pre, y) = task(true);
    let (post, _) = task(false);
    let opts = FitOptions::new(3, 16).quiet().with_shuffle(false);
    let (mut a, mut b) = (model(), model());
    let (la, lb) = (
        a.fit(&pre, &y, &opts).unwrap().loss(),
        b.fit(&post, &y, &opts).unwrap().loss(),
    );
    for (p, q) in la.iter().zip(&lb) {
        assert!((p - q).abs() < 1e-4, "pre {la:?} vs post {lb:?}");
    }
    let (ma, mb) = (
        a.weight("batch_normalization.running_mean").unwrap(),
        b.weight("batch_normalization.running_mean").unwrap(),
    );
    assert_f32_close(ma, mb, TOL, "moving mean, pre vs post");
}
