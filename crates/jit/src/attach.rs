//! Attached plans: a graph compiled to run on another plan's memory, reading that plan's
//! parameters in place. A decoder's one-step graph attached to the training (or inference)
//! plan runs step after step with the trained weights: never recompiled per step, the weights
//! never copied, and a weight update of the host plan seen by the next step.
//!
//! Mechanism: the attached plan is compiled as usual, then its memory (its own inputs,
//! constants and arena) is appended to the host's block, its windows moved there, and each
//! shared parameter's windows pointed at the host's buffer. Its steps then run on the host's
//! block: [`Attached::run`] hands the block to the attached plan for the run (a move of the
//! vector, not of its contents) and takes it back. Attaching reallocates the host's block once;
//! nothing is copied after that. The attached plan's own copy of a shared parameter stays in
//! its region, unused (zeros).
//!
//! The attached plan caches its parameter-only steps (pretransposed weights, projected
//! embedding tables) like any plan that does not update its parameters; a parameter set on the
//! host, or a host run that updates its inputs, makes every attached plan run them again.
use crate::loc::Loc;
use crate::plan::AttachedPlan;
use crate::step::{check_windows, Val};
use crate::{compile, CompileOptions, JitError, Plan, PlanStats};
use std::collections::HashSet;
use trellis_ir::ops::Input;
use trellis_ir::{Graph, InputKind, NodeId, Tensor};

/// What an attached plan shares with its host and carries between its runs.
#[derive(Clone, Debug, Default)]
pub struct Attach {
    /// `(input of the attached graph, input of the host plan)`: the attached plan reads (and
    /// never writes) the host's buffer; same type required. Set these on the host.
    pub share: Vec<(NodeId, NodeId)>,
    /// `(data input, value)` of the attached graph: after each run the input takes the value
    /// (a decoder's state `h_{t-1} <- h_t`). Unlike [`CompileOptions::updates`] (which this
    /// plan may not use), carrying data inputs keeps the parameter-only steps cached.
    pub carry: Vec<(NodeId, NodeId)>,
}

/// An attached plan, by its place in its host's list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachedId(usize);

fn unsupported(msg: String) -> JitError {
    JitError::Unsupported(format!("attach: {msg}"))
}

impl Plan {
    /// Compiles `graph` (outputs: `graph.outputs()`) to run on this plan's memory, sharing the
    /// inputs in `spec.share` (see the module doc). `opts.updates` must be empty: the attached
    /// plan never writes the host's parameters (carry its state with `spec.carry`).
    pub fn attach(
        &mut self,
        graph: &Graph,
        opts: &CompileOptions,
        spec: &Attach,
    ) -> Result<AttachedId, JitError> {
        if !opts.updates.is_empty() {
            return Err(unsupported(
                "an attached plan has no updates (use Attach::carry for its state)".into(),
            ));
        }
        let input_kind = |n: NodeId| {
            graph
                .get(n)
                .and_then(|node| node.op.as_any().downcast_ref::<Input>())
                .map(|i| i.kind)
        };
        let mut windows: Vec<(NodeId, Loc)> = Vec::new();
        for &(node, host) in &spec.share {
            if input_kind(node).is_none() {
                return Err(unsupported(format!(
                    "share {node} <- {host}: {node} is not an input of the attached graph"
                )));
            }
            let Some(name) = self.inputs.get(&host) else {
                return Err(unsupported(format!(
                    "share {node} <- {host}: {host} is not an input of the host plan"
                )));
            };
            let (v, ty) = self.values.get(&host).expect("an input has a value");
            if ty != graph.ty(node) {
                return Err(unsupported(format!(
                    "share {} <- '{name}': the attached graph's input is {}, the host's {ty}",
                    graph.describe(node),
                    graph.ty(node)
                )));
            }
            match *v {
                Val::F(l) if l.is_dense() => windows.push((node, l)),
                _ => {
                    return Err(unsupported(format!(
                        "share '{name}': only f32 inputs can be shared"
                    )))
                }
            }
        }
        let shared: HashSet<NodeId> = spec.share.iter().map(|s| s.0).collect();
        for &(target, value) in &spec.carry {
            if input_kind(target) != Some(InputKind::Data) || shared.contains(&target) {
                return Err(unsupported(format!(
                    "carry {target} <- {value}: the target must be a data input of the attached \
                     graph, not shared"
                )));
            }
            if !graph.contains(value) || graph.ty(value) != graph.ty(target) {
                return Err(unsupported(format!(
                    "carry {} <- {value}: the value must be a node of the target's type",
                    graph.describe(target)
                )));
            }
        }
        // The carried values are outputs: they live until the run ends.
        let mut g = graph.clone();
        let mut outputs = graph.outputs().to_vec();
        outputs.extend(spec.carry.iter().map(|c| c.1));
        g.set_outputs(outputs);
        let mut plan = compile(&g, opts)?;
        let base = self.mem.len().next_multiple_of(16);
        // Each shared parameter's window in the attached plan -> the host's window.
        let mut moves: Vec<(Loc, Loc)> = Vec::new();
        for (node, host_loc) in windows {
            if let Some((Val::F(l), _)) = plan.values.get(&node) {
                moves.push((*l, host_loc));
            }
        }
        let relocate = |l: Loc| -> Result<Loc, JitError> {
            for (from, to) in &moves {
                let end = from.off + from.numel();
                if (from.off..end).contains(&l.off) {
                    if l.end().is_none_or(|e| e > end) {
                        return Err(unsupported(format!(
                            "internal: window {l:?} leaves the shared parameter {from:?}"
                        )));
                    }
                    return Ok(Loc {
                        off: to.off + (l.off - from.off),
                        ..l
                    });
                }
            }
            Ok(Loc {
                off: l.off + base,
                ..l
            })
        };
        for s in &mut plan.steps {
            for l in s.windows_mut() {
                *l = relocate(*l)?;
            }
        }
        for v in plan.values.vals_mut() {
            if let Some(l) = v.loc_mut() {
                *l = relocate(*l)?;
            }
        }
        for (t, v) in &mut plan.updates {
            (*t, *v) = (relocate(*t)?, relocate(*v)?);
        }
        for &(target, value) in &spec.carry {
            let (Some((Val::F(t), _)), Some((Val::F(v), _))) =
                (plan.values.get(&target), plan.values.get(&value))
            else {
                return Err(unsupported(format!(
                    "carry {}: only f32 values are carried",
                    graph.describe(target)
                )));
            };
            if t != v {
                plan.updates.push((*t, *v));
            }
        }
        // The host's block grows by the attached plan's; every window must lie inside it.
        let len = base + plan.mem.len();
        let (limit, limit_is) = opts.resolved_memory_limit();
        if len.saturating_mul(4) > limit {
            return Err(JitError::MemoryLimit {
                needed: len.saturating_mul(4),
                persistent: self.mem.len() * 4,
                arena: plan.mem.len() * 4,
                limit,
                limit_is,
            });
        }
        check_windows(&plan.steps, len)?;
        for (t, v) in &plan.updates {
            if t.end().is_none_or(|e| e > len) || v.end().is_none_or(|e| e > len) {
                return Err(unsupported(
                    "internal: a carried value outside memory".into(),
                ));
            }
        }
        self.mem
            .try_reserve_exact(len - self.mem.len())
            .map_err(|_| JitError::Alloc {
                bytes: len * 4,
                what: "the host plan's memory with an attached plan",
            })?;
        self.mem.resize(base, 0.0);
        self.mem.extend_from_slice(&plan.mem);
        plan.mem = Vec::new();
        self.attached.push(AttachedPlan { plan, shared });
        Ok(AttachedId(self.attached.len() - 1))
    }

