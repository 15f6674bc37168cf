//! The steps a plan runs and how each executes (`rows.rs`: which runs of them split across
//! the cores, and running a step's rows).
use crate::gemm::Mat;
use crate::loc::Loc;
use crate::memory::SendPtr;
use crate::{JitError, Kernel};

mod reduce;
mod rows;
pub(crate) use reduce::Fold;
pub(crate) use rows::{check_run_ids, exec_rows, prefetch_inputs, split_rows, split_runs};
use smallvec::{smallvec, SmallVec};
use std::sync::Arc;
use trellis_ir::{Op, Tensor, TensorType};

/// The GEMM view of a window, read transposed when `t`.
fn mat(l: &Loc, t: bool) -> Mat {
    if t {
        Mat::col_major(l.off, l.rs)
    } else {
        Mat::row_major(l.off, l.rs)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReduceMode {
    /// `out[b, c] = fold_r x[b·group + r, c]`: each block of `group` rows to one row (one
    /// block, `group` = every row, folds the columns).
    Rows { group: usize },
    /// `out[r] = fold_c x[r, c]`
    Cols,
}

/// A value of the plan: f32 values live in `mem`, i64 values (token ids) in `ints`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Val {
    F(Loc),
    I(IntLoc),
}

/// Where i64 values are: `len` ids from `off` in `ints[slot]` (a reshape or a row slice of ids
/// is a window on the same slot, not a copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IntLoc {
    pub slot: usize,
    pub off: usize,
    pub len: usize,
}

impl IntLoc {
    /// A whole slot of `len` ids.
    pub(crate) fn whole(slot: usize, len: usize) -> IntLoc {
        IntLoc { slot, off: 0, len }
    }
    pub(crate) fn range(&self) -> std::ops::Range<usize> {
        self.off..self.off + self.len
    }
}

impl Val {
    /// The window of an f32 value (ids have none).
    pub(crate) fn loc_mut(&mut self) -> Option<&mut Loc> {
        match self {
            Val::F(l) => Some(l),
            Val::I(_) => None,
        }
    }
}

/// The windows a step reads or writes: inline, since compiling walks every step's several
/// times (liveness, split runs, bounds) and a vector per call was a tenth of `finish`.
pub(crate) type Locs = SmallVec<[Loc; 6]>;

pub(crate) enum Step {
    Gemm {
        m: usize,
        n: usize,
        k: usize,
        a: Loc,
        ta: bool,
        b: Loc,
        tb: bool,
        c: Loc,
        /// `B` packed into column panels by a [`Step::Pack`] (the panel loop of `panels.rs`
        /// runs the product instead of the general GEMM; `b` is then not read).
        panels: Option<Loc>,
    },
    /// `dst` = the `[rows, cols]` operand `src` packed into column panels (`panels::pack`).
    Pack { src: Loc, dst: Loc },
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
        ids: IntLoc,
        out: Loc,
        node: String,
    },
    ScatterAdd {
        ids: IntLoc,
        src: Loc,
        rows: usize,
        out: Loc,
        node: String,
    },
    Reduce {
        src: Loc,
        mode: ReduceMode,
        fold: Fold,
        scale: f32,
        out: Loc,
    },
    Fallback {
        op: Arc<dyn Op>,
        ins: Vec<(Val, TensorType)>,
        out: Val,
        node: String,
    },
    /// `dst = src^T` for a matrix (a weight transposed once per run).
    Transpose { src: Loc, dst: Loc },
    /// `dst` = `src`, a `[d0, d1]` grid of rows, with the grid's axes swapped: row
    /// `j d0 + i` of `dst` is row `i d1 + j` of `src` (batch-major float sequences made
    /// time-major for a recurrence, and their gradients made batch-major again).
    TransposeRows {
        src: Loc,
        dst: Loc,
        d0: usize,
        d1: usize,
    },
    /// `dst = src` for each pair of equal grids, in order: a broadcast no window expresses
    /// (a block repeated along leading axes, a row repeated within each block) made dense in
    /// one step instead of a kernel step a block.
    Copies { pairs: Vec<(Loc, Loc)> },
    /// `ints[dst] = ints[src]^T` for a `rows x cols` matrix of ids (batch-major ids made
    /// time-major).
    TransposeIds {
        src: IntLoc,
        dst: usize,
        rows: usize,
        cols: usize,
    },
}

