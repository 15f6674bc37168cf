//! Issue 11, the `nn` half: every input that used to abort, OOM, or train silently into NaN is
//! a clear error (or, for sizes, simply works), and the model is left usable. (The checkpoint
//! cases are in `checkpoint.rs`, the batch-size and validation-split ones in `train.rs`, the
//! random search over all of it in `fuzz.rs`.)
use trellis_nn::data::imdb::parse_reviews_json;
use trellis_nn::prelude::*;
use trellis_nn::{NnError, Optimizer};

/// A linear regression on 2 features.
fn regression(opt: impl Into<Optimizer>) -> Sequential {
    let mut m = Sequential::new()
        .with_seed(1)
        .with_input_shape(&[2])
        .add(Dense::new(1, Activation::Linear));
    m.compile(opt, Loss::MeanSquaredError, &[]).unwrap();
    m
}

fn reg_data(n: usize) -> (Array2<f32>, Array1<f32>) {
    let x = Array2::from_shape_fn((n, 2), |(r, c)| ((r * 2 + c) % 7) as f32 * 0.5 - 1.0);
    let y = x.rows().into_iter().map(|r| r[0] - 2.0 * r[1]).collect();
    (x, y)
}

fn all_finite(m: &Sequential) -> bool {
    m.weights().iter().flatten().all(|v| v.is_finite())
}

#[test]
fn non_finite_float_inputs_are_errors_naming_the_position() {
    let (mut x, y) = reg_data(6);
    let mut m = regression(Sgd::new(0.01));
    x[[3, 1]] = f32::NAN;
    let q = FitOptions::new(1, 4).quiet();
    let e = m.fit(&x, &y, &q).unwrap_err();
    assert!(
        matches!(e, NnError::NonFiniteInput { sample: 3, position: 1, value } if value.is_nan()),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "x: sample 3, position 1 is NaN: inputs must be finite"
    );
    x[[3, 1]] = f32::INFINITY;
    assert!(m.predict(&x).unwrap_err().to_string().contains("is inf"));
    assert!(m
        .evaluate(&x, &y)
        .unwrap_err()
        .to_string()
        .contains("sample 3"));
    assert_eq!(m.step(), 0);
}

#[test]
fn hyperparameters_are_validated_by_compile() {
    let cases: Vec<(Optimizer, &str)> = vec![
        (Sgd::new(f64::NAN).into(), "`learning_rate` = NaN"),
        (Sgd::new(-0.1).into(), "`learning_rate` = -0.1"),
        (Sgd::new(1e300).into(), "`learning_rate` = 1000000"),
        (Sgd::new(0.1).with_momentum(1.0).into(), "`momentum` = 1"),
        (
            Sgd::new(0.1).with_momentum(-0.5).into(),
            "`momentum` = -0.5",
        ),
        (
            Sgd::new(0.1).with_global_clipnorm(0.0).into(),
            "`global_clipnorm` = 0",
        ),
        (
            Adam::default().with_betas(1.0, 0.999).into(),
            "`beta_1` = 1",
        ),
        (
            Adam::default().with_betas(0.9, f64::NAN).into(),
            "`beta_2` = NaN",
        ),
        (Adam::default().with_epsilon(0.0).into(), "`epsilon` = 0"),
        (
            Adam::default().with_epsilon(1e-50).into(),
            "`epsilon` = 0.00000",
        ),
        (Adam::new(f64::INFINITY).into(), "`learning_rate` = inf"),
        (
            Adam::default().with_global_clipnorm(-1.0).into(),
            "`global_clipnorm` = -1",
        ),
    ];
    for (opt, want) in cases {
        let mut m = Sequential::new()
            .add(Embedding::new(30, 8))
            .add(Dense::new(1, Activation::Sigmoid));
        let e = m
            .compile(opt.clone(), Loss::BinaryCrossentropy, &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid argument ") && e.contains(want),
            "{opt:?}: {e}"
        );
    }
    // The defaults and the edges that are fine.
    for opt in [
        Optimizer::from(Adam::default()),
        Sgd::new(0.0).with_momentum(0.0).into(),
        Adam::default().with_betas(0.0, 0.0).into(),
    ] {
        regression(opt);
    }
}

