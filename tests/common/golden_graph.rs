//! A graph built from a PyTorch fixture and the fixture tensors it must reproduce: the one
//! harness of the op goldens (attention, layer norm, convolution). A builder feeds leaves from
//! the fixture (parameters are differentiated), names the outputs, and `finish` adds the
//! gradients of the loss; `check_interp` runs the f64 interpreter against every named tensor.
//! (The compiled check is `golden_plan.rs`, for the jit's tests.) Included with `#[path]`
//! beside `golden_lstm.rs`, whose fixture loader it uses.
#![allow(dead_code)]
use crate::golden_lstm::{assert_close, feed, Fixture, Golden};
use std::collections::HashMap;
use trellis_autodiff::grad;
use trellis_ir::{run, DType, Graph, NodeId, Precision, Tensor, TensorType};

pub struct GoldenGraph {
    pub g: Graph,
    pub feeds: Vec<(NodeId, Golden)>,
    /// Leaves the loss is differentiated by, with the fixture name of their gradient.
    wrt: Vec<(NodeId, String)>,
    /// `(node, fixture tensor)` pairs to compare: outputs, the loss, then the gradients.
    pub checks: Vec<(NodeId, String)>,
    dtype: DType,
}

impl GoldenGraph {
    /// An empty graph whose leaves are of `dtype` (an f32 graph run in f64 keeps its f32
    /// constants: build f64 for the tight checks).
    pub fn new(dtype: DType) -> GoldenGraph {
        GoldenGraph {
            g: Graph::new(),
            feeds: Vec::new(),
            wrt: Vec::new(),
            checks: Vec::new(),
            dtype,
        }
    }

    /// Fixture tensor `key` as a leaf named `name` (`None` when the fixture lacks it); a
    /// parameter's gradient is checked against `grad` (the key with `grad_` before its last
    /// segment: `case.x` -> `case.grad_x`).
    pub fn leaf(&mut self, fx: &Fixture, key: &str, param: bool) -> Option<NodeId> {
        let t = fx.tensors.get(key)?.clone();
        let name = key.rsplit('.').next().unwrap();
        let ty = TensorType::new(t.shape.clone(), self.dtype);
        let id = if param {
            let id = self.g.param(name, ty);
            let grad_key = match key.rsplit_once('.') {
                Some((case, leaf)) => format!("{case}.grad_{leaf}"),
                None => format!("grad_{key}"),
            };
            self.wrt.push((id, grad_key));
            id
        } else {
            self.g.input(name, ty)
        };
        self.feeds.push((id, t));
        Some(id)
    }

    /// Names `outputs` (node, fixture key) and `loss`, and appends the loss's gradients.
    pub fn finish(mut self, outputs: Vec<(NodeId, String)>, loss: (NodeId, String)) -> Self {
        let leaves: Vec<NodeId> = self.wrt.iter().map(|w| w.0).collect();
        let grads = grad(&mut self.g, loss.0, &leaves).unwrap();
        self.checks = outputs;
        self.checks.push(loss);
        let named = grads.into_iter().zip(self.wrt.iter().map(|w| w.1.clone()));
        self.checks.extend(named);
        let outs: Vec<NodeId> = self.checks.iter().map(|c| c.0).collect();
        self.g.set_outputs(outs);
        self
    }

    /// `sum(node * R)` over a fixture tensor `R` (an input): the loss the goldens use.
    pub fn dot_loss(&mut self, fx: &Fixture, node: NodeId, r_key: &str) -> NodeId {
        let r = self.leaf(fx, r_key, false).unwrap();
        let nr = self.g.mul(node, r).unwrap();
        self.g.sum_all(nr).unwrap()
    }

    pub fn feeds_at(&self, p: Precision) -> HashMap<NodeId, Tensor> {
        self.feeds.iter().map(|(id, t)| (*id, feed(t, p))).collect()
    }

    /// Every checked tensor through the f64 interpreter, within `rtol` / `atol`.
    pub fn check_interp(&self, fx: &Fixture, rtol: f64, atol: f64, tag: &str) {
        let outs: Vec<NodeId> = self.checks.iter().map(|c| c.0).collect();
        let v = run(
            &self.g,
            &self.feeds_at(Precision::F64),
            &outs,
            Precision::F64,
        )
        .unwrap();
        for (got, (_, name)) in v.iter().zip(&self.checks) {
            assert_close(&format!("{tag}: {name}"), got, fx.get(name), rtol, atol);
        }
    }
}
