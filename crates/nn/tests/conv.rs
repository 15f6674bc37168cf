//! `Conv1D`, `MaxPooling1D` and `AveragePooling1D` in models: PyTorch's values through the layer
//! API for every padding, stride and dilation in the fixtures, Keras's parameter counts and
//! shapes, a CNN-LSTM text classifier that trains and saves, and the inputs they refuse.
mod common;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::Fixture;
use trellis_nn::ndarray::{Array1, Array2, Array3, ArrayD};
use trellis_nn::prelude::*;
use trellis_nn::Layer;

/// Predicts the fixture's `case.x` through `layer` (its weights the fixture's) and compares
/// with `case.output`.
fn check(fx: &Fixture, case: &str, layer: Box<dyn Layer>) {
    let x = fx.get(&format!("{case}.x"));
    let (b, t, f) = (x.shape[0], x.shape[1], x.shape[2]);
    let mut m = Sequential::new().with_input_shape(&[t, f]);
    m.push(layer);
    m.compile(Adam::default(), Loss::MeanSquaredError, &[])
        .unwrap();
    for spec in m.param_specs().to_vec() {
        let leaf = spec.name.rsplit('.').next().unwrap();
        m.set_weight(&spec.name, &fx.f32s(&format!("{case}.{leaf}")))
            .unwrap();
    }
    let x = Array3::from_shape_vec((b, t, f), fx.f32s(&format!("{case}.x"))).unwrap();
    let got: ArrayD<f32> = m.predict(&x).unwrap();
    let want = fx.get(&format!("{case}.output"));
    assert_eq!(got.shape(), want.shape.as_slice(), "{case}");
    for (k, (a, w)) in got.iter().zip(&want.data).enumerate() {
        let w = *w as f32;
        assert!(
            (a - w).abs() <= 1e-5 + 1e-5 * w.abs(),
            "{case}: output[{k}] {a} vs torch {w}"
        );
    }
}

#[test]
fn conv1d_and_pooling_match_torch() {
    let fx = Fixture::load("conv1d.json");
    let conv = |o, k| Conv1DConfig::new(o, k);
    let cases: Vec<(&str, Box<dyn Layer>)> = vec![
        ("valid", conv(4, 3).into()),
        (
            "same_dilated",
            conv(4, 3)
                .with_padding(Padding::Same)
                .with_dilation_rate(2)
                .into(),
        ),
        (
            "causal_strided",
            conv(3, 2)
                .with_padding(Padding::Causal)
                .with_strides(2)
                .into(),
        ),
        (
            "same_strided",
            conv(2, 4)
                .with_padding(Padding::Same)
                .with_strides(3)
                .into(),
        ),
        ("pointwise", conv(3, 1).into()),
        ("max_pool", MaxPooling1D::new(2).into()),
        ("avg_pool", AveragePooling1D::new(3).with_strides(1).into()),
    ];
    for (case, layer) in cases {
        check(&fx, case, layer);
    }
}

#[test]
fn summary_counts_and_shapes_like_keras() {
    let mut m = Sequential::new()
        .with_input_shape(&[20])
        .add(Embedding::new(50, 8))
        .add(Conv1D::new(16, 3, Activation::Relu))
        .add(MaxPooling1D::default())
        .add(
            Conv1DConfig::new(4, 5)
                .with_padding(Padding::Same)
                .with_bias(false),
        )
        .add(AveragePooling1D::new(3).with_strides(2))
        .add(Lstm::new(6));
    let s = m.summary().unwrap();
    let row = |i: usize| {
        (
            s.rows[i].name.as_str(),
            s.rows[i].output_shape.clone(),
            s.rows[i].params,
        )
    };
    assert_eq!(
        row(1),
        ("conv1d", vec![None, Some(18), Some(16)], 3 * 8 * 16 + 16)
    );
    assert_eq!(row(2), ("max_pooling1d", vec![None, Some(9), Some(16)], 0));
    assert_eq!(
        row(3),
        ("conv1d_1", vec![None, Some(9), Some(4)], 5 * 16 * 4)
    );
    assert_eq!(
        row(4),
        ("average_pooling1d", vec![None, Some(4), Some(4)], 0)
    );
    assert_eq!(s.rows[3].class, "Conv1D");
    let names: Vec<&str> = m.param_specs().iter().map(|p| p.name.as_str()).collect();
    assert!(
        names.contains(&"conv1d.weight") && names.contains(&"conv1d.bias"),
        "{names:?}"
    );
    assert_eq!(m.weight("conv1d.weight").unwrap().len(), 16 * 8 * 3);
}

/// Whether token 1 is followed by token 2 somewhere: a bigram a width-2 kernel sees.
fn bigram_task() -> (Array2<i64>, Array1<f32>) {
    let mut rng = trellis_nn::data::SplitMix64::new(12);
    let (n, t) = (128, 12);
    let mut x = Array2::<i64>::zeros((n, t));
    let mut y = Vec::new();
    for r in 0..n {
        for c in 0..t {
            x[[r, c]] = 1 + (rng.next_f64() * 6.0) as i64;
        }
        if r % 2 == 0 {
            let at = (rng.next_f64() * (t - 1) as f64) as usize;
            x[[r, at]] = 1;
            x[[r, at + 1]] = 2;
        }
        let hit = (0..t - 1).any(|c| x[[r, c]] == 1 && x[[r, c + 1]] == 2);
        y.push(f32::from(hit));
    }
    (x, Array1::from(y))
}

