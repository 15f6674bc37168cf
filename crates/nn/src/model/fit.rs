//! `fit`, the training loop, and the guards that keep a run from ending silently wrong: the
//! step is compiled for `min(batch_size, samples)`, callbacks check their settings (the
//! checkpoint path among them) before the first epoch, and [`TerminateOnNaN`] (on by default)
//! stops at the first non-finite loss with an error naming the epoch and batch, the model
//! keeping its weights from before it.
//!
//! Callbacks run in the order: `TerminateOnNaN`, the caller's, then `fit`'s own checkpoint.
use std::time::Instant;

use indicatif::ProgressBar;

use super::plans::{output_loss_logs, BatchOut, Runner};
use super::progress::{format_log, progress_bar};
use super::{Compiled, EpochLog, FitOptions, History, Inputs, Model, Shapes, Targets};
use crate::callbacks::{BatchLog, Callback, ModelCheckpoint, Run, RunState, TerminateOnNaN};
use crate::data::{batch_ranges, shuffled_indices, SplitMix64};
use crate::metrics::{Metric, Tallies};
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
    /// `class_weight` times `sample_weight`, per output, sample and step.
    weights: Option<Vec<Vec<f32>>>,
}

/// One epoch's schedule: its number, the sample order, the batch size and the settings.
struct Epoch<'e> {
    number: usize,
    order: &'e [usize],
    batch: usize,
    compiled: &'e Compiled,
    seed: u64,
}

/// The callbacks of a run and what they asked for; `None` when replaying batches.
type Hooks<'h, 'c> = Option<(&'h mut [&'c mut dyn Callback], &'h mut RunState)>;

/// What one pass over an epoch's batches gives.
#[derive(Default)]
struct EpochRun {
    loss_sum: f64,
    /// Per output of a model with several: the sum of its loss times the batch's rows.
    output_loss_sums: Vec<f64>,
    /// The compiled metrics over the epoch's batches (not on a replay).
    tally: Option<Tallies>,
    steps: usize,
    /// Samples trained on (fewer than the epoch's when a callback stopped it).
    seen: usize,
    /// The learning-rate and decay inputs fed to each step (a replay feeds the same).
    lrs: Vec<[f32; 2]>,
    /// The first batch whose step went non-finite, and what went wrong.
    bad: Option<(usize, String)>,
}

/// Calls `f` on every callback with a [`Run`] over `model`.
fn each(
    cbs: &mut [&mut dyn Callback],
    model: &mut Model,
    state: &mut RunState,
    plan: Option<&Runner>,
    last_batch: bool,
    mut f: impl FnMut(&mut dyn Callback, &mut Run) -> Result<()>,
) -> Result<()> {
    for c in cbs.iter_mut() {
        f(&mut **c, &mut Run::new(model, state, plan, last_batch))?;
    }
    Ok(())
}

