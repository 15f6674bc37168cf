//! `LayerNormalization` in models: PyTorch's values through the layer API (with and without
//! gamma and beta), PyTorch's parameter names and Keras's parameter count, masks passing
//! through it, training and saving, and the epsilon it refuses.
mod common;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::Fixture;
use trellis_nn::ndarray::{Array1, Array2, Array3, ArrayD};
use trellis_nn::prelude::*;
use trellis_nn::{LayerNormalization, LayerNormalizationConfig};

fn f32s(fx: &Fixture, name: &str) -> Vec<f32> {
    fx.get(name).data.iter().map(|&v| v as f32).collect()
}

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
            m.set_weight(&spec.name, &f32s(&fx, leaf)).unwrap();
        }
        assert_eq!(m.param_specs().len(), if config.scale { 2 } else { 0 });
        let x = Array3::from_shape_vec((3, 4, 5), f32s(&fx, "x")).unwrap();
        let got: ArrayD<f32> = m.predict(&x).unwrap();
        let want = f32s(&fx, "output");
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