#[test]
fn a_cnn_lstm_text_classifier_trains_and_saves() {
    let (x, y) = bigram_task();
    let mut m = Sequential::new()
        .with_seed(2)
        .add(Embedding::new(8, 8))
        .add(
            Conv1DConfig::new(16, 2)
                .with_activation(Activation::Relu)
                .with_padding(Padding::Same),
        )
        .add(MaxPooling1D::new(2))
        .add(Lstm::new(8))
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(
        Adam::new(0.01),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let h = m.fit(&x, &y, &FitOptions::new(30, 32).quiet()).unwrap();
    let acc = h.accuracy();
    assert!(
        *acc.last().unwrap() > 0.95,
        "loss {:?}, accuracy {acc:?}",
        h.loss()
    );
    common::assert_reloads_the_same(&mut m, &x, 32);
}

#[test]
fn masks_and_kernels_that_do_not_fit_are_refused_by_name() {
    let x = Array2::<i64>::ones((2, 4));
    // Refused when the model is built: by compile when it can build, else by predict.
    let predict = |mut m: Sequential| -> String {
        m.compile(Adam::default(), Loss::MeanSquaredError, &[])
            .and_then(|_| m.predict(&x).map(|_: ArrayD<f32>| ()))
            .unwrap_err()
            .to_string()
    };
    let masked = Sequential::new()
        .add(EmbeddingConfig::new(5, 3).with_mask_zero(true))
        .add(Conv1D::new(2, 2, Activation::Linear));
    let e = predict(masked);
    assert!(e.contains("conv1d") && e.contains("mask"), "{e}");
    let masked_pool = Sequential::new()
        .add(EmbeddingConfig::new(5, 3).with_mask_zero(true))
        .add(MaxPooling1D::new(2));
    let e = predict(masked_pool);
    assert!(e.contains("max_pooling1d") && e.contains("mask"), "{e}");
    let too_wide =
        Sequential::new()
            .add(Embedding::new(5, 3))
            .add(Conv1D::new(2, 6, Activation::Linear));
    let e = predict(too_wide);
    assert!(e.contains("6 steps") && e.contains("4 steps"), "{e}");
    let zero = Sequential::new()
        .add(Embedding::new(5, 3))
        .add(Conv1DConfig::new(2, 2).with_strides(0));
    let e = predict(zero);
    assert!(e.contains("strides"), "{e}");
}

/// Ids of unknown length: a deep stack of windows (each conv/pool pair cuts the length by 5)
/// still compiles and shows its summary, then trains on the real length; a model that
/// cannot be built is left uncompiled.
#[test]
fn deep_windows_on_ids_of_unknown_length_compile() {
    let deep = || {
        let mut m = Sequential::new().with_seed(3).add(Embedding::new(8, 4));
        for _ in 0..3 {
            m = m
                .add(Conv1D::new(4, 5, Activation::Relu))
                .add(MaxPooling1D::new(5));
        }
        let mut m = m
            .add(GlobalMaxPooling1D::default())
            .add(Dense::new(1, Activation::Sigmoid));
        m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[])
            .unwrap();
        m
    };
    let mut m = deep();
    let s = m.summary().unwrap();
    assert_eq!(s.rows[6].output_shape, vec![None, None, Some(4)]);
    assert_eq!(s.total, 8 * 4 + 3 * (5 * 4 * 4 + 4) + 4 + 1);
    let x = Array2::<i64>::from_shape_fn((4, 400), |(r, c)| ((r * 7 + c) % 8) as i64);
    let y = Array1::from(vec![0.0f32, 1.0, 0.0, 1.0]);
    let h = m.fit(&x, &y, &FitOptions::new(2, 4).quiet()).unwrap();
    assert!(h.loss().iter().all(|l| l.is_finite()), "{:?}", h.loss());
    // Too short for the real data: refused by name at fit.
    let short = Array2::<i64>::ones((4, 100));
    let e = deep()
        .fit(&short, &y, &FitOptions::new(1, 4).quiet())
        .unwrap_err();
    assert!(e.to_string().contains("steps"), "{e}");

    // A failed compile leaves the model as it was: compiled before, it keeps that optimiser.
    let mut bad =
        Sequential::new()
            .add(Embedding::new(5, 3))
            .add(Conv1D::new(2, 2, Activation::Linear));
    bad.compile(Sgd::new(0.5), Loss::MeanSquaredError, &[])
        .unwrap();
    bad.push(Conv1DConfig::new(2, 2).with_strides(0));
    let e = bad
        .compile(Adam::new(0.01), Loss::MeanSquaredError, &[])
        .unwrap_err();
    assert!(e.to_string().contains("stride"), "{e}");
    assert_eq!(bad.learning_rate(), Some(0.5));
    let mut never = Sequential::new()
        .add(Embedding::new(5, 3))
        .add(Conv1DConfig::new(2, 2).with_strides(0));
    assert!(never
        .compile(Adam::default(), Loss::MeanSquaredError, &[])
        .is_err());
    let e = never
        .fit(&short, &y, &FitOptions::new(1, 4).quiet())
        .unwrap_err();
    assert!(e.to_string().contains("compile"), "{e}");
}

