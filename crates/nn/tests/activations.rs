//! Every activation by Keras's name: PyTorch's values and gradients through `Dense` (the
//! compiled plan), Keras's names parsed, bad parameters named, saved and loaded.
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::{assert_f32_close, Fixture};

/// f32 against torch's f64.
const TOL: (f32, f32) = (2e-6, 2e-5);
use trellis_nn::ndarray::{Array1, Array2, ArrayD};
use trellis_nn::prelude::*;

/// Every activation at its defaults, and ELU and leaky ReLU at a parameter of their own: the
/// fixture's cases.
fn golden_cases() -> impl Iterator<Item = Activation> {
    let extra = [
        Activation::Elu { alpha: 0.5 },
        Activation::LeakyRelu {
            negative_slope: 0.01,
        },
    ];
    Activation::ALL.into_iter().chain(extra)
}

/// The fixture's case for `a`: Keras's name, with the parameter when it is not the default.
fn case(a: Activation) -> String {
    match a {
        Activation::Elu { alpha } if alpha != 1.0 => format!("elu_{alpha}"),
        Activation::LeakyRelu { negative_slope } if negative_slope != 0.2 => {
            format!("leaky_relu_{negative_slope}")
        }
        _ => a.keras_name().to_string(),
    }
}

fn dense(a: Activation, fx: &Fixture) -> Sequential {
    let mut m = Sequential::new()
        .with_input_shape(&[5])
        .add(Dense::new(4, a));
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    m.set_weight("dense.weight", &fx.f32s("weight")).unwrap();
    m.set_weight("dense.bias", &fx.f32s("bias")).unwrap();
    m
}

#[test]
fn every_activation_matches_torch_forward_and_backward() {
    let fx = Fixture::load("activations.json");
    let x = Array2::from_shape_vec((6, 5), fx.f32s("x")).unwrap();
    let y = Array2::from_shape_vec((6, 4), fx.f32s("target")).unwrap();
    for a in golden_cases() {
        let c = case(a);
        let mut m = dense(a, &fx);
        let got: ArrayD<f32> = m.predict(&x).unwrap();
        assert_f32_close(
            got.as_slice().unwrap(),
            &fx.f32s(&format!("{c}.output")),
            TOL,
            &format!("{c} output"),
        );
        let loss = m.evaluate(&x, &y).unwrap().loss as f32;
        assert_f32_close(
            &[loss],
            &fx.f32s(&format!("{c}.loss")),
            TOL,
            &format!("{c} loss"),
        );
        let grads = m.gradients(&x, &y).unwrap();
        assert_eq!(grads[0].0, "dense.weight");
        assert_f32_close(
            &grads[0].1,
            &fx.f32s(&format!("{c}.grad_weight")),
            TOL,
            &format!("{c} grad_weight"),
        );
        assert_f32_close(
            &grads[1].1,
            &fx.f32s(&format!("{c}.grad_bias")),
            TOL,
            &format!("{c} grad_bias"),
        );
    }
}

/// At the points where the functions bend (z = -3, 0, 3, 6) the gradient is PyTorch's choice
/// (relu6 0 at 0 and 6, the hard sigmoid 0 at ±3, ELU and leaky ReLU their negative side at
/// 0). `Dense(4)` with the identity kernel puts z on the pre-activations; with the target one
/// below the output, MSE's bias gradient is `d sum(act(z)) / dz` / 2.
#[test]
fn gradients_at_the_bends_are_torchs() {
    let fx = Fixture::load("activations.json");
    let z = fx.f32s("kinks.z");
    let x = Array2::from_shape_vec((1, 4), z).unwrap();
    let eye: Vec<f32> = (0..16)
        .map(|i| if i % 5 == 0 { 1.0 } else { 0.0 })
        .collect();
    for a in golden_cases() {
        let c = case(a);
        let mut m = Sequential::new()
            .with_input_shape(&[4])
            .add(Dense::new(4, a));
        m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
            .unwrap();
        m.set_weight("dense.weight", &eye).unwrap();
        m.set_weight("dense.bias", &[0.0; 4]).unwrap();
        let y: ArrayD<f32> = m.predict(&x).unwrap();
        let target = y.mapv(|v| v - 1.0);
        let grads = m.gradients(&x, &target).unwrap();
        let got: Vec<f32> = grads[1].1.iter().map(|g| 2.0 * g).collect();
        assert_f32_close(&got, &fx.f32s(&format!("kinks.{c}.grad")), TOL, &c);
    }
}

