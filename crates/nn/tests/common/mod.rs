//! Helpers the layer tests share.
use trellis_nn::ndarray::ArrayD;
use trellis_nn::{Inputs, Sequential};

/// Saves `m` as a standalone model, loads it back and checks the copy predicts `x` bit for
/// bit. Both predict at batch `batch`: another batch size may sum in another order.
pub fn assert_reloads_the_same<'x>(
    m: &mut Sequential,
    x: impl Into<Inputs<'x>> + Copy,
    batch: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    m.save_model(&path).unwrap();
    let mut again = Sequential::load_model(&path).unwrap();
    m.set_eval_batch_size(batch);
    again.set_eval_batch_size(batch);
    let (a, b): (ArrayD<f32>, ArrayD<f32>) = (m.predict(x).unwrap(), again.predict(x).unwrap());
    assert_eq!(a, b, "the loaded model predicts differently");
}
