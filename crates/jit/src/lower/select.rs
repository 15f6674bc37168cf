//! Phase 2, selection: each unit of the fused schedule becomes steps. A fused group is one
//! kernel (its members' scalar forms spliced into one expression); a matrix product a GEMM
//! call; gathers, scatter-adds, matrix transposes and sums over leading or trailing axes their
//! own loops; views no step at all; anything else runs its reference `eval` (a fallback).
//! Values get their memory from the [`Placement`] as their producing step is chosen.
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use trellis_ir::ops::{BroadcastTo, Gather, MatMul, Reduce, ReduceKind, ScatterAdd, SumTo};
use trellis_ir::{DType, Graph, NodeId, Op, OpClass, Scalar, ScalarFn};

use super::place::{concat_axis, concat_windows, Placement};
use crate::fusion::Unit;
use crate::loc::Loc;
use crate::panels::{panels_len, PANEL_MAX_ROWS, PANEL_MIN_USES};
use crate::stats::PlanStats;
use crate::step::{Fold, IntLoc, ReduceMode, Step, Val};
use crate::table::{prefetch_node, prefetch_op, PerOp, AHEAD};
use crate::{JitError, Kernel, KernelCache, KernelSpec};

mod copies;

/// The steps chosen, with the memory map they write into.
pub(crate) struct Selection<'g> {
    g: &'g Graph,
    pub(crate) mem: Placement<'g>,
    pub(crate) steps: Vec<Step>,
    /// `(i64 value slot, vocabulary, gather node)`: ids checked before any step runs.
    pub(crate) id_checks: Vec<(usize, usize, String)>,
    pub(crate) stats: PlanStats,
    /// `(step, members)` of each fused kernel step, for `Plan::explain`, when recorded.
    pub(crate) sources: Option<Vec<(usize, Vec<NodeId>)>>,
    kernels: FxHashSet<*const Kernel>,
    /// The graph's outputs (a fused member that is one is written out).
    outputs: FxHashSet<NodeId>,
    /// Scratch tables of [`Selection::group`], kept between calls.
    group_set: FxHashSet<NodeId>,
    group_slots: FxHashMap<NodeId, u32>,
    /// The scalar form of each distinct elementwise op met.
    scalars: PerOp<ScalarFn>,
    /// Right operands packed into column panels, by node (see [`Selection::panels_of`]).
    panels: FxHashMap<NodeId, Loc>,
}

impl<'g> Selection<'g> {
    /// Steps for every unit, in order; `sources` records each kernel's member nodes.
    pub(crate) fn new(mem: Placement<'g>, units: &[Unit], sources: bool) -> Result<Self, JitError> {
        let g = mem.g;
        let mut s = Selection {
            g,
            mem,
            steps: Vec::new(),
            id_checks: Vec::new(),
            stats: PlanStats::default(),
            sources: sources.then(Vec::new),
            kernels: FxHashSet::default(),
            outputs: g.outputs().iter().copied().collect(),
            group_set: FxHashSet::default(),
            group_slots: FxHashMap::default(),
            scalars: PerOp::default(),
            panels: FxHashMap::default(),
        };
        for (at, u) in units.iter().enumerate() {
            // The nodes of a unit a few ahead, then their ops once the nodes are in.
            match units.get(at + AHEAD) {
                Some(Unit::Single(n)) => prefetch_node(g, *n),
                Some(Unit::Group(m)) => m.iter().for_each(|&n| prefetch_node(g, n)),
                None => {}
            }
            if let Some(Unit::Group(m)) = units.get(at + AHEAD / 2) {
                m.iter().for_each(|&n| prefetch_op(g, n));
            }
            match u {
                Unit::Single(n) => s.single(*n)?,
                Unit::Group(members) => s.group(members)?,
            }
        }
        s.stats.kernels = s.kernels.len();
        Ok(s)
    }

