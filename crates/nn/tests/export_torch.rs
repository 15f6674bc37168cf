//! Writes a trellis checkpoint of a small seed-shaped model (Embedding -> LSTM(return_sequences)
//! -> LSTM -> Dense(1, sigmoid)) with a few inputs and trellis's predictions for them, for
//! `scripts/export_torch.py` to load into `torch.nn.LSTM(num_layers=2)` and compare:
//!
//! ```text
//! TRELLIS_EXPORT_DIR=/tmp/trellis-export cargo test -p trellis-nn --test export_torch
//! python3 scripts/export_torch.py /tmp/trellis-export
//! ```
//!
//! (The script is not run here: CI has no PyTorch.)
use trellis_nn::prelude::*;

#[test]
fn write_checkpoint_and_predictions_for_pytorch() {
    let dir = std::env::var_os("TRELLIS_EXPORT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("trellis-export-torch"));
    std::fs::create_dir_all(&dir).unwrap();
    let (t, n) = (7, 6);
    let mut m = Sequential::new()
        .with_seed(4)
        .add(Embedding::new(50, 8))
        .add(LstmConfig::new(6).with_return_sequences(true))
        .add(Lstm::new(6))
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(
        Adam::new(0.05),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    // A few training steps so that every weight (biases included) moves from its init.
    let x: Vec<i64> = (0..n * t).map(|i| ((i * 13 + 5) % 50) as i64).collect();
    let y: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
    let (xs, ys) = ((&x, [n, t]), (&y, [n]));
    m.fit(xs, ys, &FitOptions::new(3, 4).quiet()).unwrap();
    let pred = m.predict(xs).unwrap().into_raw_vec_and_offset().0;
    let ckpt = dir.join("model.safetensors");
    m.save(&ckpt).unwrap();
    let ids: Vec<Vec<i64>> = x.chunks(t).map(|r| r.to_vec()).collect();
    let json = serde_json::json!({ "ids": ids, "predictions": pred });
    std::fs::write(dir.join("inputs.json"), json.to_string()).unwrap();
    assert!(pred.iter().all(|p| *p > 0.0 && *p < 1.0));
    assert!(std::fs::metadata(&ckpt).unwrap().len() > 0);
    eprintln!(
        "wrote {}; compare with: python3 scripts/export_torch.py {}",
        ckpt.display(),
        dir.display()
    );
}
