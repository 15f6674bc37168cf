//! Data checks: x, y and the model must agree before any work is done. Every refusal names
//! the shapes involved (x's, y's, the model's input and output), so the caller can see which
//! of them is wrong.
use std::borrow::Cow;

use super::arrays::{Inputs, Shaped, Targets, Values};
use super::Model;
use crate::losses::Loss;
use crate::{NnError, Result};

/// What the checks established: the sample count and the per-sample shapes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Shapes {
    pub n: usize,
    /// Per-sample shape of each input (its array without the first axis).
    pub rows: Vec<Vec<usize>>,
    /// Per-sample shape of each output: `[k]`, or `[T, k]` for a per-step output.
    pub outs: Vec<Vec<usize>>,
}

impl Shapes {
    /// Values of input `i` per sample.
    pub fn row_len(&self, i: usize) -> usize {
        self.rows[i].iter().product()
    }
    /// Steps per sample of output `o` (1 for a vector output).
    pub fn steps(&self, o: usize) -> usize {
        let out = &self.outs[o];
        out[..out.len() - 1].iter().product()
    }
    /// Units of output `o`.
    pub fn width(&self, o: usize) -> usize {
        self.outs[o][self.outs[o].len() - 1]
    }
    /// Values of y per sample of output `o` for `loss` (class ids per step, or one value per
    /// unit).
    pub fn targets_per_sample(&self, o: usize, loss: Loss) -> usize {
        if loss.takes_class_ids() {
            self.steps(o)
        } else {
            self.steps(o) * self.width(o)
        }
    }
}

impl Model {
    /// `fit`'s checks: builds the model (its input shape, when unknown, is x's per-sample
    /// shape as given) and checks the training and validation data; a refusal leaves the
    /// model as it was.
    pub(crate) fn check_fit_data(
        &mut self,
        x: &Inputs,
        y: &Targets,
        validation: Option<&(Inputs, Targets)>,
    ) -> Result<Shapes> {
        self.compiled()?;
        let inferred = self.topo.inputs.len() == 1 && self.topo.inputs[0].shape.is_none();
        let was_built = !self.layer_params.is_empty();
        if inferred {
            self.topo.inputs[0].shape = x
                .arrays
                .first()
                .and_then(|a| a.shape.get(1..))
                .map(<[usize]>::to_vec);
        }
        let checked = self.build().and_then(|_| {
            let shapes = self.check_data(x, Some(y))?;
            if let Some((vx, vy)) = validation {
                self.check_data(vx, Some(vy))?;
            }
            Ok(shapes)
        });
        if checked.is_err() {
            if inferred {
                self.topo.inputs[0].shape = None;
            }
            if !was_built {
                self.specs.clear();
                self.layer_params.clear();
                self.weights.edit().clear();
                self.opt_state.clear();
            }
        }
        checked
    }

    /// Checks `x` (and `y`) against each other and the model (which must be built).
    pub(crate) fn check_data(&self, x: &Inputs, y: Option<&Targets>) -> Result<Shapes> {
        let c = self.compiled()?;
        let inputs = &self.topo.inputs;
        if x.arrays.len() != inputs.len() {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(NnError::Shape(format!(
                "x: the model has {} inputs ({}), x has {} arrays",
                inputs.len(),
                names.join(", "),
                x.arrays.len()
            )));
        }
        let mut n_first: Option<(usize, &[usize])> = None;
        let mut rows = Vec::with_capacity(inputs.len());
        for (i, a) in x.arrays.iter().enumerate() {
            let what = if inputs.len() == 1 {
                "x".to_string()
            } else {
                format!("x[{i}] (input {})", inputs[i].name)
            };
            self.check_input(i, &what, a)?;
            let (&n, row) = a.shape.split_first().expect("checked: has a first axis");
            if let Some((n0, s0)) = n_first {
                if n != n0 {
                    return Err(NnError::Shape(format!(
                        "x[0] has {n0} samples (shape {s0:?}) but {what} has {n} (shape {:?})",
                        a.shape
                    )));
                }
            } else {
                n_first = Some((n, &a.shape));
            }
            rows.push(row.to_vec());
        }
        let n = n_first.map_or(0, |f| f.0);
        let outs = self.output_shapes(n, &rows)?;
        let shapes = Shapes { n, rows, outs };
        for (o, l) in c.losses.losses.iter().enumerate() {
            crate::metrics::check(&c.metrics, l, shapes.width(o))?;
        }
        for (i, a) in x.arrays.iter().enumerate() {
            self.check_input_values(i, a, shapes.row_len(i))?;
        }
        if let Some(y) = y {
            let outputs = self.topo.outputs.len();
            if y.arrays.len() != outputs {
                return Err(NnError::Shape(format!(
                    "y: the model has {outputs} outputs, y has {} arrays",
                    y.arrays.len()
                )));
            }
            for (o, ya) in y.arrays.iter().enumerate() {
                let loss = c.losses.losses[o].kind;
                let what = if outputs == 1 {
                    "y".to_string()
                } else {
                    format!("y[{o}]")
                };
                check_target_shape(loss, &what, x, ya, &shapes, o)?;
                check_target_values(loss, ya, &shapes, o)?;
            }
        }
        Ok(shapes)
    }

