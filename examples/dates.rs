//! Neural machine translation of human-written dates ("3rd of March 1998", "tue 03/03/98",
//! "March 3, 1998", "1998-3-3", ...) into ISO dates ("1998-03-03"): an LSTM encoder-decoder
//! with Luong attention (`trellis::nn::decode::LuongSeq2Seq`), trained with teacher forcing,
//! decoded greedily and with beam search on dates never seen in training.
//!
//! ```text
//! cargo run --release --example dates [-- --train 20000 --held 2000 --epochs 6 --batch 64
//!     --units 64 --embed 32 --lr 0.003 --beam 3 --plot dates_attention.png --latency N]
//! ```
//!
//! The data is generated here with a fixed seed: dates from 1950 to 2049 (two-digit years
//! read in that window) written in one of many formats (slashes are month/day, dots
//! day.month). A tenth of the calendar days is held out: no held-out day appears in training,
//! in any format. Decoding attaches an encoder plan and a one-step decoder plan to the
//! training plan (`Decoder::attach`): they read the trained weights in place. The attention
//! maps of a few held-out examples are written as a PNG heat map. The last line is the
//! held-out exact match of greedy decoding (every character of the ISO date right). Adam with
//! global-norm clipping at 1; the last two epochs run at a quarter of the learning rate.
//!
//! `--latency N` (after training; `--epochs 0` to skip it) times, as medians of N runs at
//! batch 1, the encoder, one decoder step (one token), a whole greedy decode, and the full
//! teacher-forced forward pass of the same model (encoder and every decoder step unrolled,
//! compiled as one plan) that training runs.
#[path = "common/flags.rs"]
mod flags;
#[path = "common/run.rs"]
mod run;
#[path = "common/timing.rs"]
mod timing;

use std::process::ExitCode;
use std::time::Instant;

use trellis::ir::{DType, TensorType};
use trellis::jit::{compile, CompileOptions};
use trellis::nn::data::{shuffle, SplitMix64};
use trellis::nn::decode::{
    forward_graph, plot_attention, AttentionMap, BeamOptions, Decoder, EncoderDecoder, LuongSeq2Seq,
};
use trellis::nn::{Adam, Optimizer};

const USAGE: &str = "dates [--train N] [--held N] [--epochs E] [--batch B] [--units H] \
                     [--embed E] [--lr LR] [--beam K] [--plot FILE.png] [--latency N]";

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
/// Target tokens: 0 padding (unused), 1 start, 2 end, then `0-9` and `-`.
const START: i64 = 1;
const END: i64 = 2;
const TARGET: &str = "0123456789-";
/// An ISO date and the end token.
const STEPS: usize = 11;