impl Model {
    /// Trains the model (Keras's `fit`); [`Model::fit_with_callbacks`] without callbacks
    /// of the caller's.
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
        self.fit_with_callbacks(x, y, opts, &mut [])
    }

    /// [`Model::fit`] calling `callbacks` (Keras's `fit(..., callbacks=[...])`); they are
    /// borrowed, so their state (an [`EarlyStopping`]'s best epoch, ...) can be read after.
    ///
    /// [`EarlyStopping`]: crate::callbacks::EarlyStopping
    pub fn fit_with_callbacks<'x, 'y>(
        &mut self,
        x: impl Into<Inputs<'x>>,
        y: impl Into<Targets<'y>>,
        opts: &FitOptions,
        callbacks: &mut [&mut dyn Callback],
    ) -> Result<History> {
        let (x, y) = (x.into(), y.into());
        opts.validate()?;
        let shapes = self.check_fit_data(&x, &y, opts.validation_data.as_ref())?;
        let (n_train, val) = hold_out(&x, &y, shapes.n, opts)?;
        let weights = self.loss_weights(&y, &shapes, opts)?;
        let mut nan = TerminateOnNaN;
        let mut ckpt = opts
            .checkpoint
            .as_ref()
            .map(|p| ModelCheckpoint::new(p).with_save_weights_only(true));
        let mut cbs: Vec<&mut dyn Callback> = Vec::new();
        if opts.terminate_on_nan {
            cbs.push(&mut nan);
        }
        cbs.extend(callbacks.iter_mut().map(|c| &mut **c as &mut dyn Callback));
        if let Some(c) = ckpt.as_mut() {
            cbs.push(c);
        }
        let mut state = RunState {
            logged: self.logged_names(val.is_some())?,
            ..Default::default()
        };
        each(&mut cbs, self, &mut state, None, false, |c, run| {
            c.on_train_begin(run)
        })?;
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
            weights,
        };
        let result = (|| -> Result<History> {
            self.push_weights(&mut r)?;
            let mut history = History::default();
            for e in 0..opts.epochs {
                let epoch = self.epochs_done + 1;
                each(&mut cbs, self, &mut state, None, false, |c, run| {
                    c.on_epoch_begin(epoch, run)
                })?;
                self.sync_weights(&mut r, &mut state)?;
                let log = self.train_epoch(&mut r, &data, e, opts, Some((&mut cbs, &mut state)))?;
                each(&mut cbs, self, &mut state, None, false, |c, run| {
                    c.on_epoch_end(&log, run)
                })?;
                self.sync_weights(&mut r, &mut state)?;
                history.epochs.push(log);
                if state.stop {
                    break;
                }
            }
            each(&mut cbs, self, &mut state, None, false, |c, run| {
                c.on_train_end(&history, run)
            })?;
            self.sync_weights(&mut r, &mut state)?;
            Ok(history)
        })();
        self.train = Some(r);
        result
    }

    /// The names every epoch log of a run holds (what callbacks may monitor).
    fn logged_names(&self, validation: bool) -> Result<Vec<String>> {
        let c = self.compiled()?;
        let acc = c.metrics.contains(&Metric::Accuracy);
        let widths = vec![1; c.losses.losses.len()];
        let others = Tallies::new(&c.losses.losses, &c.metrics, &widths).results("");
        let mut metrics = others.clone();
        if validation {
            metrics.extend(others.into_iter().map(|(n, v)| (format!("val_{n}"), v)));
        }
        let log = EpochLog {
            accuracy: acc.then_some(0.0),
            learning_rate: Some(0.0),
            val_loss: validation.then_some(0.0),
            val_accuracy: (validation && acc).then_some(0.0),
            metrics,
            ..Default::default()
        };
        Ok(log.names())
    }

    /// Copies the host weights into the plan when a callback may have changed them.
    fn sync_weights(&mut self, r: &mut Runner, state: &mut RunState) -> Result<()> {
        if std::mem::take(&mut state.weights_changed) {
            self.push_weights(r)?;
        }
        Ok(())
    }

    /// One epoch: the steps, the roll-back if one went non-finite, then validation and the
    /// summary line.
    fn train_epoch(
        &mut self,
        r: &mut Runner,
        d: &TrainData,
        e: usize,
        opts: &FitOptions,
        hooks: Hooks,
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
        let run = self.run_epoch(r, d, &ep, hooks, None, bar.as_ref())?;
        let train_s = t0.elapsed().as_secs_f64();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if let Some((batch, what)) = run.bad {
            let kept = self.roll_back(r, d, &ep, step0, batch, &run.lrs);
            return Err(NnError::NonFinite(format!(
                "epoch {epoch}, batch {} of {}: {what}; training stopped, the model \
                 keeps its weights {kept}",
                batch + 1,
                n_train.div_ceil(d.batch),
            )));
        }
        self.pull_weights(r)?;
        self.epochs_done += 1;
        let mut log = EpochLog {
            epoch,
            loss: run.loss_sum / run.seen as f64,
            accuracy: run.tally.as_ref().and_then(Tallies::accuracy),
            metrics: [
                output_loss_logs(&run.output_loss_sums, run.seen),
                run.tally.map(|t| t.results("")).unwrap_or_default(),
            ]
            .concat(),
            steps: run.steps,
            samples_per_sec: run.seen as f64 / train_s,
            learning_rate: self.learning_rate(),
            ..Default::default()
        };
        if let Some((vx, vy)) = &d.val {
            let ev = self.evaluate(vx, vy)?;
            log.val_loss = Some(ev.loss);
            log.val_accuracy = ev.accuracy;
            log.metrics
                .extend(ev.metrics.into_iter().map(|(n, v)| (format!("val_{n}"), v)));
        }
        log.seconds = t0.elapsed().as_secs_f64();
        if opts.verbose {
            println!("{}", format_log(&log, opts.epochs, e + 1));
        }
        Ok(log)
    }

    /// Runs the training steps of one epoch over `order`, calling the hooks around each; a
    /// replay (no hooks) runs only the batches before `stop`, feeding the learning rates
    /// `lrs` the first run fed. Stops at the first batch a callback finds non-finite.
    #[allow(clippy::too_many_arguments)]
    fn run_epoch(
        &mut self,
        r: &mut Runner,
        d: &TrainData,
        ep: &Epoch,
        mut hooks: Hooks,
        replay: Option<(usize, &[[f32; 2]])>,
        bar: Option<&ProgressBar>,
    ) -> Result<EpochRun> {
        let c = ep.compiled;
        let acc = c.metrics.contains(&Metric::Accuracy) && replay.is_none();

        let mut rng =
            SplitMix64::new(ep.seed ^ (ep.number as u64).wrapping_mul(0xD134_2543_DE82_EF95));
        let t0 = Instant::now();
        let mut out = EpochRun::default();
        if !c.metrics.is_empty() && replay.is_none() {
            out.tally = Some(Tallies::new(&c.losses.losses, &c.metrics, &r.widths()));
        }
        let batches = ep.order.len().div_ceil(ep.batch);
        for (bi, range) in batch_ranges(ep.order.len(), ep.batch)?.enumerate() {
            if replay.is_some_and(|(stop, _)| stop == bi) {
                break;
            }
            if let Some((cbs, state)) = hooks.as_mut() {
                each(cbs, self, state, Some(r), false, |c, run| {
                    c.on_batch_begin(bi, run)
                })?;
            }
            let rows = &ep.order[range];
            self.feed(r, &d.x, Some(&d.y), rows, &d.shapes, d.weights.as_deref())?;
            let o = r.sg.optimizer.as_ref().expect("training graph");
            let rates = match replay {
                Some((_, lrs)) => lrs[bi],
                None => {
                    let opt = &self.compiled()?.optimizer;
                    [opt.lr_for_step(self.step), opt.decay_for_step()]
                }
            };
            r.plan.set_f32(o.lr, &rates[..1])?;
            if let Some(d) = o.decay {
                r.plan.set_f32(d, &rates[1..])?;
            }
            out.lrs.push(rates);
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
            if let Some((cbs, state)) = hooks.as_mut() {
                let log = BatchLog {
                    batch: bi,
                    size: rows.len(),
                    loss: l,
                    learning_rate: self.compiled()?.optimizer.learning_rate(),
                };
                each(cbs, self, state, Some(r), bi + 1 == batches, |c, run| {
                    c.on_batch_end(&log, run)
                })?;
                if let Some(what) = state.failure.take() {
                    out.bad = Some((bi, what));
                    return Ok(out);
                }
            }
            out.loss_sum += l * rows.len() as f64;
            b.add_output_losses(&mut out.output_loss_sums, rows.len());
            out.seen += rows.len();
            if let Some(t) = out.tally.as_mut() {
                b.tally(t, c, &d.y, rows, &d.shapes);
            }
            if let Some(bar) = bar {
                bar.inc(rows.len() as u64);
                let done = bar.position() as f64;
                let mut msg = format!("loss {:.4}", out.loss_sum / done);
                if let Some(a) = acc
                    .then(|| out.tally.as_ref().and_then(Tallies::accuracy))
                    .flatten()
                {
                    msg += &format!(" - accuracy {a:.4}");
                }
                let sps = done / t0.elapsed().as_secs_f64();
                msg += &format!(" - {sps:.0} samples/s");
                bar.set_message(msg);
            }
            if hooks.as_ref().is_some_and(|h| h.1.stop) {
                break;
            }
        }
        Ok(out)
    }

    /// After batch `batch` of epoch `ep` went non-finite: resets the plan to the epoch's start
    /// (which the host still holds: weights are pulled at epoch ends), replays the batches
    /// before `batch` (deterministic: same order, same dropout masks, the same learning rates
    /// `lrs`) and keeps their result when it is finite, else the epoch's start. Says which
    /// weights the model kept.
    fn roll_back(
        &mut self,
        r: &mut Runner,
        d: &TrainData,
        ep: &Epoch,
        step0: u64,
        batch: usize,
        lrs: &[[f32; 2]],
    ) -> &'static str {
        self.step = step0;
        let replayed = (|| -> Result<bool> {
            self.push_weights(r)?;
            self.run_epoch(r, d, ep, None, Some((batch, lrs)), None)?;
            r.state_finite()
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