    /// The attached plan `id`, to set its inputs, run it and read its outputs.
    pub fn attached(&mut self, id: AttachedId) -> Result<Attached<'_>, JitError> {
        if id.0 >= self.attached.len() {
            return Err(JitError::Feed(format!(
                "{id:?}: this plan has {} attached plans",
                self.attached.len()
            )));
        }
        Ok(Attached {
            host: self,
            id: id.0,
        })
    }
}

/// An attached plan, borrowed with its host (from [`Plan::attached`]).
pub struct Attached<'a> {
    host: &'a mut Plan,
    id: usize,
}

impl Attached<'_> {
    /// Runs `f` on the attached plan with the host's memory block in its hands (moved, not
    /// copied), and gives the block back, also when `f` panics.
    fn with<R>(&mut self, f: impl FnOnce(&mut Plan) -> R) -> R {
        let Plan { mem, attached, .. } = &mut *self.host;
        let plan = &mut attached[self.id].plan;
        plan.mem = std::mem::take(mem);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(plan)));
        *mem = std::mem::take(&mut plan.mem);
        r.unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// Refuses a node that is the host's parameter (set it on the host).
    fn own(&self, node: NodeId) -> Result<(), JitError> {
        if self.host.attached[self.id].shared.contains(&node) {
            return Err(JitError::Feed(format!(
                "{node} is shared with the host plan: set it there"
            )));
        }
        Ok(())
    }

    /// Sets an input of the attached graph (not a shared one).
    pub fn set(&mut self, node: NodeId, t: &Tensor) -> Result<(), JitError> {
        self.own(node)?;
        self.with(|p| p.set(node, t))
    }
    /// Sets an f32 input from a slice.
    pub fn set_f32(&mut self, node: NodeId, v: &[f32]) -> Result<(), JitError> {
        self.own(node)?;
        self.with(|p| p.set_f32(node, v))
    }
    /// Sets an i64 input from a slice.
    pub fn set_i64(&mut self, node: NodeId, v: &[i64]) -> Result<(), JitError> {
        self.own(node)?;
        self.with(|p| p.set_i64(node, v))
    }
    /// An input or requested output (a shared input reads the host's buffer).
    pub fn get(&mut self, node: NodeId) -> Result<Tensor, JitError> {
        self.with(|p| p.get(node))
    }
    /// A dense f32 value without copying (a shared input: the host's buffer itself).
    pub fn f32_slice(&self, node: NodeId) -> Option<&[f32]> {
        match self.host.attached[self.id].plan.values.get(&node)? {
            (Val::F(l), _) if l.is_dense() => Some(&self.host.mem[l.off..l.off + l.numel()]),
            _ => None,
        }
    }
    /// Runs the attached plan's steps on the host's memory, then its carries.
    pub fn run(&mut self) -> Result<(), JitError> {
        self.with(|p| p.run())
    }
    pub fn stats(&self) -> &PlanStats {
        self.host.attached[self.id].plan.stats()
    }
}
