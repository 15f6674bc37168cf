//! Keras's weight penalties: PyTorch's loss and gradients with them (Embedding -> LSTM ->
//! Dense), the penalty's formula on every layer kind that takes one, frozen layers adding
//! nothing, bad factors named, saved and loaded, and an L2 penalty shrinking what it trains.
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::{assert_f32_close, Fixture};

/// f32 against torch's f64.
const TOL: (f32, f32) = (1e-6, 1e-5);
use trellis_nn::ndarray::{Array1, Array2, Array3};
use trellis_nn::prelude::*;

/// The fixture's model; `regularized` false gives the same model without penalties.
fn fixture_model(regularized: bool) -> Sequential {
    let (mut emb, mut lstm, mut dense) = (
        EmbeddingConfig::new(7, 2),
        LstmConfig::new(3),
        DenseConfig::new(1),
    );
    if regularized {
        emb = emb.with_regularizer(Regularizer::l1(0.05));
        lstm = lstm
            .with_kernel_regularizer(Regularizer::l2(0.01))
            .with_recurrent_regularizer(Regularizer::l1(0.02))
            .with_bias_regularizer(Regularizer::l1_l2(0.03, 0.04));
        dense = dense
            .with_kernel_regularizer(Regularizer::l1_l2(0.01, 0.02))
            .with_bias_regularizer(Regularizer::l2(0.05));
    }
    let mut m = Sequential::new().add(emb).add(lstm).add(dense);
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let fx = Fixture::load("regularizers.json");
    for (name, key) in [
        ("embedding.weight", "embedding"),
        ("lstm.weight_ih_l0", "weight_ih"),
        ("lstm.weight_hh_l0", "weight_hh"),
        ("lstm.bias_ih_l0", "bias"),
        ("dense.weight", "dense_weight"),
        ("dense.bias", "dense_bias"),
    ] {
        m.set_weight(name, &fx.f32s(key)).unwrap();
    }
    m
}

#[test]
fn the_loss_and_gradients_with_penalties_match_torch() {
    let fx = Fixture::load("regularizers.json");
    let ids: Vec<i64> = fx.get("ids").data.iter().map(|&v| v as i64).collect();
    let x = Array2::from_shape_vec((3, 4), ids).unwrap();
    let y = Array2::from_shape_vec((3, 1), fx.f32s("target")).unwrap();
    let mut m = fixture_model(true);
    let loss = m.evaluate(&x, &y).unwrap().loss as f32;
    assert_f32_close(&[loss], &fx.f32s("loss"), TOL, "loss");
    let plain = fixture_model(false).evaluate(&x, &y).unwrap().loss as f32;
    assert_f32_close(
        &[plain],
        &fx.f32s("data_loss"),
        TOL,
        "loss without penalties",
    );
    let grads = m.gradients(&x, &y).unwrap();
    let keys = [
        "embedding",
        "weight_ih",
        "weight_hh",
        "bias",
        "dense_weight",
        "dense_bias",
    ];
    assert_eq!(grads.len(), keys.len());
    for ((name, got), key) in grads.iter().zip(keys) {
        assert_f32_close(got, &fx.f32s(&format!("grad_{key}")), TOL, name);
    }
}

/// `l1 sum|w| + l2 sum w^2` of `w`, in f64.
fn penalty(w: &[f32], r: Regularizer) -> f64 {
    let (l1, l2) = (f64::from(r.l1), f64::from(r.l2));
    w.iter()
        .map(|&v| l1 * f64::from(v).abs() + l2 * f64::from(v) * f64::from(v))
        .sum()
}

/// Conv1D, a bidirectional GRU (two biases a direction), a SimpleRNN and Dense, each with
/// penalties: the loss grows by exactly the formula over the named parameters, and a frozen
/// layer's penalties drop out (Keras counts only trainable weights).
#[test]
fn the_penalty_is_the_formula_on_every_layer_kind_and_frozen_layers_add_nothing() {
    let (k, r, b) = (
        Regularizer::l2(0.03),
        Regularizer::l1(0.02),
        Regularizer::l1_l2(0.01, 0.05),
    );
    let model = |regularized: bool| {
        let (mut conv, mut gru, mut rnn, mut dense) = (
            Conv1DConfig::new(4, 2),
            GruConfig::new(3).with_return_sequences(true),
            SimpleRnnConfig::new(2),
            DenseConfig::new(2),
        );
        if regularized {
            conv = conv.with_kernel_regularizer(k).with_bias_regularizer(b);
            gru = gru
                .with_kernel_regularizer(k)
                .with_recurrent_regularizer(r)
                .with_bias_regularizer(b);
            rnn = rnn.with_recurrent_regularizer(r);
            dense = dense.with_kernel_regularizer(k);
        }
        let mut m = Sequential::new()
            .with_seed(3)
            .with_input_shape(&[6, 3])
            .add(conv)
            .add(Bidirectional::new(gru.init()))
            .add(rnn)
            .add(dense);
        m.compile(Adam::default(), Loss::MeanSquaredError, &[])
            .unwrap();
        m
    };
    let x = Array3::from_shape_fn((5, 6, 3), |(i, t, f)| {
        ((i * 7 + t * 3 + f) % 11) as f32 / 11.0 - 0.5
    });
    let y = Array2::from_shape_fn((5, 2), |(i, j)| (i + j) as f32 * 0.1);
    let (mut with, mut without) = (model(true), model(false));
    let expected: f64 = with
        .param_specs()
        .iter()
        .map(|s| {
            let w = with.weight(&s.name).unwrap();
            let reg = match s.name.as_str() {
                "conv1d.weight" | "dense.weight" => Some(k),
                "conv1d.bias" => Some(b),
                n if n.starts_with("gru.weight_ih") => Some(k),
                n if n.starts_with("gru.weight_hh") => Some(r),
                n if n.starts_with("gru.bias") => Some(b),
                "simple_rnn.weight_hh_l0" => Some(r),
                _ => None,
            };
            assert_eq!(s.regularizer, reg, "{}", s.name);
            reg.map_or(0.0, |reg| penalty(w, reg))
        })
        .sum();
    assert_eq!(
        with.param_specs()
            .iter()
            .filter(|s| s.name.starts_with("gru.bias"))
            .count(),
        4,
        "bias_ih and bias_hh in each direction"
    );
    let plain = without.evaluate(&x, &y).unwrap().loss;
    let got = with.evaluate(&x, &y).unwrap().loss - plain;
    assert!(
        (got - expected).abs() <= 1e-5 * expected,
        "penalty {got} vs formula {expected}"
    );
    // Freezing the bidirectional GRU (layer 1) removes its share.
    let gru_share: f64 = with
        .param_specs()
        .iter()
        .filter(|s| s.name.starts_with("gru."))
        .map(|s| penalty(with.weight(&s.name).unwrap(), s.regularizer.unwrap()))
        .sum();
    with.set_trainable(1, false).unwrap();
    let got = with.evaluate(&x, &y).unwrap().loss - plain;
    let want = expected - gru_share;
    assert!(
        (got - want).abs() <= 1e-5 * want,
        "frozen: penalty {got} vs {want}"
    );
}

