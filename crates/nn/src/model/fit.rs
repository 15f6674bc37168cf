//! `fit`, the training loop, and the guards that keep a run from ending silently wrong: the
//! step is compiled for `min(batch_size, samples)`, the checkpoint path is checked before the
//! first epoch, and the first non-finite loss stops training (Keras's `TerminateOnNaN`, always
//! on) with an error naming the epoch and batch, the model keeping its weights from before it.
use std::time::Instant;

use indicatif::ProgressBar;

use super::plans::{values, BatchOut, Runner};
use super::progress::{format_log, progress_bar};
use super::{Compiled, EpochLog, FitOptions, History, Inputs, Model, Shapes, Targets};
use crate::data::{batch_ranges, shuffled_indices, SplitMix64};
use crate::metrics::Metric;
use crate::{NnError, Result};

/// The training data of one `fit` call.
struct TrainData<'x> {
    x: Inputs<'x>,
    y: Targets<'x>,
    shapes: Shapes,
    /// The first `n_train` samples train; the rest (or `validation_data`) validate.
    n_train: usize,
    batch: usize,
    val: Option<(Inputs<'x>, Targets<'x>)>,
}

/// One epoch's schedule: its number, the sample order, the batch size and the settings.
struct Epoch<'e> {
    number: usize,
    order: &'e [usize],
    batch: usize,
    compiled: &'e Compiled,
    seed: u64,
}

/// What one pass over an epoch's batches gives.
#[derive(Default)]
struct EpochRun {
    loss_sum: f64,
    correct: u64,
    counted: u64,
    steps: usize,
    /// The first batch whose step went non-finite, and what went wrong.
    bad: Option<(usize, String)>,
}

impl Model {
    /// Trains the model (Keras's `fit`).
    ///
    /// Errors before any training when the data, the options or the checkpoint path are
    /// unusable; stops at the first non-finite loss (or non-finite weights after an epoch) with
    /// an error naming the epoch and batch, leaving the model with its weights and optimiser
    /// state from before that batch (the epoch's earlier batches are replayed exactly).
    pub fn fit<'x, 'y>(
        &mut self,
        x: impl Into<Inputs<'x>>,
        y: impl Into<Targets<'y>>,
        opts: &FitOptions,
    ) -> Result<History> {
        let (x, y) = (x.into(), y.into());
        opts.validate()?;
        let shapes = self.check_fit_data(&x, &y, opts.validation_data.as_ref())?;
        let (n_train, val) = hold_out(&x, &y, shapes.n, opts)?;
        if let Some(p) = &opts.checkpoint {
            crate::checkpoint::check_writable(p)?;
        }
        // A plan for more rows than there are samples would only add padding.
        let b = opts.batch_size.min(n_train);
        self.eval_batch = opts.batch_size;
        let mut r = self.runner(true, b, &shapes.rows)?;
        let data = TrainData {
            x: x.view(),
            y: y.view(),
            shapes,
            n_train,
            batch: b,
            val,
        };
        let result = (|| -> Result<History> {
            self.push_weights(&mut r)?;
            let mut history = History::default();
            for e in 0..opts.epochs {
                history
                    .epochs
                    .push(self.train_epoch(&mut r, &data, e, opts)?);
            }
            Ok(history)
        })();
        self.train = Some(r);
        result
    }

    /// One epoch: the steps, the roll-back if one went non-finite, then validation, the
    /// checkpoint and the summary line.
    fn train_epoch(
        &mut self,
        r: &mut Runner,
        d: &TrainData,
        e: usize,
        opts: &FitOptions,
    ) -> Result<EpochLog> {
        let c = self.compiled()?.clone();
        let (epoch, n_train) = (self.epochs_done + 1, d.n_train);
        let t0 = Instant::now();
        let order: Vec<usize> = if opts.shuffle {
            shuffled_indices(n_train, opts.seed.wrapping_add(epoch as u64))
        } else {
            (0..n_train).collect()
        };
        let step0 = self.step;
        let ep = Epoch {
            number: epoch,
            order: &order,
            batch: d.batch,
            compiled: &c,
            seed: opts.seed,
        };
        let bar = progress_bar(opts.verbose, n_train, e, opts.epochs);
        let run = self.run_epoch(r, d, &ep, None, bar.as_ref())?;
        let train_s = t0.elapsed().as_secs_f64();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let batches = n_train.div_ceil(d.batch);
        let bad = match run.bad {
            Some(bad) => Some(bad),
            None if !plan_state_finite(r)? => Some((
                batches - 1,
                "the update left non-finite weights".to_string(),
            )),
            None => None,
        };
        if let Some((batch, what)) = bad {
            let kept = self.roll_back(r, d, &ep, step0, batch);
            return Err(NnError::NonFinite(format!(
                "epoch {epoch}, batch {} of {batches}: {what}; training stopped, the model \
                 keeps its weights {kept}",
                batch + 1
            )));
        }
        self.pull_weights(r)?;
        self.epochs_done += 1;
        let mut log = EpochLog {
            epoch,
            loss: run.loss_sum / n_train as f64,
            accuracy: c
                .metrics
                .contains(&Metric::Accuracy)
                .then(|| run.correct as f64 / run.counted.max(1) as f64),
            steps: run.steps,
            samples_per_sec: n_train as f64 / train_s,
            ..Default::default()
        };
        if let Some((vx, vy)) = &d.val {
            let ev = self.evaluate(vx, vy)?;
            log.val_loss = Some(ev.loss);
            log.val_accuracy = ev.accuracy;
        }
        log.seconds = t0.elapsed().as_secs_f64();
        if let Some(p) = &opts.checkpoint {
            self.save(p)?;
        }
        if opts.verbose {
            println!("{}", format_log(&log, opts.epochs, e + 1));
        }
        Ok(log)
    }

