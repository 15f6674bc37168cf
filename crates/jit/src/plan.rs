//! `compile`: lowers an optimised graph to a [`Plan`] of GEMM calls, fused Cranelift kernels
//! and a few dedicated loops over one memory block; `Plan::run` executes it.
//!
//! Lowering, in order: ir passes (fold, CSE, DCE) -> elementwise fusion -> placement (views,
//! concat inputs written in place) -> steps -> memory plan (arena by liveness).
use crate::fusion::{fuse, is_elementwise, Unit};
use crate::gemm::{sgemm, Mat};
use crate::loc::Loc;
use crate::memory::{self, Interval};
use crate::split::{rows_of, span, HalfIo, RunBuilder};
use crate::{JitError, Kernel, KernelCache, KernelSpec};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use trellis_ir::ops::{
    BroadcastTo, Concat, Constant, Fill, Gather, Input, MatMul, Reduce, ReduceKind, Reshape,
    ScatterAdd, Slice, SumTo,
};
use trellis_ir::{passes, DType, Graph, NodeId, Op, Scalar, ScalarFn, Shape, Tensor, TensorType};

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
        }
    }
}

/// Counts and sizes of a compiled plan.
#[derive(Clone, Debug, Default)]
pub struct PlanStats {
    pub nodes: usize,
    pub gemms: usize,
    pub kernel_steps: usize,
    /// Distinct compiled kernels the plan uses.
    pub kernels: usize,
    pub other_steps: usize,
    /// Ops run through their reference `eval` (no dedicated lowering), by op name.
    pub fallbacks: HashMap<String, usize>,
    /// Steps that run as two half-batch chains on two cores.
    pub split_steps: usize,
    pub arena_bytes: usize,
    pub persistent_bytes: usize,
    pub compile_ms: f64,
}

/// Seconds spent per kind of step over the runs since the last reset.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub gemm_s: f64,
    pub kernel_s: f64,
    pub other_s: f64,
    /// Runs of steps split across both cores (GEMMs and kernels of the recurrences).
    pub split_s: f64,
    pub runs: usize,
    /// Seconds per step, in step order.
    pub per_step: Vec<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReduceMode {
    /// `out[c] = sum_r x[r, c]`
    Rows,
    /// `out[r] = sum_c x[r, c]`
    Cols,
}

/// A value of the plan: f32 values live in `mem`, i64 values (token ids) in `ints`.
#[derive(Clone, Copy, Debug)]
enum Val {
    F(Loc),
    I(usize),
}

enum Step {
    Gemm {
        m: usize,
        n: usize,
        k: usize,
        a: Loc,
        ta: bool,
        b: Loc,
        tb: bool,
        c: Loc,
    },
    Kernel {
        kernel: Arc<Kernel>,
        rows: usize,
        cols: usize,
        ins: Vec<Loc>,
        outs: Vec<Loc>,
    },
    Gather {
        table: Loc,
        vocab: usize,
        ids: usize,
        out: Loc,
        node: String,
    },
    ScatterAdd {
        ids: usize,
        src: Loc,
        rows: usize,
        out: Loc,
        node: String,
    },
    Reduce {
        src: Loc,
        mode: ReduceMode,
        scale: f32,
        out: Loc,
    },
    Fallback {
        op: Arc<dyn Op>,
        ins: Vec<(Val, TensorType)>,
        out: Val,
        node: String,
    },
}

impl Step {
    fn reads(&self) -> Vec<Loc> {
        match self {
            Step::Gemm { a, b, .. } => vec![*a, *b],
            Step::Kernel { ins, .. } => ins.clone(),
            Step::Gather { table, .. } => vec![*table],
            Step::ScatterAdd { src, .. } => vec![*src],
            Step::Reduce { src, .. } => vec![*src],
            Step::Fallback { ins, .. } => ins
                .iter()
                .filter_map(|(v, _)| if let Val::F(l) = v { Some(*l) } else { None })
                .collect(),
        }
    }
    fn writes(&self) -> Vec<Loc> {
        match self {
            Step::Gemm { c, .. } => vec![*c],
            Step::Kernel { outs, .. } => outs.clone(),
            Step::Gather { out, .. } | Step::ScatterAdd { out, .. } | Step::Reduce { out, .. } => {
                vec![*out]
            }
            Step::Fallback { out: Val::F(l), .. } => vec![*l],
            Step::Fallback { .. } => vec![],
        }
    }
}

/// The process-wide kernel cache: Cranelift code memory is never freed, so every plan shares
/// one module and each distinct kernel is compiled once.
fn kernel_cache() -> Result<&'static Mutex<KernelCache>, JitError> {
    static CACHE: OnceLock<Mutex<KernelCache>> = OnceLock::new();
    if let Some(c) = CACHE.get() {
        return Ok(c);
    }
    let c = KernelCache::new()?;
    Ok(CACHE.get_or_init(|| Mutex::new(c)))
}

/// A compiled graph: steps over one memory block (persistent values, then the arena).
pub struct Plan {
    steps: Vec<Step>,
    mem: Vec<f32>,
    ints: Vec<Vec<i64>>,
    values: HashMap<NodeId, (Val, TensorType)>,
    inputs: HashMap<NodeId, String>,
    updates: Vec<(Loc, Loc)>,
    /// `(i64 input slot, vocabulary, gather node)`: ids checked before any step runs.
    id_checks: Vec<(usize, usize, String)>,
    threads: usize,
    /// Step ranges run as two half-batch chains, one per core (see `split`).
    split_runs: Vec<(usize, usize)>,
    stats: PlanStats,
    profile: Profile,
}

