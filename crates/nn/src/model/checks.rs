//! Data checks: x, y and the model must agree before any work is done. Every refusal names
//! the shapes involved (x's, y's, the model's input and output), so the caller can see which
//! of them is wrong.
use super::arrays::{Inputs, Targets, Values};
use super::Sequential;
use crate::losses::Loss;
use crate::{NnError, Result};

/// What the checks established: the sample count and the per-sample shapes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Shapes {
    pub n: usize,
    /// Per-sample input shape (x without its first axis).
    pub row: Vec<usize>,
    /// Per-sample output shape: `[k]`, or `[T, k]` for a per-step output.
    pub out: Vec<usize>,
}

impl Shapes {
    /// Values of x per sample.
    pub fn row_len(&self) -> usize {
        self.row.iter().product()
    }
    /// Output steps per sample (1 for a vector output).
    pub fn steps(&self) -> usize {
        self.out[..self.out.len() - 1].iter().product()
    }
    /// Output units.
    pub fn width(&self) -> usize {
        self.out[self.out.len() - 1]
    }
    /// Values of y per sample for `loss` (class ids per step, or one value per unit).
    pub fn targets_per_sample(&self, loss: Loss) -> usize {
        match loss {
            Loss::SparseCategoricalCrossentropy => self.steps(),
            _ => self.steps() * self.width(),
        }
    }
}

impl Sequential {
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
        let inferred = self.input_shape.is_none();
        let was_built = !self.specs.is_empty();
        if inferred {
            self.input_shape = x.shape.get(1..).map(<[usize]>::to_vec);
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
                self.input_shape = None;
            }
            if !was_built {
                self.specs.clear();
                self.layer_params.clear();
                self.weights.clear();
                self.opt_state.clear();
            }
        }
        checked
    }

    /// Checks `x` (and `y`) against each other and the model (which must be built).
    pub(crate) fn check_data(&self, x: &Inputs, y: Option<&Targets>) -> Result<Shapes> {
        let c = self.compiled()?;
        match (&x.values, self.takes_ids()) {
            (Values::Floats(_), true) => {
                return Err(NnError::Shape(format!(
                    "x: the model starts with an Embedding and takes token ids (i64), got floats \
                     of shape {:?}",
                    x.shape
                )))
            }
            (Values::Ids(_), false) => {
                return Err(NnError::Shape(format!(
                    "x: the model takes floats, got token ids of shape {:?} (only an Embedding \
                     takes ids)",
                    x.shape
                )))
            }
            _ => {}
        }
        check_len("x", &x.shape, x.len())?;
        let Some((&n, row)) = x.shape.split_first() else {
            return Err(NnError::Shape(
                "x has shape []: it needs a first axis of samples".into(),
            ));
        };
        if n == 0 {
            return Err(NnError::Shape(format!(
                "x has no samples (shape {:?})",
                x.shape
            )));
        }
        if let Some(s) = &self.input_shape {
            if s.as_slice() != row {
                return Err(NnError::Shape(format!(
                    "x has shape {:?}, {row:?} per sample, but the model's input shape is {s:?} \
                     (x must be [n, {}])",
                    x.shape,
                    dims(s)
                )));
            }
        }
        let out = self.output_shape(n, row)?;
        let shapes = Shapes {
            n,
            row: row.to_vec(),
            out,
        };
        let row_len = shapes.row_len();
        match &x.values {
            Values::Ids(ids) => {
                if let Some(e) = self.embedding() {
                    let vocab = e.vocab();
                    if let Some(i) = ids.iter().position(|&id| id < 0 || id as usize >= vocab) {
                        return Err(NnError::TokenOutOfRange {
                            id: ids[i],
                            sample: i / row_len,
                            position: i % row_len,
                            vocab,
                        });
                    }
                }
            }
            Values::Floats(v) => {
                if let Some(i) = v.iter().position(|f| !f.is_finite()) {
                    return Err(NnError::NonFiniteInput {
                        sample: i / row_len,
                        position: i % row_len,
                        value: v[i],
                    });
                }
            }
        }
        crate::metrics::check(&c.metrics, &c.loss, shapes.width())?;
        if let Some(y) = y {
            check_target_shape(c.loss.kind, x, y, &shapes)?;
            check_target_values(c.loss.kind, y, &shapes)?;
        }
        Ok(shapes)
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
        Loss::SparseCategoricalCrossentropy => vec![steps.to_vec(), with(1)],
        _ if *k == 1 => vec![with(1), steps.to_vec()],
        _ => vec![with(*k)],
    }
}

fn check_target_shape(loss: Loss, x: &Inputs, y: &Targets, s: &Shapes) -> Result<()> {
    check_len("y", &y.shape, y.values.len())?;
    let (ny, y_row) = match y.shape.split_first() {
        Some((&ny, r)) => (ny, r),
        None => (0, &[][..]),
    };
    if ny != s.n || y.shape.is_empty() {
        return Err(NnError::Shape(format!(
            "x has {} samples (shape {:?}) but y has {ny} (shape {:?})",
            s.n, x.shape, y.shape
        )));
    }
    let accepted = target_shapes(loss, &s.out);
    if accepted.iter().any(|a| a.as_slice() == y_row) {
        return Ok(());
    }
    let full = |r: &[usize]| format!("[{}]", dims(&[&[s.n][..], r].concat()));
    let takes: Vec<String> = accepted.iter().map(|a| full(a)).collect();
    let (k, steps) = s.out.split_last().expect("an output has units");
    let hint = if loss == Loss::SparseCategoricalCrossentropy
        && *k > 1
        && y_row.split_last() == Some((k, steps))
    {
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
        "y has shape {:?} but the model's output for x {:?} is {}: {} takes y of shape {}{hint}",
        y.shape,
        x.shape,
        full(&s.out),
        loss.name(),
        takes.join(" or "),
    )))
}

fn check_target_values(loss: Loss, y: &Targets, s: &Shapes) -> Result<()> {
    let per = s.targets_per_sample(loss).max(1);
    let k = s.width();
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
        Loss::SparseCategoricalCrossentropy => y
            .iter()
            .position(|&v| !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < k))
            .map(|i| {
                bad(
                    i,
                    format!("sparse categorical cross-entropy takes class ids 0..{k}"),
                )
            }),
        Loss::MeanSquaredError | Loss::Huber => y
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
