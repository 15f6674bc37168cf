//! Feeding: a batch of samples into a plan's inputs (x; y one-hot per step for the sparse
//! loss; the weights that make a partial batch train on its own mean).
use super::arrays::Values;
use super::plans::Runner;
use super::{Inputs, Sequential, Shapes, Targets};
use crate::data::gather_rows;
use crate::losses::Loss;
use crate::Result;

impl Sequential {
    /// Fills the x, y and w inputs with the samples `rows` (padding rows: zeros, weight 0).
    pub(super) fn feed(
        &self,
        r: &mut Runner,
        x: &Inputs,
        y: Option<&Targets>,
        rows: &[usize],
        shapes: &Shapes,
    ) -> Result<()> {
        let (b, k, steps) = (r.sg.batch, r.sg.out_width, r.sg.steps);
        let row_len = shapes.row_len();
        match &x.values {
            Values::Ids(v) => r
                .plan
                .set_i64(r.sg.x, &gather_padded(v, row_len, rows, b))?,
            Values::Floats(v) => r
                .plan
                .set_f32(r.sg.x, &gather_padded(v, row_len, rows, b))?,
        }
        let mut yb = vec![0f32; b * steps * k];
        if let Some(y) = y {
            let loss = self.compiled()?.loss;
            let per = shapes.targets_per_sample(loss);
            for (i, &s) in rows.iter().enumerate() {
                let ys = &y.values[s * per..(s + 1) * per];
                let out = &mut yb[i * steps * k..(i + 1) * steps * k];
                if loss == Loss::SparseCategoricalCrossentropy {
                    for (t, &class) in ys.iter().enumerate() {
                        out[t * k + class as usize] = 1.0;
                    }
                } else {
                    out.copy_from_slice(ys);
                }
            }
        }
        r.plan.set_f32(r.sg.y, &yb)?;
        // Weights sum to 1 over the real rows' steps (the mask, in the graph, renormalises).
        let real = rows.len() * steps;
        let mut w = vec![0f32; b * steps];
        w[..real].fill(1.0 / real as f32);
        r.plan.set_f32(r.sg.w, &w)?;
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