/// Compiles `graph` (outputs: `graph.outputs()`) into a [`Plan`].
pub fn compile(graph: &Graph, opts: &CompileOptions) -> Result<Plan, JitError> {
    let t0 = Instant::now();
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
    let timing = std::env::var_os("TRELLIS_COMPILE_TIMING").is_some();
    let lap = |what: &str| {
        if timing {
            eprintln!(
                "compile: {what} at {:.1} ms",
                t0.elapsed().as_secs_f64() * 1e3
            );
        }
    };
    lap("clone");
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
    let order = g.topo_order();
    let units = if opts.fuse {
        fuse(&g, &order, |n| is_elementwise(&g, n))
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
    let mut b = Builder::new(&g, opts.threads);
    b.place_leaves(&order)?;
    b.place_concats(&order, &units);
    b.updates = opts.updates.iter().map(|&(t, v)| (remap[&v], t)).collect();
    for u in &units {
        match u {
            Unit::Single(n) => {
                b.single(*n)?;
                b.done.insert(*n);
            }
            Unit::Group(members) => {
                b.group(members)?;
                b.done.extend(members.iter().copied());
            }
        }
    }
    lap("lowering");
    let mut pinned: Vec<NodeId> = g.outputs().to_vec();
    pinned.extend(opts.updates.iter().map(|u| remap[&u.1]));
    let mut plan = b.finish(&pinned)?;
    for (orig, new) in &remap {
        if let Some(v) = plan.values.get(new).cloned() {
            plan.values.insert(*orig, v);
        }
    }
    for &(target, value) in &opts.updates {
        let (Val::F(t), _) = plan.values[&target] else {
            return Err(JitError::Unsupported(format!(
                "update of {target}: only f32 inputs can be updated"
            )));
        };
        let (Val::F(v), _) = plan.values[&remap[&value]] else {
            unreachable!("f32 by type check")
        };
        if v != t {
            plan.updates.push((t, v)); // not computed in place: copied after the run
        }
    }
    lap("finish");
    plan.stats.nodes = g.node_count();
    plan.stats.compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    Ok(plan)
}

/// Lowering state: values placed so far, the steps, the buffers (roots) created.
struct Builder<'g> {
    g: &'g Graph,
    vals: HashMap<NodeId, Val>,
    /// Nodes whose location a concat user decided (they are written in place).
    placed: HashSet<NodeId>,
    steps: Vec<Step>,
    /// Size of each root buffer; root 0 is the persistent region.
    roots: Vec<usize>,
    persistent: Vec<f32>,
    ints: Vec<Vec<i64>>,
    inputs: HashMap<NodeId, String>,
    id_checks: Vec<(usize, usize, String)>,
    kernels: HashSet<*const Kernel>,
    threads: usize,
    stats: PlanStats,
    /// `value -> input` of the plan's updates.
    updates: HashMap<NodeId, NodeId>,
    /// Nodes already lowered (their steps come before any step emitted now).
    done: HashSet<NodeId>,
}

impl<'g> Builder<'g> {
    fn new(g: &'g Graph, threads: usize) -> Self {
        Builder {
            g,
            vals: HashMap::new(),
            placed: HashSet::new(),
            steps: Vec::new(),
            roots: vec![0],
            persistent: Vec::new(),
            ints: Vec::new(),
            inputs: HashMap::new(),
            id_checks: Vec::new(),
            kernels: HashSet::new(),
            threads: threads.max(1),
            stats: PlanStats::default(),
            updates: HashMap::new(),
            done: HashSet::new(),
        }
    }

    fn shape(&self, n: NodeId) -> &Shape {
        &self.g.ty(n).shape
    }
    fn loc(&self, n: NodeId) -> Loc {
        match self.vals[&n] {
            Val::F(l) => l,
            Val::I(_) => unreachable!("f32 value expected for {}", self.g.describe(n)),
        }
    }
    fn new_root(&mut self, shape: &Shape) -> Loc {
        self.roots.push(shape.numel());
        Loc::dense(self.roots.len() - 1, 0, shape)
    }
    fn persist(&mut self, shape: &Shape, data: &[f32]) -> Loc {
        let off = self.persistent.len().next_multiple_of(16);
        self.persistent.resize(off, 0.0);
        self.persistent.extend_from_slice(data);
        Loc::dense(0, off, shape)
    }
    /// The location node `n` is computed into: where a concat placed it, else a new buffer.
    fn out_loc(&mut self, n: NodeId) -> Loc {
        match self.vals.get(&n) {
            Some(Val::F(l)) if self.placed.contains(&n) => *l,
            _ => {
                let l = self.new_root(&self.g.ty(n).shape.clone());
                self.vals.insert(n, Val::F(l));
                l
            }
        }
    }

    /// Inputs, parameters, constants: persistent, set before any run.
    fn place_leaves(&mut self, order: &[NodeId]) -> Result<(), JitError> {
        for &n in order {
            let node = self.g.node(n);
            let any = node.op.as_any();
            let value: Option<Tensor> = if let Some(i) = any.downcast_ref::<Input>() {
                self.inputs.insert(n, i.name.clone());
                Some(Tensor::zeros(&node.ty))
            } else if let Some(c) = any.downcast_ref::<Constant>() {
                Some((*c.0).clone())
            } else {
                any.downcast_ref::<Fill>()
                    .map(|f| Tensor::full(&f.ty, f.value))
            };
            let Some(t) = value else { continue };
            let v = match t.dtype() {
                DType::I64 => {
                    self.ints.push(t.as_i64().expect("i64").to_vec());
                    Val::I(self.ints.len() - 1)
                }
                _ => Val::F(self.persist(t.shape(), &t.to_f32_vec())),
            };
            self.vals.insert(n, v);
        }
        Ok(())
    }

