//! `compile`: the pipeline from a graph to a [`Plan`]. The ir passes (pretransposed weights,
//! fold, CSE, DCE, ...) -> elementwise fusion -> the four lowering phases ([`crate::lower`]:
//! placement -> selection -> scheduling -> assembly) -> the plan.
use std::collections::HashMap;
use std::time::Instant;

use trellis_ir::ops::Input;
use trellis_ir::{passes, DType, Graph, NodeId};

use crate::fusion::{fuse, is_elementwise, Unit};
use crate::kernel::KernelCache;
use crate::lower::{Assembly, Placement, Schedule, Selection};
use crate::plan::{Explain, Plan, Profile};
use crate::step::Val;
use crate::JitError;

/// What to compile besides the graph's outputs.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// `(input, value)`: after each run, the input (a parameter or optimiser state) takes the
    /// value's result. This is how a training step updates its weights.
    pub updates: Vec<(NodeId, NodeId)>,
    /// Threads for GEMMs and large kernels.
    pub threads: usize,
    /// Fuse elementwise ops into kernels (off: one kernel per op, for testing).
    pub fuse: bool,
    /// Recompute a unary value in the kernel that reads it far later (an LSTM's `tanh(c)` in
    /// its backward kernel) instead of keeping it in memory, where its operand is kept until
    /// then anyway ([`crate::remat`]; on the AVX-512 code, with `fuse`). Off, for comparison.
    pub remat: bool,
    /// Most bytes the plan's memory may take (persistent values + arena); compiling fails
    /// with [`JitError::MemoryLimit`] before allocating more. `None`: the memory available on
    /// the machine when compiling (`MemAvailable` on Linux; unlimited where unknown).
    pub memory_limit: Option<usize>,
    /// Keep the optimised graph the plan was lowered from ([`Plan::graph`]) and each fused
    /// kernel's source nodes, which [`Plan::explain`] lists by op and name. Off, lowering
    /// records neither (a list per kernel step, hundreds of thousands of them at long T).
    pub keep_graph: bool,
}

impl CompileOptions {
    /// These options with a memory limit of `bytes`.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = Some(bytes);
        self
    }
    /// The limit in force and what it is, for errors.
    pub(crate) fn resolved_memory_limit(&self) -> (usize, &'static str) {
        match self.memory_limit {
            Some(b) => (b, "the memory limit set"),
            None => match crate::memory::available_bytes() {
                Some(b) => (b, "the memory available"),
                None => (usize::MAX, "the address space"),
            },
        }
    }
}

impl Default for CompileOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        CompileOptions {
            updates: Vec::new(),
            threads,
            fuse: true,
            remat: true,
            memory_limit: None,
            keep_graph: false,
        }
    }
}

