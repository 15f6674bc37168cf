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
#[path = "common/flags.rs"]
mod flags;
#[path = "common/npy.rs"]
mod npy;
#[path = "common/run.rs"]
mod run;

use std::process::ExitCode;
use std::time::Instant;

use trellis::nn::prelude::*;
use trellis::nn::{History, NnError};

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
    if let Some(dir) = &args.dump {
        return dump_encoded(&enc, dir);
    }

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
    let history = if args.each_epoch {
        // One epoch at a time, the test set evaluated after each (outside the epoch's time):
        // the figures benches/peers/imdb_epochs.py reports for the peers.
        opts.epochs = 1;
        let mut all = History::default();
        for e in 1..=args.epochs {
            let h = model.fit(&enc.x_train, &enc.y_train, &opts)?;
            let test = model.evaluate(&enc.x_test, &enc.y_test)?;
            let log = h.last().ok_or("fit returned no epoch")?;
            println!(
                "epoch {e}: {:.1} s, loss {:.4}, test accuracy {:.4}",
                log.seconds,
                log.loss,
                test.accuracy.unwrap_or(f64::NAN)
            );
            all.epochs.extend(h.epochs);
        }
        all
    } else {
        model.fit(&enc.x_train, &enc.y_train, &opts)?
    };
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

    if args.latency > 0 {
        latency(&mut model, &enc, args.latency)?;
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

/// Predict latency for one review (batch 1): the median and 90th percentile over `n` test
/// reviews, after one untimed call that compiles the batch-1 plan.
fn latency(model: &mut Sequential, enc: &data::Encoded, n: usize) -> Result<(), NnError> {
    let rows = enc.n_test();
    let one = |i: usize| enc.x_test.slice(s![i % rows..i % rows + 1, ..]);
    model.predict(one(0))?;
    let mut ms: Vec<f64> = (0..n)
        .map(|i| {
            let t = Instant::now();
            model
                .predict(one(i))
                .map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, _>>()?;
    ms.sort_by(f64::total_cmp);
    println!(
        "predict latency, batch 1: median {:.2} ms, p90 {:.2} ms over {n} reviews",
        ms[n / 2],
        ms[n * 9 / 10]
    );
    Ok(())
}

/// The encoded ids and labels as `.npy` files in `dir`, for the Python peers.
fn dump_encoded(enc: &data::Encoded, dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir)?;
    for (name, x) in [("x_train", &enc.x_train), ("x_test", &enc.x_test)] {
        let ids = x
            .iter()
            .map(|&v| i32::try_from(v).map_err(|_| format!("{name}: id {v} does not fit i32")))
            .collect::<Result<Vec<i32>, _>>()?;
        npy::write(&dir.join(format!("{name}.npy")), x.shape(), &ids)?;
    }
    for (name, y) in [("y_train", &enc.y_train), ("y_test", &enc.y_test)] {
        npy::write(&dir.join(format!("{name}.npy")), y.shape(), &y.to_vec())?;
    }
    println!("wrote {}/{{x,y}}_{{train,test}}.npy", dir.display());
    Ok(())
}

#[derive(Clone, Copy)]
enum Cell {
    Lstm,
    Gru,
    Bilstm,
}

impl std::str::FromStr for Cell {
    type Err = String;
    fn from_str(s: &str) -> Result<Cell, String> {
        match s {
            "lstm" => Ok(Cell::Lstm),
            "gru" => Ok(Cell::Gru),
            "bilstm" => Ok(Cell::Bilstm),
            other => Err(format!("--cell takes lstm, gru or bilstm, not {other}")),
        }
    }
}

const USAGE: &str = "imdb [--data DIR] [--epochs N] [--batch B] [--maxlen L] [--save PATH] \
[--plot PATH] [--onnx PATH] [--cell lstm|gru|bilstm] [--mask] [--each-epoch] [--latency N] \
[--dump-encoded DIR]";

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
    each_epoch: bool,
    latency: usize,
    dump: Option<String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut f = flags::Flags::from_env(USAGE);
        let a = Args {
            data: f.optional("--data")?,
            cell: f.value("--cell", Cell::Lstm)?,
            mask: f.switch("--mask"),
            epochs: f.value("--epochs", 3)?,
            batch: f.value("--batch", 128)?,
            maxlen: f.value("--maxlen", 200)?,
            save: f.optional("--save")?,
            plot: f.optional("--plot")?,
            onnx: f.optional("--onnx")?,
            each_epoch: f.switch("--each-epoch"),
            latency: f.value("--latency", 0)?,
            dump: f.optional("--dump-encoded")?,
        };
        f.finish()?;
        Ok(a)
    }
}