    /// Decides, from the last concat back, which concat inputs are computed straight into the
    /// concat's memory (DESIGN point 3: step tensors contiguous, no copies).
    fn place_concats(&mut self, order: &[NodeId], units: &[Unit]) {
        // Nodes whose producer can write a strided window: GEMM and kernel outputs, concats.
        let mut strided_ok: HashSet<NodeId> = HashSet::new();
        for u in units {
            if let Unit::Group(m) = u {
                strided_ok.extend(m.iter().copied());
            }
        }
        let is = |n: NodeId, f: fn(&dyn std::any::Any) -> bool| f(self.g.op(n).as_any());
        for &n in order {
            if is(n, |a| a.is::<MatMul>() || a.is::<Concat>()) {
                strided_ok.insert(n);
            }
        }
        let leafish = |b: &Self, n: NodeId| {
            b.vals.contains_key(&n)
                || is(n, |a| {
                    a.is::<Reshape>() || a.is::<Slice>() || a.is::<BroadcastTo>()
                })
        };
        for &c in order.iter().rev() {
            let Some(cat) = self.g.op(c).as_any().downcast_ref::<Concat>() else {
                continue;
            };
            if self.g.ty(c).dtype != DType::F32 {
                continue;
            }
            let shape = self.shape(c).clone();
            let d = shape.dims().to_vec();
            let axis = cat.axis;
            let col = axis + 1 == d.len() && d.len() >= 2;
            let row = !col && d[..axis].iter().all(|&x| x == 1);
            if !col && !row {
                continue;
            }
            let base = match self.vals.get(&c) {
                Some(Val::F(l)) => *l,
                _ => {
                    let l = self.new_root(&shape);
                    self.vals.insert(c, Val::F(l));
                    l
                }
            };
            let per: usize = if row {
                d[axis + 1..d.len() - 1].iter().product()
            } else {
                1
            };
            let mut at = 0;
            for &x in self.g.operands(c) {
                let len = self.g.ty(x).dims()[axis];
                let win = if col {
                    base.window(0, at, base.rows, len)
                } else {
                    base.window(at * per, 0, len * per, base.cols)
                };
                at += len;
                let strided = !win.is_dense();
                if self.placed.contains(&x)
                    || leafish(self, x)
                    || (strided && !strided_ok.contains(&x))
                {
                    continue;
                }
                self.vals.insert(x, Val::F(win));
                self.placed.insert(x);
            }
        }
    }

    /// Lowers one non-fused node.
    fn single(&mut self, n: NodeId) -> Result<(), JitError> {
        let g = self.g;
        let node = g.node(n);
        let any = node.op.as_any();
        if any.is::<Input>() || any.is::<Constant>() || any.is::<Fill>() {
            return Ok(());
        }
        let ops: Vec<NodeId> = node.inputs.to_vec();
        let f32 = node.ty.dtype == DType::F32;
        // Views: no step, a window on the operand's memory.
        if f32 && !self.placed.contains(&n) {
            let view = if let Some(r) = any.downcast_ref::<Reshape>() {
                self.loc(ops[0]).reshape(&r.shape)
            } else if let Some(s) = any.downcast_ref::<Slice>() {
                self.loc(ops[0])
                    .slice(self.shape(ops[0]), s.axis, s.start, s.end)
            } else if let Some(b) = any.downcast_ref::<BroadcastTo>() {
                self.loc(ops[0]).broadcast(self.shape(ops[0]), &b.shape)
            } else {
                None
            };
            if let Some(v) = view {
                self.vals.insert(n, Val::F(v));
                return Ok(());
            }
        }
        if let Some(mm) = any.downcast_ref::<MatMul>() {
            return self.matmul(n, mm, ops[0], ops[1]);
        }
        if any.is::<Concat>() && matches!(self.vals.get(&n), Some(Val::F(_))) {
            // Inputs not written in place are copied into their window.
            let base = self.loc(n);
            let cat = any.downcast_ref::<Concat>().expect("concat");
            let d = node.ty.dims().to_vec();
            let col = cat.axis + 1 == d.len() && d.len() >= 2;
            let per: usize = if col {
                1
            } else {
                d[cat.axis + 1..d.len() - 1].iter().product()
            };
            let mut at = 0;
            for &x in &ops {
                let len = g.ty(x).dims()[cat.axis];
                let win = if col {
                    base.window(0, at, base.rows, len)
                } else {
                    base.window(at * per, 0, len * per, base.cols)
                };
                at += len;
                if self.placed.contains(&x)
                    && self
                        .vals
                        .get(&x)
                        .is_some_and(|v| matches!(v, Val::F(l) if *l == win))
                {
                    continue;
                }
                let src = self.loc(x);
                self.copy(src, win)?;
            }
            return Ok(());
        }
        if f32 {
            if any.is::<Gather>() {
                if let (Val::F(table), Val::I(ids)) = (self.vals[&ops[0]], self.vals[&ops[1]]) {
                    if table.is_dense() {
                        let out = self.out_loc(n);
                        if out.is_dense() {
                            let vocab = g.ty(ops[0]).dims()[0];
                            self.note_id_check(ops[1], vocab, g.describe(n));
                            self.steps.push(Step::Gather {
                                table,
                                vocab,
                                ids,
                                out,
                                node: g.describe(n),
                            });
                            return Ok(());
                        }
                    }
                }
            }
            if let Some(s) = any.downcast_ref::<ScatterAdd>() {
                if let (Val::I(ids), Val::F(src)) = (self.vals[&ops[0]], self.vals[&ops[1]]) {
                    let out = self.out_loc(n);
                    if src.is_dense() && out.is_dense() {
                        self.note_id_check(ops[0], s.rows, g.describe(n));
                        self.steps.push(Step::ScatterAdd {
                            ids,
                            src,
                            rows: s.rows,
                            out,
                            node: g.describe(n),
                        });
                        return Ok(());
                    }
                }
            }
            if let Some((mode, scale, view)) = self.reduction(n, ops[0]) {
                let out = self.out_loc(n);
                if out.is_dense() {
                    self.steps.push(Step::Reduce {
                        src: view,
                        mode,
                        scale,
                        out,
                    });
                    return Ok(());
                }
            }
        }
        self.fallback(n)
    }

    /// Ids reaching a gather through layout ops from an i64 input are checked before any step.
    fn note_id_check(&mut self, ids: NodeId, vocab: usize, node: String) {
        let mut n = ids;
        loop {
            let any = self.g.op(n).as_any();
            if any.is::<Input>() {
                if let Val::I(slot) = self.vals[&n] {
                    self.id_checks.push((slot, vocab, node));
                }
                return;
            }
            let layout =
                any.is::<Reshape>() || any.is::<trellis_ir::ops::Transpose>() || any.is::<Slice>();
            if !layout {
                return;
            }
            n = self.g.operands(n)[0];
        }
    }

