//! Sentence matching with a siamese LSTM: one shared encoder reads both sentences of a pair
//! and a small head scores whether they mean the same, built with the functional API (two
//! inputs, shared layers, merge layers).
//!
//! ```text
//! cargo run --release --example matching [-- --pairs 20000 --epochs 20 --units 64 --embed 32
//!     --batch 64 --seed 7]
//! ```
//!
//! The data is generated here with a fixed seed: no package in the registries this project
//! can reach ships a sentence-pair set (see the README). A meaning is a frame: who did what to
//! whom, maybe when or where, maybe negated. Its sentences vary in synonyms ("the physician" for "the doctor", "assisted" for "helped"), voice ("the teacher
//! was helped by the doctor"), the way of negating ("did not help", "never helped", "wasn't
//! helped") and where the time or place goes. A pair of two renderings of one frame is a
//! paraphrase; a negative pair changes one thing: the roles swapped (the same words in another
//! order), a person, the verb, the time or place, or the negation. The second sentence of
//! either kind copies each surface choice of the first with probability 1/2, so shared words
//! say little: the last line compares the model with the best word-overlap rule (Jaccard
//! overlap of the word sets at a threshold tuned on the training pairs). Test pairs are built
//! on frames that no training pair starts from.
#[path = "common/flags.rs"]
mod flags;
#[path = "common/run.rs"]
mod run;

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Instant;

use trellis::nn::data::{text_to_words, Side, SplitMix64, TextEncoder, Tokenizer};
use trellis::nn::prelude::*;

const USAGE: &str = "matching [--pairs N] [--epochs N] [--units H] [--embed E] [--batch B] \
                     [--seed S]";

