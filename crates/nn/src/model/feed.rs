//! Feeding: a batch of samples into a plan's inputs (x; y one-hot per step for the sparse
//! loss; the weights that make a partial batch train on its own mean).
use super::arrays::Values;
use super::plans::Runner;
use super::{FitOptions, Inputs, Sequential, Shapes, Targets};
use crate::data::gather_rows;
use crate::losses::Loss;
use crate::{NnError, Result};

impl Sequential {
    /// Fills the x, y and w inputs with the samples `rows` (padding rows: zeros, weight 0);
    /// `weights` (per sample and step, from [`Sequential::loss_weights`]) scale the rows'.
    pub(super) fn feed(
        &self,
        r: &mut Runner,
        x: &Inputs,
        y: Option<&Targets>,
        rows: &[usize],
        shapes: &Shapes,
        weights: Option<&[f32]>,
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
            let loss = self.compiled()?.loss.kind;
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
        if let Some(sw) = weights {
            for (i, &s) in rows.iter().enumerate() {
                let (wi, ws) = (
                    &mut w[i * steps..(i + 1) * steps],
                    &sw[s * steps..(s + 1) * steps],
                );
                wi.iter_mut().zip(ws).for_each(|(w, s)| *w *= s);
            }
        }
        r.plan.set_f32(r.sg.w, &w)?;
        Ok(())
    }
}

impl Sequential {
    /// `fit`'s loss weights per sample and step (`n * steps`): `sample_weight` (per sample,
    /// spread over its steps, or per step) times the `class_weight` of each label, or `None`
    /// when neither is given. Refuses a length that fits neither form, a weight that is
    /// negative or not finite, and a class the output does not have, naming it.
    pub(super) fn loss_weights(
        &self,
        y: &Targets,
        shapes: &Shapes,
        opts: &FitOptions,
    ) -> Result<Option<Vec<f32>>> {
        if opts.sample_weight.is_none() && opts.class_weight.is_none() {
            return Ok(None);
        }
        let (n, steps) = (shapes.n, shapes.steps());
        let bad = |name: &'static str, value: String, message: String| NnError::InvalidArgument {
            name,
            value,
            message,
        };
        let usable = |w: f32| w.is_finite() && w >= 0.0;
        let mut out = vec![1f32; n * steps];
        if let Some(sw) = &opts.sample_weight {
            let per = match sw.len() {
                l if l == n => 1,
                l if l == n * steps => steps,
                l => {
                    let forms = if steps > 1 {
                        format!("{n} (one per sample) or {} (one per step)", n * steps)
                    } else {
                        format!("{n} (one per sample)")
                    };
                    return Err(bad(
                        "sample_weight",
                        format!("{l} values"),
                        format!("x has {n} samples: give {forms}"),
                    ));
                }
            };
            if let Some(i) = sw.iter().position(|&w| !usable(w)) {
                return Err(bad(
                    "sample_weight",
                    sw[i].to_string(),
                    format!("weight {i} must be finite and non-negative"),
                ));
            }
            for (j, o) in out.iter_mut().enumerate() {
                *o = sw[if per == 1 { j / steps } else { j }];
            }
        }
        if let Some(cw) = &opts.class_weight {
            let loss = self.compiled()?.loss.kind;
            let k = shapes.width();
            let classes = if loss == Loss::SparseCategoricalCrossentropy || k > 1 {
                k
            } else {
                2
            };
            for (&c, &w) in cw {
                if c >= classes || !usable(w) {
                    return Err(bad(
                        "class_weight",
                        format!("{{{c}: {w}}}"),
                        format!(
                            "classes are 0..{classes} for this output and weights finite and                              non-negative"
                        ),
                    ));
                }
            }
            for (j, o) in out.iter_mut().enumerate() {
                let class = if loss == Loss::SparseCategoricalCrossentropy {
                    y.values[j] as usize
                } else if k == 1 {
                    y.values[j].round() as usize
                } else {
                    let row = &y.values[j * k..(j + 1) * k];
                    (0..k).fold(0, |b, i| if row[i] > row[b] { i } else { b })
                };
                *o *= cw.get(&class).copied().unwrap_or(1.0);
            }
        }
        Ok(Some(out))
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