    /// A sum (or mean) over leading or trailing axes, as a row- or column-reduction of a 2-D view.
    fn reduction(&self, n: NodeId, x: NodeId) -> Option<(ReduceMode, f32, Loc)> {
        let any = self.g.op(n).as_any();
        let xd = self.shape(x).dims().to_vec();
        let (axes, mean): (Vec<usize>, bool) = if let Some(r) = any.downcast_ref::<Reduce>() {
            (r.axes.to_vec(), r.kind == ReduceKind::Mean)
        } else if let Some(s) = any.downcast_ref::<SumTo>() {
            let off = xd.len() - s.shape.rank();
            (
                (0..xd.len())
                    .filter(|&i| i < off || (s.shape.dims()[i - off] == 1 && xd[i] != 1))
                    .collect(),
                false,
            )
        } else {
            return None;
        };
        // Size-1 axes do not matter: reduced axes must be a prefix or a suffix of the others.
        let live: Vec<usize> = (0..xd.len()).filter(|&i| xd[i] != 1).collect();
        let red: Vec<bool> = live.iter().map(|i| axes.contains(i)).collect();
        let k = red.iter().take_while(|&&r| r).count();
        let count: usize = axes.iter().map(|&a| xd[a]).product();
        let scale = if mean { 1.0 / count as f32 } else { 1.0 };
        let src = self.loc(x);
        let split = |p: usize| -> Option<Loc> {
            // View x as [outer, inner] with `p` leading live axes outer.
            let outer: usize = live[..p].iter().map(|&i| xd[i]).product();
            let inner: usize = live[p..].iter().map(|&i| xd[i]).product();
            if src.is_dense() {
                Some(Loc {
                    rows: outer,
                    cols: inner,
                    rs: inner,
                    cb: false,
                    ..src
                })
            } else if inner == src.cols && outer == src.rows && !src.cb {
                Some(src)
            } else {
                None
            }
        };
        if red.iter().all(|&r| r) {
            let v = split(0)?;
            return Some((ReduceMode::Cols, scale, v));
        }
        if red[k..].iter().all(|&r| !r) {
            return Some((ReduceMode::Rows, scale, split(k)?));
        }
        let j = red.iter().rev().take_while(|&&r| r).count();
        if red[..red.len() - j].iter().all(|&r| !r) {
            return Some((ReduceMode::Cols, scale, split(red.len() - j)?));
        }
        None
    }

    fn matmul(&mut self, n: NodeId, mm: &MatMul, a: NodeId, b: NodeId) -> Result<(), JitError> {
        let (la, lb) = (self.gemm_operand(a)?, self.gemm_operand(b)?);
        let c = self.out_loc(n);
        let k = if mm.transpose_a { la.rows } else { la.cols };
        self.steps.push(Step::Gemm {
            m: c.rows,
            n: c.cols,
            k,
            a: la,
            ta: mm.transpose_a,
            b: lb,
            tb: mm.transpose_b,
            c,
        });
        self.stats.gemms += 1;
        Ok(())
    }

    /// A matrix GEMM can read with strides: not broadcast; otherwise a dense copy.
    fn gemm_operand(&mut self, x: NodeId) -> Result<Loc, JitError> {
        let l = self.loc(x);
        if !l.cb && (l.rs > 0 || l.rows <= 1) && self.shape(x).rank() == 2 {
            return Ok(l);
        }
        let dst = self.new_root(&self.g.ty(x).shape.clone());
        self.copy(l, dst)?;
        Ok(dst)
    }

    /// `dst = src` elementwise through the identity kernel (handles strided and broadcast reads).
    fn copy(&mut self, src: Loc, dst: Loc) -> Result<(), JitError> {
        let mut e = ScalarFn::new(1);
        let x = e.input(0);
        e.output(x);
        let spec = KernelSpec {
            expr: e,
            col_broadcast: vec![src.cb],
        };
        self.kernel_step(spec, dst.rows, dst.cols, vec![src], vec![dst])
    }

    fn kernel_step(
        &mut self,
        spec: KernelSpec,
        rows: usize,
        cols: usize,
        ins: Vec<Loc>,
        outs: Vec<Loc>,
    ) -> Result<(), JitError> {
        let kernel = kernel_cache()?
            .lock()
            .map_err(|_| JitError::Unsupported("kernel cache poisoned".into()))?
            .get(&spec)?;
        self.kernels.insert(Arc::as_ptr(&kernel));
        self.stats.kernel_steps += 1;
        self.steps.push(Step::Kernel {
            kernel,
            rows,
            cols,
            ins,
            outs,
        });
        Ok(())
    }

    /// One fused kernel for a group of elementwise nodes of one shape.
    fn group(&mut self, members: &[NodeId]) -> Result<(), JitError> {
        let g = self.g;
        let shape = g.ty(members[0]).shape.clone();
        let (rows, cols) = crate::loc::grid(&shape);
        let set: HashSet<NodeId> = members.iter().copied().collect();
        let outputs_set: HashSet<NodeId> = g.outputs().iter().copied().collect();
        let mut expr = ScalarFn::new(0);
        let mut slot: HashMap<NodeId, u32> = HashMap::new();
        let mut ins: Vec<Loc> = Vec::new();
        let mut in_nodes: Vec<NodeId> = Vec::new();
        let mut inputs_pending: Vec<(NodeId, Loc)> = Vec::new();
        // First pass: external operands and their read views.
        for &m in members {
            for &o in g.operands(m) {
                if set.contains(&o) || in_nodes.contains(&o) {
                    continue;
                }
                let src = self.loc(o);
                let view = match src.broadcast(&g.ty(o).shape, &shape) {
                    Some(v) if v.rows == rows && v.cols == cols => v,
                    _ => {
                        // Not a grid broadcast: materialise it densely first.
                        let dst = self.new_root(&shape);
                        self.fallback_into(
                            Arc::new(BroadcastTo {
                                shape: shape.clone(),
                            }),
                            &[o],
                            Val::F(dst),
                            "broadcast".into(),
                        )?;
                        dst
                    }
                };
                in_nodes.push(o);
                inputs_pending.push((o, view));
            }
        }
        expr.n_inputs = inputs_pending.len();
        for (i, (o, v)) in inputs_pending.into_iter().enumerate() {
            let id = expr.push(Scalar::Input(i as u32));
            slot.insert(o, id);
            ins.push(v);
        }
        for &m in members {
            let f = g.op(m).scalar().expect("elementwise");
            let args: Vec<u32> = g.operands(m).iter().map(|o| slot[o]).collect();
            let out = expr.splice(&f, &args)[0];
            slot.insert(m, out);
        }
        let mut outs = Vec::new();
        for &m in members {
            let used_outside =
                outputs_set.contains(&m) || g.users(m).iter().any(|u| !set.contains(u));
            if used_outside {
                let l = self.out_loc(m);
                expr.output(slot[&m]);
                outs.push(l);
            }
        }
        let spec = KernelSpec {
            col_broadcast: ins.iter().map(|l| l.cb).collect(),
            expr,
        };
        self.kernel_step(spec, rows, cols, ins, outs)
    }

