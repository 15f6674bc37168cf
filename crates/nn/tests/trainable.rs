//! Frozen layers (Keras's `layer.trainable = False`): a pretrained embedding stays as loaded
//! while the rest trains, the summary counts it as non-trainable, unfreezing trains it again,
//! saved models keep the flag, and a bad layer index is named.
use trellis_nn::ndarray::{Array1, Array2, ArrayD};
use trellis_nn::prelude::*;

fn task() -> (Array2<i64>, Array1<f32>) {
    let x = Array2::from_shape_fn((32, 6), |(r, c)| ((r * 7 + c * 3 + r / 3) % 19 + 1) as i64);
    let y = (0..32).map(|r| f32::from(x[[r, 0]] > 10)).collect();
    (x, y)
}

fn model() -> Sequential {
    let mut m = Sequential::new()
        .with_seed(4)
        .add(Embedding::new(20, 6))
        .add(Lstm::new(5))
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
fn a_frozen_embedding_keeps_its_weights_while_the_rest_trains() {
    let (x, y) = task();
    let mut m = model();
    let _: ArrayD<f32> = m.predict(&x).unwrap(); // builds the weights
    let pretrained: Vec<f32> = (0..120).map(|i| (i as f32 * 0.37).sin()).collect();
    m.set_weight("embedding.weight", &pretrained).unwrap();
    m.set_trainable(0, false).unwrap();
    assert!(!m.is_trainable(0) && m.is_trainable(1));
    let before: Vec<Vec<f32>> = m.weights().to_vec();
    let h = m.fit(&x, &y, &FitOptions::new(15, 8).quiet()).unwrap();
    assert!(
        h.loss().last().unwrap() < &(0.8 * h.loss()[0]),
        "{:?}",
        h.loss()
    );
    assert_eq!(m.weight("embedding.weight").unwrap(), pretrained.as_slice());
    for (k, (a, b)) in m.weights().iter().zip(&before).enumerate().skip(1) {
        assert_ne!(a, b, "parameter {k} did not train");
    }
    let s = m.summary().unwrap();
    assert_eq!(s.total - s.trainable, 120);
    assert!(s.to_string().contains("Non-trainable params: 120"), "{s}");

    // Unfrozen, it trains again (the training plan is rebuilt).
    m.set_trainable(0, true).unwrap();
    m.fit(&x, &y, &FitOptions::new(1, 8).quiet()).unwrap();
    assert_ne!(m.weight("embedding.weight").unwrap(), pretrained.as_slice());
    assert_eq!(m.summary().unwrap().trainable, m.summary().unwrap().total);
}

#[test]
fn a_saved_model_keeps_its_frozen_layers() {
    let (x, y) = task();
    let mut m = model();
    m.set_trainable(1, false).unwrap();
    m.fit(&x, &y, &FitOptions::new(1, 8).quiet()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frozen.safetensors");
    m.save_model(&path).unwrap();
    let mut again = Sequential::load_model(&path).unwrap();
    assert!(again.is_trainable(0) && !again.is_trainable(1) && again.is_trainable(2));
    let lstm: Vec<Vec<f32>> = again.weights()[1..4].to_vec();
    again.fit(&x, &y, &FitOptions::new(2, 8).quiet()).unwrap();
    assert_eq!(&again.weights()[1..4], lstm.as_slice());
}

#[test]
fn freezing_everything_trains_nothing_and_a_bad_index_is_named() {
    let (x, y) = task();
    let mut m = model();
    for l in 0..3 {
        m.set_trainable(l, false).unwrap();
    }
    let _: ArrayD<f32> = m.predict(&x).unwrap();
    let before = m.weights().to_vec();
    let h = m.fit(&x, &y, &FitOptions::new(2, 8).quiet()).unwrap();
    assert_eq!(m.weights(), before.as_slice());
    assert!((h.loss()[0] - h.loss()[1]).abs() < 1e-6);
    let e = m.set_trainable(3, false).unwrap_err().to_string();
    assert!(e.contains("layer") && e.contains("3 layers"), "{e}");
}
