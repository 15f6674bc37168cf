//! Predicts with a saved model, in a process that knows nothing of how it was built.
//!
//! ```text
//! scripts/fetch-imdb.sh
//! cargo run --release --example imdb -- --data data/imdb-full --save m.safetensors
//! cargo run --release --example predict -- m.safetensors "a wonderful film" "a dull mess"
//! ```
//!
//! Trained on the full 25k reviews (test accuracy 0.8587), that prints 0.8418 and 0.0562. The
//! embedded 2,000-review subset's model is too weak for such short texts (0.0808 and 0.0514:
//! it calls nearly any short text negative).
//!
//! Prints one line per text: the probability for a model with one sigmoid output, else the
//! most probable class and its probability.
#[path = "common/run.rs"]
mod run;

use std::process::ExitCode;

use trellis::nn::ndarray::Ix2;
use trellis::nn::Sequential;

fn main() -> ExitCode {
    run::run_main(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, texts @ ..] = args.as_slice() else {
        return Err("usage: predict MODEL.safetensors TEXT...".into());
    };
    if texts.is_empty() {
        return Err("usage: predict MODEL.safetensors TEXT... (no text given)".into());
    }
    let mut model = Sequential::load_model(path)?;
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let out = model.predict_text(&texts)?;
    let out = out.into_dimensionality::<Ix2>().map_err(|_| {
        "the model has an output per step (a tagger or a language model): predict prints one \
         row per text"
    })?;
    let k = out.ncols();
    for (row, text) in out.rows().into_iter().zip(&texts) {
        if k == 1 {
            println!("{:.4}\t{text}", row[0]);
        } else {
            let (class, p) = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &p)| if p > b.1 { (i, p) } else { b },
                );
            println!("class {class} ({p:.4})\t{text}");
        }
    }
    Ok(())
}