    fn fallback(&mut self, n: NodeId) -> Result<(), JitError> {
        let out = if self.g.ty(n).dtype == DType::I64 {
            self.ints.push(vec![0; self.g.ty(n).numel()]);
            let v = Val::I(self.ints.len() - 1);
            self.vals.insert(n, v);
            v
        } else {
            let l = self.out_loc(n);
            if !l.is_dense() {
                let tmp = self.new_root(&self.g.ty(n).shape.clone());
                let op = self.g.node(n).op.clone();
                self.fallback_into(
                    op,
                    &self.g.operands(n).to_vec(),
                    Val::F(tmp),
                    self.g.describe(n),
                )?;
                return self.copy(tmp, l);
            }
            Val::F(l)
        };
        let op = self.g.node(n).op.clone();
        self.fallback_into(op, &self.g.operands(n).to_vec(), out, self.g.describe(n))
    }

    fn fallback_into(
        &mut self,
        op: Arc<dyn Op>,
        operands: &[NodeId],
        out: Val,
        node: String,
    ) -> Result<(), JitError> {
        *self
            .stats
            .fallbacks
            .entry(op.name().to_string())
            .or_default() += 1;
        self.stats.other_steps += 1;
        let ins = operands
            .iter()
            .map(|o| (self.vals[o], self.g.ty(*o).clone()))
            .collect();
        self.steps.push(Step::Fallback { op, ins, out, node });
        Ok(())
    }
}

impl Builder<'_> {
    /// Liveness, the memory plan, absolute offsets: the finished [`Plan`].
    fn finish(self, pinned: &[NodeId]) -> Result<Plan, JitError> {
        let n_steps = self.steps.len();
        let nroots = self.roots.len();
        let (mut def, mut last) = (vec![usize::MAX; nroots], vec![0usize; nroots]);
        for (i, s) in self.steps.iter().enumerate() {
            for l in s.writes() {
                def[l.root] = def[l.root].min(i);
                last[l.root] = last[l.root].max(i);
            }
            for l in s.reads() {
                def[l.root] = def[l.root].min(i);
                last[l.root] = last[l.root].max(i);
            }
        }
        for n in pinned {
            if let Some(Val::F(l)) = self.vals.get(n) {
                last[l.root] = n_steps;
                def[l.root] = def[l.root].min(n_steps);
            }
        }
        // Runs split across cores are found on buffers, before placement; every buffer a run
        // touches then lives through the whole run, so no two halves meet in reused memory.
        let split_runs = if self.threads > 1 {
            split_runs(&self.steps)
        } else {
            Vec::new()
        };
        for &(a, b) in &split_runs {
            for s in &self.steps[a..b] {
                for l in s.reads().into_iter().chain(s.writes()) {
                    def[l.root] = def[l.root].min(a);
                    last[l.root] = last[l.root].max(b);
                }
            }
        }
        let intervals: Vec<Interval> = (1..nroots)
            .map(|r| {
                let d = if def[r] == usize::MAX {
                    n_steps
                } else {
                    def[r]
                };
                Interval {
                    size: self.roots[r],
                    def: d,
                    last: last[r].max(d),
                }
            })
            .collect();
        let (offsets, arena) = memory::plan(&intervals);
        let base = self.persistent.len().next_multiple_of(16);
        let abs = |l: Loc| -> Loc {
            let off = if l.root == 0 {
                l.off
            } else {
                base + offsets[l.root - 1] + l.off
            };
            Loc { root: 0, off, ..l }
        };
        let absv = |v: Val| match v {
            Val::F(l) => Val::F(abs(l)),
            i => i,
        };
        // A fresh zeroed allocation (calloc): the arena's pages are mapped lazily, not written.
        let mut mem = vec![0f32; base + arena];
        mem[..self.persistent.len()].copy_from_slice(&self.persistent);
        let steps: Vec<Step> = self
            .steps
            .into_iter()
            .map(|s| match s {
                Step::Gemm {
                    m,
                    n,
                    k,
                    a,
                    ta,
                    b,
                    tb,
                    c,
                } => Step::Gemm {
                    m,
                    n,
                    k,
                    a: abs(a),
                    ta,
                    b: abs(b),
                    tb,
                    c: abs(c),
                },
                Step::Kernel {
                    kernel,
                    rows,
                    cols,
                    ins,
                    outs,
                } => Step::Kernel {
                    kernel,
                    rows,
                    cols,
                    ins: ins.into_iter().map(abs).collect(),
                    outs: outs.into_iter().map(abs).collect(),
                },
                Step::Gather {
                    table,
                    vocab,
                    ids,
                    out,
                    node,
                } => Step::Gather {
                    table: abs(table),
                    vocab,
                    ids,
                    out: abs(out),
                    node,
                },
                Step::ScatterAdd {
                    ids,
                    src,
                    rows,
                    out,
                    node,
                } => Step::ScatterAdd {
                    ids,
                    src: abs(src),
                    rows,
                    out: abs(out),
                    node,
                },
                Step::Reduce {
                    src,
                    mode,
                    scale,
                    out,
                } => Step::Reduce {
                    src: abs(src),
                    mode,
                    scale,
                    out: abs(out),
                },
                Step::Fallback { op, ins, out, node } => Step::Fallback {
                    op,
                    ins: ins.into_iter().map(|(v, t)| (absv(v), t)).collect(),
                    out: absv(out),
                    node,
                },
            })
            .collect();
        // Every window must lie inside the memory: the unsafe calls in `run` rely on it.
        for s in &steps {
            for l in s.reads().into_iter().chain(s.writes()) {
                if l.numel() > 0 && l.last() >= mem.len() {
                    return Err(JitError::Unsupported(format!(
                        "internal: window {l:?} outside memory of {}",
                        mem.len()
                    )));
                }
            }
        }
        let values = self
            .vals
            .iter()
            .map(|(n, v)| (*n, (absv(*v), self.g.ty(*n).clone())))
            .collect();
        let mut stats = self.stats;
        stats.kernels = self.kernels.len();
        stats.arena_bytes = arena * 4;
        stats.persistent_bytes = base * 4;
        stats.split_steps = split_runs.iter().map(|r| r.1 - r.0).sum();
        Ok(Plan {
            split_runs,
            steps,
            mem,
            ints: self.ints,
            values,
            inputs: self.inputs,
            updates: Vec::new(),
            id_checks: self.id_checks,
            threads: self.threads,
            stats,
            profile: Profile::default(),
        })
    }
}

