//! Time-series forecasting: a stacked LSTM reads a window of several float channels
//! (batch-major `[batch, steps, channels]`, as Keras takes them) and predicts the next value of
//! the first channel, a regression with mean squared error.
//!
//! ```text
//! cargo run --release --example timeseries [-- --windows 8000 --steps 64 --epochs 8
//!     --units 64 --batch 64 --seed 3]
//! ```
//!
//! The series are generated with a fixed seed (no registry package this project can reach
//! ships a forecasting set with a licence to embed). Each window is its own short history of a
//! signal: two sinusoids of random period (12 to 60 steps), amplitude and phase, and a slow
//! trend, plus noise. The channels are the noisy signal, its first sinusoid alone (a known
//! driver, as a weather model has the season), and a step counter scaled to [0, 1]; the
//! target is the noise-free signal one step past the window. Test windows use their own
//! draws. The last line compares the model with persistence (tomorrow as today) and with the
//! best linear predictor from the last eight values, fitted by least squares on the training
//! windows.
#[path = "common/flags.rs"]
mod flags;
#[path = "common/run.rs"]
mod run;

use std::f64::consts::TAU;
use std::process::ExitCode;
use std::time::Instant;

use trellis::nn::data::SplitMix64;
use trellis::nn::ndarray::{Array2, Array3};
use trellis::nn::prelude::*;

const USAGE: &str =
    "timeseries [--windows N] [--steps T] [--epochs N] [--units H] [--batch B] [--seed S]";

/// Channels a step: the noisy signal, the driver, the scaled step counter.
const CHANNELS: usize = 3;
/// Past values the linear baseline reads.
const LAGS: usize = 8;

fn main() -> ExitCode {
    run::run_main(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut f = flags::Flags::from_env(USAGE);
    let windows: usize = f.value("--windows", 8_000)?;
    let steps: usize = f.value("--steps", 64)?;
    let epochs: usize = f.value("--epochs", 8)?;
    let units: usize = f.value("--units", 64)?;
    let batch: usize = f.value("--batch", 64)?;
    let seed: u64 = f.value("--seed", 3)?;
    f.finish()?;
    if windows < 10 || steps <= LAGS {
        return Err(format!(
            "--windows {windows} --steps {steps}: need at least 10 windows (a fifth is the \
             test split) of more than {LAGS} steps"
        )
        .into());
    }

    let mut rng = SplitMix64::new(seed);
    let n_test = windows / 5;
    let (x, y) = generate(windows - n_test, steps, &mut rng);
    let (x_test, y_test) = generate(n_test, steps, &mut rng);
    println!(
        "{} train / {} test windows of {steps} steps x {CHANNELS} channels",
        x.shape()[0],
        n_test
    );

    let mut model = Sequential::new()
        .with_seed(seed)
        .with_input_shape(&[steps, CHANNELS])
        .add(LstmConfig::new(units).with_return_sequences(true))
        .add(Lstm::new(units))
        .add(Dense::new(1, Activation::Linear));
    model.compile(Adam::new(0.003), Loss::MeanSquaredError, &[])?;
    let t = Instant::now();
    model.fit(&x, &y, &FitOptions::new(epochs, batch))?;
    let train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let p = model.predict(&x_test)?;
    let predict_s = t.elapsed().as_secs_f64();
    let p = p.into_dimensionality::<trellis::nn::ndarray::Ix2>()?;

    let mse = |pred: &dyn Fn(usize) -> f64| {
        (0..n_test)
            .map(|i| (pred(i) - y_test[[i, 0]] as f64).powi(2))
            .sum::<f64>()
            / n_test as f64
    };
    let model_mse = mse(&|i| p[[i, 0]] as f64);
    let persistence = mse(&|i| x_test[[i, steps - 1, 0]] as f64);
    let coef = fit_linear(&x, &y, steps);
    let linear = mse(&|i| linear_predict(&coef, &x_test, i, steps));
    println!(
        "{:.1} s training ({:.0} windows/s), predict {:.0} windows/s",
        train_s,
        (epochs * x.shape()[0]) as f64 / train_s,
        n_test as f64 / predict_s
    );
    println!(
        "test MSE {model_mse:.5} (persistence {persistence:.5}, linear on the last {LAGS} \
         values {linear:.5})"
    );
    Ok(())
}

/// `n` windows `[n, steps, CHANNELS]` and their targets `[n, 1]` (see the module doc).
fn generate(n: usize, steps: usize, rng: &mut SplitMix64) -> (Array3<f32>, Array2<f32>) {
    let mut x = Array3::<f32>::zeros((n, steps, CHANNELS));
    let mut y = Array2::<f32>::zeros((n, 1));
    let mut uniform = |lo: f64, hi: f64| lo + (hi - lo) * rng.next_f64();
    for i in 0..n {
        let (p1, p2) = (uniform(12.0, 60.0), uniform(12.0, 60.0));
        let (a1, a2) = (uniform(0.5, 1.0), uniform(0.1, 0.5));
        let (f1, f2) = (uniform(0.0, TAU), uniform(0.0, TAU));
        let trend = uniform(-0.005, 0.005);
        let driver = |t: f64| a1 * (TAU * t / p1 + f1).sin();
        let clean = |t: f64| driver(t) + a2 * (TAU * t / p2 + f2).sin() + trend * t;
        for t in 0..steps {
            let noise = 0.05 * (uniform(-1.0, 1.0) + uniform(-1.0, 1.0));
            x[[i, t, 0]] = (clean(t as f64) + noise) as f32;
            x[[i, t, 1]] = driver(t as f64) as f32;
            x[[i, t, 2]] = t as f32 / steps as f32;
        }
        y[[i, 0]] = clean(steps as f64) as f32;
    }
    (x, y)
}

/// Least-squares weights (and a bias, last) of the target on the window's last [`LAGS`]
/// values of the signal: the normal equations, solved by Gaussian elimination.
fn fit_linear(x: &Array3<f32>, y: &Array2<f32>, steps: usize) -> Vec<f64> {
    let d = LAGS + 1;
    let row = |i: usize| -> Vec<f64> {
        let mut r: Vec<f64> = (0..LAGS).map(|l| x[[i, steps - 1 - l, 0]] as f64).collect();
        r.push(1.0);
        r
    };
    let mut a = vec![vec![0.0; d + 1]; d];
    for i in 0..x.shape()[0] {
        let r = row(i);
        for p in 0..d {
            for q in 0..d {
                a[p][q] += r[p] * r[q];
            }
            a[p][d] += r[p] * y[[i, 0]] as f64;
        }
    }
    for c in 0..d {
        let pivot = (c..d)
            .max_by(|&p, &q| a[p][c].abs().total_cmp(&a[q][c].abs()))
            .unwrap_or(c);
        a.swap(c, pivot);
        let pivot_row = a[c].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != c && pivot_row[c] != 0.0 {
                let k = row[c] / pivot_row[c];
                for (x, p) in row.iter_mut().zip(&pivot_row).skip(c) {
                    *x -= k * p;
                }
            }
        }
    }
    (0..d)
        .map(|c| {
            if a[c][c] == 0.0 {
                0.0
            } else {
                a[c][d] / a[c][c]
            }
        })
        .collect()
}

fn linear_predict(coef: &[f64], x: &Array3<f32>, i: usize, steps: usize) -> f64 {
    (0..LAGS)
        .map(|l| coef[l] * x[[i, steps - 1 - l, 0]] as f64)
        .sum::<f64>()
        + coef[LAGS]
}