impl Step {
    pub(crate) fn reads(&self) -> Locs {
        match self {
            Step::Gemm {
                a, panels: Some(p), ..
            } => smallvec![*a, *p],
            Step::Gemm { a, b, .. } => smallvec![*a, *b],
            Step::Pack { src, .. } => smallvec![*src],
            Step::Kernel { ins, .. } => ins.iter().copied().collect(),
            Step::Gather { table, .. } => smallvec![*table],
            Step::ScatterAdd { src, .. } => smallvec![*src],
            Step::Reduce { src, .. }
            | Step::Transpose { src, .. }
            | Step::TransposeRows { src, .. } => smallvec![*src],
            Step::Fallback { ins, .. } => ins
                .iter()
                .filter_map(|(v, _)| if let Val::F(l) = v { Some(*l) } else { None })
                .collect(),
            Step::Copies { pairs } => pairs.iter().map(|p| p.0).collect(),
            Step::TransposeIds { .. } => smallvec![],
        }
    }
    pub(crate) fn writes(&self) -> Locs {
        match self {
            Step::Gemm { c, .. } => smallvec![*c],
            Step::Kernel { outs, .. } => outs.iter().copied().collect(),
            Step::Gather { out, .. } | Step::ScatterAdd { out, .. } | Step::Reduce { out, .. } => {
                smallvec![*out]
            }
            Step::Transpose { dst, .. }
            | Step::TransposeRows { dst, .. }
            | Step::Pack { dst, .. } => smallvec![*dst],
            Step::Fallback { out: Val::F(l), .. } => smallvec![*l],
            Step::Copies { pairs } => pairs.iter().map(|p| p.1).collect(),
            Step::Fallback { .. } | Step::TransposeIds { .. } => smallvec![],
        }
    }

    /// Every window the step reads or writes, to move them all alike (to absolute offsets,
    /// or into a host plan's memory).
    pub(crate) fn windows_mut(&mut self) -> SmallVec<[&mut Loc; 6]> {
        match self {
            Step::Gemm {
                a, b, c, panels, ..
            } => [a, b, c].into_iter().chain(panels.as_mut()).collect(),
            Step::Kernel { ins, outs, .. } => ins.iter_mut().chain(outs.iter_mut()).collect(),
            Step::Gather { table, out, .. } => smallvec![table, out],
            Step::ScatterAdd { src, out, .. } | Step::Reduce { src, out, .. } => {
                smallvec![src, out]
            }
            Step::Transpose { src, dst }
            | Step::TransposeRows { src, dst, .. }
            | Step::Pack { src, dst } => smallvec![src, dst],
            Step::TransposeIds { .. } => smallvec![],
            Step::Copies { pairs } => pairs.iter_mut().flat_map(|(a, b)| [a, b]).collect(),
            Step::Fallback { ins, out, .. } => ins
                .iter_mut()
                .map(|(v, _)| v)
                .chain(std::iter::once(out))
                .filter_map(Val::loc_mut)
                .collect(),
        }
    }
}

/// Checks that every window of `steps` lies inside memory of `len` elements: the unsafe
/// calls that run them rely on it.
pub(crate) fn check_windows(steps: &[Step], len: usize) -> Result<(), JitError> {
    for s in steps {
        for l in s.reads().into_iter().chain(s.writes()) {
            // Empty windows touch nothing, but only an honest `end` says a window is empty:
            // its row count times row stride must not overflow either.
            if l.end().is_none_or(|end| end > len) {
                return Err(JitError::Unsupported(format!(
                    "internal: window {l:?} outside memory of {len}"
                )));
            }
        }
    }
    Ok(())
}

/// Runs `f` over `0..n`, as two halves on two threads when `threads > 1` and `n` is large.
fn in_halves(threads: usize, n: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    if threads > 1 && n >= 512 {
        let mid = n / 2;
        rayon::join(|| f(0..mid), || f(mid..n));
    } else {
        f(0..n);
    }
}

