//! Lowering: graph nodes placed in memory (views, concat inputs in place, updates in place)
//! and turned into steps; then liveness, the memory plan, and the finished [`Plan`].
use crate::fusion::Unit;
use crate::loc::Loc;
use crate::memory::{self, Interval};
use crate::plan::{kernel_cache, Plan, PlanStats, Profile};
use crate::split::spans_meet;
use crate::step::{split_runs, ReduceMode, Step, Val};
use crate::{JitError, Kernel, KernelSpec};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::HashMap;
use std::sync::Arc;
use trellis_ir::ops::{
    After, BroadcastTo, Concat, Constant, Fill, Gather, Input, MatMul, Reduce, ReduceKind, Reshape,
    ScatterAdd, Slice, SumTo,
};
use trellis_ir::{DType, Graph, NodeId, Op, Scalar, ScalarFn, Shape};

/// A value per node, indexed by node index: lowering looks one up per operand of every node,
/// and a hash table of millions of nodes was a tenth of lowering at long T.
#[derive(Clone, Debug)]
pub(crate) struct NodeTable<T>(Vec<Option<T>>);

impl<T: Clone> NodeTable<T> {
    /// A table for nodes with index below `bound` (it grows when given a larger one).
    pub(crate) fn new(bound: usize) -> Self {
        NodeTable(vec![None; bound])
    }
    pub(crate) fn get(&self, n: &NodeId) -> Option<&T> {
        self.0.get(n.index())?.as_ref()
    }
    pub(crate) fn contains_key(&self, n: &NodeId) -> bool {
        self.get(n).is_some()
    }
    pub(crate) fn insert(&mut self, n: NodeId, v: T) {
        if n.index() >= self.0.len() {
            self.0.resize(n.index() + 1, None);
        }
        self.0[n.index()] = Some(v);
    }
}

impl<T: Clone> std::ops::Index<&NodeId> for NodeTable<T> {
    type Output = T;
    fn index(&self, n: &NodeId) -> &T {
        self.get(n)
            .unwrap_or_else(|| panic!("no value for node {n}"))
    }
}

/// A set of nodes as a flag per node index (lowering asks it for most nodes).
pub(crate) struct NodeSet(Vec<bool>);

impl NodeSet {
    pub(crate) fn new(bound: usize) -> Self {
        NodeSet(vec![false; bound])
    }
    pub(crate) fn contains(&self, n: &NodeId) -> bool {
        self.0.get(n.index()).copied().unwrap_or(false)
    }
    pub(crate) fn insert(&mut self, n: NodeId) {
        if n.index() >= self.0.len() {
            self.0.resize(n.index() + 1, false);
        }
        self.0[n.index()] = true;
    }
}

/// Lowering state: values placed so far, the steps, the buffers (roots) created.
pub(crate) struct Builder<'g> {
    g: &'g Graph,
    vals: NodeTable<Val>,
    /// Nodes whose location a concat user decided (they are written in place).
    placed: NodeSet,
    steps: Vec<Step>,
    /// Size of each root buffer; root 0 is the persistent region.
    roots: Vec<usize>,
    persistent: Vec<f32>,
    ints: Vec<Vec<i64>>,
    inputs: HashMap<NodeId, String>,
    id_checks: Vec<(usize, usize, String)>,
    kernels: FxHashSet<*const Kernel>,
    threads: usize,
    /// Most bytes the plan may take, and what that limit is (for the error).
    limit: (usize, &'static str),
    stats: PlanStats,
    /// `value -> input` of the plan's updates.
    pub(crate) updates: FxHashMap<NodeId, NodeId>,
    /// The graph's outputs (a fused member that is one is written out).
    outputs: FxHashSet<NodeId>,
    /// Scratch tables of [`Builder::group`], kept between calls.
    group_set: FxHashSet<NodeId>,
    group_slots: FxHashMap<NodeId, u32>,
    scalars: ScalarForms,
    /// `(step, members)` of each fused kernel step, for `Plan::explain`.
    pub(crate) sources: Vec<(usize, Vec<NodeId>)>,
}

