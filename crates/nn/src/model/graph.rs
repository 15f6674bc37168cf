//! Graph building: the forward pass of the layer calls, the loss of each output (weighted,
//! masked) and their weighted sum, and, for training, the backward pass and the optimiser
//! update, as one step graph.
use trellis_autodiff::{grad_recomputing, Checkpoints, Recompute};
use trellis_ir::{Graph, NodeId, TensorType};

use super::naming::{check_params, widths};
use super::topology::{numbered, Ref};
use super::Model;
use crate::layers::{Act, Activation, BuildCtx, CrfHead, Layout, MaskInput};
use crate::losses::{crf_loss, weighted_mean, Loss};
use crate::optim::OptimizerGraph;
use crate::regularizers::with_penalties;
use crate::{NnError, Result};

/// A step graph (training or inference) with its interface nodes. Outputs: `[loss, pred]`
/// and the mask when the output has one, for each model output in turn.
#[derive(Clone, Debug)]
pub struct StepGraph {
    pub graph: Graph,
    /// One per model input: `[B, per-sample shape]`, i64 ids or f32.
    pub inputs: Vec<NodeId>,
    /// One per model output.
    pub outputs: Vec<OutputNodes>,
    /// Parameters, in [`Model::param_specs`] order.
    pub params: Vec<NodeId>,
    /// Dropout masks to feed at every training step.
    pub masks: Vec<MaskInput>,
    /// The weighted sum of the outputs' losses, a scalar.
    pub loss: NodeId,
    pub batch: usize,
    /// Training graphs: the optimiser's learning-rate input, states and updates.
    pub optimizer: Option<OptimizerGraph>,
}

/// The nodes of one model output in a [`StepGraph`].
#[derive(Clone, Debug)]
pub struct OutputNodes {
    /// Targets `[B, K]`, or `[B, T, K]` per step (the sparse loss: one-hot).
    pub y: NodeId,
    /// Weights `[B, 1]`, or `[B, T, 1]` per step.
    pub w: NodeId,
    /// This output's weighted loss, a scalar.
    pub loss: NodeId,
    /// The output `[B, K]` or `[B, T, K]`.
    pub pred: NodeId,
    /// Which output steps are real (`[B, T]`, 1 or 0), when the input carries a mask.
    pub mask: Option<NodeId>,
    /// Output steps per sample: `T`, or 1 for a `[B, K]` output.
    pub steps: usize,
    pub out_width: usize,
}

/// The forward part of a step graph: the model's outputs, batch-major.
pub(super) struct Forward {
    xs: Vec<NodeId>,
    params: Vec<NodeId>,
    outs: Vec<Out>,
    masks: Vec<MaskInput>,
    /// Non-trainable parameters' updates (see [`BuildCtx::updates`]).
    state_updates: Vec<(NodeId, NodeId)>,
    /// Each call's output shapes, batch-major (what `summary` shows).
    pub(super) call_dims: Vec<Vec<Vec<usize>>>,
}

/// One model output, batch-major.
struct Out {
    pred: NodeId,
    logits: Option<(NodeId, Activation)>,
    /// `[B, T]` when the output is per step and carries a mask.
    mask: Option<NodeId>,
    /// A CRF's emissions and weights, when the output is a `Crf` layer's.
    crf: Option<CrfHead>,
}

/// What a call's parameter nodes are: given the layer and the call's arguments.
pub(super) type ParamsFor<'p> = dyn FnMut(&mut Graph, usize, &[Act]) -> Result<Vec<NodeId>> + 'p;

/// The layout-free dims of an act: batch first.
fn batch_major_dims(g: &Graph, a: &Act) -> Vec<usize> {
    let mut dims = g.ty(a.node).dims().to_vec();
    if a.layout == Layout::TimeMajor && dims.len() >= 2 {
        dims.swap(0, 1);
    }
    dims
}

