//! The seed model: the classic Keras IMDB sentiment LSTM.
//!
//! ```text
//! cargo run --release --example imdb                       # embedded 2,000/1,000 subset, offline
//! scripts/fetch-imdb.sh                                    # the full 25k/25k set, once
//! cargo run --release --example imdb -- --data data/imdb-full --epochs 3 [--batch 128]
//!     [--maxlen 200] [--save model.safetensors] [--plot curves.png] [--onnx model.onnx]
//!     [--cell lstm|gru|bilstm] [--mask]
//! cargo run --release --example predict -- model.safetensors "a wonderful film"
//! ```
//!
//! `--cell` picks the two recurrent layers (LSTM, the seed; GRU; bidirectional LSTM, whose
//! second layer reads both directions of the first); `--mask` makes the embedding mask the
//! padding ids (`mask_zero`), so the recurrent layers skip the padded steps.
//!
//! `--save` writes a model that stands alone (architecture, weights, tokenizer; a checkpoint
//! after every epoch, the whole model at the end), `--plot` the training curves (PNG or SVG),
//! `--onnx` an ONNX file and beside it `*.reference.json`, trellis's predictions for the first
//! 64 test reviews, for `scripts/onnx_check.py`.
#[path = "common/run.rs"]
mod run;

use std::process::ExitCode;
use std::time::Instant;

use trellis::nn::prelude::*;

fn main() -> ExitCode {
    run::run_main(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse()?;
    let ds = match &args.data {
        Some(dir) => data::imdb::load_dir(dir)?,
        None => data::imdb::subset()?,
    };
    let enc = data::encode_dataset(&ds, 10_000, args.maxlen)?;
    println!(
        "{} train / {} test reviews, maxlen {}",
        enc.n_train(),
        enc.n_test(),
        args.maxlen
    );

    let mut model =
        Sequential::new().add(EmbeddingConfig::new(10_000, 128).with_mask_zero(args.mask));
    model = match args.cell {
        Cell::Lstm => model
            .add(LstmConfig::new(128).with_return_sequences(true))
            .add(Lstm::new(128)),
        Cell::Gru => model
            .add(GruConfig::new(128).with_return_sequences(true))
            .add(Gru::new(128)),
        Cell::Bilstm => model
            .add(Bidirectional::new(
                LstmConfig::new(128).with_return_sequences(true).init(),
            ))
            .add(Bidirectional::new(Lstm::new(128))),
    };
    let mut model = model.add(Dense::new(1, Activation::Sigmoid));
    model.compile(
        Adam::default(),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )?;

    let mut opts = FitOptions::new(args.epochs, args.batch);
    opts.checkpoint = args.save.clone().map(Into::into);
    let t = Instant::now();
    let history = model.fit(&enc.x_train, &enc.y_train, &opts)?;
    let train_s = t.elapsed().as_secs_f64();
    if let Some(path) = &args.save {
        model.set_text_encoder(Some(enc.text_encoder()));
        model.save_model(path)?;
    }
    if let Some(path) = &args.plot {
        history.plot(path)?;
    }
    if let Some(path) = &args.onnx {
        trellis::nn::onnx::export(&model, path)?;
        let rows = enc.n_test().min(64);
        let reference = std::path::Path::new(path).with_extension("reference.json");
        let x = enc.x_test.slice(trellis::nn::ndarray::s![..rows, ..]);
        trellis::nn::onnx::write_reference(&mut model, x, reference)?;
    }

    let test = model.evaluate(&enc.x_test, &enc.y_test)?;
    let timing = match args.epochs {
        0 => "untrained".to_string(),
        n => format!(
            "{train_s:.1} s training, {:.1} s per epoch",
            train_s / n as f64
        ),
    };
    println!(
        "test loss {:.4} - test accuracy {:.4} ({timing})",
        test.loss,
        test.accuracy.unwrap_or(f64::NAN),
    );
    Ok(())
}

#[derive(Clone, Copy)]
enum Cell {
    Lstm,
    Gru,
    Bilstm,
}

struct Args {
    data: Option<String>,
    cell: Cell,
    mask: bool,
    epochs: usize,
    batch: usize,
    maxlen: usize,
    save: Option<String>,
    plot: Option<String>,
    onnx: Option<String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut a = Args {
            data: None,
            cell: Cell::Lstm,
            mask: false,
            epochs: 3,
            batch: 128,
            maxlen: 200,
            save: None,
            plot: None,
            onnx: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            let num = |v: String| {
                v.parse::<usize>()
                    .map_err(|_| format!("{flag}: not a number: {v}"))
            };
            match flag.as_str() {
                "--data" => a.data = Some(value()?),
                "--epochs" => a.epochs = num(value()?)?,
                "--batch" => a.batch = num(value()?)?,
                "--maxlen" => a.maxlen = num(value()?)?,
                "--save" => a.save = Some(value()?),
                "--plot" => a.plot = Some(value()?),
                "--onnx" => a.onnx = Some(value()?),
                "--cell" => {
                    a.cell = match value()?.as_str() {
                        "lstm" => Cell::Lstm,
                        "gru" => Cell::Gru,
                        "bilstm" => Cell::Bilstm,
                        other => return Err(format!("--cell takes lstm, gru or bilstm, not {other}")),
                    }
                }
                "--mask" => a.mask = true,
                _ => return Err(format!("unknown argument {flag}\nusage: imdb [--data DIR] [--epochs N] [--batch B] [--maxlen L] [--save PATH] [--plot PATH] [--onnx PATH] [--cell lstm|gru|bilstm] [--mask]")),
            }
        }
        Ok(a)
    }
}
