//! `evaluate` and `predict`: the forward plan over the data in batches.
use ndarray::ArrayD;

use super::plans::BatchOut;
use super::{Evaluation, Inputs, Sequential, Shapes, Targets};
use crate::data::batch_ranges;
use crate::metrics::Tally;
use crate::{NnError, Result};

impl Sequential {
    /// Runs the forward plan over `x` in batches; calls `f(rows, batch)` per batch.
    pub(super) fn forward_batches(
        &mut self,
        x: &Inputs,
        y: Option<&Targets>,
        mut f: impl FnMut(&[usize], BatchOut),
    ) -> Result<Shapes> {
        let shapes = self.check_data(x, y)?;
        let n = shapes.n;
        // A plan for more rows than there are samples would only add padding.
        let b = self.eval_batch.min(n).max(1);
        let mut r = self.runner(false, b, &shapes.row)?;
        let res = (|| -> Result<()> {
            self.push_weights(&mut r)?;
            let all: Vec<usize> = (0..n).collect();
            for range in batch_ranges(n, b)? {
                let rows = &all[range];
                self.feed(&mut r, x, y, rows, &shapes, None)?;
                r.plan.run()?;
                let out = BatchOut::read(&r, rows.len())?;
                let per = r.sg.steps * r.sg.out_width;
                if let Some(i) = out.pred.iter().position(|v| !v.is_finite()) {
                    return Err(NnError::NonFinite(format!(
                        "the model's output for sample {} is {} (its weights or inputs are too \
                         large for f32)",
                        rows[i / per],
                        out.pred[i]
                    )));
                }
                if y.is_some() && !out.loss.is_finite() {
                    return Err(NnError::NonFinite(format!(
                        "the loss of samples {}..{} is {}",
                        rows[0],
                        rows[0] + rows.len(),
                        out.loss
                    )));
                }
                f(rows, out);
            }
            Ok(())
        })();
        self.infer = Some(r);
        res.map(|_| shapes)
    }

    /// Loss and metrics on `(x, y)` (Keras's `evaluate`).
    pub fn evaluate<'x, 'y>(
        &mut self,
        x: impl Into<Inputs<'x>>,
        y: impl Into<Targets<'y>>,
    ) -> Result<Evaluation> {
        let (x, y) = (x.into(), y.into());
        let c = self.compiled()?.clone();
        let mut tally: Option<Tally> = None;
        let mut loss_sum = 0f64;
        let shapes = self.forward_batches(&x, Some(&y), |rows, out| {
            loss_sum += out.loss * rows.len() as f64;
            if !c.metrics.is_empty() {
                let per_y = y.values.len() / y.shape[0];
                let s = rows[0];
                let yr = &y.values[s * per_y..(s + rows.len()) * per_y];
                let t = tally.get_or_insert_with(|| Tally::new(c.loss, &c.metrics, out.width()));
                out.tally(t, yr);
            }
        })?;
        Ok(Evaluation {
            loss: loss_sum / shapes.n as f64,
            accuracy: tally.as_ref().and_then(Tally::accuracy),
            metrics: tally.map(|t| t.results("")).unwrap_or_default(),
        })
    }

    /// The model's outputs for `x`: `[n, units]`, or `[n, T, units]` for a per-step output
    /// (Keras's `predict`).
    pub fn predict<'a>(&mut self, x: impl Into<Inputs<'a>>) -> Result<ArrayD<f32>> {
        let x = x.into();
        let mut out = Vec::new();
        let shapes = self.forward_batches(&x, None, |_, b| out.extend_from_slice(&b.pred))?;
        let dims: Vec<usize> = [&[shapes.n][..], &shapes.out].concat();
        ArrayD::from_shape_vec(dims, out).map_err(|e| NnError::Model(format!("predict: {e}")))
    }
}
