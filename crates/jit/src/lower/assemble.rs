//! Phase 4, assembly: the plan's memory allocated (persistent values copied in, the arena
//! zeroed lazily), every window moved to its absolute offset and checked to lie inside the
//! memory (the executor's unsafe calls rely on it), and each node's value located: the parts a
//! [`crate::Plan`] is made of.
use std::collections::HashMap;

use trellis_ir::NodeId;

use super::schedule::Schedule;
use crate::loc::Loc;
use crate::memory;
use crate::stats::PlanStats;
use crate::step::{check_windows, Step};
use crate::table::Values;
use crate::JitError;

/// A lowered graph, ready to run.
pub(crate) struct Assembly {
    pub(crate) steps: Vec<Step>,
    pub(crate) mem: Vec<f32>,
    pub(crate) ints: Vec<Vec<i64>>,
    /// Each node's value and type (absolute windows), by node index.
    pub(crate) values: Values,
    pub(crate) inputs: HashMap<NodeId, String>,
    pub(crate) id_checks: Vec<(usize, usize, String)>,
    pub(crate) split_runs: Vec<(usize, usize)>,
    pub(crate) invariant: Vec<bool>,
    pub(crate) stats: PlanStats,
    pub(crate) sources: Option<Vec<(usize, Vec<NodeId>)>>,
}

impl Assembly {
    pub(crate) fn new(s: Schedule) -> Result<Self, JitError> {
        let Schedule {
            sel,
            split_runs,
            invariant,
            base,
            offsets,
            arena,
        } = s;
        let g = sel.mem.g;
        let abs = |l: Loc| -> Loc {
            let off = if l.root == 0 {
                l.off
            } else {
                base + offsets[l.root - 1] + l.off
            };
            Loc { root: 0, off, ..l }
        };
        // A fresh zeroed allocation (calloc): the arena's pages are mapped lazily, not written.
        let mut mem = memory::zeroed_f32(base + arena).ok_or(JitError::Alloc {
            bytes: (base + arena) * 4,
            what: "memory",
        })?;
        memory::advise_huge_pages(&mut mem);
        mem[..sel.mem.persistent.len()].copy_from_slice(&sel.mem.persistent);
        let mut steps = sel.steps;
        for s in &mut steps {
            for l in s.windows_mut() {
                *l = abs(*l);
            }
        }
        check_windows(&steps, mem.len())?;
        // Placement's table, made absolute in place (millions of nodes).
        let mut vals = sel.mem.vals;
        for v in vals.values_mut() {
            if let Some(l) = v.loc_mut() {
                *l = abs(*l);
            }
        }
        Ok(Assembly {
            steps,
            mem,
            ints: sel.mem.ints,
            values: Values::new(vals, g),
            inputs: sel.mem.inputs,
            id_checks: sel.id_checks,
            split_runs,
            invariant,
            stats: sel.stats,
            sources: sel.sources,
        })
    }
}
