//! `Lambda`: graph code as a layer. A maximum over the steps equals `GlobalMaxPooling1D`
//! (value and training), `stop_gradient` freezes what is below it, two inputs, the mask kept
//! or dropped as asked, and the mistakes named.
use trellis_ir::{Graph, NodeId};
use trellis_nn::prelude::*;

fn ids() -> Array2<i64> {
    Array2::from_shape_fn((8, 6), |(r, c)| {
        if c > r % 4 + 1 {
            0
        } else {
            ((r * 5 + c * 3) % 9 + 1) as i64
        }
    })
}

fn labels() -> Array1<f32> {
    Array1::from_shape_fn(8, |r| (r % 2) as f32)
}

fn max_over_steps(g: &mut Graph, x: NodeId) -> trellis_ir::Result<NodeId> {
    g.max(x, &[1], false)
}

fn pooled_model(pool: impl Into<Box<dyn trellis_nn::Layer>>) -> Sequential {
    let mut m = Sequential::new()
        .with_seed(5)
        .add(Embedding::new(10, 4))
        .add(LstmConfig::new(3).with_return_sequences(true))
        .add(pool)
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(
        Adam::new(0.05),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

#[test]
fn a_maximum_over_the_steps_trains_as_global_max_pooling() {
    let (x, y) = (ids(), labels());
    let mut lambda = pooled_model(Lambda::new(max_over_steps));
    let mut pool = pooled_model(GlobalMaxPooling1D::new());
    let opts = FitOptions::new(3, 4).quiet();
    let (hl, hp) = (
        lambda.fit(&x, &y, &opts).unwrap(),
        pool.fit(&x, &y, &opts).unwrap(),
    );
    for (a, b) in hl.loss().iter().zip(hp.loss()) {
        assert!((a - b).abs() < 1e-6, "{:?} vs {:?}", hl.loss(), hp.loss());
    }
    let (pl, pp) = (lambda.predict(&x).unwrap(), pool.predict(&x).unwrap());
    for (a, b) in pl.iter().zip(&pp) {
        assert!((a - b).abs() < 1e-6, "{pl} vs {pp}");
    }
    let s = lambda.summary().unwrap();
    assert_eq!(s.rows[2].output_shape, vec![None, Some(3)]);
    assert!(s.to_string().contains("lambda"), "{s}");
}

/// What lies below a `stop_gradient` is not trained; what lies above is.
#[test]
fn stop_gradient_in_a_lambda_freezes_the_layers_below() {
    let mut m = Sequential::new()
        .with_seed(6)
        .add(Embedding::new(10, 4))
        .add(Lambda::new(|g, x| g.stop_gradient(x)))
        .add(GlobalAveragePooling1D::new())
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[])
        .unwrap();
    let before: Vec<Vec<f32>> = m.weights().to_vec();
    m.fit(ids(), labels(), &FitOptions::new(2, 4).quiet())
        .unwrap();
    let names: Vec<String> = m.param_specs().iter().map(|p| p.name.clone()).collect();
    for ((name, b), a) in names.iter().zip(&before).zip(m.weights()) {
        let moved = b.iter().zip(a).any(|(x, y)| x != y);
        assert_eq!(moved, !name.starts_with("embedding"), "{name}");
    }
}

#[test]
fn a_lambda_of_two_inputs() {
    let (a, b) = (Input::new(&[3]), Input::new(&[3]));
    let top = Lambda::of_inputs(2, |g, xs| g.maximum(xs[0], xs[1]))
        .call([&a, &b])
        .unwrap();
    let mut m = Model::new(&[&a, &b], &[&top]).unwrap();
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let xa = array![[1.0f32, -2.0, 3.0], [0.5, 0.0, -1.0]];
    let xb = array![[0.0f32, 4.0, -3.0], [0.5, -0.0, 2.0]];
    let p = m.predict([Inputs::from(&xa), Inputs::from(&xb)]).unwrap();
    assert_eq!(
        p.iter().copied().collect::<Vec<_>>(),
        vec![1.0, 4.0, 3.0, 0.5, 0.0, 2.0]
    );
}

/// A per-step tagger with a lambda between the LSTM and the scores: kept, the mask still
/// skips the padding (the loss of the model without the lambda); dropped, padding counts.
#[test]
fn the_mask_passes_a_lambda_only_when_kept() {
    let x = ids();
    let y = Array2::from_shape_fn((8, 6), |(r, c)| ((r + c) % 3) as f32);
    let tagger = |mid: Option<Lambda>| {
        let mut m = Sequential::new()
            .with_seed(7)
            .add(EmbeddingConfig::new(10, 4).with_mask_zero(true))
            .add(LstmConfig::new(3).with_return_sequences(true));
        if let Some(l) = mid {
            m = m.add(l);
        }
        let mut m = m.add(Dense::new(3, Activation::Softmax));
        m.compile(Sgd::new(0.1), Loss::SparseCategoricalCrossentropy, &[])
            .unwrap();
        m.evaluate(&x, &y).unwrap().loss
    };
    let plain = tagger(None);
    let kept = tagger(Some(Lambda::new(|_, x| Ok(x)).with_mask_kept()));
    let dropped = tagger(Some(Lambda::new(|_, x| Ok(x))));
    assert!((kept - plain).abs() < 1e-6, "{kept} vs {plain}");
    assert!((dropped - plain).abs() > 1e-4, "{dropped} vs {plain}");
}

/// The error compiling and fitting `m` on the ids gives.
fn fit_error(mut m: Sequential) -> String {
    m.compile(Adam::default(), Loss::BinaryCrossentropy, &[])
        .and_then(|_| {
            m.fit(ids(), labels(), &FitOptions::new(1, 4).quiet())
                .map(|_| ())
        })
        .unwrap_err()
        .to_string()
}

#[test]
fn lambda_mistakes_are_named() {
    // The function's own error, with the op and shapes.
    let m = Sequential::new()
        .add(Embedding::new(10, 4))
        .add(Lambda::new(|g, x| g.max(x, &[3], false)))
        .add(Dense::new(1, Activation::Sigmoid));
    let e = fit_error(m);
    assert!(e.contains("lambda: max") && e.contains("axes [3]"), "{e}");
    // A kept mask on an output without the steps.
    let m = Sequential::new()
        .add(EmbeddingConfig::new(10, 4).with_mask_zero(true))
        .add(Lambda::new(max_over_steps).with_mask_kept())
        .add(Dense::new(1, Activation::Sigmoid));
    let e = fit_error(m);
    assert!(e.contains("keeps its input's mask"), "{e}");
    // Code is not data: a saved model cannot describe it.
    let mut m = pooled_model(Lambda::new(max_over_steps));
    let path =
        std::env::temp_dir().join(format!("trellis-lambda-{}.safetensors", std::process::id()));
    let e = m.save_model(&path).unwrap_err().to_string();
    assert!(
        e.contains("lambda") && e.contains("save the weights"),
        "{e}"
    );
    // Called on the wrong number of inputs.
    let (a, b) = (Input::new(&[3]), Input::new(&[3]));
    let e = Lambda::new(|_, x| Ok(x))
        .call([&a, &b])
        .unwrap_err()
        .to_string();
    assert!(e.contains("lambda: takes 1 inputs, called on 2"), "{e}");
}
