//! Feeding: a batch of samples into a plan's inputs (each x; each output's y, one-hot per
//! step for the sparse loss; the weights that make a partial batch train on its own mean).
use super::arrays::Values;
use super::plans::Runner;
use super::{FitOptions, Inputs, Model, Shapes, Targets};
use crate::data::gather_rows;
use crate::{NnError, Result};

impl Model {
    /// Fills the x, y and w inputs with the samples `rows` (padding rows: zeros, weight 0);
    /// `weights` (per output, sample and step, from [`Model::loss_weights`]) scale the rows'.
    pub(super) fn feed(
        &self,
        r: &mut Runner,
        x: &Inputs,
        y: Option<&Targets>,
        rows: &[usize],
        shapes: &Shapes,
        weights: Option<&[Vec<f32>]>,
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
                let loss = losses[o].kind;
                let per = shapes.targets_per_sample(o, loss);
                let yv = &y.arrays[o].values;
                for (i, &s) in rows.iter().enumerate() {
                    let ys = &yv[s * per..(s + 1) * per];
                    let dst = &mut yb[i * steps * k..(i + 1) * steps * k];
                    if loss.takes_class_ids() {
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
            if let Some(sw) = weights.map(|w| &w[o]) {
                for (i, &s) in rows.iter().enumerate() {
                    let ws = &sw[s * steps..(s + 1) * steps];
                    let wi = &mut w[i * steps..(i + 1) * steps];
                    wi.iter_mut().zip(ws).for_each(|(w, s)| *w *= s);
                }
            }
            r.plan.set_f32(out.w, &w)?;
        }
        Ok(())
    }
}

impl Model {
    /// `fit`'s loss weights, per output, sample and step (`n * steps`): `sample_weight` (per
    /// sample, spread over its steps and outputs; or, with one output, per step) times the
    /// `class_weight` of each label (one output only, as Keras), or `None` when neither is
    /// given. Refuses a length that fits neither form, a weight that is negative or not
    /// finite, and a class the output does not have, naming it.
    pub(super) fn loss_weights(
        &self,
        y: &Targets,
        shapes: &Shapes,
        opts: &FitOptions,
    ) -> Result<Option<Vec<Vec<f32>>>> {
        if opts.sample_weight.is_none() && opts.class_weight.is_none() {
            return Ok(None);
        }
        let bad = |name: &'static str, value: String, message: String| NnError::InvalidArgument {
            name,
            value,
            message,
        };
        let usable = |w: f32| w.is_finite() && w >= 0.0;
        let (n, outputs) = (shapes.n, shapes.outs.len());
        let mut all: Vec<Vec<f32>> = (0..outputs)
            .map(|o| vec![1f32; n * shapes.steps(o)])
            .collect();
        if let Some(sw) = &opts.sample_weight {
            let steps = shapes.steps(0);
            let per_step = outputs == 1 && steps > 1 && sw.len() == n * steps;
            if sw.len() != n && !per_step {
                let forms = if outputs == 1 && steps > 1 {
                    format!("{n} (one per sample) or {} (one per step)", n * steps)
                } else {
                    format!("{n} (one per sample)")
                };
                return Err(bad(
                    "sample_weight",
                    format!("{} values", sw.len()),
                    format!("x has {n} samples: give {forms}"),
                ));
            }
            if let Some(i) = sw.iter().position(|&w| !usable(w)) {
                return Err(bad(
                    "sample_weight",
                    sw[i].to_string(),
                    format!("weight {i} must be finite and non-negative"),
                ));
            }
            for (o, out) in all.iter_mut().enumerate() {
                let steps = shapes.steps(o);
                for (j, w) in out.iter_mut().enumerate() {
                    *w = sw[if per_step { j } else { j / steps }];
                }
            }
        }
        if let Some(cw) = &opts.class_weight {
            if outputs != 1 {
                return Err(bad(
                    "class_weight",
                    format!("{cw:?}"),
                    format!(
                        "the model has {outputs} outputs: class_weight is for one output (use \
                         sample_weight)"
                    ),
                ));
            }
            let loss = self.compiled()?.losses.losses[0].kind;
            let k = shapes.width(0);
            let sparse = loss.takes_class_ids();
            let classes = if sparse || k > 1 { k } else { 2 };
            for (&c, &w) in cw {
                if c >= classes || !usable(w) {
                    return Err(bad(
                        "class_weight",
                        format!("{{{c}: {w}}}"),
                        format!(
                            "classes are 0..{classes} for this output and weights finite and \
                             non-negative"
                        ),
                    ));
                }
            }
            let yv = &y.arrays[0].values;
            for (j, o) in all[0].iter_mut().enumerate() {
                let class = if sparse {
                    yv[j] as usize
                } else if k == 1 {
                    yv[j].round() as usize
                } else {
                    let row = &yv[j * k..(j + 1) * k];
                    (0..k).fold(0, |b, i| if row[i] > row[b] { i } else { b })
                };
                *o *= cw.get(&class).copied().unwrap_or(1.0);
            }
        }
        Ok(Some(all))
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