#[test]
fn a_bad_factor_is_named_with_its_parameter() {
    for (r, what) in [
        (Regularizer::l2(-0.1), "l2"),
        (Regularizer::l1(f32::NAN), "l1"),
    ] {
        let mut m = Sequential::new()
            .with_input_shape(&[3])
            .add(DenseConfig::new(2).with_bias_regularizer(r));
        let e = m
            .compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("dense.bias") && e.contains(what), "{e}");
    }
}

/// A saved model keeps its penalties (the loaded one evaluates to the same loss), and an L2
/// penalty keeps the kernel it trains smaller than training without it.
#[test]
fn penalties_save_load_and_shrink_what_they_train() {
    let x = Array2::from_shape_fn((32, 4), |(i, j)| ((i * 5 + j * 3) % 9) as f32 / 9.0 - 0.4);
    let y = Array1::from_shape_fn(32, |i| x[[i, 0]] * 2.0 - x[[i, 3]]);
    let train = |r: Option<Regularizer>| {
        let mut d = DenseConfig::new(8).with_activation(Activation::Tanh);
        if let Some(r) = r {
            d = d.with_kernel_regularizer(r);
        }
        let mut m = Sequential::new()
            .with_seed(5)
            .with_input_shape(&[4])
            .add(d)
            .add(Dense::new(1, Activation::Linear));
        m.compile(Adam::new(0.02), Loss::MeanSquaredError, &[])
            .unwrap();
        m.fit(&x, &y, &FitOptions::new(30, 8).quiet()).unwrap();
        m
    };
    let norm = |m: &Sequential| -> f32 {
        m.weight("dense.weight")
            .unwrap()
            .iter()
            .map(|v| v * v)
            .sum()
    };
    let mut with = train(Some(Regularizer::l2(0.05)));
    let without = train(None);
    assert!(
        norm(&with) < 0.7 * norm(&without),
        "{} vs {}",
        norm(&with),
        norm(&without)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reg.safetensors");
    with.save_model(&path).unwrap();
    let mut again = Sequential::load_model(&path).unwrap();
    assert_eq!(
        again.param_specs()[0].regularizer,
        Some(Regularizer::l2(0.05))
    );
    // The same loss, to f32's rounding (the loaded plan may sum in another order).
    let (a, b) = (
        again.evaluate(&x, &y).unwrap().loss,
        with.evaluate(&x, &y).unwrap().loss,
    );
    assert!((a - b).abs() <= 1e-6 * b, "{a} vs {b}");
}

/// A recurrent layer's penalties sit in its saved config under Keras's names, beside its other
/// options, and come back the same; a config without them (saved before they existed) loads.
#[test]
fn recurrent_penalties_are_saved_under_keras_names() {
    let c = LstmConfig::new(3).with_recurrent_regularizer(Regularizer::l2(0.01));
    let json = serde_json::to_value(trellis_nn::LayerConfig::Lstm(c.clone())).unwrap();
    let config = &json["config"];
    assert_eq!(config["recurrent_regularizer"]["l2"], 0.01f32 as f64);
    assert!(config.get("kernel_regularizer").is_none(), "{config}");
    let back: trellis_nn::LayerConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, trellis_nn::LayerConfig::Lstm(c));
    let mut old = serde_json::to_value(trellis_nn::LayerConfig::Lstm(LstmConfig::new(3))).unwrap();
    old["config"]
        .as_object_mut()
        .unwrap()
        .remove("recurrent_regularizer");
    let back: trellis_nn::LayerConfig = serde_json::from_value(old).unwrap();
    assert_eq!(back, trellis_nn::LayerConfig::Lstm(LstmConfig::new(3)));
}