    /// Input `i`'s array: ids or floats as the model takes, a first axis of samples, the
    /// per-sample shape of the model's input.
    fn check_input(&self, i: usize, what: &str, a: &Shaped<Values>) -> Result<()> {
        match (&a.values, self.input_takes_ids(i)) {
            (Values::Floats(_), true) => {
                let reads = if self.topo.inputs.len() == 1 {
                    "the model starts with an Embedding"
                } else {
                    "an Embedding reads it"
                };
                return Err(NnError::Shape(format!(
                    "{what}: {reads} and takes token ids (i64), got floats of shape {:?}",
                    a.shape
                )));
            }
            (Values::Ids(_), false) => {
                return Err(NnError::Shape(format!(
                    "{what}: the model takes floats, got token ids of shape {:?} (only an \
                     Embedding takes ids)",
                    a.shape
                )))
            }
            _ => {}
        }
        check_len(what, &a.shape, a.values.len())?;
        let Some((&n, row)) = a.shape.split_first() else {
            return Err(NnError::Shape(format!(
                "{what} has shape []: it needs a first axis of samples"
            )));
        };
        if n == 0 {
            return Err(NnError::Shape(format!(
                "{what} has no samples (shape {:?})",
                a.shape
            )));
        }
        if let Some(s) = &self.topo.inputs[i].shape {
            if s.as_slice() != row {
                return Err(NnError::Shape(format!(
                    "{what} has shape {:?}, {row:?} per sample, but the model's input shape is \
                     {s:?} ({what} must be [n, {}])",
                    a.shape,
                    dims(s)
                )));
            }
        }
        Ok(())
    }

    /// Ids within every vocabulary that reads them; floats finite.
    fn check_input_values(&self, i: usize, a: &Shaped<Values>, row_len: usize) -> Result<()> {
        match &a.values {
            Values::Ids(ids) => {
                if let Some(vocab) = self.embeddings_of(i).iter().map(|e| e.vocab()).min() {
                    if let Some(p) = ids.iter().position(|&id| id < 0 || id as usize >= vocab) {
                        return Err(NnError::TokenOutOfRange {
                            id: ids[p],
                            sample: p / row_len,
                            position: p % row_len,
                            vocab,
                        });
                    }
                }
            }
            Values::Floats(v) => {
                if let Some(p) = v.iter().position(|f| !f.is_finite()) {
                    return Err(NnError::NonFiniteInput {
                        sample: p / row_len,
                        position: p % row_len,
                        value: v[p],
                    });
                }
            }
        }
        Ok(())
    }
}

/// A `(values, shape)` pair whose length is not its shape's.
fn check_len(what: &str, shape: &[usize], len: usize) -> Result<()> {
    match crate::memory::checked_numel(shape) {
        Some(n) if n == len => Ok(()),
        _ => Err(NnError::Shape(format!(
            "{what}: shape {shape:?} does not hold its {len} values"
        ))),
    }
}

