//! Feeding: a batch of samples into a plan's inputs (each x; each output's y, one-hot per
//! step for the sparse loss; the weights that make a partial batch train on its own mean).
use super::arrays::Values;
use super::plans::Runner;
use super::{Inputs, Model, Shapes, Targets};
use crate::data::gather_rows;
use crate::losses::Loss;
use crate::Result;

impl Model {
    /// Fills the x, y and w inputs with the samples `rows` (padding rows: zeros, weight 0).
    pub(super) fn feed(
        &self,
        r: &mut Runner,
        x: &Inputs,
        y: Option<&Targets>,
        rows: &[usize],
        shapes: &Shapes,
    ) -> Result<()> {
        let b = r.sg.batch;
        for (i, (a, &node)) in x.arrays.iter().zip(&r.sg.inputs).enumerate() {
            let row_len = shapes.row_len(i);
            match &a.values {
                Values::Ids(v) => r.plan.set_i64(node, &gather_padded(v, row_len, rows, b))?,
                Values::Floats(v) => r.plan.set_f32(node, &gather_padded(v, row_len, rows, b))?,
            }
        }
        let losses = &self.compiled()?.losses.losses;
        for (o, out) in r.sg.outputs.iter().enumerate() {
            let (k, steps) = (out.out_width, out.steps);
            let mut yb = vec![0f32; b * steps * k];
            if let Some(y) = y {
                let loss = losses[o];
                let per = shapes.targets_per_sample(o, loss);
                let yv = &y.arrays[o].values;
                for (i, &s) in rows.iter().enumerate() {
                    let ys = &yv[s * per..(s + 1) * per];
                    let dst = &mut yb[i * steps * k..(i + 1) * steps * k];
                    if loss == Loss::SparseCategoricalCrossentropy {
                        for (t, &class) in ys.iter().enumerate() {
                            dst[t * k + class as usize] = 1.0;
                        }
                    } else {
                        dst.copy_from_slice(ys);
                    }
                }
            }
            r.plan.set_f32(out.y, &yb)?;
            // Weights sum to 1 over the real rows' steps (the mask, in the graph, renormalises).
            let real = rows.len() * steps;
            let mut w = vec![0f32; b * steps];
            w[..real].fill(1.0 / real as f32);
            r.plan.set_f32(out.w, &w)?;
        }
        Ok(())
    }
}

/// Rows `rows` of a row-major `[n, row_len]` buffer, then zero rows up to `batch`.
fn gather_padded<T: Copy + Default>(
    v: &[T],
    row_len: usize,
    rows: &[usize],
    batch: usize,
) -> Vec<T> {
    let mut out = gather_rows(v, row_len, rows);
    out.resize(batch * row_len, T::default());
    out
}
