//! Plan caching and the host side of a plan: one compiled plan each for training and
//! inference, kept while the batch size and input shape stay the same; weights and optimiser
//! state copied in and out; a batch's results read back.
use trellis_ir::NodeId;
use trellis_jit::{CompileOptions, Plan};

use super::{Compiled, Model, Shapes, StepGraph, Targets};
use crate::budget::IntervalSearch;
use crate::metrics::Tallies;
use crate::Result;

/// A compiled step and the key it was compiled for: `(batch, per-sample input shapes)`.
pub(crate) struct Runner {
    pub key: (usize, Vec<Vec<usize>>),
    pub plan: Plan,
    pub sg: StepGraph,
    /// The weights version the plan holds (an inference plan never changes its weights).
    pub pushed: Option<u64>,
}

impl Model {
    pub(super) fn runner(
        &mut self,
        training: bool,
        batch: usize,
        rows: &[Vec<usize>],
    ) -> Result<Runner> {
        let key = (batch, rows.to_vec());
        let slot = if training {
            self.train.take()
        } else {
            self.infer.take()
        };
        if let Some(r) = slot.filter(|r| r.key == key) {
            return Ok(r);
        }
        let rows: Vec<&[usize]> = rows.iter().map(Vec::as_slice).collect();
        // The plan's memory limit is the model's (else the memory available). A training
        // plan over it recomputes its recurrences from checkpoints in the backward pass, the
        // interval chosen to fit; the results are the same.
        let memory_limit = self
            .memory_limit
            .map(|b| usize::try_from(b).unwrap_or(usize::MAX));
        let mut search = IntervalSearch::default();
        let mut checkpoints = None;
        loop {
            let (sg, recompute) = self.step_graph_with(batch, &rows, training, checkpoints)?;
            let updates = sg
                .optimizer
                .as_ref()
                .map(|o| o.updates.clone())
                .unwrap_or_default();
            let opts = CompileOptions {
                updates,
                memory_limit,
                ..Default::default()
            };
            match trellis_jit::compile(&sg.graph, &opts) {
                Ok(plan) => {
                    self.plans_compiled += 1;
                    if training {
                        self.recompute_every = recompute.map(|r| r.every);
                    }
                    return Ok(Runner {
                        key,
                        plan,
                        sg,
                        pushed: None,
                    });
                }
                Err(e) if training => checkpoints = Some(search.next(e, recompute.as_ref())?),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Copies the host weights (and optimiser state) into a plan.
    pub(super) fn push_weights(&mut self, r: &mut Runner) -> Result<()> {
        // A plan without an optimiser never changes its weights: the version it was sent is
        // still what it holds.
        if r.sg.optimizer.is_none() && r.pushed == Some(self.weights.version()) {
            return Ok(());
        }
        for (p, w) in r.sg.params.iter().zip(self.weights.iter()) {
            r.plan.set_f32(*p, w)?;
        }
        r.pushed = Some(self.weights.version());
        // Every state exists at its starting value (Adagrad's is not zero) before it is fed.
        self.init_opt_state();
        if let Some(o) = &r.sg.optimizer {
            for (name, n) in &o.states {
                let len = r.sg.graph.ty(*n).numel();
                let v = self
                    .opt_state
                    .entry(name.clone())
                    .or_insert_with(|| vec![0.0; len]);
                r.plan.set_f32(*n, v)?;
            }
        }
        Ok(())
    }

    /// Copies the weights (and optimiser state) a training plan has updated back to the host.
    pub(super) fn pull_weights(&mut self, r: &Runner) -> Result<()> {
        for (p, w) in r.sg.params.iter().zip(self.weights.edit().iter_mut()) {
            read_into(&r.plan, *p, w)?;
        }
        if let Some(o) = &r.sg.optimizer {
            for (name, n) in &o.states {
                let v = self.opt_state.entry(name.clone()).or_default();
                v.resize(r.sg.graph.ty(*n).numel(), 0.0);
                read_into(&r.plan, *n, v)?;
            }
        }
        Ok(())
    }
}

impl Runner {
    /// Whether every weight and optimiser state in a training plan is finite.
    pub(crate) fn state_finite(&self) -> Result<bool> {
        let states = self
            .sg
            .optimizer
            .iter()
            .flat_map(|o| o.states.iter().map(|s| s.1));
        for n in self.sg.params.iter().copied().chain(states) {
            let finite = match self.plan.f32_slice(n) {
                Some(s) => s.iter().all(|v| v.is_finite()),
                None => values(&self.plan, n)?.iter().all(|v| v.is_finite()),
            };
            if !finite {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Each output's units.
    pub fn widths(&self) -> Vec<usize> {
        self.sg.outputs.iter().map(|o| o.out_width).collect()
    }
}

/// What one batch of a plan gives: the loss and each output's predictions for the real rows.
pub(super) struct BatchOut {
    pub loss: f64,
    /// Each output's own loss (before its weight), when the model has several.
    pub output_losses: Vec<f64>,
    pub outputs: Vec<OutputBatch>,
}

/// One output of a [`BatchOut`].
pub(super) struct OutputBatch {
    /// `[rows, steps, k]` (steps 1 for a vector output).
    pub pred: Vec<f32>,
    /// `[rows, steps]`, when the output is masked.
    mask: Option<Vec<f32>>,
    k: usize,
}

impl OutputBatch {
    /// Output units.
    pub fn width(&self) -> usize {
        self.k
    }
}

/// Keras's names for each output's loss, `output0_loss`, ... (as the per-output metrics are
/// named), with their means: `sums` of `loss * rows` over `seen` rows.
pub(super) fn output_loss_logs(sums: &[f64], seen: usize) -> Vec<(String, f64)> {
    sums.iter()
        .enumerate()
        .map(|(o, s)| (format!("output{o}_loss"), s / seen as f64))
        .collect()
}

impl BatchOut {
    /// Adds this batch's per-output losses, times its `rows`, to `sums`.
    pub fn add_output_losses(&self, sums: &mut Vec<f64>, rows: usize) {
        sums.resize(self.output_losses.len(), 0.0);
        for (s, l) in sums.iter_mut().zip(&self.output_losses) {
            *s += l * rows as f64;
        }
    }

    pub fn read(r: &Runner, rows: usize) -> Result<BatchOut> {
        let mut outputs = Vec::with_capacity(r.sg.outputs.len());
        for o in &r.sg.outputs {
            let (steps, k) = (o.steps, o.out_width);
            let mut pred = values(&r.plan, o.pred)?;
            pred.truncate(rows * steps * k);
            let mask = match o.mask {
                Some(m) => {
                    let mut v = values(&r.plan, m)?;
                    v.truncate(rows * steps);
                    Some(v)
                }
                None => None,
            };
            outputs.push(OutputBatch { pred, mask, k });
        }
        let output_losses = match r.sg.outputs.as_slice() {
            [_] => Vec::new(),
            outs => outs
                .iter()
                .map(|o| scalar(&r.plan, o.loss))
                .collect::<Result<_>>()?,
        };
        Ok(BatchOut {
            loss: scalar(&r.plan, r.sg.loss)?,
            output_losses,
            outputs,
        })
    }

    /// Adds each output's real rows, against the targets `y` of samples `rows` (as the user
    /// gave them), to its tally; masked steps count for nothing.
    pub fn tally(&self, t: &mut Tallies, c: &Compiled, y: &Targets, rows: &[usize], s: &Shapes) {
        for (o, (out, tally)) in self.outputs.iter().zip(&mut t.0).enumerate() {
            let per = s.targets_per_sample(o, c.losses.losses[o].kind);
            let yv = &y.arrays[o].values;
            let yr: Vec<f32> = rows
                .iter()
                .flat_map(|&i| yv[i * per..(i + 1) * per].iter().copied())
                .collect();
            tally.add(&out.pred, &yr, out.mask.as_deref());
        }
    }
}

pub(super) fn read_into(plan: &Plan, n: NodeId, out: &mut [f32]) -> Result<()> {
    match plan.f32_slice(n) {
        Some(s) => out.copy_from_slice(s),
        None => out.copy_from_slice(plan.get(n)?.as_f32().expect("f32 value")),
    }
    Ok(())
}

pub(super) fn values(plan: &Plan, n: NodeId) -> Result<Vec<f32>> {
    Ok(match plan.f32_slice(n) {
        Some(s) => s.to_vec(),
        None => plan.get(n)?.to_f32_vec(),
    })
}

pub(super) fn scalar(plan: &Plan, n: NodeId) -> Result<f64> {
    Ok(values(plan, n)?[0] as f64)
}