impl Model {
    /// The graph inputs for `batch` samples of each input's per-sample shape `rows`: i64
    /// for an input that a layer taking token ids reads, else f32.
    pub(super) fn input_nodes(
        &self,
        g: &mut Graph,
        batch: usize,
        rows: &[Vec<usize>],
    ) -> Result<Vec<NodeId>> {
        let one = self.topo.inputs.len() == 1;
        (0..self.topo.inputs.len())
            .map(|i| {
                let dims: Vec<usize> = [&[batch][..], &rows[i]].concat();
                let name = if one { "x" } else { &self.topo.inputs[i].name };
                let ty = if self.input_takes_ids(i) {
                    TensorType::i64(dims.as_slice())
                } else {
                    TensorType::f32(dims.as_slice())
                };
                Ok(g.try_input(name, ty)?)
            })
            .collect()
    }

    /// Appends every layer call in order on the inputs `xs`, asking `params` for each call's
    /// parameter nodes; returns each call's outputs, and the context holding the dropout
    /// masks to feed and the state updates to apply.
    pub(super) fn walk(
        &self,
        g: &mut Graph,
        xs: &[NodeId],
        training: bool,
        params: &mut ParamsFor,
    ) -> Result<(Vec<Vec<Act>>, BuildCtx)> {
        let mut ctx = BuildCtx {
            training,
            ..Default::default()
        };
        let mut outs: Vec<Vec<Act>> = Vec::with_capacity(self.topo.calls.len());
        for (ci, c) in self.topo.calls.iter().enumerate() {
            let layer = &self.topo.layers[c.layer];
            let args: Vec<Act> = c
                .args
                .iter()
                .map(|r| match *r {
                    Ref::Input(i) => Act::new(xs[i], Layout::BatchMajor),
                    Ref::Call(k, o) => outs[k][o],
                })
                .collect();
            self.check_ids(ci)?;
            let p = params(g, c.layer, &args)?;
            ctx.frozen = !self.is_trainable(c.layer);
            // One value in and out: `build` (a Sequential's layers; a layer that returns more
            // says so there).
            let out = match args.as_slice() {
                [x] if c.outputs == 1 => vec![layer.build(g, *x, &p, &mut ctx)?],
                _ => layer.build_many(g, &args, &p, &mut ctx)?,
            };
            if out.len() != c.outputs {
                return Err(NnError::Model(format!(
                    "layer {} ({}): returned {} values, the model expects {}",
                    c.layer,
                    layer.kind(),
                    out.len(),
                    c.outputs
                )));
            }
            outs.push(out);
        }
        Ok((outs, ctx))
    }

    /// A layer taking token ids reads a model input of ids, and an input of ids feeds only
    /// such layers.
    fn check_ids(&self, ci: usize) -> Result<()> {
        let c = &self.topo.calls[ci];
        let layer = &self.topo.layers[c.layer];
        match c.args.first() {
            Some(&Ref::Input(i)) if self.input_takes_ids(i) && !layer.takes_ids() => {
                Err(NnError::Model(format!(
                    "layer {} ({}) is called on input {}, which holds token ids (an Embedding \
                     reads it): only an Embedding takes ids",
                    c.layer,
                    layer.kind(),
                    self.topo.inputs[i].name
                )))
            }
            Some(Ref::Call(..)) | None if layer.takes_ids() => Err(NnError::Model(format!(
                "layer {} ({}) takes token ids: it must be called on a model input \
                 (the first layer of a Sequential)",
                c.layer,
                layer.kind()
            ))),
            _ => Ok(()),
        }
    }