/// The scalar form of each distinct elementwise op met, by op identity (as CSE compares ops:
/// equal ops compute alike): a group of k members built k expressions, hundreds of
/// thousands of times over at long T, where a handful of distinct ops occur.
#[derive(Default)]
struct ScalarForms(FxHashMap<u64, Vec<OpForm>>);

/// An op and its scalar form.
type OpForm = (Arc<dyn Op>, ScalarFn);

impl ScalarForms {
    fn get(&mut self, op: &Arc<dyn Op>) -> &ScalarFn {
        let mut h = rustc_hash::FxHasher::default();
        op.identity_hash(&mut h);
        let list = self.0.entry(std::hash::Hasher::finish(&h)).or_default();
        let i = match list.iter().position(|(o, _)| o.same_as(&**op)) {
            Some(i) => i,
            None => {
                list.push((op.clone(), op.scalar().expect("elementwise")));
                list.len() - 1
            }
        };
        &list[i].1
    }
}

impl<'g> Builder<'g> {
    pub(crate) fn new(g: &'g Graph, threads: usize, limit: (usize, &'static str)) -> Self {
        Builder {
            g,
            vals: NodeTable::new(g.node_bound()),
            placed: NodeSet::new(g.node_bound()),
            steps: Vec::new(),
            roots: vec![0],
            persistent: Vec::new(),
            ints: Vec::new(),
            inputs: HashMap::new(),
            id_checks: Vec::new(),
            kernels: FxHashSet::default(),
            threads: threads.max(1),
            limit,
            stats: PlanStats::default(),
            updates: FxHashMap::default(),
            outputs: g.outputs().iter().copied().collect(),
            group_set: FxHashSet::default(),
            group_slots: FxHashMap::default(),
            scalars: ScalarForms::default(),
            sources: Vec::new(),
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
    /// A persistent value (in memory reserved by `place_leaves`), `fill` when no `data`.
    fn persist(&mut self, shape: &Shape, data: Option<&[f32]>, fill: f32) -> Loc {
        let off = self.persistent.len().next_multiple_of(16);
        self.persistent.resize(off, 0.0);
        match data {
            Some(d) => self.persistent.extend_from_slice(d),
            None => self.persistent.resize(off + shape.numel(), fill),
        }
        Loc::dense(0, off, shape)
    }
    /// Fails when `persistent + arena` bytes exceed the limit.
    fn check_limit(&self, persistent: usize, arena: usize) -> Result<(), JitError> {
        let (limit, limit_is) = self.limit;
        match persistent.checked_add(arena) {
            Some(needed) if needed <= limit => Ok(()),
            needed => Err(JitError::MemoryLimit {
                needed: needed.unwrap_or(usize::MAX),
                persistent,
                arena,
                limit,
                limit_is,
            }),
        }
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

    /// Inputs, parameters, constants: persistent, set before any run. Their total size is
    /// checked against the memory limit and reserved before any of it is allocated.
    pub(crate) fn place_leaves(&mut self, order: &[NodeId]) -> Result<(), JitError> {
        let is_leaf = |n: &NodeId| {
            let any = self.g.op(*n).as_any();
            any.is::<Input>() || any.is::<Constant>() || any.is::<Fill>()
        };
        let leaves: Vec<NodeId> = order.iter().copied().filter(is_leaf).collect();
        // Elements of f32 values (each aligned to 16) and bytes of i64 ones; sizes were
        // checked in `compile`, so only the sums can overflow.
        let (mut floats, mut int_bytes) = (Some(0usize), Some(0usize));
        for &n in &leaves {
            let ty = self.g.ty(n);
            if ty.dtype == DType::I64 {
                int_bytes = int_bytes.and_then(|b| b.checked_add(ty.numel().checked_mul(8)?));
            } else {
                floats = floats.and_then(|f| f.next_multiple_of(16).checked_add(ty.numel()));
            }
        }
        let sizes = floats.and_then(|f| Some((f, f.checked_mul(4)?.checked_add(int_bytes?)?)));
        let Some((floats, bytes)) = sizes else {
            return Err(JitError::MemoryLimit {
                needed: usize::MAX,
                persistent: usize::MAX,
                arena: 0,
                limit: self.limit.0,
                limit_is: self.limit.1,
            });
        };
        self.check_limit(bytes, 0)?;
        self.persistent
            .try_reserve_exact(floats)
            .map_err(|_| JitError::Alloc {
                bytes: floats * 4,
                what: "inputs, parameters and constants",
            })?;
        for n in leaves {
            let node = self.g.node(n);
            let any = node.op.as_any();
            let (constant, fill) = if let Some(i) = any.downcast_ref::<Input>() {
                self.inputs.insert(n, i.name.clone());
                (None, 0.0)
            } else if let Some(c) = any.downcast_ref::<Constant>() {
                (Some(c.0.clone()), 0.0)
            } else {
                let f = any.downcast_ref::<Fill>().expect("a leaf");
                (None, f.value)
            };
            let v = if node.ty.dtype == DType::I64 {
                let ids = match &constant {
                    Some(t) => t.as_i64().expect("i64").to_vec(),
                    None => vec![fill as i64; node.ty.numel()],
                };
                self.ints.push(ids);
                Val::I(self.ints.len() - 1)
            } else {
                let shape = node.ty.shape.clone();
                let data = constant.map(|t| t.to_f32_vec());
                Val::F(self.persist(&shape, data.as_deref(), fill as f32))
            };
            self.vals.insert(n, v);
        }
        Ok(())
    }

    /// Decides, from the last concat back, which concat inputs are computed straight into the
    /// concat's memory (DESIGN point 3: step tensors contiguous, no copies).
    pub(crate) fn place_concats(&mut self, order: &[NodeId], units: &[Unit]) {
        // Nodes whose producer can write a strided window: GEMM and kernel outputs, concats.
        let mut strided_ok = NodeSet::new(self.g.node_bound());
        for u in units {
            if let Unit::Group(m) = u {
                m.iter().for_each(|&n| strided_ok.insert(n));
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
                    a.is::<Reshape>() || a.is::<Slice>() || a.is::<BroadcastTo>() || a.is::<After>()
                })
        };
        for &c in order.iter().rev() {
            if !self.g.op(c).as_any().is::<Concat>() || self.g.ty(c).dtype != DType::F32 {
                continue;
            }
            let shape = self.shape(c).clone();
            if concat_windows(self.g, c, Loc::dense(0, 0, &shape)).is_none() {
                continue; // neither rows nor columns: computed by the fallback
            }
            let base = match self.vals.get(&c) {
                Some(Val::F(l)) => *l,
                _ => {
                    let l = self.new_root(&shape);
                    self.vals.insert(c, Val::F(l));
                    l
                }
            };
            let wins = concat_windows(self.g, c, base).expect("checked above");
            for (&x, win) in self.g.operands(c).iter().zip(wins) {
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
    pub(crate) fn single(&mut self, n: NodeId) -> Result<(), JitError> {
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
            } else if any.is::<After>() {
                Some(self.loc(ops[0])) // an ordering edge only: the value itself
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
            let wins = concat_windows(g, n, self.loc(n))
                .expect("placed concats are row or column concats");
            for (&x, win) in ops.iter().zip(wins) {
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
            let is_matrix_transpose = any
                .downcast_ref::<trellis_ir::ops::Transpose>()
                .is_some_and(|t| t.perm.as_slice() == [1, 0]);
            if is_matrix_transpose && !self.loc(ops[0]).cb {
                let src = self.loc(ops[0]);
                let dst = self.out_loc(n);
                if dst.is_dense() {
                    self.steps.push(Step::Transpose { src, dst });
                    return Ok(());
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
    pub(crate) fn group(&mut self, members: &[NodeId]) -> Result<(), JitError> {
        let g = self.g;
        let shape = g.ty(members[0]).shape.clone();
        let (rows, cols) = crate::loc::grid(&shape);
        // The member set and operand slots reuse the last group's tables (hundreds of
        // thousands of groups at long T; a fresh pair each was a tenth of lowering).
        let mut set = std::mem::take(&mut self.group_set);
        set.clear();
        set.extend(members.iter().copied());
        let mut expr = ScalarFn::new(0);
        let mut slot = std::mem::take(&mut self.group_slots);
        slot.clear();
        let mut ins: Vec<Loc> = Vec::new();
        let mut inputs_pending: Vec<(NodeId, Loc)> = Vec::new();
        // First pass: external operands and their read views.
        for &m in members {
            for &o in g.operands(m) {
                if set.contains(&o) || slot.contains_key(&o) {
                    continue;
                }
                slot.insert(o, 0);
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
                inputs_pending.push((o, view));
            }
        }
        expr.n_inputs = inputs_pending.len();
        for (i, (o, v)) in inputs_pending.into_iter().enumerate() {
            let id = expr.push(Scalar::Input(i as u32));
            slot.insert(o, id);
            ins.push(v);
        }
        let mut index = expr.index();
        let mut args: Vec<u32> = Vec::new();
        for &m in members {
            let f = self.scalars.get(&g.node(m).op);
            args.clear();
            args.extend(g.operands(m).iter().map(|o| slot[o]));
            let out = expr.splice_indexed(&mut index, f, &args)[0];
            slot.insert(m, out);
        }
        let mut outs = Vec::new();
        for &m in members {
            let used_outside =
                self.outputs.contains(&m) || g.use_iter(m).any(|u| !set.contains(&u));
            if used_outside {
                let l = self.out_loc(m);
                expr.output(slot[&m]);
                outs.push(l);
            }
        }
        self.group_set = set;
        self.group_slots = slot;
        let spec = KernelSpec {
            col_broadcast: ins.iter().map(|l| l.cb).collect(),
            expr,
        };
        self.kernel_step(spec, rows, cols, ins, outs)?;
        self.sources.push((self.steps.len() - 1, members.to_vec()));
        Ok(())
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
                self.fallback_into(op, self.g.operands(n), Val::F(tmp), self.g.describe(n))?;
                return self.copy(tmp, l);
            }
            Val::F(l)
        };
        let op = self.g.node(n).op.clone();
        self.fallback_into(op, self.g.operands(n), out, self.g.describe(n))
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
    /// For split run `a..b`: buffers defined and last used inside it whose every access in it
    /// is split the same way (all rows of a `rows x rs` block, halved by rows), grouped by that
    /// layout and given slots greedily by lifetime. Returns `(root, slot root)` for each root
    /// that shares an earlier root's memory.
    fn run_slots(&self, a: usize, b: usize, def: &[usize], last: &[usize]) -> Vec<(usize, usize)> {
        // Per root: Some((rows, rs)) while every access agrees, None once one does not.
        // (A vector by root, not a hash table: one run can hold most of a plan's buffers.)
        let mut layout: Vec<Option<Option<(usize, usize)>>> = vec![None; self.roots.len()];
        for s in &self.steps[a..b] {
            let (split, whole) = s.row_split_locs();
            for l in &whole {
                layout[l.root] = Some(None);
            }
            for l in &split {
                let size = self.roots.get(l.root).copied().unwrap_or(0);
                let key = (l.rs > 0 && l.off < l.rs && l.rows * l.rs == size && !l.cb)
                    .then_some((l.rows, l.rs));
                let e = layout[l.root].get_or_insert(key);
                if *e != key {
                    *e = None;
                }
            }
        }
        let mut roots: Vec<(usize, (usize, usize))> = layout
            .into_iter()
            .enumerate()
            .filter(|&(r, _)| r != 0 && def[r] >= a && last[r] < b)
            .filter_map(|(r, k)| k.flatten().map(|k| (r, k)))
            .collect();
        roots.sort_by_key(|&(r, k)| (k, def[r], r));
        let mut out = Vec::new();
        // Per layout: slots as (slot root, last use of its latest buffer).
        let mut slots: FxHashMap<(usize, usize), Vec<(usize, usize)>> = FxHashMap::default();
        for (r, k) in roots {
            let list = slots.entry(k).or_default();
            match list.iter_mut().find(|(_, end)| *end < def[r]) {
                Some(slot) => {
                    out.push((r, slot.0));
                    slot.1 = last[r];
                }
                None => list.push((r, last[r])),
            }
        }
        out
    }

    /// Which steps read only parameters, constants and what such steps wrote: never a data
    /// input, never ids, never inside a split run.
    fn invariant_steps(&self, split_runs: &[(usize, usize)]) -> Vec<bool> {
        let data: Vec<Loc> = self
            .g
            .inputs()
            .iter()
            .filter_map(|n| match self.vals.get(n) {
                Some(Val::F(l)) => Some(*l),
                _ => None,
            })
            .collect();
        let mut in_run_step = vec![false; self.steps.len()];
        for &(a, b) in split_runs {
            in_run_step[a..b].fill(true);
        }
        let in_run = |i: usize| in_run_step[i];
        let mut variant_root = vec![false; self.roots.len()];
        let mut invariant = vec![true; self.steps.len()];
        // To a fixpoint: a root is variant once any variant step writes it.
        loop {
            let mut changed = false;
            for (i, s) in self.steps.iter().enumerate() {
                if !invariant[i] {
                    continue;
                }
                let reads_ints = matches!(
                    s,
                    Step::Gather { .. } | Step::ScatterAdd { .. } | Step::Fallback { .. }
                );
                let variant = reads_ints
                    || in_run(i)
                    || s.reads()
                        .iter()
                        .any(|l| variant_root[l.root] || data.iter().any(|d| spans_meet(d, l)));
                if variant {
                    invariant[i] = false;
                    changed = true;
                    for l in s.writes() {
                        variant_root[l.root] = true;
                    }
                }
            }
            if !changed {
                return invariant;
            }
        }
    }

    /// Liveness, the memory plan, absolute offsets: the finished [`Plan`].
    pub(crate) fn finish(self, pinned: &[NodeId]) -> Result<Plan, JitError> {
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
        // Except that buffers living only inside one run, all split alike (same rows and row
        // length in every access), share memory when their lifetimes do not overlap: each
        // core then only ever touches its own half of the rows of the shared block. (A step's
        // temporaries, e.g. each step's `h W_hh^T`, would otherwise each get fresh memory,
        // and a GEMM writing to memory not in cache is ~10% slower.)
        let mut slot_of: Vec<usize> = (0..nroots).collect();
        for &(a, b) in &split_runs {
            let shared = self.run_slots(a, b, &def, &last);
            for (r, rep) in shared {
                slot_of[r] = rep;
            }
            for s in &self.steps[a..b] {
                for l in s.reads().into_iter().chain(s.writes()) {
                    let r = slot_of[l.root];
                    def[r] = def[r].min(a);
                    last[r] = last[r].max(b);
                }
            }
        }
        // Steps computed from parameters and constants alone (no data input, no ids, outside
        // the split runs): a plan that does not update its parameters runs them again only
        // after one is set. What they leave for the other steps keeps its memory for good.
        let invariant = if self.updates.is_empty() {
            self.invariant_steps(&split_runs)
        } else {
            vec![false; n_steps]
        };
        let mut invariant_root = vec![false; nroots];
        for (s, _) in self.steps.iter().zip(&invariant).filter(|(_, &inv)| inv) {
            for l in s.writes() {
                invariant_root[l.root] = true;
            }
        }
        for (s, _) in self.steps.iter().zip(&invariant).filter(|(_, &inv)| !inv) {
            for l in s.reads() {
                if l.root != 0 && invariant_root[l.root] {
                    let r = slot_of[l.root];
                    def[r] = 0;
                    last[r] = n_steps;
                }
            }
        }
        for n in pinned {
            if let Some(Val::F(l)) = self.vals.get(n) {
                if l.root != 0 && invariant_root[l.root] {
                    def[slot_of[l.root]] = 0;
                }
            }
        }
        let intervals: Vec<Interval> = (1..nroots)
            .map(|r| {
                let d = if def[r] == usize::MAX || slot_of[r] != r {
                    n_steps
                } else {
                    def[r]
                };
                Interval {
                    // A root sharing another's slot takes no memory of its own.
                    size: if slot_of[r] == r { self.roots[r] } else { 0 },
                    def: d,
                    last: last[r].max(d),
                }
            })
            .collect();
        let base = self.persistent.len().next_multiple_of(16);
        let (mut offsets, arena) = memory::plan(&intervals)
            .filter(|(_, arena)| {
                arena
                    .checked_add(base)
                    .and_then(|n| n.checked_mul(4))
                    .is_some()
            })
            .ok_or_else(|| JitError::MemoryLimit {
                needed: usize::MAX,
                persistent: base * 4,
                arena: usize::MAX,
                limit: self.limit.0,
                limit_is: self.limit.1,
            })?;
        // The estimate, checked before the memory exists.
        self.check_limit(base * 4, arena * 4)?;
        for r in 1..nroots {
            offsets[r - 1] = offsets[slot_of[r] - 1];
        }
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
        let mut mem = memory::zeroed_f32(base + arena).ok_or(JitError::Alloc {
            bytes: (base + arena) * 4,
            what: "memory",
        })?;
        crate::memory::advise_huge_pages(&mut mem);
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
                Step::Transpose { src, dst } => Step::Transpose {
                    src: abs(src),
                    dst: abs(dst),
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
                // Empty windows touch nothing, but only an honest `end` says a window is empty:
                // its row count times row stride must not overflow either.
                if l.end().is_none_or(|end| end > mem.len()) {
                    return Err(JitError::Unsupported(format!(
                        "internal: window {l:?} outside memory of {}",
                        mem.len()
                    )));
                }
            }
        }
        // Built in one pass in index order (not cleared, then filled: millions of nodes).
        let mut values = Vec::with_capacity(self.g.node_bound());
        for n in self.g.node_ids() {
            values.resize(n.index(), None);
            values.push(self.vals.get(&n).map(|v| (absv(*v), self.g.ty(n).clone())));
        }
        let values = NodeTable(values);
        let mut stats = self.stats;
        stats.kernels = self.kernels.len();
        stats.arena_bytes = arena * 4;
        stats.persistent_bytes = base * 4;
        stats.split_steps = split_runs.iter().map(|r| r.1 - r.0).sum();
        stats.run_shared_buffers = (1..nroots).filter(|&r| slot_of[r] != r).count();
        stats.invariant_steps = invariant.iter().filter(|&&x| x).count();
        Ok(Plan {
            split_runs,
            invariant,
            params_dirty: true,
            data_inputs: self.g.inputs().iter().copied().collect(),
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
            explain: Default::default(),
            attached: Vec::new(),
        })
    }
}

/// Where each operand of concat `c` lies inside `base` (the concat's location), when the concat
/// joins whole rows (every axis before its axis of size 1) or columns (its last axis, a
/// vector's only one); `None` for other concats.
fn concat_windows(g: &Graph, c: NodeId, base: Loc) -> Option<Vec<Loc>> {
    let axis = g.op(c).as_any().downcast_ref::<Concat>()?.axis;
    let d = g.ty(c).dims();
    let col = axis + 1 == d.len();
    let row = !col && d[..axis].iter().all(|&x| x == 1);
    if !col && !row {
        return None;
    }
    // Rows of the grid per index along the axis (a row concat of [.., n, rest.., C]).
    let per: usize = if row {
        d[axis + 1..d.len() - 1].iter().product()
    } else {
        1
    };
    let mut at = 0;
    Some(
        g.operands(c)
            .iter()
            .map(|&x| {
                let len = g.ty(x).dims()[axis];
                let w = if col {
                    base.window(0, at, base.rows, len)
                } else {
                    base.window(at * per, 0, len * per, base.cols)
                };
                at += len;
                w
            })
            .collect(),
    )
}