fn main() -> ExitCode {
    run::run_main(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut f = flags::Flags::from_env(USAGE);
    let pairs: usize = f.value("--pairs", 20_000)?;
    let epochs: usize = f.value("--epochs", 20)?;
    let units: usize = f.value("--units", 64)?;
    let embed: usize = f.value("--embed", 32)?;
    let batch: usize = f.value("--batch", 64)?;
    let seed: u64 = f.value("--seed", 7)?;
    f.finish()?;
    if pairs < 10 {
        return Err(
            format!("--pairs {pairs}: need at least 10 (a fifth is the test split)").into(),
        );
    }

    let (train, test) = generate(pairs, seed);
    let tokenizer = Tokenizer::fit(train.iter().flat_map(|p| [&p.a, &p.b]), 1_000)?;
    let maxlen = train
        .iter()
        .chain(&test)
        .flat_map(|p| [&p.a, &p.b])
        .map(|s| tokenizer.encode(s).len())
        .max()
        .unwrap_or(1);
    let text = TextEncoder::new(tokenizer, maxlen)
        .with_padding(Side::Post)
        .with_truncating(Side::Post);
    let encode = |ps: &[Pair]| {
        let xa = text.encode(ps.iter().map(|p| p.a.as_str()));
        let xb = text.encode(ps.iter().map(|p| p.b.as_str()));
        let y = Array1::from_iter(ps.iter().map(|p| p.same as u8 as f32));
        (xa, xb, y)
    };
    let (xa, xb, y) = encode(&train);
    let (ta, tb, ty) = encode(&test);
    let positives = |ps: &[Pair]| ps.iter().filter(|p| p.same).count();
    println!(
        "generated pairs: {} train ({} paraphrases), {} test ({} paraphrases); {} words, rows of {maxlen} ids",
        train.len(),
        positives(&train),
        test.len(),
        positives(&test),
        text.tokenizer.vocab_size()
    );
    for p in test.iter().take(4) {
        println!("  {:<5} {:?} / {:?}", p.same, p.a, p.b);
    }

    // One embedding and one LSTM, each called on both sentences: one set of weights.
    let (a, b) = (Input::new(&[maxlen]), Input::new(&[maxlen]));
    let embedding = EmbeddingConfig::new(text.tokenizer.vocab_size(), embed)
        .with_mask_zero(true)
        .shared();
    let encoder = Lstm::new(units).shared();
    let ea = encoder.call(&embedding.call(&a)?)?;
    let eb = encoder.call(&embedding.call(&b)?)?;
    // Symmetric features: the squared difference and the product of the two codes.
    let diff = Subtract::new().call([&ea, &eb])?;
    let sq = Multiply::new().call([&diff, &diff])?;
    let prod = Multiply::new().call([&ea, &eb])?;
    let features = Concatenate::new(-1).call([&sq, &prod])?;
    let hidden = Dense::new(units, Activation::Relu).call(&features)?;
    let p = Dense::new(1, Activation::Sigmoid).call(&hidden)?;
    let mut model = Model::new(&[&a, &b], &[&p])?.with_seed(1);
    model.compile(
        Adam::default(),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )?;

    let t = Instant::now();
    model.fit([&xa, &xb], &y, &FitOptions::new(epochs, batch))?;
    let secs = t.elapsed().as_secs_f64();
    let ev = model.evaluate([&ta, &tb], &ty)?;
    let baseline = overlap_baseline(&train, &test);
    let scores = model.predict([&ta, &tb])?;
    println!("test accuracy by kind of pair (model / word overlap):");
    for kind in KINDS {
        let (mut n, mut right, mut base) = (0, 0, 0);
        for (i, p) in test.iter().enumerate().filter(|(_, p)| p.kind == kind) {
            n += 1;
            right += ((scores[[i, 0]] >= 0.5) == p.same) as usize;
            base += ((overlap(p) >= baseline.threshold) == p.same) as usize;
        }
        let share = |k: usize| k as f64 / n.max(1) as f64;
        println!(
            "  {kind:<14} {n:>5} pairs  {:.3} / {:.3}",
            share(right),
            share(base)
        );
    }
    println!(
        "test loss {:.4} ({secs:.1} s training, {:.1} s per epoch)",
        ev.loss,
        secs / epochs.max(1) as f64
    );
    println!(
        "baseline: word overlap (Jaccard) >= {:.3} means the same, tuned on the train pairs \
         (train accuracy {:.4}); majority class {:.4}",
        baseline.threshold,
        baseline.train_accuracy,
        positives(&test).max(test.len() - positives(&test)) as f64 / test.len() as f64
    );
    println!(
        "test accuracy {:.4} (baseline {:.4})",
        ev.accuracy.unwrap_or(f64::NAN),
        baseline.test_accuracy
    );
    Ok(())
}

/// A sentence pair, whether its two sentences mean the same, and what was changed if not.
struct Pair {
    a: String,
    b: String,
    same: bool,
    kind: &'static str,
}

/// What [`perturb`] changes, by its index; a paraphrase changes nothing.
const KINDS: [&str; 7] = [
    "roles swapped",
    "agent",
    "patient",
    "verb",
    "negation",
    "setting",
    "paraphrase",
];

/// People, each with its synonyms; any of them can do anything to any other.
const PEOPLE: &[&[&str]] = &[
    &["the doctor", "the physician"],
    &["the teacher", "the instructor"],
    &["the child", "the kid"],
    &["the lawyer", "the attorney"],
    &["the officer", "the policeman"],
    &["the boss", "the manager"],
    &["my friend", "my pal"],
    &["the student", "the pupil"],
    &["the woman", "the lady"],
    &["the chef", "the cook"],
];

/// Verbs with their synonyms, each as (past, participle, base).
const VERBS: &[&[(&str, &str, &str)]] = &[
    &[
        ("saw", "seen", "see"),
        ("noticed", "noticed", "notice"),
        ("spotted", "spotted", "spot"),
    ],
    &[
        ("helped", "helped", "help"),
        ("assisted", "assisted", "assist"),
        ("aided", "aided", "aid"),
    ],
    &[
        ("called", "called", "call"),
        ("phoned", "phoned", "phone"),
        ("rang", "rung", "ring"),
    ],
    &[("hit", "hit", "hit"), ("struck", "struck", "strike")],
    &[
        ("met", "met", "meet"),
        ("encountered", "encountered", "encounter"),
    ],
    &[
        ("blamed", "blamed", "blame"),
        ("accused", "accused", "accuse"),
    ],
    &[
        ("hired", "hired", "hire"),
        ("employed", "employed", "employ"),
    ],
    &[
        ("followed", "followed", "follow"),
        ("tailed", "tailed", "tail"),
    ],
    &[
        ("praised", "praised", "praise"),
        ("complimented", "complimented", "compliment"),
    ],
    &[("thanked", "thanked", "thank")],
];

/// Times and places, each with its synonyms.
const SETTINGS: &[&[&str]] = &[
    &["yesterday", "the day before"],
    &["this morning", "earlier today"],
    &["last week", "a week ago"],
    &["in the park", "at the park"],
    &["at school", "at the school"],
    &["downtown", "in the city centre"],
    &["at night", "after dark"],
];

/// A meaning: `agent` did `verb` to `patient` (indices into the tables), maybe in a setting,
/// maybe not.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Frame {
    agent: usize,
    verb: usize,
    patient: usize,
    setting: Option<usize>,
    negated: bool,
}

