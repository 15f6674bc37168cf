//! A character language model: an LSTM predicting the next character at every step of IMDB
//! review text, then sampling new text at a few temperatures.
//!
//! ```text
//! cargo run --release --example charlm [-- --data data/imdb-full --epochs 3 --units 256
//!     --len 64 --windows 20000 --chars 120 --sample 300]
//! ```
//!
//! Without `--data` the reviews of the embedded subset are used (offline). The train reviews
//! are one stream of character ids (each review ends with `<eos>`), cut into windows of
//! `--len` steps whose targets are the same characters shifted by one; the test reviews give
//! the validation windows. The last line compares the validation perplexity (`exp` of the
//! per-character cross-entropy) with that of a unigram model fitted on the train stream.
#[path = "common/flags.rs"]
mod flags;
#[path = "common/run.rs"]
mod run;

use std::process::ExitCode;
use std::time::Instant;

use trellis::nn::data::lm::{char_stream, lm_windows, unigram_perplexity};
use trellis::nn::data::{imdb, SplitMix64, Vocab};
use trellis::nn::prelude::*;

const USAGE: &str = "charlm [--data DIR] [--epochs N] [--units H] [--embed E] [--len T] \
                     [--windows N] [--chars V] [--batch B] [--sample N]";
const RESERVED: [&str; 3] = ["<pad>", "<oov>", "<eos>"];
const OOV: i64 = 1;
const EOS: i64 = 2;

fn main() -> ExitCode {
    run::run_main(run)
}

fn clean(review: &str) -> String {
    review.replace("<br /><br />", " ").replace("<br />", " ")
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut f = flags::Flags::from_env(USAGE);
    let data: Option<String> = f.optional("--data")?;
    let epochs: usize = f.value("--epochs", 3)?;
    let units: usize = f.value("--units", 256)?;
    let embed: usize = f.value("--embed", 32)?;
    let len: usize = f.value("--len", 64)?;
    let max_windows: usize = f.value("--windows", 20_000)?;
    let chars: usize = f.value("--chars", 120)?;
    let batch: usize = f.value("--batch", 64)?;
    let sample_len: usize = f.value("--sample", 300)?;
    f.finish()?;

    let ds = match &data {
        Some(dir) => imdb::load_dir(dir)?,
        None => imdb::subset()?,
    };
    let train_texts: Vec<String> = ds.train_texts().map(clean).collect();
    let test_texts: Vec<String> = ds.test_texts().map(clean).collect();
    let vocab = Vocab::fit(
        train_texts.iter().flat_map(|t| t.chars().map(String::from)),
        &RESERVED,
        Some(chars),
    );
    let train_stream = char_stream(train_texts.iter().map(String::as_str), &vocab, OOV, EOS);
    let val_stream = char_stream(test_texts.iter().map(String::as_str), &vocab, OOV, EOS);
    // Windows spread over the whole stream (not just its start) when capped.
    let spread = |n: usize, cap: usize| ((n.saturating_sub(len + 1)) / cap.max(1)).max(len);
    let train = lm_windows(
        &train_stream,
        len,
        spread(train_stream.len(), max_windows),
        max_windows,
    )?;
    let val_cap = (max_windows / 10).max(1);
    let val = lm_windows(&val_stream, len, spread(val_stream.len(), val_cap), val_cap)?;
    println!(
        "{} train / {} validation characters, {} ids; {} train / {} validation windows of {len}",
        train_stream.len(),
        val_stream.len(),
        vocab.len(),
        train.rows(),
        val.rows()
    );

    let mut model = Sequential::new()
        .with_seed(7)
        .add(EmbeddingConfig::new(vocab.len(), embed))
        .add(LstmConfig::new(units).with_return_sequences(true))
        .add(Dense::new(vocab.len(), Activation::Softmax));
    model.compile(
        Adam::new(0.003),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )?;
    let t = Instant::now();
    let opts = FitOptions::new(epochs, batch).with_validation_data(&val.x, &val.y);
    model.fit(&train.x, &train.y, &opts)?;
    let secs = t.elapsed().as_secs_f64();

    // Sampling: the last `len` characters are the context; each step draws from the last
    // step's distribution sharpened by the temperature.
    let seed_text: Vec<i64> = val.x.row(0).to_vec();
    let mut rng = SplitMix64::new(11);
    for temperature in [0.5, 1.0] {
        let mut ids = seed_text.clone();
        for _ in 0..sample_len {
            let context = Array2::from_shape_vec((1, len), ids[ids.len() - len..].to_vec())?;
            let p = model.predict(&context)?;
            let last: Vec<f64> = (0..vocab.len())
                .map(|c| {
                    f64::from(p[[0, len - 1, c]])
                        .max(1e-30)
                        .powf(1.0 / temperature)
                })
                .collect();
            let total: f64 = last.iter().sum();
            let mut u = rng.next_f64() * total;
            let pick = last
                .iter()
                .position(|&w| {
                    u -= w;
                    u <= 0.0
                })
                .unwrap_or(last.len() - 1);
            ids.push(pick as i64);
        }
        let text: String = ids[len..]
            .iter()
            .map(|&i| match i {
                EOS => " | ",
                i => vocab.token(i).unwrap_or("?"),
            })
            .collect();
        println!("sample at temperature {temperature}: {text}");
    }

    let ev = model.evaluate(&val.x, &val.y)?;
    let unigram = unigram_perplexity(&train_stream, &val_stream, vocab.len());
    println!(
        "validation loss {:.4}, next-character accuracy {:.4} ({secs:.1} s training, {:.1} s per epoch)",
        ev.loss,
        ev.accuracy.unwrap_or(f64::NAN),
        secs / epochs.max(1) as f64
    );
    println!("val perplexity {:.2} (unigram {unigram:.2})", ev.loss.exp());
    Ok(())
}
