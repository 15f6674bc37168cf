//! Feeds for running a model's step graph in the interpreter (gradient checks, plan against
//! reference).
use std::collections::HashMap;

use trellis_ir::{NodeId, Tensor};
use trellis_nn::{Model, StepGraph};

/// Feeds for a model's step graph (no optimiser): inputs, targets, weights `1/B` and the
/// model's parameters, all in f64.
pub fn feeds(sg: &StepGraph, m: &Model, xs: &[Tensor], ys: &[Tensor]) -> HashMap<NodeId, Tensor> {
    let mut f = HashMap::new();
    for (n, x) in sg.inputs.iter().zip(xs) {
        f.insert(*n, x.clone());
    }
    for (o, y) in sg.outputs.iter().zip(ys) {
        f.insert(o.y, y.clone());
        let w = sg.graph.ty(o.w).clone();
        let v = vec![1.0 / w.numel() as f64; w.numel()];
        f.insert(o.w, Tensor::f64(w.dims(), v).unwrap());
    }
    for ((p, w), s) in sg.params.iter().zip(m.weights()).zip(m.param_specs()) {
        let v = w.iter().map(|&v| v as f64).collect();
        f.insert(*p, Tensor::f64(s.shape.as_slice(), v).unwrap());
    }
    f
}