/// Reads a window into a dense row-major vector.
pub(crate) fn read(mem: &[f32], l: Loc) -> Vec<f32> {
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
pub(crate) fn write(mem: &mut [f32], l: Loc, v: &[f32]) {
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

/// `dst = src` for each pair of windows of one grid shape (`dst` dense rows, `src` strided or
/// broadcast), row by row, on the calling thread.
fn copy_grids(pairs: &[(Loc, Loc)], base: SendPtr) {
    for (src, dst) in pairs {
        for r in 0..dst.rows {
            let (from, to) = (base.at(src.at(r, 0)), base.at(dst.at(r, 0)));
            // SAFETY: `finish` checked every window lies in the plan's memory; the pairs'
            // destinations are disjoint blocks of the broadcast's own buffer, which no source
            // (another node's memory) overlaps, so the two halves of a split write apart.
            unsafe {
                if src.cb {
                    std::slice::from_raw_parts_mut(to, dst.cols).fill(*from);
                } else {
                    std::ptr::copy_nonoverlapping(from, to, dst.cols);
                }
            }
        }
    }
}

/// Fewest rows per thread worth splitting a panel product outside a split run.
const PANEL_SPLIT_ROWS: usize = 16;

/// Smallest grid worth splitting across threads.
pub(crate) const SPLIT_MIN_ELEMS: usize = 1 << 15;

impl Step {
    /// Executes step `i`; returns 0 for a GEMM, 1 for a kernel, 2 otherwise.
    pub(crate) fn exec(
        &self,
        mem: &mut [f32],
        ints: &mut [Vec<i64>],
        threads: usize,
    ) -> Result<u8, JitError> {
        match self {
            Step::Gemm {
                m,
                n,
                k,
                a,
                ta,
                b,
                tb,
                c,
                panels,
            } => {
                let base = SendPtr(mem.as_mut_ptr());
                if panels.is_some() {
                    // Row halves on two threads, as a split run's halves run them (panel
                    // products are never transposed: `ta` is false).
                    let rows = |r0: usize, r1: usize| exec_rows(self, r0, r1, base, &[]);
                    if threads > 1 && *m >= 2 * PANEL_SPLIT_ROWS {
                        rayon::join(|| rows(0, *m / 2), || rows(*m / 2, *m));
                    } else {
                        rows(0, *m);
                    }
                    return Ok(0);
                }
                let (ma, mb, mc) = (mat(a, *ta), mat(b, *tb), mat(c, false));
                // SAFETY: `finish` checked that every window lies inside `mem`; a node's
                // output never shares memory with its operands (distinct buffers or disjoint
                // windows of one concat).
                unsafe { crate::autotune::gemm(base.at(0), *m, *n, *k, ma, mb, mc, threads) };
                Ok(0)
            }
            Step::Pack { src, dst } => {
                // SAFETY: `finish` checked both windows lie in `mem`; the packed buffer is its
                // own (a fresh root), so it overlaps nothing the source addresses.
                unsafe {
                    let p = mem.as_mut_ptr();
                    crate::panels::pack(p, src.rows, src.cols, mat(src, false), p.add(dst.off))
                };
                Ok(2)
            }
            Step::Kernel {
                kernel,
                rows,
                cols,
                ins,
                outs,
            } => {
                let base = SendPtr(mem.as_mut_ptr());
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
                let ids = &ints[ids.slot][ids.range()];
                trellis_ir::ops::check_ids("gather", ids, *vocab)
                    .map_err(|e| JitError::Ir(e.at(node.clone())))?;
                let base = SendPtr(mem.as_mut_ptr());
                // (Each half writes its own rows.)
                in_halves(threads, ids.len(), |ps| {
                    gather_rows(table, *vocab, ids, out, ps, base)
                });
                Ok(2)
            }
            Step::ScatterAdd {
                ids,
                src,
                rows,
                out,
                node,
            } => {
                let ids = &ints[ids.slot][ids.range()];
                trellis_ir::ops::check_ids("scatter_add", ids, *rows)
                    .map_err(|e| JitError::Ir(e.at(node.clone())))?;
                let row = out.numel() / (*rows).max(1);
                let (s0, o0, n, base) = (src.off, out.off, *rows, SendPtr(mem.as_mut_ptr()));
                // Each half owns a range of output rows and scans every id for it: no two
                // threads add into one row.
                in_halves(threads, n, |owned| {
                    // SAFETY: `finish` checked both windows lie in `mem`; ids are checked
                    // against the output's rows above; the source is another node's buffer
                    // (a source row and an output row never overlap, as the slices require);
                    // this half writes only output rows in `owned`.
                    unsafe {
                        std::ptr::write_bytes(
                            base.at(o0 + owned.start * row),
                            0,
                            owned.len() * row,
                        );
                        for (p, &id) in ids.iter().enumerate() {
                            let id = id as usize;
                            if owned.contains(&id) {
                                // As slices, the add is vectorised (through raw pointers it
                                // ran an element at a time: they might have overlapped).
                                let s = std::slice::from_raw_parts(base.at(s0 + p * row), row);
                                let d = std::slice::from_raw_parts_mut(base.at(o0 + id * row), row);
                                d.iter_mut().zip(s).for_each(|(d, s)| *d += s);
                            }
                        }
                    }
                });
                Ok(2)
            }
            &Step::Reduce {
                src,
                mode,
                fold,
                scale,
                out,
            } => {
                reduce::reduce(mem, src, mode, fold, scale, out, threads);
                Ok(2)
            }
            Step::Transpose { src, dst } => {
                let (src, d) = (*src, dst.off);
                for r in 0..src.rows {
                    for c in 0..src.cols {
                        mem[d + c * src.rows + r] = mem[src.at(r, c)];
                    }
                }
                Ok(2)
            }
            &Step::TransposeRows { src, dst, d0, d1 } => {
                let w = src.cols;
                for j in 0..d1 {
                    for i in 0..d0 {
                        let (from, to) = (src.at(i * d1 + j, 0), dst.at(j * d0 + i, 0));
                        mem.copy_within(from..from + w, to);
                    }
                }
                Ok(2)
            }
            &Step::TransposeIds {
                src,
                dst,
                rows,
                cols,
            } => {
                // `select` makes the destination slot after the source's: it comes later.
                let (before, from_dst) = ints.split_at_mut(dst);
                let (from, to) = (&before[src.slot][src.range()], &mut from_dst[0]);
                for r in 0..rows {
                    for c in 0..cols {
                        to[c * rows + r] = from[r * cols + c];
                    }
                }
                Ok(2)
            }
            Step::Copies { pairs } => {
                let base = SendPtr(mem.as_mut_ptr());
                let total: usize = pairs.iter().map(|p| p.1.numel()).sum();
                if threads > 1 && pairs.len() > 1 && total >= 2 * SPLIT_MIN_ELEMS {
                    let (a, b) = pairs.split_at(pairs.len() / 2);
                    rayon::join(|| copy_grids(a, base), || copy_grids(b, base));
                } else {
                    copy_grids(pairs, base);
                }
                Ok(2)
            }
            Step::Fallback { op, ins, out, node } => {
                let mut args = Vec::with_capacity(ins.len());
                for (v, ty) in ins {
                    args.push(match *v {
                        Val::F(l) => Tensor::f32(ty.shape.clone(), read(mem, l))?,
                        Val::I(s) => {
                            Tensor::i64(ty.shape.clone(), ints[s.slot][s.range()].to_vec())?
                        }
                    });
                }
                let refs: Vec<&Tensor> = args.iter().collect();
                let r = op
                    .eval(&refs)
                    .map_err(|e| JitError::Ir(e.at(node.clone())))?;
                match *out {
                    Val::F(l) => write(mem, l, &r.to_f32_vec()),
                    Val::I(s) => {
                        ints[s.slot][s.range()].copy_from_slice(r.as_i64().expect("i64 result"))
                    }
                }
                Ok(2)
            }
        }
    }
}

/// Copies the table rows `ids[ps]` to rows `ps` of `out`, on the calling thread. The caller
/// checked `ids` against the table's `vocab` rows, and no other thread touches rows `ps` of
/// `out`.
fn gather_rows(
    table: &Loc,
    vocab: usize,
    ids: &[i64],
    out: &Loc,
    ps: std::ops::Range<usize>,
    base: SendPtr,
) {
    let row = table.numel() / vocab.max(1);
    for p in ps {
        let src = table.off + ids[p] as usize * row;
        // SAFETY: ids are checked against the table and `finish` checked both windows lie in
        // the plan's memory; the table is another node's buffer, so it does not overlap the
        // output; the caller owns rows `ps` of the output.
        unsafe { std::ptr::copy_nonoverlapping(base.at(src), base.at(out.off + p * row), row) };
    }
}

/// Runs a kernel over its grid, split into two row halves on two threads when large.
pub(crate) fn run_kernel(
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