/// How a frame is said: raw picks, each taken modulo the number of choices it selects from,
/// so one surface renders any frame.
#[derive(Clone, Copy)]
struct Surface {
    passive: bool,
    setting_first: bool,
    agent: u64,
    patient: u64,
    verb: u64,
    negation: u64,
    setting: u64,
}

impl Surface {
    fn random(r: &mut SplitMix64) -> Surface {
        Surface {
            passive: r.below(2) == 1,
            setting_first: r.below(2) == 1,
            agent: r.next_u64(),
            patient: r.next_u64(),
            verb: r.next_u64(),
            negation: r.next_u64(),
            setting: r.next_u64(),
        }
    }

    /// Each choice kept from `self` with probability 1/2, else drawn afresh.
    fn vary(self, r: &mut SplitMix64) -> Surface {
        let fresh = Surface::random(r);
        let mut keep = || r.below(2) == 1;
        Surface {
            passive: if keep() { self.passive } else { fresh.passive },
            setting_first: if keep() {
                self.setting_first
            } else {
                fresh.setting_first
            },
            agent: if keep() { self.agent } else { fresh.agent },
            patient: if keep() { self.patient } else { fresh.patient },
            verb: if keep() { self.verb } else { fresh.verb },
            negation: if keep() {
                self.negation
            } else {
                fresh.negation
            },
            setting: if keep() { self.setting } else { fresh.setting },
        }
    }
}

fn pick<T: Copy>(choices: &[T], raw: u64) -> T {
    choices[(raw % choices.len() as u64) as usize]
}

fn render(f: Frame, s: Surface) -> String {
    let agent = pick(PEOPLE[f.agent], s.agent);
    let patient = pick(PEOPLE[f.patient], s.patient);
    let (past, part, base) = pick(VERBS[f.verb], s.verb);
    let core = match (s.passive, f.negated, s.negation % 3) {
        (false, false, _) => format!("{agent} {past} {patient}"),
        (false, true, 0) => format!("{agent} did not {base} {patient}"),
        (false, true, 1) => format!("{agent} didn't {base} {patient}"),
        (false, true, _) => format!("{agent} never {past} {patient}"),
        (true, false, _) => format!("{patient} was {part} by {agent}"),
        (true, true, 0) => format!("{patient} was not {part} by {agent}"),
        (true, true, 1) => format!("{patient} wasn't {part} by {agent}"),
        (true, true, _) => format!("{patient} was never {part} by {agent}"),
    };
    match f.setting {
        None => core,
        Some(i) if s.setting_first => format!("{} {core}", pick(SETTINGS[i], s.setting)),
        Some(i) => format!("{core} {}", pick(SETTINGS[i], s.setting)),
    }
}

/// An index in `0..n` other than those in `not`.
fn other(r: &mut SplitMix64, n: usize, not: &[usize]) -> usize {
    loop {
        let i = r.below(n as u64) as usize;
        if !not.contains(&i) {
            return i;
        }
    }
}