    /// Appends the model's forward pass for `batch` samples of per-sample input shapes `rows`
    /// (built model).
    pub(super) fn forward(
        &self,
        g: &mut Graph,
        batch: usize,
        rows: &[Vec<usize>],
        training: bool,
    ) -> Result<Forward> {
        if self.layer_params.is_empty() {
            return Err(NnError::Model(
                "the model is not built: call compile first".into(),
            ));
        }
        let xs = self.input_nodes(g, batch, rows)?;
        let params: Vec<NodeId> = self
            .specs
            .iter()
            .map(|s| g.param(&s.name, TensorType::f32(s.shape.as_slice())))
            .collect();
        let scopes = self.scopes();
        let (acts, ctx) = self.walk(g, &xs, training, &mut |g, l, args| {
            let r = self.layer_params[l].clone();
            let want = self.topo.layers[l].params_for(&scopes[l], &widths(g, args));
            check_params(l, self.topo.layers[l].kind(), &want, &self.specs[r.clone()])?;
            Ok(params[r].to_vec())
        })?;
        let call_dims = acts
            .iter()
            .map(|o| o.iter().map(|a| batch_major_dims(g, a)).collect())
            .collect();
        let mut outs = Vec::with_capacity(self.topo.outputs.len());
        for (oi, r) in self.topo.outputs.iter().enumerate() {
            let act = match *r {
                Ref::Input(i) => Act::new(xs[i], Layout::BatchMajor),
                Ref::Call(k, o) => acts[k][o],
            };
            let rank = g.ty(act.node).rank();
            if !(rank == 2 || rank == 3) {
                return Err(NnError::Model(format!(
                    "output {oi}: a model output must be [batch, units] or [batch, time, units] \
                     for a loss, got {} for inputs {rows:?}",
                    g.ty(act.node)
                )));
            }
            let act = act.batch_major(g)?;
            outs.push(Out {
                pred: act.node,
                logits: act.logits,
                mask: if rank == 3 { act.mask } else { None },
                crf: act.crf,
            });
        }
        Ok(Forward {
            xs,
            params,
            outs,
            masks: ctx.masks,
            state_updates: ctx.updates,
            call_dims,
        })
    }

    /// Each output's per-sample shape (`[k]` or `[T, k]`) for `n` samples of per-sample
    /// input shapes `rows` (from the graph the layers build: one source of truth for shapes).
    pub(crate) fn output_shapes(&self, n: usize, rows: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        // A cached plan for these input shapes knows them (predict in a loop builds no graph).
        let cached = [&self.train, &self.infer].into_iter().flatten();
        if let Some(r) = cached.into_iter().find(|r| r.key.1 == rows) {
            let g = &r.sg.graph;
            return Ok(r
                .sg
                .outputs
                .iter()
                .map(|o| g.ty(o.pred).dims()[1..].to_vec())
                .collect());
        }
        let mut g = Graph::new();
        let f = self.forward(&mut g, n, rows, false)?;
        Ok(f.outs
            .iter()
            .map(|o| g.ty(o.pred).dims()[1..].to_vec())
            .collect())
    }

    /// Builds the step graph for `batch` samples of per-sample input shapes `rows`: forward,
    /// each output's loss, their weighted sum and (when `training`) backward and the
    /// optimiser update. Public so that the same step can be run through the reference
    /// interpreter.
    pub fn step_graph(
        &mut self,
        batch: usize,
        rows: &[&[usize]],
        training: bool,
    ) -> Result<StepGraph> {
        Ok(self.step_graph_with(batch, rows, training, None)?.0)
    }