/// The `Activation` layer after a linear `Dense` computes what the activation inside `Dense`
/// computes, for every activation.
#[test]
fn the_activation_layer_is_the_dense_activation_for_every_function() {
    let fx = Fixture::load("activations.json");
    let x = Array2::from_shape_vec((6, 5), fx.f32s("x")).unwrap();
    for a in Activation::ALL {
        let mut split = Sequential::new()
            .with_input_shape(&[5])
            .add(Dense::new(4, Activation::Linear))
            .add(a);
        split
            .compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
            .unwrap();
        split
            .set_weight("dense.weight", &fx.f32s("weight"))
            .unwrap();
        split.set_weight("dense.bias", &fx.f32s("bias")).unwrap();
        let got: ArrayD<f32> = split.predict(&x).unwrap();
        let want: ArrayD<f32> = dense(a, &fx).predict(&x).unwrap();
        assert_eq!(got, want, "{a:?}");
    }
}

#[test]
fn keras_names_parse_and_unknown_names_are_listed() {
    for a in Activation::ALL {
        assert_eq!(a.keras_name().parse::<Activation>().unwrap(), a);
    }
    assert_eq!("swish".parse::<Activation>().unwrap(), Activation::Silu);
    assert_eq!(
        "hard_swish".parse::<Activation>().unwrap(),
        Activation::HardSilu
    );
    assert_eq!(
        "leaky_relu".parse::<Activation>().unwrap(),
        Activation::leaky_relu()
    );
    let e = "gelu_tanh".parse::<Activation>().unwrap_err().to_string();
    assert!(e.contains("\"gelu_tanh\"") && e.contains("mish"), "{e}");
}

#[test]
fn a_parameter_that_is_not_finite_is_named() {
    for (a, what) in [
        (Activation::Elu { alpha: f32::NAN }, "alpha"),
        (
            Activation::LeakyRelu {
                negative_slope: f32::INFINITY,
            },
            "negative_slope",
        ),
    ] {
        let mut m = Sequential::new()
            .with_input_shape(&[3])
            .add(Dense::new(2, a));
        let e = m
            .compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(what) && e.contains(a.keras_name()), "{e}");
    }
}

/// A parameterised activation survives save and load (in `Dense` and as a layer), and the
/// loaded model predicts the same values.
#[test]
fn parameterised_activations_save_and_load() {
    let x = Array2::from_shape_fn((8, 3), |(r, c)| (r as f32 - 4.0) * 0.5 + c as f32 * 0.3);
    let y = Array1::from_shape_fn(8, |r| (r % 2) as f32);
    let mut m = Sequential::new()
        .with_seed(4)
        .with_input_shape(&[3])
        .add(Dense::new(
            5,
            Activation::LeakyRelu {
                negative_slope: 0.05,
            },
        ))
        .add(Activation::Elu { alpha: 0.7 })
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(Adam::default(), Loss::BinaryCrossentropy, &[])
        .unwrap();
    m.fit(&x, &y, &FitOptions::new(2, 4).quiet()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acts.safetensors");
    m.save_model(&path).unwrap();
    let mut again = Sequential::load_model(&path).unwrap();
    let want: ArrayD<f32> = m.predict(&x).unwrap();
    let got: ArrayD<f32> = again.predict(&x).unwrap();
    assert_eq!(got, want);
    let summary = again.summary().unwrap();
    assert_eq!(summary.rows[1].class, "Activation");
}

/// A hard sigmoid gives probabilities as the sigmoid does: binary cross-entropy takes it (and
/// refuses it as logits).
#[test]
fn a_hard_sigmoid_output_takes_binary_crossentropy() {
    let x = Array2::from_shape_fn((32, 2), |(r, c)| ((r * 3 + c * 5) % 7) as f32 / 3.5 - 1.0);
    let y = Array1::from_shape_fn(32, |r| f32::from(x[[r, 0]] > x[[r, 1]]));
    let model = |loss: trellis_nn::LossConfig| {
        let mut m = Sequential::new()
            .with_seed(2)
            .with_input_shape(&[2])
            .add(Dense::new(1, Activation::HardSigmoid));
        m.compile(Adam::new(0.05), loss, &[Metric::Accuracy])
            .map(|_| m)
    };
    let mut m = model(Loss::BinaryCrossentropy.into()).unwrap();
    let h = m.fit(&x, &y, &FitOptions::new(30, 8).quiet()).unwrap();
    let (first, last) = (h.loss()[0], *h.loss().last().unwrap());
    assert!(last < 0.5 * first, "{:?}", h.loss());
    let e = model(Loss::BinaryCrossentropy.from_logits(true))
        .and_then(|mut m| m.evaluate(&x, &y).map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HardSigmoid") && e.contains("already a probability"),
        "{e}"
    );
}
