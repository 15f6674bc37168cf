//! Which runs of steps split across the two cores (small row-wise steps whose halves never
//! touch each other's memory: `crate::split` checks the address ranges), and running rows
//! `r0..r1` of such a step on the calling thread.
use super::{gather_rows, mat, run_kernel, Locs, Step};
use crate::gemm::sgemm;
use crate::loc::Loc;
use crate::memory::SendPtr;
use crate::split::{rows_of, span, spans_meet, HalfIo, RunBuilder};
use crate::JitError;
use smallvec::smallvec;

impl Step {
    /// The windows a split step halves by rows, and those both halves read whole (a GEMM's
    /// right operand; every window of a step that is never split).
    pub(crate) fn row_split_locs(&self) -> (Locs, Locs) {
        match self {
            Step::Kernel { ins, outs, .. } => {
                (ins.iter().chain(outs).copied().collect(), smallvec![])
            }
            Step::Gemm {
                a, b, c, panels, ..
            } => (smallvec![*a, *c], smallvec![panels.unwrap_or(*b)]),
            Step::Gather { table, out, .. } => (smallvec![*out], smallvec![*table]),
            _ => (
                smallvec![],
                self.reads().into_iter().chain(self.writes()).collect(),
            ),
        }
    }
}

/// Rows `r0..r1` of a splittable step on the calling thread (a lookup's ids were checked
/// before the run, see [`check_run_ids`]).
pub(crate) fn exec_rows(s: &Step, r0: usize, r1: usize, base: SendPtr, ints: &[Vec<i64>]) {
    match s {
        Step::Gather {
            table,
            vocab,
            ids,
            out,
            ..
        } => gather_rows(
            table,
            *vocab,
            &ints[ids.slot][ids.range()],
            out,
            r0..r1,
            base,
        ),
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
            n,
            k,
            a,
            c,
            panels: Some(p),
            ..
        } => {
            // SAFETY: rows r0..r1 of checked windows; no other thread touches the rows written
            // here (`split_runs` proved it, or the caller gave each thread its own half); the
            // packed operand is its own buffer; panels are chosen only on AVX-512 hosts.
            unsafe {
                crate::panels::gemm_rows(
                    base.at(0),
                    r0,
                    r1,
                    *n,
                    *k,
                    mat(a, false),
                    base.at(p.off),
                    mat(c, false),
                )
            };
        }
        Step::Gemm {
            n, k, a, b, tb, c, ..
        } => {
            let (a, c) = (rows_of(a, r0, r1), rows_of(c, r0, r1));
            let mb = mat(b, *tb);
            let (ma, mc) = (mat(&a, false), mat(&c, false));
            // SAFETY: row windows of checked windows stay inside the memory; `split_runs`
            // proved that no other thread touches the rows written here.
            unsafe { sgemm(base.at(0), r1 - r0, *n, *k, ma, mb, mc, 1) };
        }
        _ => unreachable!("only kernels, GEMMs and lookups are split"),
    }
}

/// The rows a splittable step has (what its halves divide).
pub(crate) fn split_rows(s: &Step) -> usize {
    match s {
        Step::Kernel { rows, .. } => *rows,
        Step::Gemm { m, .. } => *m,
        Step::Gather { ids, .. } => ids.len,
        _ => unreachable!("only kernels, GEMMs and lookups are split"),
    }
}

/// Checks the ids of every lookup in a split run, before it starts: the halves cannot report
/// an error. (Ids are never written inside a run, so they are final by then.)
pub(crate) fn check_run_ids(steps: &[Step], ints: &[Vec<i64>]) -> Result<(), JitError> {
    for s in steps {
        if let Step::Gather {
            vocab, ids, node, ..
        } = s
        {
            trellis_ir::ops::check_ids("gather", &ints[ids.slot][ids.range()], *vocab)
                .map_err(|e| JitError::Ir(e.at(node.clone())))?;
        }
    }
    Ok(())
}