    /// [`Model::step_graph`], its recurrences recomputed from `checkpoints` in the backward
    /// pass when given (and training), with what the recomputation did.
    pub(crate) fn step_graph_with(
        &mut self,
        batch: usize,
        rows: &[&[usize]],
        training: bool,
        checkpoints: Option<Checkpoints>,
    ) -> Result<(StepGraph, Option<Recompute>)> {
        self.build()?;
        let rows: Vec<Vec<usize>> = rows.iter().map(|r| r.to_vec()).collect();
        if rows.len() != self.topo.inputs.len() {
            return Err(NnError::Shape(format!(
                "step_graph: {} input shapes for a model with {} inputs",
                rows.len(),
                self.topo.inputs.len()
            )));
        }
        let c = self.compiled()?.clone();
        let mut g = Graph::new();
        let f = self.forward(&mut g, batch, &rows, training)?;
        let mut outputs = Vec::with_capacity(f.outs.len());
        let mut total: Option<NodeId> = None;
        let losses = c.losses.losses.iter().zip(&c.losses.weights);
        for (i, (o, (&loss_fn, &weight))) in f.outs.iter().zip(losses).enumerate() {
            let out = g.ty(o.pred).dims().to_vec();
            let (k, steps) = (out[out.len() - 1], out[1..out.len() - 1].iter().product());
            // Distinct names: the graph merges inputs of one name and type.
            let y = g.input(&numbered("y", i), TensorType::f32(out.as_slice()));
            let mut wdims = out.clone();
            *wdims.last_mut().expect("rank 2 or 3") = 1;
            let w = g.input(
                &numbered("sample_weight", i),
                TensorType::f32(wdims.as_slice()),
            );
            let loss = match (loss_fn.kind, &o.crf) {
                (Loss::Crf, Some(head)) => crf_loss(&mut g, head, y, w, o.mask)?,
                (Loss::Crf, None) => {
                    return Err(NnError::Model(format!(
                        "output {i}: crf_loss is the loss of a Crf layer's output (end the \
                         model with Crf::new(tags) after a Dense(tags))"
                    )))
                }
                (_, Some(_)) => {
                    return Err(NnError::Model(format!(
                        "output {i} is a Crf layer's decoded tags: it trains with Loss::Crf, \
                         not {}",
                        loss_fn.name()
                    )))
                }
                (_, None) => {
                    loss_fn.check_output(o.logits.map(|l| l.1))?;
                    let per = loss_fn.per_sample(&mut g, o.pred, o.logits, y)?;
                    let mask = match o.mask {
                        Some(m) => Some(g.reshape(m, wdims.as_slice())?),
                        None => None,
                    };
                    weighted_mean(&mut g, per, w, mask)?
                }
            };
            // Weight 1 adds no node: a one-output model's graph is the Sequential one.
            let weighted = if weight == 1.0 {
                loss
            } else {
                let s = g.scalar_like(loss, weight as f64)?;
                g.mul(loss, s)?
            };
            total = Some(match total {
                None => weighted,
                Some(t) => g.add(t, weighted)?,
            });
            outputs.push(OutputNodes {
                y,
                w,
                loss,
                pred: o.pred,
                mask: o.mask,
                steps,
                out_width: k,
            });
        }
        let params = f.params;
        let total = total.expect("a model has outputs");
        let trains = self.trains_param();
        let loss = with_penalties(&mut g, total, &self.specs, &params, &trains)?;
        g.set_name(loss, "loss");
        let mut recompute = None;
        let optimizer = if training {
            // Before differentiating: an embedding followed by a projection projects the table
            // once, and the backward graph follows that cheaper form.
            trellis_ir::passes::gather_before_matmul(&mut g);
            // Only the trainable parameters are differentiated and updated.
            let named: Vec<(String, NodeId)> = self
                .specs
                .iter()
                .zip(params.iter().copied())
                .zip(&trains)
                .filter(|(_, trained)| **trained)
                .map(|((s, p), _)| (s.name.clone(), p))
                .collect();
            let wrt: Vec<NodeId> = named.iter().map(|(_, p)| *p).collect();
            let grads = match checkpoints {
                None => trellis_autodiff::grad(&mut g, loss, &wrt)?,
                Some(ck) => {
                    let (grads, r) = grad_recomputing(&mut g, loss, &wrt, ck)?;
                    recompute = Some(r);
                    grads
                }
            };
            let mut o = c.optimizer.build(&mut g, &named, &grads)?;
            o.updates.extend(f.state_updates.iter().copied());
            Some(o)
        } else {
            None
        };
        let mut graph_outputs = vec![loss];
        for o in &outputs {
            if o.loss != loss {
                graph_outputs.push(o.loss);
            }
            graph_outputs.push(o.pred);
            graph_outputs.extend(o.mask);
        }
        g.set_outputs(graph_outputs);
        let sg = StepGraph {
            graph: g,
            inputs: f.xs,
            outputs,
            params,
            masks: f.masks,
            loss,
            batch,
            optimizer,
        };
        Ok((sg, recompute))
    }
}