    /// Lowers one non-fused node, by its op's class; what has no dedicated step falls back.
    fn single(&mut self, n: NodeId) -> Result<(), JitError> {
        let g = self.g;
        let node = g.node(n);
        let ops = &node.inputs[..];
        let f32 = node.ty.dtype == DType::F32;
        let done = match node.op.class() {
            OpClass::Leaf => self.mem.vals.contains_key(&n), // placed, unless an outside leaf
            // (An outside op may claim a class: steps read operands only once the op is known.)
            OpClass::View if f32 && !ops.is_empty() => {
                self.view(n) || self.transpose(n, ops[0]) || self.copied_view(n, ops[0])?
            }
            OpClass::View if !ops.is_empty() => {
                self.id_view(n, ops[0]) || self.transpose_ids(n, ops[0])
            }
            OpClass::Contraction => match node.op.as_any().downcast_ref::<MatMul>() {
                Some(mm) => {
                    self.matmul(n, mm, ops[0], ops[1])?;
                    true
                }
                None => false,
            },
            OpClass::Index if f32 => self.index(n, ops),
            OpClass::Reduction if f32 && !ops.is_empty() => {
                self.reduce(n, ops[0]) || self.middle_reduce(n, ops[0])
            }
            OpClass::Other if f32 && ops.len() == 1 => {
                self.concat(n, ops)? || self.pad(n, ops[0])?
            }
            OpClass::Other => self.concat(n, ops)?,
            _ => false,
        };
        if done {
            return Ok(());
        }
        self.fallback(n)
    }

    /// A view: no step, a window on the operand's memory (unless a concat placed it).
    fn view(&mut self, n: NodeId) -> bool {
        if self.mem.placed.contains(&n) {
            return false;
        }
        let Some(v) = self.mem.view(n) else {
            return false;
        };
        self.mem.vals.insert(n, Val::F(v));
        true
    }

    /// A matrix transpose, or the swap of the leading axes of a rank-3 tensor (its rows moved
    /// whole), of a full (not column-broadcast) operand into dense memory.
    fn transpose(&mut self, n: NodeId, x: NodeId) -> bool {
        let Some(t) = self
            .g
            .op(n)
            .as_any()
            .downcast_ref::<trellis_ir::ops::Transpose>()
        else {
            return false;
        };
        let src = self.mem.loc(x);
        let dst = self.mem.out_loc(n);
        if src.cb || !dst.is_dense() {
            return false;
        }
        let perm = t.perm.as_slice();
        if perm == [1, 0] {
            self.steps.push(Step::Transpose { src, dst });
        } else if perm == [1, 0, 2] {
            let (d0, d1) = (self.g.ty(x).dims()[0], self.g.ty(x).dims()[1]);
            self.steps.push(Step::TransposeRows { src, dst, d0, d1 });
        } else {
            return false;
        }
        true
    }

    /// A reshape or a row slice of ids: a window on the same slot (a step's ids, sliced from
    /// all the steps' ids, cost no copy).
    fn id_view(&mut self, n: NodeId, x: NodeId) -> bool {
        let Some(&Val::I(ids)) = self.mem.vals.get(&x) else {
            return false;
        };
        let any = self.g.op(n).as_any();
        let view = if any.is::<trellis_ir::ops::Reshape>() {
            ids
        } else if let Some(s) = any
            .downcast_ref::<trellis_ir::ops::Slice>()
            .filter(|s| s.axis == 0)
        {
            let row: usize = self.g.ty(x).dims()[1..].iter().product();
            IntLoc {
                slot: ids.slot,
                off: ids.off + s.start * row,
                len: (s.end - s.start) * row,
            }
        } else {
            return false;
        };
        self.mem.vals.insert(n, Val::I(view));
        true
    }

    /// Whether `n` swaps the two axes of a matrix.
    fn is_matrix_transpose(&self, n: NodeId) -> bool {
        self.g
            .op(n)
            .as_any()
            .downcast_ref::<trellis_ir::ops::Transpose>()
            .is_some_and(|t| t.perm.as_slice() == [1, 0])
    }

