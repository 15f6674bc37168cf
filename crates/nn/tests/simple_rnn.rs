//! `SimpleRNN` in models: PyTorch's forward values through the layer API (stacked, and
//! bidirectional with relu), PyTorch's parameter names, training, saving, and the activations
//! it refuses.
mod common;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::Fixture;
use trellis_nn::ndarray::{Array3, ArrayD};
use trellis_nn::prelude::*;

/// A fixture tensor (`[T, B, F]`, time-major as PyTorch's) as a batch-major `[B, T, F]` array.
fn batch_major(fx: &Fixture, name: &str) -> Array3<f32> {
    let t = fx.get(name);
    let v: Vec<f32> = t.data.iter().map(|&x| x as f32).collect();
    Array3::from_shape_vec((t.shape[0], t.shape[1], t.shape[2]), v)
        .unwrap()
        .permuted_axes([1, 0, 2])
        .as_standard_layout()
        .to_owned()
}

/// Loads the fixture's `nn.RNN` parameters into `m` under `module` (trellis's one bias is
/// PyTorch's `bias_ih + bias_hh`), predicts the fixture's `x` and compares with its `output`.
fn check_forward(mut m: Sequential, fx: &Fixture, module: &str) {
    m.compile(Adam::default(), Loss::MeanSquaredError, &[])
        .unwrap();
    for spec in m.param_specs().to_vec() {
        let leaf = spec.name.strip_prefix(&format!("{module}.")).unwrap();
        let values: Vec<f64> = match leaf.strip_prefix("bias_ih") {
            Some(rest) => {
                let (bi, bh) = (fx.get(leaf), fx.get(&format!("bias_hh{rest}")));
                bi.data.iter().zip(&bh.data).map(|(a, b)| a + b).collect()
            }
            None => fx.get(leaf).data.clone(),
        };
        let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        m.set_weight(&spec.name, &values).unwrap();
    }
    let x = batch_major(fx, "x");
    let got: ArrayD<f32> = m.predict(&x).unwrap();
    let want = batch_major(fx, "output").into_dyn();
    assert_eq!(got.shape(), want.shape());
    for (k, (a, b)) in got.iter().zip(want.iter()).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 + 1e-5 * b.abs(),
            "{}: output[{k}] {a} vs torch {b}",
            fx.name
        );
    }
}

#[test]
fn stacked_simple_rnn_matches_torch() {
    // torch.nn.RNN(4, 3, num_layers=2): two stacked layers are one module, layers l0 and l1.
    let fx = Fixture::load("rnn2_t5_grad.json");
    let m = Sequential::new()
        .with_input_shape(&[5, 4])
        .add(SimpleRnnConfig::new(3).with_return_sequences(true))
        .add(SimpleRnnConfig::new(3).with_return_sequences(true));
    check_forward(m, &fx, "simple_rnn");
}

#[test]
fn bidirectional_relu_simple_rnn_matches_torch() {
    let fx = Fixture::load("birnn_relu_t4_grad.json");
    let relu = SimpleRnnConfig::new(3)
        .with_activation(Activation::Relu)
        .with_return_sequences(true);
    let m = Sequential::new()
        .with_input_shape(&[4, 4])
        .add(Bidirectional::new(relu.init()));
    check_forward(m, &fx, "simple_rnn");
}

#[test]
fn simple_rnn_has_torch_names_and_a_keras_summary() {
    let mut m = Sequential::new()
        .add(Embedding::new(10, 4))
        .add(SimpleRnnConfig::new(3).with_return_sequences(true))
        .add(SimpleRnn::new(3))
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(Adam::default(), Loss::BinaryCrossentropy, &[])
        .unwrap();
    let names: Vec<String> = m
        .param_specs()
        .iter()
        .map(|s| format!("{}{:?}", s.name, s.shape))
        .collect();
    assert_eq!(
        names,
        [
            "embedding.weight[10, 4]",
            "simple_rnn.weight_ih_l0[3, 4]",
            "simple_rnn.weight_hh_l0[3, 3]",
            "simple_rnn.bias_ih_l0[3]",
            "simple_rnn.weight_ih_l1[3, 3]",
            "simple_rnn.weight_hh_l1[3, 3]",
            "simple_rnn.bias_ih_l1[3]",
            "dense.weight[1, 3]",
            "dense.bias[1]",
        ]
    );
    // Keras counts 4·3 + 3·3 + 3 = 24 parameters for SimpleRNN(3) on 4 features.
    let summary = m.summary().unwrap().to_string();
    assert!(
        summary.contains("(SimpleRNN)") && summary.contains("24"),
        "{summary}"
    );
}

/// The sign of a sequence's sum, learned from 16-step sequences: tanh and relu cells both
/// learn it, and a saved model predicts as the trained one.
#[test]
fn simple_rnn_learns_and_saves() {
    let (n, t) = (512, 16);
    let mut s = 7u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let x: Vec<f32> = (0..n * t).map(|_| next()).collect();
    let y: Vec<f32> = x
        .chunks(t)
        .map(|c| (c.iter().sum::<f32>() > 0.0) as u8 as f32)
        .collect();
    let x = Array3::from_shape_vec((n, t, 1), x).unwrap();
    let y = trellis_nn::ndarray::Array1::from(y);
    for activation in [Activation::Tanh, Activation::Relu] {
        let mut m = Sequential::new()
            .with_seed(2)
            .add(SimpleRnnConfig::new(16).with_activation(activation))
            .add(Dense::new(1, Activation::Sigmoid));
        m.compile(
            Adam::new(0.01),
            Loss::BinaryCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
        let h = m.fit(&x, &y, &FitOptions::new(20, 32)).unwrap();
        let acc = h.accuracy();
        assert!(
            acc[acc.len() - 1] > 0.9 && h.loss()[19] < 0.5 * h.loss()[0],
            "{activation:?}: loss {:?}, accuracy {acc:?}",
            h.loss()
        );
        common::assert_reloads_the_same(&mut m, &x, 32);
    }
}

#[test]
fn simple_rnn_refuses_activations_the_cell_does_not_have() {
    let mut m = Sequential::new()
        .with_input_shape(&[5, 2])
        .add(SimpleRnnConfig::new(3).with_activation(Activation::Sigmoid))
        .add(Dense::new(1, Activation::Sigmoid));
    let e = m
        .compile(Adam::default(), Loss::BinaryCrossentropy, &[])
        .and_then(|_| {
            m.predict(Array3::<f32>::zeros((2, 5, 2)))
                .map(|_: ArrayD<f32>| ())
        })
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("simple_rnn: activation must be Tanh or Relu"),
        "{e}"
    );
}