#[test]
fn a_diverging_regression_is_an_error_and_keeps_finite_weights() {
    let (x, y) = reg_data(16);
    let mut m = regression(Sgd::new(10.0));
    let e = m.fit(&x, &y, &FitOptions::new(200, 4).quiet()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, NnError::NonFinite(_)), "{msg}");
    assert!(
        msg.starts_with("epoch ") && msg.contains(", batch "),
        "{msg}"
    );
    assert!(all_finite(&m), "{:?}", m.weights());
    // The model is still usable.
    assert!(m
        .predict(x.slice(s![..1, ..]))
        .is_ok_and(|p| p[[0, 0]].is_finite()));
}

#[test]
fn a_non_finite_loss_stops_fit_with_the_weights_from_before_the_batch() {
    // Sample 5's target squares to inf in f32: batch 3 of 3 (unshuffled, batch size 2).
    let (x, mut y) = reg_data(6);
    y[5] = 1e25;
    let q = FitOptions::new(1, 2).with_shuffle(false).quiet();
    let mut m = regression(Adam::new(0.01));
    let before = m.weights().to_vec();
    let e = m.fit(&x, &y, &q).unwrap_err().to_string();
    assert_eq!(
        e,
        "epoch 1, batch 3 of 3: the loss is inf; training stopped, the model keeps its weights \
         from before this batch"
    );
    assert_ne!(m.weights(), &before[..]);
    assert_eq!(m.step(), 2);
    assert_eq!(m.epochs_done(), 0);
    // Exactly the model trained on the first two batches only.
    let mut r = regression(Adam::new(0.01));
    r.fit(x.slice(s![..4, ..]), y.slice(s![..4]), &q).unwrap();
    assert_eq!(m.weights(), r.weights());
    // Training goes on from there once the data are fixed.
    y[5] = 1.0;
    m.fit(&x, &y, &q).unwrap();
    assert!(all_finite(&m));
}

#[test]
fn absurd_sizes_are_errors_before_allocating() {
    let compile = |m: &mut Sequential| {
        m.compile(Adam::default(), Loss::BinaryCrossentropy, &[])
            .unwrap_err()
    };
    // Vocabulary 2^62 x 8: the element count overflows.
    let mut m = Sequential::new()
        .add(Embedding::new(1 << 62, 8))
        .add(Dense::new(1, Activation::Sigmoid));
    let e = compile(&mut m).to_string();
    assert!(
        e.contains("embedding.weight [4611686018427387904, 8]") && e.contains("overflows"),
        "{e}"
    );
    // Vocabulary 2^40: 32 TiB of weights, more than any machine this runs on has available.
    let mut m = Sequential::new()
        .add(Embedding::new(1 << 40, 8))
        .add(Dense::new(1, Activation::Sigmoid));
    let e = compile(&mut m);
    assert!(matches!(e, NnError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("embedding.weight"), "{e}");
    // Lstm(40000): 25.6 GB for weight_hh alone; the error names it and the need.
    let mut m = Sequential::new()
        .add(Embedding::new(100, 8))
        .add(Lstm::new(40_000))
        .add(Dense::new(1, Activation::Sigmoid));
    let e = compile(&mut m).to_string();
    assert!(e.contains("lstm.weight_hh_l0 [160000, 40000]"), "{e}");
    // A user-set limit, the same check at a size that is cheap to test.
    let mut m = Sequential::new()
        .with_memory_limit(1 << 20)
        .add(Embedding::new(100, 8))
        .add(Lstm::new(256))
        .add(Dense::new(1, Activation::Sigmoid));
    let e = compile(&mut m).to_string();
    assert!(
        e.contains("lstm.weight_hh_l0 [1024, 256]") && e.contains("1.0 MiB the limit set"),
        "{e}"
    );
    // usize::MAX units: the parameter shapes saturate rather than wrap.
    let mut m = Sequential::new()
        .add(Embedding::new(10, 8))
        .add(Lstm::new(usize::MAX))
        .add(Dense::new(1, Activation::Sigmoid));
    assert!(compile(&mut m).to_string().contains("overflows"));
}

#[test]
fn a_utf8_bom_in_reviews_json_is_accepted() {
    let json = "\u{feff}[{\"t\":\"a fine film\",\"s\":1}]";
    let r = parse_reviews_json(json.as_bytes(), "bom.json").unwrap();
    assert_eq!(r, vec![("a fine film".to_string(), 1)]);
}