/// Asks the core to bring rows `r0..r1` of a kernel step's inputs into cache (L2), so a
/// recurrence step's slice of a projection computed long before (in DRAM by then) arrives
/// while the step's GEMM runs instead of stalling its kernel. Inputs inside `skip` (what the
/// GEMM is about to write) are left out, and a row broadcast (row stride 0) is one row. For a
/// lookup, the table rows its ids `r0..r1` pick (scattered over a table larger than the
/// caches, each one a wait for memory otherwise).
pub(crate) fn prefetch_inputs(
    s: &Step,
    r0: usize,
    r1: usize,
    skip: Loc,
    base: SendPtr,
    ints: &[Vec<i64>],
) {
    let line = |start: usize, len: usize| {
        // One hint per 64-byte line (16 floats).
        for e in (start..start + len).step_by(16) {
            crate::memory::prefetch(base.at(e) as *const u8, crate::memory::Near::L2);
        }
    };
    let ins = match s {
        Step::Kernel { ins, .. } => ins,
        Step::Gather {
            table, vocab, ids, ..
        } => {
            let row = table.numel() / (*vocab).max(1);
            for &id in &ints[ids.slot][ids.range()][r0..r1] {
                // (Ids are checked before the run; a hint at any address cannot fault.)
                let id = (id as usize).min(vocab.saturating_sub(1));
                line(table.off + id * row, row);
            }
            return;
        }
        _ => return,
    };
    for l in ins.iter().filter(|l| !l.cb) {
        let l = rows_of(l, r0, r1);
        if spans_meet(&l, &skip) {
            continue;
        }
        let rows = if l.rs == 0 { l.rows.min(1) } else { l.rows };
        for r in 0..rows {
            line(l.off + r * l.rs, l.cols);
        }
    }
}

/// Largest steps worth running as half-batch chains (bigger ones parallelise internally).
const SPLIT_MAX_KERNEL: usize = 1 << 18;
const SPLIT_MAX_GEMM: usize = 1 << 26;
/// Shortest run worth a fork-join.
const SPLIT_MIN_RUN: usize = 4;

/// The two halves' address ranges of a step, if it is a small row-wise step.
fn halves(s: &Step) -> Option<(HalfIo, HalfIo)> {
    // Addresses keyed by buffer: runs are found before the memory plan places buffers.
    let key = |l: &Loc| Loc {
        off: (l.root << crate::split::BUFFER_BITS) + l.off,
        ..*l
    };
    let spans = |ls: &mut dyn Iterator<Item = Loc>| ls.filter_map(|l| span(&key(&l))).collect();
    match s {
        Step::Kernel {
            rows,
            cols,
            ins,
            outs,
            ..
        } if *rows >= 2 && rows * cols <= SPLIT_MAX_KERNEL => {
            let mid = rows / 2;
            let part = |r0, r1| HalfIo {
                reads: spans(&mut ins.iter().map(|l| rows_of(l, r0, r1))),
                writes: spans(&mut outs.iter().map(|l| rows_of(l, r0, r1))),
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
            panels,
            ..
        } if *m >= 2 && m * n * k <= SPLIT_MAX_GEMM => {
            let mid = m / 2;
            let part = |r0, r1| HalfIo {
                reads: spans(&mut [rows_of(a, r0, r1), panels.unwrap_or(*b)].into_iter()),
                writes: spans(&mut std::iter::once(rows_of(c, r0, r1))),
            };
            Some((part(0, mid), part(mid, *m)))
        }
        // A lookup into dense rows, one per id (each step's rows of a sequence's embedding).
        Step::Gather {
            table, ids, out, ..
        } if ids.len >= 2 && out.rows == ids.len && out.rs == out.cols => {
            let mid = ids.len / 2;
            let part = |r0, r1| HalfIo {
                reads: spans(&mut std::iter::once(*table)),
                writes: spans(&mut std::iter::once(rows_of(out, r0, r1))),
            };
            Some((part(0, mid), part(mid, ids.len)))
        }
        _ => None,
    }
}

/// Maximal runs of consecutive splittable steps whose halves never touch each other's writes.
pub(crate) fn split_runs(steps: &[Step]) -> Vec<(usize, usize)> {
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
