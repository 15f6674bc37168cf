//! Shaped data: x, y and the model must agree, every disagreement is an error before any work
//! that names the shapes, and a refused call leaves the model exactly as it was.
use std::collections::BTreeMap;

use trellis_nn::prelude::*;

/// Embedding(20, 4) -> LSTM(3) [-> per step] -> Dense(units, act), compiled with `loss`.
fn ids_model(per_step: bool, units: usize, act: Activation, loss: Loss) -> Sequential {
    let mut m = Sequential::new()
        .with_seed(1)
        .add(Embedding::new(20, 4))
        .add(LstmConfig::new(3).with_return_sequences(per_step))
        .add(Dense::new(units, act));
    m.compile(Adam::new(0.01), loss, &[Metric::Accuracy])
        .unwrap();
    m
}

fn ids(n: usize, t: usize) -> Array2<i64> {
    Array2::from_shape_fn((n, t), |(i, j)| ((i * 7 + j * 3) % 19 + 1) as i64)
}

fn err(r: Result<trellis_nn::History, trellis_nn::NnError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn x_and_y_row_counts_must_agree() {
    let mut m = ids_model(false, 1, Activation::Sigmoid, Loss::BinaryCrossentropy);
    let q = FitOptions::new(1, 4).quiet();
    // 8 samples of 10 ids with 8 labels read as rows of 10, never as 80 / 8.
    let y = Array1::<f32>::zeros(4);
    assert_eq!(
        err(m.fit(ids(8, 10), &y, &q)),
        "x has 8 samples (shape [8, 10]) but y has 4 (shape [4])"
    );
    let e = m.evaluate(ids(3, 10), &y).unwrap_err().to_string();
    assert_eq!(e, "x has 3 samples (shape [3, 10]) but y has 4 (shape [4])");
    // A (values, shape) pair whose shape does not hold its values.
    let flat: Vec<f32> = vec![0.0; 7];
    assert_eq!(
        err(m.fit(ids(8, 10), (&flat, [8]), &q)),
        "y: shape [8] does not hold its 7 values"
    );
}

#[test]
fn the_per_sample_shape_must_be_the_models() {
    let mut m = Sequential::new()
        .with_input_shape(&[5])
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(Adam::default(), Loss::BinaryCrossentropy, &[])
        .unwrap();
    let x = Array2::<f32>::zeros((6, 4));
    let y = Array1::<f32>::zeros(6);
    assert_eq!(
        err(m.fit(&x, &y, &FitOptions::new(1, 4).quiet())),
        "x has shape [6, 4], [4] per sample, but the model's input shape is [5] (x must be \
         [n, 5])"
    );
    // An ids model takes the sequence length it was trained on.
    let mut m = ids_model(false, 1, Activation::Sigmoid, Loss::BinaryCrossentropy);
    m.fit(
        ids(4, 6),
        Array1::<f32>::zeros(4),
        &FitOptions::new(1, 4).quiet(),
    )
    .unwrap();
    let e = m.predict(ids(4, 5)).unwrap_err().to_string();
    assert_eq!(
        e,
        "x has shape [4, 5], [5] per sample, but the model's input shape is [6] (x must be \
         [n, 6])"
    );
    // A float sequence where the model wants ids, and a vector where an LSTM wants a sequence.
    let e = m.predict(Array3::<f32>::zeros((4, 6, 1))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "x: the model starts with an Embedding and takes token ids (i64), got floats of shape \
         [4, 6, 1]"
    );
    let mut m = Sequential::new()
        .add(Lstm::new(2))
        .add(Dense::new(1, Activation::Linear));
    m.compile(Adam::default(), Loss::MeanSquaredError, &[])
        .unwrap();
    let e = err(m.fit(
        Array2::<f32>::zeros((3, 4)),
        Array1::<f32>::zeros(3),
        &FitOptions::new(1, 4).quiet(),
    ));
    // Building declares the parameters on one sample, which the error shows.
    assert_eq!(
        e,
        "lstm: input must be a sequence [batch, time, features], got f32[1,4]"
    );
}

#[test]
fn labels_must_fit_the_output_and_the_loss() {
    let q = FitOptions::new(1, 4).quiet();
    let x = ids(6, 5);
    // One-hot labels on a one-unit model.
    let mut m = ids_model(false, 1, Activation::Sigmoid, Loss::BinaryCrossentropy);
    assert_eq!(
        err(m.fit(&x, Array2::<f32>::zeros((6, 2)), &q)),
        "y has shape [6, 2] but the model's output for x [6, 5] is [6, 1]: binary_crossentropy \
         takes y of shape [6, 1] or [6]"
    );
    // One-hot labels with the sparse loss.
    let mut m = ids_model(
        false,
        3,
        Activation::Softmax,
        Loss::SparseCategoricalCrossentropy,
    );
    assert_eq!(
        err(m.fit(&x, Array2::<f32>::zeros((6, 3)), &q)),
        "y has shape [6, 3] but the model's output for x [6, 5] is [6, 3]: \
         sparse_categorical_crossentropy takes y of shape [6] or [6, 1] (one-hot labels? this \
         loss takes class ids)"
    );
    // Labels per step on a model with one output per sample.
    assert_eq!(
        err(m.fit(&x, Array2::<f32>::zeros((6, 5)), &q)),
        "y has shape [6, 5] but the model's output for x [6, 5] is [6, 3]: \
         sparse_categorical_crossentropy takes y of shape [6] or [6, 1] (labels per step need \
         a per-step output: return_sequences(true) on the last recurrent layer)"
    );
    // A per-step model: one label per sample, and labels for the wrong number of steps.
    let mut m = ids_model(
        true,
        3,
        Activation::Softmax,
        Loss::SparseCategoricalCrossentropy,
    );
    assert_eq!(
        err(m.fit(&x, Array1::<f32>::zeros(6), &q)),
        "y has shape [6] but the model's output for x [6, 5] is [6, 5, 3]: \
         sparse_categorical_crossentropy takes y of shape [6, 5] or [6, 5, 1] (the model \
         predicts at each of 5 steps: give labels per step)"
    );
    assert_eq!(
        err(m.fit(&x, Array2::<f32>::zeros((6, 4)), &q)),
        "y has shape [6, 4] but the model's output for x [6, 5] is [6, 5, 3]: \
         sparse_categorical_crossentropy takes y of shape [6, 5] or [6, 5, 1] (y has 4 steps, \
         the model's output 5)"
    );
    // A class id out of range in a per-step label names its sample.
    let mut y = Array2::<f32>::zeros((6, 5));
    y[[4, 2]] = 3.0;
    assert_eq!(
        err(m.fit(&x, &y, &q)),
        "label of sample 4 is 3: sparse_categorical_crossentropy takes class ids 0..3"
    );
    // Validation data are checked with the same rules, before training.
    let vy = Array1::<f32>::zeros(2);
    let e = err(m.fit(
        &x,
        Array2::<f32>::zeros((6, 5)),
        &FitOptions::new(1, 4)
            .with_validation_data(ids(2, 5), &vy)
            .quiet(),
    ));
    assert!(
        e.starts_with("y has shape [2] but the model's output for x [2, 5]"),
        "{e}"
    );
    assert_eq!(m.step(), 0);
}

/// Everything a checkpoint holds (weights, optimiser state; step, epoch and input shape in
/// its metadata), in a fixed order.
type Snapshot = (Vec<(String, Vec<u8>)>, BTreeMap<String, String>);
fn snapshot(m: &Sequential) -> Snapshot {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    m.save(&p).unwrap();
    let bytes = std::fs::read(p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    tensors.sort();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap_or_default();
    (tensors, meta.into_iter().collect())
}

#[test]
fn a_refused_call_leaves_the_model_as_it_was() {
    let q = FitOptions::new(1, 4).quiet();
    let mut m = ids_model(false, 1, Activation::Sigmoid, Loss::BinaryCrossentropy);
    let (x, y) = (ids(8, 5), Array1::from_shape_fn(8, |i| (i % 2) as f32));
    m.fit(&x, &y, &q).unwrap();
    let before = (
        snapshot(&m),
        m.step(),
        m.epochs_done(),
        m.predict(&x).unwrap(),
    );
    assert_eq!((before.1, before.2), (2, 1));
    let bad_y = Array2::<f32>::zeros((8, 2));
    assert!(m.fit(&x, &bad_y, &q).is_err());
    assert!(m.fit(ids(8, 6), &y, &q).is_err());
    assert!(m.evaluate(&x, &bad_y).is_err());
    let after = (
        snapshot(&m),
        m.step(),
        m.epochs_done(),
        m.predict(&x).unwrap(),
    );
    assert_eq!((before.1, before.2), (after.1, after.2));
    assert_eq!(before.3, after.3);
    assert!(before.0 .0.iter().any(|(n, _)| n.starts_with("optimizer.")));
    assert!(before.0 == after.0, "a refused call changed the checkpoint");
    // A float model whose input shape comes from its first fit: a refused first fit leaves
    // it unbuilt, and a later fit on other data builds it from that data.
    let mut f = Sequential::new().add(Dense::new(1, Activation::Sigmoid));
    f.compile(Adam::default(), Loss::BinaryCrossentropy, &[])
        .unwrap();
    let xf = Array2::<f32>::zeros((4, 3));
    assert!(f.fit(&xf, Array1::<f32>::zeros(5), &q).is_err());
    assert_eq!(
        (f.input_shape(), f.param_specs().len(), f.step()),
        (None, 0, 0)
    );
    f.fit(Array2::<f32>::zeros((4, 2)), Array1::<f32>::zeros(4), &q)
        .unwrap();
    assert_eq!(f.input_shape(), Some(&[2][..]));
    assert_eq!(f.weight("dense.weight").unwrap().len(), 2);
}