/// Reads a window into a dense row-major vector.
fn read(mem: &[f32], l: Loc) -> Vec<f32> {
    if l.is_dense() {
        return mem[l.off..l.off + l.numel()].to_vec();
    }
    let mut v = Vec::with_capacity(l.numel());
    for r in 0..l.rows {
        for c in 0..l.cols {
            v.push(mem[l.at(r, c)]);
        }
    }
    v
}

/// Writes dense row-major values into a window.
fn write(mem: &mut [f32], l: Loc, v: &[f32]) {
    if l.is_dense() {
        mem[l.off..l.off + l.numel()].copy_from_slice(v);
        return;
    }
    for r in 0..l.rows {
        for c in 0..l.cols {
            mem[l.at(r, c)] = v[r * l.cols + c];
        }
    }
}

/// Raw pointers that may cross to the second thread of a row split.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the pointer is only dereferenced by kernels on disjoint row ranges of `Plan::mem`,
// which outlives the scoped join in `run_kernel`.
unsafe impl Send for SendPtr {}
// SAFETY: as above; the pointer itself is only copied.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn at(self, off: usize) -> *mut f32 {
        self.0.wrapping_add(off)
    }
}

/// Smallest grid worth splitting across threads.
const SPLIT_MIN_ELEMS: usize = 1 << 15;

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
    /// A one-line description of step `i` (kind and extents), for profiles.
    pub fn describe_step(&self, i: usize) -> String {
        match &self.steps[i] {
            Step::Gemm {
                m, n, k, ta, tb, ..
            } => format!("gemm {m}x{n}x{k} ta={ta} tb={tb}"),
            Step::Kernel {
                kernel,
                rows,
                cols,
                ins,
                outs,
            } => {
                format!(
                    "kernel {rows}x{cols} ins {} outs {} ({} bcast) {:?}",
                    ins.len(),
                    outs.len(),
                    kernel.col_broadcast().len(),
                    ins.iter().map(|l| l.rs).collect::<Vec<_>>()
                )
            }
            Step::Gather { node, .. } => format!("gather {node}"),
            Step::ScatterAdd { node, .. } => format!("scatter_add {node}"),
            Step::Reduce { src, mode, .. } => {
                format!("reduce {:?} {}x{}", mode, src.rows, src.cols)
            }
            Step::Fallback { node, .. } => format!("fallback {node}"),
        }
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
            Val::I(s) => Tensor::i64(ty.shape.clone(), self.ints[s].clone())?,
        })
    }

    /// Sets an input or a parameter; its type must match the graph's.
    pub fn set(&mut self, node: NodeId, t: &Tensor) -> Result<(), JitError> {
        let name = self
            .inputs
            .get(&node)
            .ok_or_else(|| JitError::Feed(format!("{node} is not an input of this plan")))?;
        let (v, ty) = &self.values[&node];
        if *ty != t.ty() {
            return Err(JitError::Feed(format!(
                "input '{name}' expects {ty}, got {}",
                t.ty()
            )));
        }
        match *v {
            Val::F(l) => write(&mut self.mem, l, t.as_f32().expect("f32 by type")),
            Val::I(s) => self.ints[s].copy_from_slice(t.as_i64().expect("i64 by type")),
        }
        Ok(())
    }

    /// Sets an f32 input from a slice (no tensor allocation), checking its length.
    pub fn set_f32(&mut self, node: NodeId, v: &[f32]) -> Result<(), JitError> {
        match self.values.get(&node) {
            Some((Val::F(l), ty)) if self.inputs.contains_key(&node) && ty.numel() == v.len() => {
                let l = *l;
                write(&mut self.mem, l, v);
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
                self.ints[s].copy_from_slice(v);
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

    /// Runs every step, then applies the updates.
    pub fn run(&mut self) -> Result<(), JitError> {
        for (slot, vocab, node) in &self.id_checks {
            trellis_ir::ops::check_ids("gather", &self.ints[*slot], *vocab)
                .map_err(|e| JitError::Ir(e.at(node.clone())))?;
        }
        let mut t = Instant::now();
        let split_runs = std::mem::take(&mut self.split_runs);
        let mut runs = split_runs.iter().copied().peekable();
        let mut i = 0;
        while i < self.steps.len() {
            let (kind, next) = match runs.peek().copied() {
                Some((a, b)) if a == i => {
                    runs.next();
                    self.exec_split(a, b);
                    (3, b)
                }
                _ => (self.exec(i)?, i + 1),
            };
            let now = Instant::now();
            let dt = (now - t).as_secs_f64();
            t = now;
            if self.profile.per_step.len() < self.steps.len() {
                self.profile.per_step.resize(self.steps.len(), 0.0);
            }
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
        for k in 0..self.updates.len() {
            let (target, value) = self.updates[k];
            let v = read(&self.mem, value);
            write(&mut self.mem, target, &v);
        }
        self.profile.other_s += t.elapsed().as_secs_f64();
        self.profile.runs += 1;
        Ok(())
    }

    /// Runs steps `a..b` as two half-batch chains, one per core (`split_runs` proved the
    /// halves independent).
    fn exec_split(&mut self, a: usize, b: usize) {
        let base = SendPtr(self.mem.as_mut_ptr());
        let steps = &self.steps[a..b];
        let half = |upper: bool| {
            for s in steps {
                let rows = match s {
                    Step::Kernel { rows, .. } => *rows,
                    Step::Gemm { m, .. } => *m,
                    _ => unreachable!("only kernels and GEMMs are split"),
                };
                let mid = rows / 2;
                let (r0, r1) = if upper { (mid, rows) } else { (0, mid) };
                exec_rows(s, r0, r1, base);
            }
        };
        rayon::join(|| half(false), || half(true));
    }

    /// Executes step `i`; returns 0 for a GEMM, 1 for a kernel, 2 otherwise.
    fn exec(&mut self, i: usize) -> Result<u8, JitError> {
        let threads = self.threads;
        match &self.steps[i] {
            Step::Gemm {
                m,
                n,
                k,
                a,
                ta,
                b,
                tb,
                c,
            } => {
                let mat = |l: &Loc, t: bool| {
                    if t {
                        Mat {
                            off: l.off,
                            rs: 1,
                            cs: l.rs as isize,
                        }
                    } else {
                        Mat {
                            off: l.off,
                            rs: l.rs as isize,
                            cs: 1,
                        }
                    }
                };
                let (ma, mb, mc) = (mat(a, *ta), mat(b, *tb), mat(c, false));
                // SAFETY: `finish` checked that every window lies inside `mem`; a node's
                // output never shares memory with its operands (distinct buffers or disjoint
                // windows of one concat).
                unsafe {
                    sgemm(
                        self.mem.as_mut_ptr(),
                        *m,
                        *n,
                        *k,
                        ma,
                        mb,
                        mc,
                        false,
                        threads,
                    )
                };
                Ok(0)
            }
            Step::Kernel {
                kernel,
                rows,
                cols,
                ins,
                outs,
            } => {
                let base = SendPtr(self.mem.as_mut_ptr());
                run_kernel(kernel, *rows, *cols, ins, outs, base, threads);
                Ok(1)
            }
            Step::Gather {
                table,
                vocab,
                ids,
                out,
                node,
            } => {
                let ids = &self.ints[*ids];
                trellis_ir::ops::check_ids("gather", ids, *vocab)
                    .map_err(|e| JitError::Ir(e.at(node.clone())))?;
                let row = table.numel() / (*vocab).max(1);
                for (p, &id) in ids.iter().enumerate() {
                    let src = table.off + id as usize * row;
                    self.mem.copy_within(src..src + row, out.off + p * row);
                }
                Ok(2)
            }
            Step::ScatterAdd {
                ids,
                src,
                rows,
                out,
                node,
            } => {
                let ids = &self.ints[*ids];
                trellis_ir::ops::check_ids("scatter_add", ids, *rows)
                    .map_err(|e| JitError::Ir(e.at(node.clone())))?;
                let row = out.numel() / (*rows).max(1);
                let (src, out) = (*src, *out);
                self.mem[out.off..out.off + out.numel()].fill(0.0);
                for (p, &id) in ids.iter().enumerate() {
                    let (s, d) = (src.off + p * row, out.off + id as usize * row);
                    for k in 0..row {
                        self.mem[d + k] += self.mem[s + k];
                    }
                }
                Ok(2)
            }
            Step::Reduce {
                src,
                mode,
                scale,
                out,
            } => {
                let (src, out, scale) = (*src, *out, *scale);
                match mode {
                    ReduceMode::Rows => {
                        let mut acc = vec![0f32; src.cols];
                        for r in 0..src.rows {
                            if src.cb {
                                let v = self.mem[src.at(r, 0)];
                                acc.iter_mut().for_each(|a| *a += v);
                            } else {
                                let s = src.at(r, 0);
                                for (a, x) in acc.iter_mut().zip(&self.mem[s..s + src.cols]) {
                                    *a += x;
                                }
                            }
                        }
                        acc.iter_mut().for_each(|a| *a *= scale);
                        write(
                            &mut self.mem,
                            Loc {
                                rows: 1,
                                cols: out.numel(),
                                rs: out.numel(),
                                ..out
                            },
                            &acc,
                        );
                    }
                    ReduceMode::Cols => {
                        let acc: Vec<f32> = (0..src.rows)
                            .map(|r| {
                                let s: f64 =
                                    (0..src.cols).map(|c| self.mem[src.at(r, c)] as f64).sum();
                                s as f32 * scale
                            })
                            .collect();
                        write(
                            &mut self.mem,
                            Loc {
                                rows: 1,
                                cols: out.numel(),
                                rs: out.numel(),
                                ..out
                            },
                            &acc,
                        );
                    }
                }
                Ok(2)
            }
            Step::Fallback { op, ins, out, node } => {
                let mut args = Vec::with_capacity(ins.len());
                for (v, ty) in ins {
                    args.push(match *v {
                        Val::F(l) => Tensor::f32(ty.shape.clone(), read(&self.mem, l))?,
                        Val::I(s) => Tensor::i64(ty.shape.clone(), self.ints[s].clone())?,
                    });
                }
                let refs: Vec<&Tensor> = args.iter().collect();
                let r = op
                    .eval(&refs)
                    .map_err(|e| JitError::Ir(e.at(node.clone())))?;
                match *out {
                    Val::F(l) => write(&mut self.mem, l, &r.to_f32_vec()),
                    Val::I(s) => self.ints[s].copy_from_slice(r.as_i64().expect("i64 result")),
                }
                Ok(2)
            }
        }
    }
}

/// Rows `r0..r1` of a splittable step on the calling thread.
fn exec_rows(s: &Step, r0: usize, r1: usize, base: SendPtr) {
    match s {
        Step::Kernel {
            kernel,
            cols,
            ins,
            outs,
            ..
        } => {
            let ins: Vec<Loc> = ins.iter().map(|l| rows_of(l, r0, r1)).collect();
            let outs: Vec<Loc> = outs.iter().map(|l| rows_of(l, r0, r1)).collect();
            run_kernel(kernel, r1 - r0, *cols, &ins, &outs, base, 1);
        }
        Step::Gemm {
            n, k, a, b, tb, c, ..
        } => {
            let (a, c) = (rows_of(a, r0, r1), rows_of(c, r0, r1));
            let mb = if *tb {
                Mat {
                    off: b.off,
                    rs: 1,
                    cs: b.rs as isize,
                }
            } else {
                Mat {
                    off: b.off,
                    rs: b.rs as isize,
                    cs: 1,
                }
            };
            let ma = Mat {
                off: a.off,
                rs: a.rs as isize,
                cs: 1,
            };
            let mc = Mat {
                off: c.off,
                rs: c.rs as isize,
                cs: 1,
            };
            // SAFETY: row windows of checked windows stay inside the memory; `split_runs`
            // proved that no other thread touches the rows written here.
            unsafe { sgemm(base.at(0), r1 - r0, *n, *k, ma, mb, mc, false, 1) };
        }
        _ => unreachable!("only kernels and GEMMs are split"),
    }
}

/// Largest steps worth running as half-batch chains (bigger ones parallelise internally).
const SPLIT_MAX_KERNEL: usize = 1 << 17;
const SPLIT_MAX_GEMM: usize = 1 << 24;
/// Shortest run worth a fork-join.
const SPLIT_MIN_RUN: usize = 4;

/// The two halves' address ranges of a step, if it is a small row-wise step.
fn halves(s: &Step) -> Option<(HalfIo, HalfIo)> {
    // Addresses keyed by buffer: runs are found before the memory plan places buffers.
    let key = |l: &Loc| Loc {
        off: (l.root << 40) + l.off,
        ..*l
    };
    let io = |reads: Vec<Loc>, writes: Vec<Loc>| HalfIo {
        reads: reads.iter().map(key).filter_map(|l| span(&l)).collect(),
        writes: writes.iter().map(key).filter_map(|l| span(&l)).collect(),
    };
    match s {
        Step::Kernel {
            rows,
            cols,
            ins,
            outs,
            ..
        } if *rows >= 2 && rows * cols <= SPLIT_MAX_KERNEL => {
            let mid = rows / 2;
            let part = |r0, r1| {
                io(
                    ins.iter().map(|l| rows_of(l, r0, r1)).collect(),
                    outs.iter().map(|l| rows_of(l, r0, r1)).collect(),
                )
            };
            Some((part(0, mid), part(mid, *rows)))
        }
        Step::Gemm {
            m,
            n,
            k,
            a,
            ta: false,
            b,
            c,
            ..
        } if *m >= 2 && m * n * k <= SPLIT_MAX_GEMM => {
            let mid = m / 2;
            let part = |r0, r1| io(vec![rows_of(a, r0, r1), *b], vec![rows_of(c, r0, r1)]);
            Some((part(0, mid), part(mid, *m)))
        }
        _ => None,
    }
}

/// Maximal runs of consecutive splittable steps whose halves never touch each other's writes.
fn split_runs(steps: &[Step]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut rb = RunBuilder::default();
    let mut start: Option<usize> = None;
    let close = |start: Option<usize>, end: usize, out: &mut Vec<(usize, usize)>| {
        if let Some(s) = start.filter(|&s| end - s >= SPLIT_MIN_RUN) {
            out.push((s, end));
        }
    };
    for (i, s) in steps.iter().enumerate() {
        match halves(s) {
            Some((lo, hi)) if rb.fits(&lo, &hi) => {
                start.get_or_insert(i);
                rb.add(&lo, &hi);
            }
            Some((lo, hi)) => {
                close(start, i, &mut out);
                rb.clear();
                start = rb.fits(&lo, &hi).then(|| {
                    rb.add(&lo, &hi);
                    i
                });
            }
            None => {
                close(start, i, &mut out);
                rb.clear();
                start = None;
            }
        }
    }
    close(start, steps.len(), &mut out);
    out
}

/// Runs a kernel over its grid, split into two row halves on two threads when large.
fn run_kernel(
    kernel: &Kernel,
    rows: usize,
    cols: usize,
    ins: &[Loc],
    outs: &[Loc],
    base: SendPtr,
    threads: usize,
) {
    let go = |r0: usize, r1: usize| {
        let ip: Vec<*const f32> = ins
            .iter()
            .map(|l| base.at(l.off + r0 * l.rs) as *const f32)
            .collect();
        let is: Vec<usize> = ins.iter().map(|l| l.rs).collect();
        let op: Vec<*mut f32> = outs.iter().map(|l| base.at(l.off + r0 * l.rs)).collect();
        let os: Vec<usize> = outs.iter().map(|l| l.rs).collect();
        // SAFETY: `finish` checked that every window lies inside the plan's memory; rows
        // r0..r1 of distinct output windows are disjoint and not read by the other half.
        unsafe {
            kernel.run_raw(
                r1 - r0,
                cols,
                ip.as_ptr(),
                is.as_ptr(),
                op.as_ptr(),
                os.as_ptr(),
            )
        }
    };
    if threads > 1 && rows >= 2 && rows * cols >= SPLIT_MIN_ELEMS {
        let mid = rows / 2;
        rayon::join(|| go(0, mid), || go(mid, rows));
    } else {
        go(0, rows);
    }
}