    /// A matrix of ids transposed into a slot of its own (the interpreter's general
    /// transpose took a millisecond for the seed model's 25,600 ids).
    fn transpose_ids(&mut self, n: NodeId, x: NodeId) -> bool {
        let (true, Some(&Val::I(src))) = (self.is_matrix_transpose(n), self.mem.vals.get(&x))
        else {
            return false;
        };
        let (rows, cols) = (self.g.ty(x).dims()[0], self.g.ty(x).dims()[1]);
        self.mem.ints.push(vec![0; rows * cols]);
        let dst = self.mem.ints.len() - 1;
        self.mem
            .vals
            .insert(n, Val::I(IntLoc::whole(dst, rows * cols)));
        self.steps.push(Step::TransposeIds {
            src,
            dst,
            rows,
            cols,
        });
        true
    }

    /// A placed concat: inputs not written in place are copied into their window.
    fn concat(&mut self, n: NodeId, ops: &[NodeId]) -> Result<bool, JitError> {
        if concat_axis(self.g.op(n)).is_none() || !matches!(self.mem.vals.get(&n), Some(Val::F(_)))
        {
            return Ok(false);
        }
        let Some(wins) = concat_windows(self.g, n, self.mem.loc(n)) else {
            return Ok(false); // no windows: the fallback computes it
        };
        for (&x, win) in ops.iter().zip(wins) {
            if self.mem.placed.contains(&x)
                && self
                    .mem
                    .vals
                    .get(&x)
                    .is_some_and(|v| matches!(v, Val::F(l) if *l == win))
            {
                continue;
            }
            let src = self.mem.loc(x);
            self.copy(src, win)?;
        }
        Ok(true)
    }

    /// A gather of table rows or a scatter-add into rows, on dense memory.
    fn index(&mut self, n: NodeId, ops: &[NodeId]) -> bool {
        let g = self.g;
        let any = g.op(n).as_any();
        if any.is::<Gather>() {
            let (Val::F(table), Val::I(ids)) = (self.mem.vals[&ops[0]], self.mem.vals[&ops[1]])
            else {
                return false;
            };
            if !table.is_dense() {
                return false;
            }
            let out = self.mem.out_loc(n);
            if !out.is_dense() {
                return false;
            }
            let vocab = g.ty(ops[0]).dims()[0];
            self.note_id_check(ops[1], vocab, g.describe(n));
            self.steps.push(Step::Gather {
                table,
                vocab,
                ids,
                out,
                node: g.describe(n),
            });
            return true;
        }
        let Some(s) = any.downcast_ref::<ScatterAdd>() else {
            return false;
        };
        let (Val::I(ids), Val::F(src)) = (self.mem.vals[&ops[0]], self.mem.vals[&ops[1]]) else {
            return false;
        };
        let out = self.mem.out_loc(n);
        if !(src.is_dense() && out.is_dense()) {
            return false;
        }
        self.note_id_check(ops[0], s.rows, g.describe(n));
        self.steps.push(Step::ScatterAdd {
            ids,
            src,
            rows: s.rows,
            out,
            node: g.describe(n),
        });
        true
    }

    /// A sum, mean, maximum or minimum over leading or trailing axes, into dense memory.
    fn reduce(&mut self, n: NodeId, x: NodeId) -> bool {
        let Some((mode, fold, scale, view)) = self.reduction(n, x) else {
            return false;
        };
        let out = self.mem.out_loc(n);
        if !out.is_dense() {
            return false;
        }
        self.steps.push(Step::Reduce {
            src: view,
            mode,
            fold,
            scale,
            out,
        });
        true
    }

    /// Ids reaching a gather through views from an i64 input are checked before any step.
    fn note_id_check(&mut self, ids: NodeId, vocab: usize, node: String) {
        let mut n = ids;
        loop {
            match self.g.op(n).class() {
                OpClass::Leaf => {
                    if let (true, Val::I(ids)) =
                        (self.mem.inputs.contains_key(&n), self.mem.vals[&n])
                    {
                        self.id_checks.push((ids.slot, vocab, node));
                    }
                    return;
                }
                OpClass::View => match self.g.operands(n).first() {
                    Some(&x) => n = x,
                    None => return,
                },
                _ => return,
            }
        }
    }

