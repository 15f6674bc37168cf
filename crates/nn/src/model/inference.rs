//! `evaluate` and `predict`: the forward plan over the data in batches.
use ndarray::ArrayD;

use super::plans::{output_loss_logs, BatchOut};
use super::{Evaluation, Inputs, Model, Shapes, Targets};
use crate::data::batch_ranges;
use crate::metrics::Tallies;
use crate::{NnError, Result};

impl Model {
    /// Runs the forward plan over `x` in batches; calls `f(rows, batch, shapes)` per batch.
    pub(super) fn forward_batches(
        &mut self,
        x: &Inputs,
        y: Option<&Targets>,
        mut f: impl FnMut(&[usize], BatchOut, &Shapes),
    ) -> Result<Shapes> {
        let shapes = self.check_data(x, y)?;
        let n = shapes.n;
        // A plan for more rows than there are samples would only add padding.
        let b = self.eval_batch.min(n).max(1);
        let mut r = self.runner(false, b, &shapes.rows)?;
        let res = (|| -> Result<()> {
            self.push_weights(&mut r)?;
            let all: Vec<usize> = (0..n).collect();
            for range in batch_ranges(n, b)? {
                let rows = &all[range];
                self.feed(&mut r, x, y, rows, &shapes, None)?;
                r.plan.run()?;
                let out = BatchOut::read(&r, rows.len())?;
                for (o, ob) in out.outputs.iter().enumerate() {
                    let per = r.sg.outputs[o].steps * r.sg.outputs[o].out_width;
                    if let Some(i) = ob.pred.iter().position(|v| !v.is_finite()) {
                        return Err(NnError::NonFinite(format!(
                            "the model's output for sample {} is {} (its weights or inputs are \
                             too large for f32)",
                            rows[i / per],
                            ob.pred[i]
                        )));
                    }
                }
                if y.is_some() && !out.loss.is_finite() {
                    return Err(NnError::NonFinite(format!(
                        "the loss of samples {}..{} is {}",
                        rows[0],
                        rows[0] + rows.len(),
                        out.loss
                    )));
                }
                f(rows, out, &shapes);
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
        let mut tallies: Option<Tallies> = None;
        let mut loss_sum = 0f64;
        let mut output_loss_sums = Vec::new();
        let shapes = self.forward_batches(&x, Some(&y), |rows, out, shapes| {
            loss_sum += out.loss * rows.len() as f64;
            out.add_output_losses(&mut output_loss_sums, rows.len());
            if !c.metrics.is_empty() {
                let t = tallies.get_or_insert_with(|| {
                    let widths: Vec<usize> = out.outputs.iter().map(|o| o.width()).collect();
                    Tallies::new(&c.losses.losses, &c.metrics, &widths)
                });
                out.tally(t, &c, &y, rows, shapes);
            }
        })?;
        Ok(Evaluation {
            loss: loss_sum / shapes.n as f64,
            accuracy: tallies.as_ref().and_then(Tallies::accuracy),
            metrics: [
                output_loss_logs(&output_loss_sums, shapes.n),
                tallies.map(|t| t.results("")).unwrap_or_default(),
            ]
            .concat(),
        })
    }

    /// The model's output for `x`: `[n, units]`, or `[n, T, units]` for a per-step output
    /// (Keras's `predict`); a model with several outputs: [`Model::predict_outputs`].
    pub fn predict<'a>(&mut self, x: impl Into<Inputs<'a>>) -> Result<ArrayD<f32>> {
        if self.num_outputs() != 1 {
            return Err(NnError::Model(format!(
                "predict: the model has {} outputs: use predict_outputs",
                self.num_outputs()
            )));
        }
        Ok(self.predict_outputs(x)?.remove(0))
    }

    /// Each of the model's outputs for `x` (Keras's `predict` on a multi-output model).
    pub fn predict_outputs<'a>(&mut self, x: impl Into<Inputs<'a>>) -> Result<Vec<ArrayD<f32>>> {
        let x = x.into();
        let mut outs = vec![Vec::new(); self.num_outputs()];
        let shapes = self.forward_batches(&x, None, |_, b, _| {
            for (o, ob) in outs.iter_mut().zip(&b.outputs) {
                o.extend_from_slice(&ob.pred);
            }
        })?;
        outs.into_iter()
            .zip(&shapes.outs)
            .map(|(v, out)| {
                let dims: Vec<usize> = [&[shapes.n][..], out].concat();
                ArrayD::from_shape_vec(dims, v).map_err(|e| NnError::Model(format!("predict: {e}")))
            })
            .collect()
    }
}
