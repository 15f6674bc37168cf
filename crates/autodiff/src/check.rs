//! Gradient checking: the backward graph against f64 central differences.
use crate::{grad, AutodiffError};
use trellis_ir::{run, DType, Feeds, Graph, NodeId, Precision, Tensor};

/// Accepts an element when `|analytic - numeric| <= abs + rel * |numeric|`.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
    /// Central-difference step.
    pub eps: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            abs: 1e-6,
            rel: 1e-5,
            eps: 1e-6,
        }
    }
}

/// One element's two gradients.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// Name (or id) of the input the element belongs to.
    pub input: String,
    /// Flat index of the element in that input.
    pub index: usize,
    pub analytic: f64,
    pub numeric: f64,
    /// `|analytic - numeric| / (abs + rel * |numeric|)`: above 1 fails.
    pub score: f64,
}

/// What gradcheck measured.
#[derive(Clone, Debug)]
pub struct GradCheck {
    /// The element with the highest score (worst agreement).
    pub worst: Option<Mismatch>,
    pub elements: usize,
}

impl GradCheck {
    pub fn passed(&self) -> bool {
        self.worst.as_ref().is_none_or(|w| w.score <= 1.0)
    }
    /// `Ok` when every element is within tolerance; otherwise an error naming the worst.
    pub fn check(&self) -> Result<(), AutodiffError> {
        match &self.worst {
            Some(w) if w.score > 1.0 => Err(AutodiffError::Mismatch(format!(
                "d loss / d {}[{}]: backward graph gives {:.9e}, central difference {:.9e}",
                w.input, w.index, w.analytic, w.numeric
            ))),
            _ => Ok(()),
        }
    }
}

/// Checks the gradient of the scalar `loss` with respect to the float inputs `wrt`, at the
/// values in `feeds` (which must feed every input the loss needs), in f64.
pub fn gradcheck(
    graph: &Graph,
    loss: NodeId,
    wrt: &[NodeId],
    feeds: &Feeds,
    tol: Tolerance,
) -> Result<GradCheck, AutodiffError> {
    let mut g = graph.clone();
    let grads = grad(&mut g, loss, wrt)?;
    let feeds: Feeds = feeds
        .iter()
        .map(|(k, v)| {
            (
                *k,
                if v.dtype() == DType::F32 {
                    v.cast(DType::F64)
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    let analytic = run(&g, &feeds, &grads, Precision::F64)?;
    let loss_at = |f: &Feeds| -> Result<f64, AutodiffError> {
        Ok(run(graph, f, &[loss], Precision::F64)?[0].to_f64_vec()[0])
    };
    let mut worst: Option<Mismatch> = None;
    let mut elements = 0;
    let mut f = feeds.clone();
    for (k, &w) in wrt.iter().enumerate() {
        let name = graph.node(w).name.clone().unwrap_or_else(|| w.to_string());
        let base = f
            .get(&w)
            .ok_or_else(|| AutodiffError::Mismatch(format!("no value fed for {name}")))?
            .clone();
        if !base.dtype().is_float() {
            continue;
        }
        let x = base.to_f64_vec();
        let a = analytic[k].to_f64_vec();
        for i in 0..x.len() {
            let mut probe = |delta: f64| -> Result<f64, AutodiffError> {
                let mut v = x.clone();
                v[i] += delta;
                f.insert(w, Tensor::f64(base.shape().clone(), v)?);
                loss_at(&f)
            };
            let numeric = (probe(tol.eps)? - probe(-tol.eps)?) / (2.0 * tol.eps);
            let score = (a[i] - numeric).abs() / (tol.abs + tol.rel * numeric.abs());
            let score = if score.is_nan() { f64::INFINITY } else { score };
            elements += 1;
            if worst.as_ref().is_none_or(|m| score > m.score) {
                worst = Some(Mismatch {
                    input: name.clone(),
                    index: i,
                    analytic: a[i],
                    numeric,
                    score,
                });
            }
        }
        f.insert(w, base);
    }
    Ok(GradCheck { worst, elements })
}