/// Building at a placeholder length: parameters that depend on it are refused by name, an
/// error a longer placeholder would not mend is the first length's, and a kernel longer
/// than every placeholder says why.
#[test]
fn ids_of_unknown_length_refuse_what_the_length_decides() {
    let compile = |m: Sequential| {
        let mut m = m;
        m.compile(Adam::default(), Loss::MeanSquaredError, &[])
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let flat = Sequential::new()
        .add(Embedding::new(5, 3))
        .add(Conv1D::new(2, 100, Activation::Linear))
        .add(Flatten::new())
        .add(Dense::new(1, Activation::Linear));
    let e = compile(flat);
    assert!(
        e.contains("layer 3 (dense)") && e.contains("with_input_shape"),
        "{e}"
    );
    let reshape = Sequential::new()
        .add(Embedding::new(5, 4))
        .add(Reshape::new(&[-1, 2, 3]));
    let e = compile(reshape);
    assert!(e.contains("reshape") && !e.contains("16384"), "{e}");
    let huge =
        Sequential::new()
            .add(Embedding::new(5, 3))
            .add(Conv1D::new(2, 20_000, Activation::Linear));
    let e = compile(huge);
    assert!(
        e.contains("20000 steps") && e.contains("with_input_shape"),
        "{e}"
    );
}

/// Kim's text CNN through the functional API: parallel convolutions of widths 2, 3 and 4 over
/// one embedding, each max-pooled over time, concatenated, then a sigmoid; it learns the
/// bigram task and its summary lists every branch.
#[test]
fn a_multi_width_text_cnn_trains_in_the_functional_api() {
    let (x, y) = bigram_task();
    let input = Input::new(&[12]);
    let e = Embedding::new(8, 8).call(&input).unwrap();
    let pooled: Vec<SymTensor> = [2, 3, 4]
        .iter()
        .map(|&k| {
            let c = Conv1D::new(6, k, Activation::Relu).call(&e).unwrap();
            GlobalMaxPooling1D::new().call(&c).unwrap()
        })
        .collect();
    let joined = Concatenate::new(-1)
        .call([&pooled[0], &pooled[1], &pooled[2]])
        .unwrap();
    let p = Dense::new(1, Activation::Sigmoid).call(&joined).unwrap();
    let mut m = Model::new(&[&input], &[&p]).unwrap();
    m.compile(
        Adam::new(0.01),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let s = m.summary().unwrap();
    let convs: Vec<&str> = s
        .rows
        .iter()
        .filter(|r| r.class == "Conv1D")
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(convs, ["conv1d", "conv1d_1", "conv1d_2"]);
    let h = m.fit(&x, &y, &FitOptions::new(30, 32).quiet()).unwrap();
    let acc = h.accuracy();
    assert!(
        *acc.last().unwrap() > 0.95,
        "loss {:?}, accuracy {acc:?}",
        h.loss()
    );
}

/// A kernel far longer than the sequence under "same" padding: only the taps that reach a real
/// step are built (a product per tap made graphs of millions of nodes, which took the public-API
/// fuzz minutes for a 2^20-tap kernel), and the output is the convolution's by its definition.
#[test]
fn a_kernel_far_longer_than_the_sequence_builds_only_the_taps_that_reach_it() {
    let (t, k) = (5, 4001);
    let mut m = Sequential::new()
        .with_seed(1)
        .with_input_shape(&[t, 1])
        .add(
            Conv1DConfig::new(2, k)
                .with_padding(Padding::Same)
                .with_bias(false),
        );
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let w: Vec<f32> = (0..2 * k)
        .map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5)
        .collect();
    m.set_weight("conv1d.weight", &w).unwrap();
    let x = Array3::from_shape_fn((2, t, 1), |(b, s, _)| (b * t + s) as f32 * 0.25 - 1.0);
    let got: ArrayD<f32> = m.predict(&x).unwrap();
    // Keras's "same" at stride 1 pads (k - 1) / 2 = 2000 steps before.
    let pad = (k - 1) / 2;
    for b in 0..2 {
        for s in 0..t {
            for o in 0..2 {
                let want: f32 = (0..t).map(|r| x[[b, r, 0]] * w[o * k + r + pad - s]).sum();
                let g = got[[b, s, o]];
                assert!((g - want).abs() < 1e-5, "[{b},{s},{o}] {g} vs {want}");
            }
        }
    }
    let sg = m.step_graph(2, &[&[t, 1]], true).unwrap();
    assert!(
        sg.graph.node_bound() < 2_000,
        "{} nodes for a kernel of {k} taps on {t} steps",
        sg.graph.node_bound()
    );
}