fn main() -> ExitCode {
    run::run_main(run)
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Date {
    y: i32,
    m: u32,
    d: u32,
}

fn leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn month_days(y: i32, m: u32) -> u32 {
    match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// 0 = Sunday (Sakamoto's method).
fn weekday(d: Date) -> usize {
    const T: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if d.m < 3 { d.y - 1 } else { d.y };
    ((y + y / 4 - y / 100 + y / 400 + T[d.m as usize - 1] + d.d as i32).rem_euclid(7)) as usize
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// `d` written in format `k` (of [`FORMATS`]).
fn write(d: Date, k: usize) -> String {
    let month = MONTHS[d.m as usize - 1];
    let mon = &month[..3];
    let day = DAYS[weekday(d)];
    let dy = &day[..3];
    let yy = d.y % 100;
    let (y, m, n) = (d.y, d.m, d.d);
    match k {
        0 => format!("{} of {month} {y}", ordinal(n)),
        1 => format!("{} {m:02}/{n:02}/{yy:02}", dy.to_lowercase()),
        2 => format!("{month} {n}, {y}"),
        3 => format!("{y}-{m}-{n}"),
        4 => format!("{n} {month} {y}"),
        5 => format!("{n} {mon} {y}"),
        6 => format!("{mon} {n} {y}"),
        7 => format!("{n:02}.{m:02}.{y}"),
        8 => format!("{m}/{n}/{y}"),
        9 => format!("{}, {} {n}, {y}", day.to_lowercase(), month.to_lowercase()),
        10 => format!("{n:02} {} {yy:02}", mon.to_lowercase()),
        11 => format!("{y}/{m:02}/{n:02}"),
        12 => format!(
            "{} {}, {y}",
            month.to_uppercase(),
            ordinal(n).to_uppercase()
        ),
        13 => format!("{day} {n} {month} {y}"),
        14 => format!("{n}-{mon}-{y}"),
        15 => format!("the {} of {}, {y}", ordinal(n), month.to_lowercase()),
        16 => format!("{n}.{m}.{yy:02}"),
        17 => format!("{mon}. {n}, {y}"),
        18 => format!("{y}{m:02}{n:02}"),
        19 => format!("{dy}, {n} {mon} {y}"),
        20 => format!("{m}/{n}/{yy:02}"),
        _ => format!("{} {}", month.to_lowercase(), ordinal(n)) + &format!(" {y}"),
    }
}
const FORMATS: usize = 22;

fn iso(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.y, d.m, d.d)
}

/// Every day from 1950 to 2049.
fn calendar() -> Vec<Date> {
    let mut v = Vec::new();
    for y in 1950..2050 {
        for m in 1..=12 {
            for d in 1..=month_days(y, m) {
                v.push(Date { y, m, d });
            }
        }
    }
    v
}

/// Source ids: printable ASCII `c` is `c - 31` (1..=95); 0 pads.
const SOURCE_VOCAB: usize = 96;

fn source_ids(s: &str, len: usize) -> Vec<i64> {
    let mut v: Vec<i64> = s.bytes().map(|c| c as i64 - 31).collect();
    v.resize(len, 0);
    v
}

fn target_ids(s: &str) -> Vec<i64> {
    s.chars()
        .map(|c| 3 + TARGET.find(c).expect("an ISO character") as i64)
        .collect()
}

fn target_text(tokens: &[i64]) -> String {
    let chars: Vec<char> = TARGET.chars().collect();
    tokens
        .iter()
        .filter(|&&t| t >= 3)
        .map(|&t| chars[(t - 3) as usize])
        .collect()
}

/// `n` examples `(written, iso)` from `days`, formats drawn at random.
fn examples(days: &[Date], n: usize, rng: &mut SplitMix64) -> Vec<(String, String)> {
    (0..n)
        .map(|_| {
            let d = days[rng.below(days.len() as u64) as usize];
            let k = rng.below(FORMATS as u64) as usize;
            (write(d, k), iso(d))
        })
        .collect()
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut f = flags::Flags::from_env(USAGE);
    let n_train: usize = f.value("--train", 20_000)?;
    let n_held: usize = f.value("--held", 2_000)?;
    let epochs: usize = f.value("--epochs", 6)?;
    let batch: usize = f.value("--batch", 64)?;
    let units: usize = f.value("--units", 64)?;
    let embed: usize = f.value("--embed", 32)?;
    let lr: f64 = f.value("--lr", 0.003)?;
    let width: usize = f.value("--beam", 3)?;
    let plot: String = f.value("--plot", "dates_attention.png".to_string())?;
    let latency: usize = f.value("--latency", 0)?;
    f.finish()?;
    if n_train < batch || n_held == 0 || batch == 0 || width == 0 {
        return Err("need --train >= --batch > 0, --held > 0 and --beam > 0".into());
    }

    // Hold out a tenth of the days.
    let mut rng = SplitMix64::new(2026);
    let mut days = calendar();
    shuffle(&mut days, 2026);
    let held_days = days.split_off(days.len() - days.len() / 10);
    let train = examples(&days, n_train, &mut rng);
    let held = examples(&held_days, n_held, &mut rng);
    let ts = (0..FORMATS)
        .map(|k| {
            write(
                Date {
                    y: 2000,
                    m: 9,
                    d: 30,
                },
                k,
            )
            .len()
        })
        .max()
        .unwrap_or(0)
        + 2;
    println!(
        "{} training examples from {} days, {} held-out examples from {} other days; {FORMATS} \
         formats, sources padded to {ts}; e.g. {:?} -> {:?}, {:?} -> {:?}",
        train.len(),
        days.len(),
        held.len(),
        held_days.len(),
        train[0].0,
        train[0].1,
        train[1].0,
        train[1].1
    );

    // The teacher-forced training step: forward, mean cross-entropy, backward, Adam.
    let model = LuongSeq2Seq::new(SOURCE_VOCAB, 3 + TARGET.len(), embed, units);
    let v = 3 + TARGET.len();
    let fg = forward_graph(&model, batch, ts, STEPS)?;
    let mut g = fg.graph.clone();
    let y = g.input("y", TensorType::f32([batch, STEPS, v]));
    let picked = g.mul(y, fg.log_probs)?;
    let total = g.sum_all(picked)?;
    let scale = g.scalar(-1.0 / (batch * STEPS) as f64, DType::F32);
    let loss = g.mul(total, scale)?;
    trellis::ir::passes::gather_before_matmul(&mut g);
    let grads = trellis::autodiff::grad(&mut g, loss, &fg.params)?;
    let specs = model.param_specs();
    let named: Vec<(String, _)> = specs
        .iter()
        .map(|s| s.name.clone())
        .zip(fg.params.clone())
        .collect();
    let opt = Optimizer::from(Adam::new(lr).with_global_clipnorm(1.0));
    opt.validate()?;
    let og = opt.build(&mut g, &named, &grads)?;
    g.set_outputs(vec![loss]);
    let mut plan = compile(
        &g,
        &CompileOptions {
            updates: og.updates.clone(),
            ..Default::default()
        },
    )?;
    let mut init = SplitMix64::new(7);
    for (s, &p) in specs.iter().zip(&fg.params) {
        plan.set_f32(p, &s.init.sample(&s.shape, &mut init))?;
    }
    for (_, n) in &og.states {
        plan.set_f32(*n, &vec![0.0; g.ty(*n).numel()])?;
    }
    // Decoding runs on the training plan's weights (no copy), so it can check progress.
    let t_attach = Instant::now();
    // Greedy needs one row; the beam one row per hypothesis.
    let dec = Decoder::attach(&mut plan, &fg.params, &model, ts, 1)?;
    let wide = Decoder::attach(&mut plan, &fg.params, &model, ts, width)?;
    println!(
        "encoder and decoder step plans attached in {:.0} ms",
        t_attach.elapsed().as_secs_f64() * 1e3
    );
    let opts = BeamOptions::new(1, START, STEPS).with_end(END);
    let exact = |plan: &mut trellis::jit::Plan, set: &[(String, String)], width: usize| {
        let mut right = 0;
        for (src, want) in set {
            let ids = source_ids(src, ts);
            let h = if width == 1 {
                dec.greedy(plan, &ids, &opts)?
            } else {
                let o = BeamOptions {
                    width,
                    ..opts.clone()
                };
                wide.beam(plan, &ids, &o)?.swap_remove(0)
            };
            right += usize::from(target_text(&h.tokens) == *want && h.finished);
        }
        Ok::<f64, trellis::nn::NnError>(right as f64 / set.len() as f64)
    };

    let t = Instant::now();
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut step = 0u64;
    for epoch in 1..=epochs {
        shuffle(&mut order, 100 + epoch as u64);
        let mut sum = 0.0;
        let batches = order.len() / batch;
        // The last two epochs at a quarter of the rate: the exact match settles.
        let rate = if epoch + 2 > epochs { 0.25 } else { 1.0 };
        for b in 0..batches {
            let rows = &order[b * batch..(b + 1) * batch];
            let mut src = Vec::with_capacity(batch * ts);
            let mut inp = Vec::with_capacity(batch * STEPS);
            let mut onehot = vec![0.0f32; batch * STEPS * v];
            for (r, &i) in rows.iter().enumerate() {
                let (s, iso) = &train[i];
                src.extend(source_ids(s, ts));
                let mut tgt = target_ids(iso);
                tgt.push(END);
                inp.push(START);
                inp.extend_from_slice(&tgt[..STEPS - 1]);
                for (k, &tok) in tgt.iter().enumerate() {
                    onehot[(r * STEPS + k) * v + tok as usize] = 1.0;
                }
            }
            plan.set_i64(fg.source, &src)?;
            plan.set_i64(fg.tokens, &inp)?;
            plan.set_f32(y, &onehot)?;
            plan.set_f32(og.lr, &[opt.lr_for_step(step) * rate])?;
            plan.run()?;
            step += 1;
            let l = plan.get(loss)?.to_f32_vec()[0] as f64;
            if !l.is_finite() {
                return Err(format!("epoch {epoch}, batch {b}: the loss is {l}").into());
            }
            sum += l;
        }
        let check = &held[..held.len().min(300)];
        println!(
            "epoch {epoch}/{epochs}: loss {:.4}, held-out exact match (greedy, first {}) {:.4} \
             [{:.0} s]",
            sum / batches as f64,
            check.len(),
            exact(&mut plan, check, 1)?,
            t.elapsed().as_secs_f64()
        );
    }
    let train_secs = t.elapsed().as_secs_f64();

    // Decode every held-out example, greedily and with the beam.
    let t = Instant::now();
    let greedy = exact(&mut plan, &held, 1)?;
    let greedy_ms = t.elapsed().as_secs_f64() * 1e3 / held.len() as f64;
    let t = Instant::now();
    let beam = exact(&mut plan, &held, width)?;
    let beam_ms = t.elapsed().as_secs_f64() * 1e3 / held.len() as f64;

    // Attention maps of a few held-out examples.
    let mut maps = Vec::new();
    for (src, _) in held.iter().take(4) {
        let h = dec.greedy(&mut plan, &source_ids(src, ts), &opts)?;
        let cols = src.len() + 1; // the characters and one padding column
        maps.push(AttentionMap {
            title: format!("{src} -> {}", target_text(&h.tokens)),
            source: src.chars().map(String::from).chain(["_".into()]).collect(),
            output: (h.tokens.iter())
                .map(|&t| match t {
                    END => "</s>".to_string(),
                    t => target_text(&[t]),
                })
                .collect(),
            weights: h.attention.iter().map(|r| r[..cols].to_vec()).collect(),
        });
    }
    plot_attention(&plot, &maps)?;
    for (src, want) in held.iter().take(6) {
        let h = dec.greedy(&mut plan, &source_ids(src, ts), &opts)?;
        let got = target_text(&h.tokens);
        let mark = if got == *want { "ok" } else { "WRONG" };
        println!("  {src:<32} -> {got} ({mark})");
    }
    if latency > 0 {
        let src = source_ids(&held[0].0, ts);
        let steps = dec.greedy(&mut plan, &src, &opts)?.tokens.len();
        let enc_us = timing::median_us(latency, || dec.start(&mut plan, &src).map(drop))?;
        let step_us = timing::median_us(latency, || dec.step(&mut plan, &[START]).map(drop))?;
        let greedy_us =
            timing::median_us(latency, || dec.greedy(&mut plan, &src, &opts).map(drop))?;
        // The teacher-forced forward pass at batch 1, its own plan with the trained weights.
        let fwd = forward_graph(&model, 1, ts, STEPS)?;
        let mut fplan = compile(&fwd.graph, &CompileOptions::default())?;
        for (&p, &q) in fwd.params.iter().zip(&fg.params) {
            fplan.set_f32(p, &plan.get(q)?.to_f32_vec())?;
        }
        fplan.set_i64(fwd.source, &src)?;
        let mut tokens = vec![START];
        tokens.extend(target_ids(&held[0].1));
        fplan.set_i64(fwd.tokens, &tokens[..STEPS])?;
        let fwd_us = timing::median_us(latency, || fplan.run().map(drop))?;
        println!(
            "latency at batch 1 (median of {latency}): encoder {enc_us:.0} us, one decoder step \
             (one token) {step_us:.0} us, greedy decode of {steps} tokens {greedy_us:.0} us; \
             full forward pass (encoder + {STEPS} steps unrolled) {fwd_us:.0} us"
        );
    }
    println!(
        "trained {epochs} epochs in {train_secs:.0} s; decoding {greedy_ms:.2} ms per date \
         greedy, {beam_ms:.2} ms beam {width}; attention maps in {plot}"
    );
    println!("held-out exact match, beam width {width}: {beam:.4}");
    println!("held-out exact match {greedy:.4}");
    Ok(())
}
