//! A recurrent cell of your own, trained like a built-in: the minimal gated unit
//! (`examples/cells/mgu.rs`, ~50 lines implementing `trellis::ir::recurrent::Cell`) in an
//! `Rnn` layer, beside the built-in GRU in the same model, on the embedded IMDB subset.
//!
//! ```text
//! cargo run --release --example custom_cell [-- --epochs 4 --units 64 --maxlen 200]
//! ```
//!
//! Prints each model's parameters, seconds per epoch and test accuracy; the last line is
//! `test accuracy A (GRU G)`.
#[path = "common/flags.rs"]
mod flags;
#[path = "cells/mgu.rs"]
mod mgu;
#[path = "common/run.rs"]
mod run;

use std::process::ExitCode;
use std::time::Instant;

use trellis::nn::prelude::*;
use trellis::nn::{Layer, Rnn};

const USAGE: &str = "custom_cell [--epochs N] [--units H] [--maxlen T] [--batch B]";

fn main() -> ExitCode {
    run::run_main(run)
}

/// Trains Embedding -> `recurrent` -> Dense(sigmoid); returns the test accuracy.
fn train(
    name: &str,
    recurrent: Box<dyn Layer>,
    enc: &data::Encoded,
    (epochs, batch): (usize, usize),
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut m = Sequential::new()
        .with_seed(1)
        .add(EmbeddingConfig::new(10_000, 64).with_mask_zero(true));
    m.push(recurrent);
    let mut m = m.add(Dense::new(1, Activation::Sigmoid));
    m.compile(
        Adam::default(),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )?;
    let params: usize = m
        .param_specs()
        .iter()
        .map(|s| s.shape.iter().product::<usize>())
        .sum();
    let t = Instant::now();
    let h = m.fit(
        &enc.x_train,
        &enc.y_train,
        &FitOptions::new(epochs, batch).quiet(),
    )?;
    let per_epoch = t.elapsed().as_secs_f64() / epochs as f64;
    let test = m.evaluate(&enc.x_test, &enc.y_test)?;
    let acc = test.accuracy.unwrap_or(f64::NAN);
    println!(
        "{name}: {params} parameters, {per_epoch:.1} s per epoch, train loss {:.4}, test accuracy {acc:.4}",
        h.loss().last().copied().unwrap_or(f64::NAN)
    );
    Ok(acc)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut f = flags::Flags::from_env(USAGE);
    let epochs: usize = f.value("--epochs", 4)?;
    let units: usize = f.value("--units", 64)?;
    let maxlen: usize = f.value("--maxlen", 200)?;
    let batch: usize = f.value("--batch", 64)?;
    f.finish()?;
    let enc = data::encode_dataset(&data::imdb::subset()?, 10_000, maxlen)?;
    let mgu = train(
        "mgu",
        Box::new(Rnn::new(mgu::Mgu, units)),
        &enc,
        (epochs, batch),
    )?;
    let gru = train("gru", Box::new(Gru::new(units)), &enc, (epochs, batch))?;
    println!("test accuracy {mgu:.4} (GRU {gru:.4})");
    Ok(())
}
