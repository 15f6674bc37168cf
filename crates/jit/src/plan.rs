//! [`Plan`]: a compiled graph's steps over one memory block, and its API: set inputs, run
//! (split runs on both cores, parameter-only steps cached), read outputs, profile, explain.
//! `compile` builds it; `attach` adds plans that run on its memory.
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rustc_hash::FxHashMap;
use trellis_ir::{Graph, NodeId, Tensor};

use crate::loc::Loc;
use crate::memory::SendPtr;
use crate::split::rows_of;
use crate::stats::PlanStats;
use crate::step::{check_run_ids, exec_rows, prefetch_inputs, read, split_rows, write, Step, Val};
use crate::table::Values;
use crate::JitError;

/// Seconds spent per kind of step over the runs since the last reset.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub gemm_s: f64,
    pub kernel_s: f64,
    pub other_s: f64,
    /// Runs of steps split across both cores (GEMMs and kernels of the recurrences).
    pub split_s: f64,
    /// Inside the split runs, the first core's time in GEMMs and in kernels (the rest of
    /// `split_s` is waiting for the other core and prefetching).
    pub split_gemm_s: f64,
    pub split_kernel_s: f64,
    pub runs: usize,
    /// Seconds per step, in step order.
    pub per_step: Vec<f64>,
}

/// A compiled graph: steps over one memory block (persistent values, then the arena).
pub struct Plan {
    pub(crate) steps: Vec<Step>,
    pub(crate) mem: Vec<f32>,
    pub(crate) ints: Vec<Vec<i64>>,
    pub(crate) values: Values,
    pub(crate) inputs: HashMap<NodeId, String>,
    pub(crate) updates: Vec<(Loc, Loc)>,
    /// `(i64 input slot, vocabulary, gather node)`: ids checked before any step runs.
    pub(crate) id_checks: Vec<(usize, usize, String)>,
    pub(crate) threads: usize,
    /// Step ranges run as two half-batch chains, one per core (see `split`).
    pub(crate) split_runs: Vec<(usize, usize)>,
    /// Steps that depend on parameters and constants only, skipped while no parameter has
    /// been set since the last run (never in a plan that updates its parameters).
    pub(crate) invariant: Vec<bool>,
    pub(crate) params_dirty: bool,
    /// Data inputs (setting one leaves the parameter-only steps' results valid).
    pub(crate) data_inputs: HashSet<NodeId>,
    pub(crate) stats: PlanStats,
    pub(crate) profile: Profile,
    pub(crate) explain: Explain,
    /// Plans running on this plan's memory, reading its parameters (see `attach.rs`).
    pub(crate) attached: Vec<AttachedPlan>,
}

/// An attached plan as its host keeps it: the plan (its `mem` empty between runs) and the
/// nodes that are the host's parameters.
pub(crate) struct AttachedPlan {
    pub(crate) plan: Plan,
    pub(crate) shared: HashSet<NodeId>,
}

/// What [`Plan::explain`] reads when [`crate::CompileOptions::keep_graph`] asked for it:
/// each fused kernel step's source nodes and the optimised graph.
#[derive(Default)]
pub(crate) struct Explain {
    pub(crate) sources: FxHashMap<usize, Vec<NodeId>>,
    pub(crate) graph: Option<Graph>,
}

impl Plan {
    pub fn stats(&self) -> &PlanStats {
        &self.stats
    }
    pub fn arena_bytes(&self) -> usize {
        self.stats.arena_bytes
    }
    pub fn profile(&self) -> &Profile {
        &self.profile
    }
    /// Number of steps the plan runs.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }
    /// A one-line description of step `i` (kind and extents), for profiles.
    pub fn describe_step(&self, i: usize) -> String {
        match &self.steps[i] {
            Step::Gemm {
                m,
                n,
                k,
                ta,
                tb,
                panels,
                ..
            } => format!(
                "gemm {m}x{n}x{k} ta={ta} tb={tb}{}",
                if panels.is_some() { " (panels)" } else { "" }
            ),
            Step::Pack { src, .. } => format!("pack panels {}x{}", src.rows, src.cols),
            Step::Kernel {
                kernel,
                rows,
                cols,
                ins,
                outs,
            } => {
                format!(
                    "kernel {rows}x{cols} ins {} outs {} ({} bcast) {:?} -> {:?}",
                    ins.len(),
                    outs.len(),
                    kernel.col_broadcast().len(),
                    ins.iter().map(|l| (l.off, l.rs)).collect::<Vec<_>>(),
                    outs.iter().map(|l| (l.off, l.rs)).collect::<Vec<_>>()
                )
            }
            Step::Gather { node, .. } => format!("gather {node}"),
            Step::ScatterAdd { node, .. } => format!("scatter_add {node}"),
            Step::Reduce {
                src,
                mode,
                fold,
                out,
                ..
            } => {
                format!(
                    "reduce {fold:?} {:?} {}x{} {} -> {}",
                    mode, src.rows, src.cols, src.off, out.off
                )
            }
            Step::Fallback { node, .. } => format!("fallback {node}"),
            Step::Transpose { src, .. } => format!("transpose {}x{}", src.rows, src.cols),
            Step::TransposeRows { src, d0, d1, .. } => {
                format!("transpose rows {d0}x{d1} of {}", src.cols)
            }
            Step::TransposeIds { rows, cols, .. } => format!("transpose ids {rows}x{cols}"),
            Step::Copies { pairs } => {
                let (r, c) = pairs.first().map_or((0, 0), |p| (p.1.rows, p.1.cols));
                format!("copies {} blocks of {r}x{c}", pairs.len())
            }
        }
    }

