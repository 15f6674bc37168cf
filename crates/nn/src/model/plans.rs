//! Plan caching and the host side of a plan: one compiled plan each for training and
//! inference, kept while the batch size and input shape stay the same; weights and optimiser
//! state copied in and out; a batch's results read back.
use trellis_ir::NodeId;
use trellis_jit::{CompileOptions, Plan};

use super::{Sequential, StepGraph};
use crate::metrics::Tally;
use crate::Result;

/// A compiled step and the key it was compiled for: `(batch, per-sample input shape)`.
pub(crate) struct Runner {
    pub key: (usize, Vec<usize>),
    pub plan: Plan,
    pub sg: StepGraph,
}

impl Sequential {
    pub(super) fn runner(&mut self, training: bool, batch: usize, row: &[usize]) -> Result<Runner> {
        let key = (batch, row.to_vec());
        let slot = if training {
            self.train.take()
        } else {
            self.infer.take()
        };
        if let Some(r) = slot.filter(|r| r.key == key) {
            return Ok(r);
        }
        let sg = self.step_graph(batch, row, training)?;
        let updates = sg
            .optimizer
            .as_ref()
            .map(|o| o.updates.clone())
            .unwrap_or_default();
        let plan = trellis_jit::compile(
            &sg.graph,
            &CompileOptions {
                updates,
                ..Default::default()
            },
        )?;
        self.plans_compiled += 1;
        Ok(Runner { key, plan, sg })
    }

    /// Copies the host weights (and optimiser state) into a plan.
    pub(super) fn push_weights(&mut self, r: &mut Runner) -> Result<()> {
        for (p, w) in r.sg.params.iter().zip(&self.weights) {
            r.plan.set_f32(*p, w)?;
        }
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
        for (p, w) in r.sg.params.iter().zip(self.weights.iter_mut()) {
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
}

/// What one batch of a plan gives: the loss, the real rows' predictions and their mask.
pub(super) struct BatchOut {
    pub loss: f64,
    /// `[rows, steps, k]` (steps 1 for a vector output).
    pub pred: Vec<f32>,
    /// `[rows, steps]`, when the output is masked.
    mask: Option<Vec<f32>>,
    k: usize,
}

impl BatchOut {
    /// Output units.
    pub fn width(&self) -> usize {
        self.k
    }
    pub fn read(r: &Runner, rows: usize) -> Result<BatchOut> {
        let (steps, k) = (r.sg.steps, r.sg.out_width);
        let mut pred = values(&r.plan, r.sg.pred)?;
        pred.truncate(rows * steps * k);
        let mask = match r.sg.mask {
            Some(m) => {
                let mut v = values(&r.plan, m)?;
                v.truncate(rows * steps);
                Some(v)
            }
            None => None,
        };
        Ok(BatchOut {
            loss: scalar(&r.plan, r.sg.loss)?,
            pred,
            mask,
            k,
        })
    }

    /// Adds the real rows against their targets `y` (as the user gave them) to the metrics;
    /// masked steps count for nothing.
    pub fn tally(&self, t: &mut Tally, y: &[f32]) {
        t.add(&self.pred, y, self.mask.as_deref());
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