/// Compiles `graph` (outputs: `graph.outputs()`) into a [`Plan`].
pub fn compile(graph: &Graph, opts: &CompileOptions) -> Result<Plan, JitError> {
    let t0 = Instant::now();
    let laps = trellis_ir::timing::Laps::new("compile");
    // Every size below is computed from these types: an impossible one stops here, named.
    for n in graph.node_ids() {
        graph.ty(n).check_size(|| graph.describe(n))?;
    }
    let mut g = graph.clone();
    let mut outputs: Vec<NodeId> = graph.outputs().to_vec();
    for &(target, value) in &opts.updates {
        let ok = graph
            .get(target)
            .is_some_and(|n| n.op.as_any().is::<Input>());
        if !ok || !graph.contains(value) || graph.ty(target) != graph.ty(value) {
            return Err(JitError::Unsupported(format!(
                "update {target} <- {value}: the target must be an input of the value's type"
            )));
        }
        outputs.push(value);
    }
    let requested = outputs.clone();
    g.set_outputs(outputs);
    let lap = |what: &str| laps.lap(what, format_args!(""));
    lap("clone");
    passes::pretranspose_weights(&mut g);
    passes::optimize(&mut g);
    lap("optimize");
    // Requested node -> its node in the optimised graph (CSE may have merged it).
    let remap: HashMap<NodeId, NodeId> = requested
        .iter()
        .copied()
        .zip(g.outputs().iter().copied())
        .collect();
    for n in g.node_ids() {
        let ty = g.ty(n);
        if !matches!(ty.dtype, DType::F32 | DType::I64) {
            return Err(JitError::Unsupported(format!(
                "node {}: {ty}: the JIT compiles f32 graphs (and i64 ids)",
                g.describe(n)
            )));
        }
    }
    let mut order = crate::order::node_order(&g);
    let units = if opts.fuse {
        // Chained polynomials are split into kernels of one level each where the kernels run
        // a loop per node; the register-allocated code overlaps them itself.
        let split_chains = KernelCache::shared()?
            .lock()
            .map_err(|_| JitError::Unsupported("kernel cache poisoned".into()))?
            .backend()
            .splits_transcendental_chains();
        let none = Default::default();
        let units = fuse(&g, &order, split_chains, |n| is_elementwise(&g, n), &none);
        // A recomputed value adds a polynomial to its reader's kernel: only where that kernel
        // is not cut at each one (the register-allocated code).
        let clones = if split_chains || !opts.remat {
            none
        } else {
            crate::remat::rematerialize(&mut g, &units)
        };
        if clones.is_empty() {
            units
        } else {
            lap("fusion (first)");
            order = crate::order::node_order(&g);
            fuse(&g, &order, split_chains, |n| is_elementwise(&g, n), &clones)
        }
    } else {
        order
            .iter()
            .map(|&n| {
                if is_elementwise(&g, n) {
                    Unit::Group(vec![n])
                } else {
                    Unit::Single(n)
                }
            })
            .collect()
    };
    lap("fusion");
    let placement = Placement::new(&g, &order, &units, opts.resolved_memory_limit())?;
    let selection = Selection::new(placement, &units, opts.keep_graph)?;
    lap("lowering");
    let mut pinned: Vec<NodeId> = g.outputs().to_vec();
    pinned.extend(opts.updates.iter().map(|u| remap[&u.1]));
    let threads = opts.threads.max(1);
    let schedule = Schedule::new(selection, threads, &pinned, !opts.updates.is_empty())?;
    let a = Assembly::new(schedule)?;
    let mut plan = Plan {
        split_runs: a.split_runs,
        invariant: a.invariant,
        params_dirty: true,
        data_inputs: g.inputs().iter().copied().collect(),
        steps: a.steps,
        mem: a.mem,
        ints: a.ints,
        values: a.values,
        inputs: a.inputs,
        updates: Vec::new(),
        id_checks: a.id_checks,
        threads,
        stats: a.stats,
        profile: Profile::default(),
        explain: Explain::default(),
        attached: Vec::new(),
    };
    for (orig, new) in &remap {
        if let Some((v, ty)) = plan.values.get(new) {
            let (v, ty) = (*v, ty.clone());
            plan.values.insert(*orig, v, &ty);
        }
    }
    for &(target, value) in &opts.updates {
        let Some((&Val::F(t), _)) = plan.values.get(&target) else {
            return Err(JitError::Unsupported(format!(
                "update of {target}: only f32 inputs can be updated"
            )));
        };
        let Some((&Val::F(v), _)) = plan.values.get(&remap[&value]) else {
            unreachable!("f32 by type check")
        };
        if v != t {
            plan.updates.push((t, v)); // not computed in place: copied after the run
        }
    }
    lap("finish");
    plan.stats.nodes = g.node_count();
    plan.explain = Explain {
        sources: a.sources.into_iter().flatten().collect(),
        graph: opts.keep_graph.then_some(g),
    };
    // The optimised graph and the lowering's tables are gone: give their pages back before
    // the arena is touched.
    crate::memory::release_freed_heap();
    plan.stats.compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    Ok(plan)
}