    /// A reduction over leading or trailing axes, as a row- or column-reduction of a 2-D view.
    fn reduction(&self, n: NodeId, x: NodeId) -> Option<(ReduceMode, Fold, f32, Loc)> {
        let xd = self.mem.shape(x).dims().to_vec();
        let (live, red, fold, scale) = self.reduced_axes(n, x)?;
        // Size-1 axes do not matter: reduced axes must be a prefix or a suffix of the others.
        let k = red.iter().take_while(|&&r| r).count();
        let src = self.mem.loc(x);
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
            } else if inner == src.cols && outer == src.rows {
                Some(src)
            } else {
                None
            }
        };
        if red.iter().all(|&r| r) {
            let v = split(0)?;
            return Some((ReduceMode::Cols, fold, scale, v));
        }
        if red[k..].iter().all(|&r| !r) {
            let v = split(k)?;
            let group = v.rows;
            return Some((ReduceMode::Rows { group }, fold, scale, v));
        }
        let j = red.iter().rev().take_while(|&&r| r).count();
        if red[..red.len() - j].iter().all(|&r| !r) {
            return Some((ReduceMode::Cols, fold, scale, split(red.len() - j)?));
        }
        None
    }

    /// The axes of `x` a reduction `n` keeps apart from size 1 (`live`), whether each is
    /// reduced, how it folds, and the scale (1 / count for a mean).
    fn reduced_axes(&self, n: NodeId, x: NodeId) -> Option<(Vec<usize>, Vec<bool>, Fold, f32)> {
        let any = self.g.op(n).as_any();
        let xd = self.mem.shape(x).dims();
        let (axes, kind) = if let Some(r) = any.downcast_ref::<Reduce>() {
            (r.axes.to_vec(), r.kind)
        } else if let Some(s) = any.downcast_ref::<SumTo>() {
            let off = xd.len() - s.shape.rank();
            (
                (0..xd.len())
                    .filter(|&i| i < off || (s.shape.dims()[i - off] == 1 && xd[i] != 1))
                    .collect(),
                ReduceKind::Sum,
            )
        } else {
            return None;
        };
        let live: Vec<usize> = (0..xd.len()).filter(|&i| xd[i] != 1).collect();
        let red: Vec<bool> = live.iter().map(|i| axes.contains(i)).collect();
        let count: usize = axes.iter().map(|&a| xd[a]).product();
        let (fold, scale) = match kind {
            ReduceKind::Sum => (Fold::Sum, 1.0),
            ReduceKind::Mean => (Fold::Sum, 1.0 / count as f32),
            ReduceKind::Max => (Fold::Max, 1.0),
            ReduceKind::Min => (Fold::Min, 1.0),
        };
        Some((live, red, fold, scale))
    }

    /// A reduction over middle axes of a dense value (the gradient of a middle-axis broadcast:
    /// batch-major RepeatVector's `[B, T, F] -> [B, 1, F]`; a maximum over a batch-major
    /// sequence's steps), as one step folding each block of the leading kept axes' rows.
    fn middle_reduce(&mut self, n: NodeId, x: NodeId) -> bool {
        let Some((live, red, fold, scale)) = self.reduced_axes(n, x) else {
            return false;
        };
        let src = self.mem.loc(x);
        let xd = self.mem.shape(x).dims();
        let p = red.iter().take_while(|&&r| !r).count();
        let q = p + red[p..].iter().take_while(|&&r| r).count();
        let size = |axes: &[usize]| -> usize { axes.iter().map(|&i| xd[i]).product() };
        let (outer, mid, inner) = (size(&live[..p]), size(&live[p..q]), size(&live[q..]));
        if red[q..].iter().any(|&r| r) || !src.is_dense() {
            return false;
        }
        let out = self.mem.out_loc(n);
        if !out.is_dense() {
            return false;
        }
        self.steps.push(Step::Reduce {
            src: Loc::dense_grid(src.root, src.off, outer * mid, inner),
            mode: ReduceMode::Rows { group: mid },
            fold,
            scale,
            out: Loc::dense_grid(out.root, out.off, outer, inner),
        });
        true
    }

    fn matmul(&mut self, n: NodeId, mm: &MatMul, a: NodeId, b: NodeId) -> Result<(), JitError> {
        let (la, lb) = (self.gemm_operand(a)?, self.gemm_operand(b)?);
        if self.g.ty(n).rank() == 3 {
            return self.batched_matmul(n, mm, la, lb);
        }
        let c = self.mem.out_loc(n);
        let k = if mm.transpose_a { la.rows } else { la.cols };
        let panels = if mm.transpose_a || mm.transpose_b || c.cb || c.rows > PANEL_MAX_ROWS {
            None
        } else {
            self.panels_of(b, lb)
        };
        self.steps.push(Step::Gemm {
            m: c.rows,
            n: c.cols,
            k,
            a: la,
            ta: mm.transpose_a,
            b: lb,
            tb: mm.transpose_b,
            c,
            panels,
        });
        self.stats.gemms += 1;
        Ok(())
    }

    /// A `[G, M, K] x [G, K, N]` product as one GEMM per batch entry, each on its rows of the
    /// operands' and the output's grids (`[G·M, K]` and so on: a window's rows are evenly
    /// strided, so entry `g` is rows `g·M..(g+1)·M`).
    fn batched_matmul(&mut self, n: NodeId, mm: &MatMul, la: Loc, lb: Loc) -> Result<(), JitError> {
        let c = self.mem.out_loc(n);
        let entries = self.g.ty(n).dims()[0];
        if entries == 0 {
            return Ok(());
        }
        let (ra, rb, rc) = (la.rows / entries, lb.rows / entries, c.rows / entries);
        let entry = |l: Loc, rows: usize, e: usize| Loc {
            off: l.off + e * rows * l.rs,
            rows,
            ..l
        };
        let k = if mm.transpose_a { ra } else { la.cols };
        for e in 0..entries {
            self.steps.push(Step::Gemm {
                m: rc,
                n: c.cols,
                k,
                a: entry(la, ra, e),
                ta: mm.transpose_a,
                b: entry(lb, rb, e),
                tb: mm.transpose_b,
                c: entry(c, rc, e),
                panels: None,
            });
            self.stats.gemms += 1;
        }
        Ok(())
    }

    /// The column panels of right operand `b` (window `lb`), packed by a step placed before its
    /// first product, when at least [`PANEL_MIN_USES`] products of a few rows
    /// ([`PANEL_MAX_ROWS`]) read it untransposed: a recurrence's weight, packed once a run
    /// (once for good in a plan that caches parameter-only steps) instead of by every
    /// per-step GEMM. AVX-512 hosts only.
    fn panels_of(&mut self, b: NodeId, lb: Loc) -> Option<Loc> {
        if let Some(&p) = self.panels.get(&b) {
            return Some(p);
        }
        if !crate::cpu::has_avx512() || lb.cb {
            return None;
        }
        let g = self.g;
        let products = g
            .use_iter(b)
            .filter(|&u| {
                g.operands(u).get(1) == Some(&b)
                    && g.ty(u).rank() == 2
                    && g.ty(u).dims()[0] <= PANEL_MAX_ROWS
                    && g.op(u)
                        .as_any()
                        .downcast_ref::<MatMul>()
                        .is_some_and(|mm| !mm.transpose_a && !mm.transpose_b)
            })
            .count();
        if products < PANEL_MIN_USES {
            return None;
        }
        let dst = self
            .mem
            .new_root(&vec![panels_len(lb.rows, lb.cols)].into());
        self.steps.push(Step::Pack { src: lb, dst });
        self.panels.insert(b, dst);
        Some(dst)
    }

    /// A matrix (or a batch of them, as its rows) GEMM can read with strides: not broadcast;
    /// otherwise a dense copy.
    fn gemm_operand(&mut self, x: NodeId) -> Result<Loc, JitError> {
        let l = self.mem.loc(x);
        if !l.cb && (l.rs > 0 || l.rows <= 1) && matches!(self.mem.shape(x).rank(), 2 | 3) {
            return Ok(l);
        }
        let dst = self.mem.new_root(&self.g.ty(x).shape.clone());
        self.copy(l, dst)?;
        Ok(dst)
    }

    fn kernel_step(
        &mut self,
        spec: KernelSpec,
        rows: usize,
        cols: usize,
        ins: Vec<Loc>,
        outs: Vec<Loc>,
    ) -> Result<(), JitError> {
        let kernel = KernelCache::shared()?
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
                let src = self.mem.loc(o);
                let view = match src.broadcast(&g.ty(o).shape, &shape) {
                    Some(v) if v.rows == rows && v.cols == cols => v,
                    _ => {
                        // Not a grid broadcast: materialise it densely first.
                        let dst = self.mem.new_root(&shape);
                        if let Some(copies) = self.broadcast_blocks(o, &shape) {
                            self.broadcast_copy(copies, dst)?;
                        } else {
                            self.fallback_into(
                                Arc::new(BroadcastTo {
                                    shape: shape.clone(),
                                }),
                                &[o],
                                Val::F(dst),
                                "broadcast".into(),
                            )?;
                        }
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
            let f = self
                .scalars
                .get(&g.node(m).op, |op| op.scalar().expect("elementwise"));
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
                let l = self.mem.out_loc(m);
                expr.output(slot[&m]);
                outs.push(l);
            }
        }
        self.group_set = set;
        self.group_slots = slot;
        let (rows, cols) = regroup(rows, cols, &mut ins, &mut outs);
        let spec = KernelSpec {
            col_broadcast: ins.iter().map(|l| l.cb).collect(),
            expr,
        };
        self.kernel_step(spec, rows, cols, ins, outs)?;
        if let Some(sources) = &mut self.sources {
            sources.push((self.steps.len() - 1, members.to_vec()));
        }
        Ok(())
    }

    fn fallback(&mut self, n: NodeId) -> Result<(), JitError> {
        let out = if self.g.ty(n).dtype == DType::I64 {
            let len = self.g.ty(n).numel();
            self.mem.ints.push(vec![0; len]);
            let v = Val::I(IntLoc::whole(self.mem.ints.len() - 1, len));
            self.mem.vals.insert(n, v);
            v
        } else {
            let l = self.mem.out_loc(n);
            if !l.is_dense() {
                let tmp = self.mem.new_root(&self.g.ty(n).shape.clone());
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
            .map(|o| (self.mem.vals[o], self.g.ty(*o).clone()))
            .collect();
        self.steps.push(Step::Fallback { op, ins, out, node });
        Ok(())
    }
}

/// Widest a narrow kernel grid is regrouped to (four AVX-512 vectors).
const REGROUP_COLS: usize = 64;

/// A kernel over fewer than 16 columns (a CRF's 12 tags, a `[N, 1]` column of row sums) ran a
/// few lanes a row: when every window allows it ([`Loc::regrouped`]), its rows are grouped by
/// the largest power of two `f` that leaves an even number of rows (so its halves, on two
/// threads or in a split run, are the rows they were), with `cols · f` at most
/// [`REGROUP_COLS`].
fn regroup(rows: usize, cols: usize, ins: &mut [Loc], outs: &mut [Loc]) -> (usize, usize) {
    if rows == 0 || cols == 0 || cols >= 16 {
        return (rows, cols);
    }
    let mut f = 1;
    while rows.is_multiple_of(4 * f) && cols * 2 * f <= REGROUP_COLS {
        f *= 2;
    }
    if f == 1 {
        return (rows, cols);
    }
    let all = |ls: &[Loc]| {
        ls.iter()
            .map(|l| l.regrouped(f))
            .collect::<Option<Vec<_>>>()
    };
    let (Some(i), Some(o)) = (all(ins), all(outs)) else {
        return (rows, cols);
    };
    ins.copy_from_slice(&i);
    outs.copy_from_slice(&o);
    (rows / f, cols * f)
}