/// `f` with one thing changed so that it means something else, and what (its index in
/// [`KINDS`]).
fn perturb(f: Frame, r: &mut SplitMix64) -> (Frame, usize) {
    let mut g = f;
    let kinds = if f.setting.is_some() { 6 } else { 5 };
    let kind = r.below(kinds) as usize;
    match kind {
        0 => (g.agent, g.patient) = (f.patient, f.agent),
        1 => g.agent = other(r, PEOPLE.len(), &[f.agent, f.patient]),
        2 => g.patient = other(r, PEOPLE.len(), &[f.agent, f.patient]),
        3 => g.verb = other(r, VERBS.len(), &[f.verb]),
        4 => g.negated = !f.negated,
        _ => g.setting = f.setting.map(|s| other(r, SETTINGS.len(), &[s])),
    }
    (g, kind)
}

fn random_frame(r: &mut SplitMix64) -> Frame {
    let agent = r.below(PEOPLE.len() as u64) as usize;
    Frame {
        agent,
        verb: r.below(VERBS.len() as u64) as usize,
        patient: other(r, PEOPLE.len(), &[agent]),
        setting: (r.below(3) != 0).then(|| r.below(SETTINGS.len() as u64) as usize),
        negated: r.below(2) == 1,
    }
}

/// `n` pairs, half of them paraphrases, a fifth of them (those whose first frame falls in the
/// test fifth of all frames) held out.
fn generate(n: usize, seed: u64) -> (Vec<Pair>, Vec<Pair>) {
    let mut r = SplitMix64::new(seed);
    let n_test = n / 5;
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let mut seen: HashSet<(String, String)> = HashSet::new();
    while train.len() + test.len() < n {
        let f = random_frame(&mut r);
        let held_out = SplitMix64::new(seed ^ frame_key(f)).below(5) == 0;
        let split = if held_out { &mut test } else { &mut train };
        if split.len() >= if held_out { n_test } else { n - n_test } {
            continue;
        }
        let same = r.below(2) == 1;
        let (g, kind) = if same { (f, 6) } else { perturb(f, &mut r) };
        let s = Surface::random(&mut r);
        let a = render(f, s);
        // A paraphrase is said differently; both kinds share each surface choice half the time.
        let mut b = render(g, s.vary(&mut r));
        for _ in 0..100 {
            if b != a {
                break;
            }
            b = render(g, s.vary(&mut r));
        }
        if b == a || !seen.insert((a.clone(), b.clone())) {
            continue;
        }
        split.push(Pair {
            a,
            b,
            same,
            kind: KINDS[kind],
        });
    }
    (train, test)
}

fn frame_key(f: Frame) -> u64 {
    let s = f.setting.map_or(0, |s| s + 1);
    ((((f.agent * VERBS.len() + f.verb) * PEOPLE.len() + f.patient) * (SETTINGS.len() + 1) + s) * 2
        + f.negated as usize) as u64
}

struct Baseline {
    threshold: f64,
    train_accuracy: f64,
    test_accuracy: f64,
}

/// Jaccard overlap of the two sentences' word sets.
fn overlap(p: &Pair) -> f64 {
    let a: HashSet<String> = text_to_words(&p.a).into_iter().collect();
    let b: HashSet<String> = text_to_words(&p.b).into_iter().collect();
    a.intersection(&b).count() as f64 / a.union(&b).count().max(1) as f64
}

/// "Overlap >= t means the same" with the `t` that is best on `train`, scored on both splits.
fn overlap_baseline(train: &[Pair], test: &[Pair]) -> Baseline {
    let scored =
        |ps: &[Pair]| -> Vec<(f64, bool)> { ps.iter().map(|p| (overlap(p), p.same)).collect() };
    let (train, test) = (scored(train), scored(test));
    let accuracy = |ps: &[(f64, bool)], t: f64| {
        ps.iter().filter(|&&(o, same)| (o >= t) == same).count() as f64 / ps.len() as f64
    };
    let mut cuts: Vec<f64> = train.iter().map(|p| p.0).collect();
    cuts.push(f64::INFINITY); // "never the same"
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let (threshold, train_accuracy) =
        cuts.iter()
            .map(|&t| (t, accuracy(&train, t)))
            .fold(
                (f64::NAN, -1.0),
                |best, c| if c.1 > best.1 { c } else { best },
            );
    Baseline {
        threshold,
        train_accuracy,
        test_accuracy: accuracy(&test, threshold),
    }
}