    /// The optimised graph the plan was lowered from (node ids in [`Plan::explain`] are its),
    /// when compiled with [`crate::CompileOptions::keep_graph`].
    pub fn graph(&self) -> Option<&Graph> {
        self.explain.graph.as_ref()
    }

    /// Every step, one per line: its kind and extents ([`Plan::describe_step`]) and, for a
    /// fused kernel, its formula (`x0, x1, ..` its inputs, `y0, ..` its outputs) and, when
    /// compiled with [`crate::CompileOptions::keep_graph`], the nodes it computes
    /// (`%12 (sigmoid)`).
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.steps.iter().enumerate() {
            out.push_str(&format!("{i:4}: {}\n", self.describe_step(i)));
            let Step::Kernel { kernel, .. } = s else {
                continue;
            };
            out.push_str(&format!("      formula: {}\n", kernel.expr().formula()));
            if let (Some(nodes), Some(g)) = (self.explain.sources.get(&i), &self.explain.graph) {
                let names: Vec<String> = nodes.iter().map(|&n| g.describe(n)).collect();
                out.push_str(&format!("      nodes: {}\n", names.join(", ")));
            }
        }
        out
    }

    pub fn reset_profile(&mut self) {
        self.profile = Profile::default();
    }

    /// The value of an input, a parameter or a requested output (after [`Plan::run`]).
    pub fn get(&self, node: NodeId) -> Result<Tensor, JitError> {
        let (v, ty) = self.values.get(&node).ok_or_else(|| {
            JitError::Feed(format!("{node} is not an input or output of this plan"))
        })?;
        Ok(match *v {
            Val::F(l) => Tensor::f32(ty.shape.clone(), read(&self.mem, l))?,
            Val::I(s) => Tensor::i64(ty.shape.clone(), self.ints[s.slot][s.range()].to_vec())?,
        })
    }

    /// Sets an input or a parameter; its type must match the graph's.
    pub fn set(&mut self, node: NodeId, t: &Tensor) -> Result<(), JitError> {
        let name = self
            .inputs
            .get(&node)
            .ok_or_else(|| JitError::Feed(format!("{node} is not an input of this plan")))?;
        let (v, ty) = self.values.get(&node).expect("an input has a value");
        if *ty != t.ty() {
            return Err(JitError::Feed(format!(
                "input '{name}' expects {ty}, got {}",
                t.ty()
            )));
        }
        match *v {
            Val::F(l) => write(&mut self.mem, l, t.as_f32().expect("f32 by type")),
            Val::I(s) => {
                self.ints[s.slot][s.range()].copy_from_slice(t.as_i64().expect("i64 by type"))
            }
        }
        self.note_set(node);
        Ok(())
    }

    /// Parameters of this plan changed (set, or updated by a run): attached plans recompute
    /// their parameter-only steps.
    pub(crate) fn params_changed(&mut self) {
        for a in &mut self.attached {
            a.plan.params_dirty = true;
        }
    }

    /// A parameter changed: the parameter-only steps run again at the next run.
    fn note_set(&mut self, node: NodeId) {
        if !self.data_inputs.contains(&node) {
            self.params_dirty = true;
            self.params_changed();
        }
    }

    /// Sets an f32 input from a slice (no tensor allocation), checking its length.
    pub fn set_f32(&mut self, node: NodeId, v: &[f32]) -> Result<(), JitError> {
        match self.values.get(&node) {
            Some((Val::F(l), ty)) if self.inputs.contains_key(&node) && ty.numel() == v.len() => {
                let l = *l;
                write(&mut self.mem, l, v);
                self.note_set(node);
                Ok(())
            }
            _ => Err(JitError::Feed(format!(
                "{node}: not an f32 input of {} elements",
                v.len()
            ))),
        }
    }

    /// Sets an i64 input from a slice, checking its length.
    pub fn set_i64(&mut self, node: NodeId, v: &[i64]) -> Result<(), JitError> {
        match self.values.get(&node) {
            Some((Val::I(s), ty)) if self.inputs.contains_key(&node) && ty.numel() == v.len() => {
                let s = *s;
                self.ints[s.slot][s.range()].copy_from_slice(v);
                self.note_set(node);
                Ok(())
            }
            _ => Err(JitError::Feed(format!(
                "{node}: not an i64 input of {} elements",
                v.len()
            ))),
        }
    }

    /// A dense f32 value (input, parameter or output) without copying, when it is contiguous.
    pub fn f32_slice(&self, node: NodeId) -> Option<&[f32]> {
        match self.values.get(&node)? {
            (Val::F(l), _) if l.is_dense() => Some(&self.mem[l.off..l.off + l.numel()]),
            _ => None,
        }
    }

    /// Runs every step, then applies the updates. Runs on trellis' worker threads with
    /// subnormals flushed to zero (see [`crate::fpmode`]); the caller's floating-point state is
    /// left as it was.
    pub fn run(&mut self) -> Result<(), JitError> {
        crate::fpmode::run_flushed(|| self.run_steps())?
    }

    fn run_steps(&mut self) -> Result<(), JitError> {
        for (slot, vocab, node) in &self.id_checks {
            trellis_ir::ops::check_ids("gather", &self.ints[*slot], *vocab)
                .map_err(|e| JitError::Ir(e.at(node.clone())))?;
        }
        // `reset_profile` empties it; every step's slot exists before the loop.
        self.profile.per_step.resize(self.steps.len(), 0.0);
        let mut t = Instant::now();
        let split_runs = std::mem::take(&mut self.split_runs);
        let mut runs = split_runs.iter().copied().peekable();
        let mut i = 0;
        let skip_invariant = !self.params_dirty;
        while i < self.steps.len() {
            if skip_invariant && self.invariant[i] {
                i += 1;
                continue;
            }
            let (kind, next) = match runs.peek().copied() {
                Some((a, b)) if a == i => {
                    runs.next();
                    check_run_ids(&self.steps[a..b], &self.ints)?;
                    let times = self.exec_split(a, b);
                    // Each step of the run gets the first core's time in it; the run's head
                    // also gets the rest (waiting for the other core, prefetching).
                    for (j, dt) in times.into_iter().enumerate() {
                        match self.steps[a + j] {
                            Step::Gemm { .. } => self.profile.split_gemm_s += dt,
                            _ => self.profile.split_kernel_s += dt,
                        }
                        self.profile.per_step[a + j] += dt;
                        self.profile.per_step[a] -= dt;
                    }
                    (3, b)
                }
                _ => (
                    self.steps[i].exec(&mut self.mem, &mut self.ints, self.threads)?,
                    i + 1,
                ),
            };
            let now = Instant::now();
            let dt = (now - t).as_secs_f64();
            t = now;
            self.profile.per_step[i] += dt;
            match kind {
                0 => self.profile.gemm_s += dt,
                1 => self.profile.kernel_s += dt,
                3 => self.profile.split_s += dt,
                _ => self.profile.other_s += dt,
            }
            i = next;
        }
        self.split_runs = split_runs;
        self.params_dirty = false;
        for k in 0..self.updates.len() {
            let (target, value) = self.updates[k];
            let v = read(&self.mem, value);
            write(&mut self.mem, target, &v);
        }
        if !self.updates.is_empty() {
            self.params_changed();
        }
        self.profile.other_s += t.elapsed().as_secs_f64();
        self.profile.runs += 1;
        Ok(())
    }

    /// Runs steps `a..b` as two half-batch chains, one per core (`split_runs` proved the
    /// halves independent). Returns the lower half's seconds in each step.
    fn exec_split(&mut self, a: usize, b: usize) -> Vec<f64> {
        let base = SendPtr(self.mem.as_mut_ptr());
        let (steps, ints) = (&self.steps[a..b], &self.ints[..]);
        let half = |upper: bool| {
            let mut times = Vec::with_capacity(if upper { 0 } else { steps.len() });
            // This thread's rows of a step.
            let own = |s: &Step| {
                let rows = split_rows(s);
                if upper {
                    (rows / 2, rows)
                } else {
                    (0, rows / 2)
                }
            };
            for (i, s) in steps.iter().enumerate() {
                let (r0, r1) = own(s);
                if let (Step::Gemm { c, .. }, Some(next)) = (s, steps.get(i + 1)) {
                    let (n0, n1) = own(next);
                    prefetch_inputs(next, n0, n1, rows_of(c, r0, r1), base, ints);
                }
                let t = Instant::now();
                exec_rows(s, r0, r1, base, ints);
                if !upper {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
            times
        };
        rayon::join(|| half(false), || half(true)).0
    }
}