/// `[a, b]` as `a, b`.
fn dims(s: &[usize]) -> String {
    s.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The per-sample shapes of y that `loss` takes for a per-sample output `out` (`[k]` or
/// `[T, k]`), the first one the canonical.
fn target_shapes(loss: Loss, out: &[usize]) -> Vec<Vec<usize>> {
    let (k, steps) = out.split_last().expect("an output has units");
    let with = |last: usize| steps.iter().copied().chain([last]).collect::<Vec<_>>();
    match loss {
        _ if loss.takes_class_ids() => vec![steps.to_vec(), with(1)],
        _ if *k == 1 => vec![with(1), steps.to_vec()],
        _ => vec![with(*k)],
    }
}

fn check_target_shape(
    loss: Loss,
    what: &str,
    x: &Inputs,
    y: &Shaped<Cow<[f32]>>,
    s: &Shapes,
    o: usize,
) -> Result<()> {
    check_len(what, &y.shape, y.values.len())?;
    let (ny, y_row) = match y.shape.split_first() {
        Some((&ny, r)) => (ny, r),
        None => (0, &[][..]),
    };
    if ny != s.n || y.shape.is_empty() {
        return Err(NnError::Shape(format!(
            "x has {} samples (shape {:?}) but {what} has {ny} (shape {:?})",
            s.n,
            x.shape(),
            y.shape
        )));
    }
    let out = &s.outs[o];
    let accepted = target_shapes(loss, out);
    if accepted.iter().any(|a| a.as_slice() == y_row) {
        return Ok(());
    }
    let full = |r: &[usize]| format!("[{}]", dims(&[&[s.n][..], r].concat()));
    let takes: Vec<String> = accepted.iter().map(|a| full(a)).collect();
    let (k, steps) = out.split_last().expect("an output has units");
    let hint = if loss.takes_class_ids() && *k > 1 && y_row.split_last() == Some((k, steps)) {
        " (one-hot labels? this loss takes class ids)".to_string()
    } else if steps.is_empty() && y_row.len() > accepted[0].len() {
        " (labels per step need a per-step output: return_sequences(true) on the last \
         recurrent layer)"
            .to_string()
    } else if let Some(t) = steps.first() {
        match y_row.first() {
            Some(yt) if yt != t => format!(" (y has {yt} steps, the model's output {t})"),
            None => format!(" (the model predicts at each of {t} steps: give labels per step)"),
            _ => String::new(),
        }
    } else {
        String::new()
    };
    Err(NnError::Shape(format!(
        "{what} has shape {:?} but the model's output{} for x {:?} is {}: {} takes {what} of \
         shape {}{hint}",
        y.shape,
        if s.outs.len() == 1 {
            String::new()
        } else {
            format!(" {o}")
        },
        x.shape(),
        full(out),
        loss.name(),
        takes.join(" or "),
    )))
}

fn check_target_values(loss: Loss, y: &Shaped<Cow<[f32]>>, s: &Shapes, o: usize) -> Result<()> {
    let per = s.targets_per_sample(o, loss).max(1);
    let k = s.width(o);
    let y = &y.values;
    let bad = |i: usize, expected: String| NnError::BadTarget {
        sample: i / per,
        value: y[i],
        expected,
    };
    let found = match loss {
        Loss::BinaryCrossentropy | Loss::CategoricalCrossentropy => y
            .iter()
            .position(|&v| !(0.0..=1.0).contains(&v))
            .map(|i| bad(i, format!("{} takes labels in [0, 1]", loss.name()))),
        Loss::SparseCategoricalCrossentropy | Loss::Crf => y
            .iter()
            .position(|&v| !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < k))
            .map(|i| bad(i, format!("{} takes class ids 0..{k}", loss.name()))),
        Loss::MeanSquaredError | Loss::Huber | Loss::MeanAbsoluteError => y
            .iter()
            .position(|v| !v.is_finite())
            .map(|i| bad(i, "targets must be finite".into())),
    };
    found.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_shapes_follow_the_loss_and_the_output() {
        let sparse = Loss::SparseCategoricalCrossentropy;
        assert_eq!(target_shapes(sparse, &[5]), [vec![], vec![1]]);
        assert_eq!(target_shapes(sparse, &[7, 5]), [vec![7], vec![7, 1]]);
        let bce = Loss::BinaryCrossentropy;
        assert_eq!(target_shapes(bce, &[1]), [vec![1], vec![]]);
        assert_eq!(target_shapes(bce, &[7, 3]), [vec![7, 3]]);
        assert_eq!(
            target_shapes(Loss::MeanSquaredError, &[7, 1]),
            [vec![7, 1], vec![7]]
        );
    }
}
