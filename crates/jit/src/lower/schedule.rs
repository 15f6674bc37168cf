//! Phase 3, scheduling: when each buffer is live and where it goes. Finds the runs of steps
//! that split into two half-batch chains (one per core), the steps that read only parameters
//! and constants (cached across runs), each buffer's lifetime, and its offset in the arena
//! (buffers whose lifetimes do not overlap share memory); the total is checked against the
//! memory limit before anything is allocated.
use rustc_hash::FxHashMap;
use trellis_ir::NodeId;

use super::select::Selection;
use crate::loc::Loc;
use crate::memory::{self, check_limit, Interval};
use crate::split::spans_meet;
use crate::step::{split_runs, Step, Val};
use crate::JitError;

/// The steps with their split runs, cached steps and memory plan.
pub(crate) struct Schedule<'g> {
    pub(crate) sel: Selection<'g>,
    /// Step ranges run as two half-batch chains, one per core.
    pub(crate) split_runs: Vec<(usize, usize)>,
    /// Steps that depend on parameters and constants only.
    pub(crate) invariant: Vec<bool>,
    /// Elements of the persistent region (inputs, parameters, constants), rounded up to 16:
    /// the arena starts there.
    pub(crate) base: usize,
    /// Per root `r >= 1`, its offset in the arena (`offsets[r - 1]`).
    pub(crate) offsets: Vec<usize>,
    /// Elements of the arena.
    pub(crate) arena: usize,
}

impl<'g> Schedule<'g> {
    /// Schedules `sel` for `threads` threads; `pinned` values live to the end of the run, and
    /// a plan that `updates_params` caches no steps.
    pub(crate) fn new(
        mut sel: Selection<'g>,
        threads: usize,
        pinned: &[NodeId],
        updates_params: bool,
    ) -> Result<Self, JitError> {
        let n_steps = sel.steps.len();
        let nroots = sel.mem.roots.len();
        let (mut def, mut last) = (vec![usize::MAX; nroots], vec![0usize; nroots]);
        for (i, s) in sel.steps.iter().enumerate() {
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
            if let Some(Val::F(l)) = sel.mem.vals.get(n) {
                last[l.root] = n_steps;
                def[l.root] = def[l.root].min(n_steps);
            }
        }
        // Runs split across cores are found on buffers, before placement; every buffer a run
        // touches then lives through the whole run, so no two halves meet in reused memory.
        let split_runs = if threads > 1 {
            split_runs(&sel.steps)
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
            let shared = run_slots(&sel, a, b, &def, &last);
            for (r, rep) in shared {
                slot_of[r] = rep;
            }
            for s in &sel.steps[a..b] {
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
        let invariant = if !updates_params {
            invariant_steps(&sel, &split_runs)
        } else {
            vec![false; n_steps]
        };
        let mut invariant_root = vec![false; nroots];
        for (s, _) in sel.steps.iter().zip(&invariant).filter(|(_, &inv)| inv) {
            for l in s.writes() {
                invariant_root[l.root] = true;
            }
        }
        for (s, _) in sel.steps.iter().zip(&invariant).filter(|(_, &inv)| !inv) {
            for l in s.reads() {
                if l.root != 0 && invariant_root[l.root] {
                    let r = slot_of[l.root];
                    def[r] = 0;
                    last[r] = n_steps;
                }
            }
        }
        for n in pinned {
            if let Some(Val::F(l)) = sel.mem.vals.get(n) {
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
                    size: if slot_of[r] == r { sel.mem.roots[r] } else { 0 },
                    def: d,
                    last: last[r].max(d),
                }
            })
            .collect();
        let base = sel.mem.persistent.len().next_multiple_of(16);
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
                limit: sel.mem.limit.0,
                limit_is: sel.mem.limit.1,
            })?;
        // The estimate, checked before the memory exists.
        check_limit(sel.mem.limit, base * 4, arena * 4)?;
        for r in 1..nroots {
            offsets[r - 1] = offsets[slot_of[r] - 1];
        }
        sel.stats.arena_bytes = arena * 4;
        sel.stats.persistent_bytes = base * 4;
        sel.stats.split_steps = split_runs.iter().map(|r| r.1 - r.0).sum();
        sel.stats.run_shared_buffers = (1..nroots).filter(|&r| slot_of[r] != r).count();
        sel.stats.invariant_steps = invariant.iter().filter(|&&x| x).count();
        Ok(Schedule {
            sel,
            split_runs,
            invariant,
            base,
            offsets,
            arena,
        })
    }
}

/// For split run `a..b`: buffers defined and last used inside it whose every access in it
/// is split the same way (all rows of a `rows x rs` block, halved by rows), grouped by that
/// layout and given slots greedily by lifetime. Returns `(root, slot root)` for each root
/// that shares an earlier root's memory.
fn run_slots(
    sel: &Selection,
    a: usize,
    b: usize,
    def: &[usize],
    last: &[usize],
) -> Vec<(usize, usize)> {
    // Per root: Some((rows, rs)) while every access agrees, None once one does not.
    // (A vector by root, not a hash table: one run can hold most of a plan's buffers.)
    let mut layout: Vec<Option<Option<(usize, usize)>>> = vec![None; sel.mem.roots.len()];
    for s in &sel.steps[a..b] {
        let (split, whole) = s.row_split_locs();
        for l in &whole {
            layout[l.root] = Some(None);
        }
        for l in &split {
            let size = sel.mem.roots.get(l.root).copied().unwrap_or(0);
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
fn invariant_steps(sel: &Selection, split_runs: &[(usize, usize)]) -> Vec<bool> {
    let data: Vec<Loc> = sel
        .mem
        .g
        .inputs()
        .iter()
        .filter_map(|n| match sel.mem.vals.get(n) {
            Some(Val::F(l)) => Some(*l),
            _ => None,
        })
        .collect();
    let mut in_run_step = vec![false; sel.steps.len()];
    for &(a, b) in split_runs {
        in_run_step[a..b].fill(true);
    }
    let in_run = |i: usize| in_run_step[i];
    let mut variant_root = vec![false; sel.mem.roots.len()];
    let mut invariant = vec![true; sel.steps.len()];
    // To a fixpoint: a root is variant once any variant step writes it.
    loop {
        let mut changed = false;
        for (i, s) in sel.steps.iter().enumerate() {
            if !invariant[i] {
                continue;
            }
            let reads_ints = matches!(
                s,
                Step::Gather { .. }
                    | Step::ScatterAdd { .. }
                    | Step::Fallback { .. }
                    | Step::TransposeIds { .. }
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
