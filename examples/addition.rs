//! Keras's seq2seq addition ("535+61" -> "596"): an LSTM encoder reads the question, a
//! `RepeatVector` hands its last state to every step of an LSTM decoder, and a softmax per
//! step writes the answer's characters (Keras's `addition_rnn` example, Sequential).
//!
//! ```text
//! cargo run --release --example addition [-- --digits 3 --questions 50000 --epochs 20
//!     --units 128 --batch 64 --lr 0.002 --final-epochs 6 --final-lr 0.0005 --no-reverse]
//! ```
//!
//! Adam with global-norm clipping at 1; the last `--final-epochs` epochs run at `--final-lr`
//! (a step schedule: at the larger rate the exact match swings by several points from epoch
//! to epoch).
//!
//! Questions `a+b` (each number 1 to `--digits` digits, lengths uniform as Keras draws them)
//! come from a fixed seed, one per unordered pair (`a+b` and `b+a` are the same question);
//! padded with spaces to `2·digits + 1` characters and, as Keras does by default, reversed
//! (`--no-reverse` keeps them in order). A tenth of the questions, chosen at random, is held
//! out: no held-out question (nor its mirror) is seen in training. The last line is the
//! held-out exact match: every answer character right.
#[path = "common/flags.rs"]
mod flags;
#[path = "common/run.rs"]
mod run;

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Instant;

use trellis::nn::data::SplitMix64;
use trellis::nn::prelude::*;

const USAGE: &str = "addition [--digits D] [--questions N] [--epochs E] [--units H] [--batch B] \
                     [--lr LR] [--final-epochs F] [--final-lr LR] [--no-reverse]";
const CHARS: &str = "0123456789+ ";

fn main() -> ExitCode {
    run::run_main(run)
}

/// The generated questions and answers, padded (`2D+1` and `D+1` characters).
fn questions(n: usize, digits: u32, reverse: bool, seed: u64) -> Vec<(String, String)> {
    let mut rng = SplitMix64::new(seed);
    let number = |rng: &mut SplitMix64| {
        let len = 1 + rng.below(digits as u64) as u32;
        rng.below(10u64.pow(len))
    };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    let qlen = 2 * digits as usize + 1;
    // Distinct unordered pairs: at most about 10^(2D) / 2.
    let limit = 10usize.pow(2 * digits) / 2;
    while out.len() < n.min(limit) {
        let (a, b) = (number(&mut rng), number(&mut rng));
        if !seen.insert((a.min(b), a.max(b))) {
            continue;
        }
        let q = format!("{:<qlen$}", format!("{a}+{b}"));
        let q = if reverse {
            q.chars().rev().collect()
        } else {
            q
        };
        let ans = format!("{:<w$}", a + b, w = digits as usize + 1);
        out.push((q, ans));
    }
    out
}

fn index(c: char) -> usize {
    CHARS.find(c).expect("a character of CHARS")
}

/// Questions one-hot `[n, 2D+1, 12]` and answers as class ids `[n, D+1]`.
fn encode(qa: &[(String, String)]) -> (Array3<f32>, Array2<f32>) {
    let (n, tq, ta) = (qa.len(), qa[0].0.len(), qa[0].1.len());
    let mut x = Array3::zeros((n, tq, CHARS.len()));
    let mut y = Array2::zeros((n, ta));
    for (i, (q, a)) in qa.iter().enumerate() {
        for (t, c) in q.chars().enumerate() {
            x[[i, t, index(c)]] = 1.0;
        }
        for (t, c) in a.chars().enumerate() {
            y[[i, t]] = index(c) as f32;
        }
    }
    (x, y)
}

/// The argmax answer of every row of a prediction `[n, D+1, 12]`.
fn answers(p: &ArrayD<f32>) -> Vec<String> {
    let chars: Vec<char> = CHARS.chars().collect();
    p.outer_iter()
        .map(|row| {
            row.outer_iter()
                .map(|step| {
                    let best = (0..step.len())
                        .max_by(|&a, &b| step[a].total_cmp(&step[b]))
                        .expect("12 classes");
                    chars[best]
                })
                .collect()
        })
        .collect()
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut f = flags::Flags::from_env(USAGE);
    let digits: u32 = f.value("--digits", 3)?;
    let n: usize = f.value("--questions", 50_000)?;
    let epochs: usize = f.value("--epochs", 20)?;
    let units: usize = f.value("--units", 128)?;
    let batch: usize = f.value("--batch", 64)?;
    let lr: f64 = f.value("--lr", 0.002)?;
    let final_epochs: usize = f.value("--final-epochs", 6)?;
    let final_lr: f64 = f.value("--final-lr", 0.0005)?;
    let reverse = !f.switch("--no-reverse");
    f.finish()?;
    if !(1..=9).contains(&digits) {
        return Err(format!("--digits {digits}: must be 1 to 9").into());
    }

    let qa = questions(n, digits, reverse, 42);
    // The generator gives distinct unordered pairs in random order: the last tenth is held out.
    let split = qa.len() - qa.len() / 10;
    let (train, held) = qa.split_at(split);
    let (x_train, y_train) = encode(train);
    let (x_held, y_held) = encode(held);
    println!(
        "{} questions ({} train, {} held out), e.g. {:?} -> {:?}{}",
        qa.len(),
        train.len(),
        held.len(),
        qa[0].0,
        qa[0].1,
        if reverse {
            " (questions are fed reversed)"
        } else {
            ""
        }
    );

    let mut model = Sequential::new()
        .with_seed(1)
        .add(Lstm::new(units))
        .add(RepeatVector::new(digits as usize + 1))
        .add(LstmConfig::new(units).with_return_sequences(true))
        .add(Dense::new(CHARS.len(), Activation::Softmax));
    let t = Instant::now();
    let final_epochs = final_epochs.min(epochs);
    for (n, rate) in [(epochs - final_epochs, lr), (final_epochs, final_lr)] {
        if n == 0 {
            continue;
        }
        // Compiling again with the same optimiser kind keeps its state and step count.
        model.compile(
            Adam::new(rate).with_global_clipnorm(1.0),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )?;
        let opts = FitOptions::new(n, batch).with_validation_data(&x_held, &y_held);
        model.fit(&x_train, &y_train, &opts)?;
    }
    let secs = t.elapsed().as_secs_f64();

    let got = answers(&model.predict(&x_held)?);
    let right = got.iter().zip(held).filter(|(g, (_, a))| *g == a).count();
    for ((q, a), g) in held.iter().zip(&got).take(5) {
        let shown: String = if reverse {
            q.chars().rev().collect()
        } else {
            q.clone()
        };
        let mark = if g == a { "ok" } else { "WRONG" };
        println!("  {shown} = {g} ({mark}, {a})");
    }
    println!(
        "trained {epochs} epochs in {secs:.0} s ({:.1} s per epoch)",
        secs / epochs.max(1) as f64
    );
    println!(
        "held-out exact match {:.4}",
        right as f64 / held.len() as f64
    );
    Ok(())
}
