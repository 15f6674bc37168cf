//! Graph building: the forward pass of the layers, the loss (weighted, masked) and, for
//! training, the backward pass and the optimiser update, as one step graph.
use trellis_ir::{Graph, NodeId, TensorType};

use super::Sequential;
use crate::layers::{Act, Activation, BuildCtx, Layout, MaskInput};
use crate::losses::weighted_mean;
use crate::optim::OptimizerGraph;
use crate::{NnError, Result};

/// A step graph (training or inference) with its interface nodes. Outputs: `[loss, pred]`,
/// and the mask when the output has one.
#[derive(Clone, Debug)]
pub struct StepGraph {
    pub graph: Graph,
    /// `[B, per-sample shape]`, i64 ids or f32.
    pub x: NodeId,
    /// Targets `[B, K]`, or `[B, T, K]` per step (the sparse loss: one-hot).
    pub y: NodeId,
    /// Weights `[B, 1]`, or `[B, T, 1]` per step.
    pub w: NodeId,
    /// Parameters, in [`Sequential::param_specs`] order.
    pub params: Vec<NodeId>,
    /// Dropout masks to feed at every training step.
    pub masks: Vec<MaskInput>,
    /// Weighted loss, a scalar.
    pub loss: NodeId,
    /// The model output `[B, K]` or `[B, T, K]`.
    pub pred: NodeId,
    /// Which output steps are real (`[B, T]`, 1 or 0), when the input carries a mask.
    pub mask: Option<NodeId>,
    pub batch: usize,
    /// Output steps per sample: `T`, or 1 for a `[B, K]` output.
    pub steps: usize,
    pub out_width: usize,
    /// Training graphs: the optimiser's learning-rate input, states and updates.
    pub optimizer: Option<OptimizerGraph>,
}

/// The forward part of a step graph: the model's output, batch-major.
pub(super) struct Forward {
    x: NodeId,
    params: Vec<NodeId>,
    pred: NodeId,
    logits: Option<(NodeId, Activation)>,
    /// `[B, T]` when the output is per step and the input carries a mask.
    mask: Option<NodeId>,
    masks: Vec<MaskInput>,
    /// Each layer's output shape, batch-major (what `summary` shows).
    pub(super) layer_dims: Vec<Vec<usize>>,
}

impl Sequential {
    /// Appends the model's forward pass for `batch` samples of `row` shape (built model).
    pub(super) fn forward(
        &self,
        g: &mut Graph,
        batch: usize,
        row: &[usize],
        training: bool,
    ) -> Result<Forward> {
        if self.specs.is_empty() {
            return Err(NnError::Model(
                "the model is not built: call compile first".into(),
            ));
        }
        let mut xdims = vec![batch];
        xdims.extend_from_slice(row);
        let x = if self.takes_ids() {
            g.input("x", TensorType::i64(xdims.as_slice()))
        } else {
            g.input("x", TensorType::f32(xdims.as_slice()))
        };
        let params: Vec<NodeId> = self
            .specs
            .iter()
            .map(|s| g.param(&s.name, TensorType::f32(s.shape.as_slice())))
            .collect();
        let mut ctx = BuildCtx {
            training,
            masks: Vec::new(),
        };
        let mut act = Act::new(x, Layout::BatchMajor);
        let mut layer_dims = Vec::with_capacity(self.layers.len());
        for (l, r) in self.layers.iter().zip(&self.layer_params) {
            act = l.build(g, act, &params[r.clone()], &mut ctx)?;
            let mut dims = g.ty(act.node).dims().to_vec();
            if act.layout == Layout::TimeMajor && dims.len() >= 2 {
                dims.swap(0, 1);
            }
            layer_dims.push(dims);
        }
        let (mut pred, mut logits, mut mask) = (act.node, act.logits, act.mask);
        let rank = g.ty(pred).rank();
        if act.layout == Layout::TimeMajor && rank == 3 {
            pred = g.transpose(pred, &[1, 0, 2])?;
            if let Some((z, a)) = logits {
                logits = Some((g.transpose(z, &[1, 0, 2])?, a));
            }
            if let Some(m) = mask {
                mask = Some(g.transpose(m, &[1, 0])?);
            }
        }
        if !(rank == 2 || rank == 3) {
            return Err(NnError::Model(format!(
                "the model output must be [batch, units] or [batch, time, units] for a loss, \
                 got {} for input {xdims:?}",
                g.ty(pred)
            )));
        }
        Ok(Forward {
            x,
            params,
            pred,
            logits,
            mask: if rank == 3 { mask } else { None },
            masks: ctx.masks,
            layer_dims,
        })
    }

    /// The per-sample output shape (`[k]` or `[T, k]`) for `n` inputs of per-sample shape
    /// `row` (from the graph the layers build: one source of truth for shapes).
    pub(crate) fn output_shape(&self, n: usize, row: &[usize]) -> Result<Vec<usize>> {
        // A cached plan for this input shape knows it (predict in a loop builds no graph).
        let cached = [&self.train, &self.infer].into_iter().flatten();
        if let Some(r) = cached.into_iter().find(|r| r.key.1 == row) {
            return Ok(r.sg.graph.ty(r.sg.pred).dims()[1..].to_vec());
        }
        let mut g = Graph::new();
        let f = self.forward(&mut g, n, row, false)?;
        Ok(g.ty(f.pred).dims()[1..].to_vec())
    }

    /// Builds the step graph for `batch` samples of `row` shape: forward, loss, and (when
    /// `training`) backward and the optimiser update. Public so that the same step can be run
    /// through the reference interpreter.
    pub fn step_graph(&mut self, batch: usize, row: &[usize], training: bool) -> Result<StepGraph> {
        self.build()?;
        let c = self.compiled()?.clone();
        let mut g = Graph::new();
        let f = self.forward(&mut g, batch, row, training)?;
        let out = g.ty(f.pred).dims().to_vec();
        let (k, steps) = (out[out.len() - 1], out[1..out.len() - 1].iter().product());
        let y = g.input("y", TensorType::f32(out.as_slice()));
        let mut wdims = out.clone();
        *wdims.last_mut().expect("rank 2 or 3") = 1;
        let w = g.input("sample_weight", TensorType::f32(wdims.as_slice()));
        c.loss.check_output(f.logits.map(|l| l.1))?;
        let per = c.loss.per_sample(&mut g, f.pred, f.logits, y)?;
        let mask = match f.mask {
            Some(m) => Some(g.reshape(m, wdims.as_slice())?),
            None => None,
        };
        let loss = weighted_mean(&mut g, per, w, mask)?;
        g.set_name(loss, "loss");
        let params = f.params;
        let optimizer = if training {
            // Before differentiating: an embedding followed by a projection projects the table
            // once, and the backward graph follows that cheaper form.
            trellis_ir::passes::gather_before_matmul(&mut g);
            let grads = trellis_autodiff::grad(&mut g, loss, &params)?;
            let named: Vec<(String, NodeId)> = self
                .specs
                .iter()
                .map(|s| s.name.clone())
                .zip(params.iter().copied())
                .collect();
            Some(c.optimizer.build(&mut g, &named, &grads)?)
        } else {
            None
        };
        let mut outputs = vec![loss, f.pred];
        outputs.extend(f.mask);
        g.set_outputs(outputs);
        Ok(StepGraph {
            graph: g,
            x: f.x,
            y,
            w,
            params,
            masks: f.masks,
            loss,
            pred: f.pred,
            mask: f.mask,
            batch,
            steps,
            out_width: k,
            optimizer,
        })
    }
}