    /// Runs the training steps of one epoch over `order` (only the batches before `stop`, when
    /// given); stops at the first non-finite loss.
    fn run_epoch(
        &mut self,
        r: &mut Runner,
        d: &TrainData,
        ep: &Epoch,
        stop: Option<usize>,
        bar: Option<&ProgressBar>,
    ) -> Result<EpochRun> {
        let c = ep.compiled;
        let acc = c.metrics.contains(&Metric::Accuracy) && stop.is_none();
        let mut rng =
            SplitMix64::new(ep.seed ^ (ep.number as u64).wrapping_mul(0xD134_2543_DE82_EF95));
        let t0 = Instant::now();
        let mut out = EpochRun::default();
        for (bi, range) in batch_ranges(ep.order.len(), ep.batch)?.enumerate() {
            if stop == Some(bi) {
                break;
            }
            let rows = &ep.order[range];
            self.feed(r, &d.x, Some(&d.y), rows, &d.shapes)?;
            let o = r.sg.optimizer.as_ref().expect("training graph");
            r.plan
                .set_f32(o.lr, &[c.optimizer.lr_for_step(self.step)])?;
            for m in &r.sg.masks {
                let len = r.sg.graph.ty(m.node).numel();
                let scale = 1.0 / (1.0 - m.rate);
                let mask: Vec<f32> = (0..len)
                    .map(|_| {
                        if rng.next_f64() < m.rate as f64 {
                            0.0
                        } else {
                            scale
                        }
                    })
                    .collect();
                r.plan.set_f32(m.node, &mask)?;
            }
            r.plan.run()?;
            self.step += 1;
            out.steps += 1;
            let b = BatchOut::read(r, rows.len())?;
            let l = b.loss;
            if !l.is_finite() {
                out.bad = Some((bi, format!("the loss is {l}")));
                return Ok(out);
            }
            out.loss_sum += l * rows.len() as f64;
            if acc {
                let (ok, cnt) = b.accuracy(c, &d.y, rows, &d.shapes);
                out.correct += ok;
                out.counted += cnt;
            }
            if let Some(bar) = bar {
                bar.inc(rows.len() as u64);
                let done = bar.position() as f64;
                let mut msg = format!("loss {:.4}", out.loss_sum / done);
                if acc {
                    msg += &format!(" - accuracy {:.4}", out.correct as f64 / out.counted as f64);
                }
                let sps = done / t0.elapsed().as_secs_f64();
                msg += &format!(" - {sps:.0} samples/s");
                bar.set_message(msg);
            }
        }
        Ok(out)
    }

    /// After batch `batch` of epoch `ep` went non-finite: resets the plan to the epoch's start
    /// (which the host still holds: weights are pulled at epoch ends), replays the batches
    /// before `batch` (deterministic: same order, same dropout masks) and keeps their result
    /// when it is finite, else the epoch's start. Says which weights the model kept.
    fn roll_back(
        &mut self,
        r: &mut Runner,
        d: &TrainData,
        ep: &Epoch,
        step0: u64,
        batch: usize,
    ) -> &'static str {
        self.step = step0;
        let replayed = (|| -> Result<bool> {
            self.push_weights(r)?;
            let run = self.run_epoch(r, d, ep, Some(batch), None)?;
            Ok(run.bad.is_none() && plan_state_finite(r)?)
        })();
        if matches!(replayed, Ok(true)) && self.pull_weights(r).is_ok() {
            "from before this batch"
        } else {
            self.step = step0;
            "from the start of this epoch"
        }
    }
}

/// The samples to train on and the validation data: `validation_data`, or the last
/// `validation_split` of the samples (Keras holds them out before shuffling).
fn hold_out<'x>(
    x: &'x Inputs,
    y: &'x Targets,
    n_all: usize,
    opts: &'x FitOptions,
) -> Result<(usize, Option<(Inputs<'x>, Targets<'x>)>)> {
    Ok(match &opts.validation_data {
        Some((vx, vy)) => (n_all, Some((vx.view(), vy.view()))),
        None if opts.validation_split > 0.0 => {
            let n_val = ((n_all as f64) * opts.validation_split as f64).round() as usize;
            let n_tr = n_all - n_val;
            if n_val == 0 || n_tr == 0 {
                return Err(NnError::InvalidArgument {
                    name: "validation_split",
                    value: opts.validation_split.to_string(),
                    message: format!(
                        "holds out {n_val} of the {n_all} samples, leaving {n_tr} to train on: \
                         both parts must have at least one sample"
                    ),
                });
            }
            (n_tr, Some((x.rows(n_tr..n_all), y.rows(n_tr..n_all))))
        }
        None => (n_all, None),
    })
}

/// Whether every weight and optimiser state in a training plan is finite.
fn plan_state_finite(r: &Runner) -> Result<bool> {
    let states =
        r.sg.optimizer
            .iter()
            .flat_map(|o| o.states.iter().map(|s| s.1));
    for n in r.sg.params.iter().copied().chain(states) {
        let finite = match r.plan.f32_slice(n) {
            Some(s) => s.iter().all(|v| v.is_finite()),
            None => values(&r.plan, n)?.iter().all(|v| v.is_finite()),
        };
        if !finite {
            return Ok(false);
        }
    }
    Ok(true)
}
