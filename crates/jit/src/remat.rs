//! Rematerialisation: a unary elementwise value that a kernel far later in the plan reads
//! (an LSTM's `tanh(c)`, read by its step's backward kernel a whole sequence after the forward
//! kernel made it) is recomputed in that kernel from its operand instead of kept in memory,
//! when the operand is kept until about then anyway (the cell state `c`, which the next step's
//! backward kernel reads). The value's storage then ends at its near readers.
//!
//! Decided on a first fusion of the graph (which kernel reads what, and where in the order):
//! the far readers get a clone of the value's node, which the second fusion places in their
//! kernel ([`crate::fusion::fuse`]'s `starts_group`). Should the second fusion part a copy's
//! readers into two kernels, the copy stays a kernel of its own (run early, its value stored
//! as before: correct, no memory saved); the seed model's and BiLSTM's copies all merge
//! (`crates/jit/tests/fusion.rs` checks the LSTM's).
use crate::fusion::Unit;
use rustc_hash::FxHashSet;
use trellis_ir::{Graph, NodeId, OpClass};

/// Fewest units (kernels, GEMMs, ...) of the schedule a value must stay stored for past its
/// last near reader to be worth recomputing: an LSTM step is six to eight units each way, so
/// this is several steps.
const MIN_SAVED: usize = 64;

/// Recomputes far-read unary values in their readers' kernels (see the module doc), given a
/// fusion of `g` (its units in the order they run). Returns the copies it made, one per
/// reading kernel (each to start a group of its own, which fusion merges into its sole
/// consumer); `g` is unchanged when it is empty.
pub fn rematerialize(g: &mut Graph, units: &[Unit]) -> FxHashSet<NodeId> {
    const NONE: u32 = u32::MAX;
    // Positions are units' places in the fused schedule (a kernel's members sit anywhere in
    // the node order: a backward kernel's `1 - s` right after the forward `s`). And whether a
    // node changes with the data (a value of the parameters alone is computed once by a plan
    // that caches parameter-only steps: recomputing it each run would cost work); the units
    // run in a topological order, so each node's operands are seen first.
    let mut pos = vec![0usize; g.node_bound()];
    let mut group_of = vec![NONE; g.node_bound()];
    let mut data = vec![false; g.node_bound()];
    let inputs: FxHashSet<NodeId> = g.inputs().iter().copied().collect();
    for (u, unit) in units.iter().enumerate() {
        let members = match unit {
            Unit::Group(m) => &m[..],
            Unit::Single(n) => std::slice::from_ref(n),
        };
        for &m in members {
            pos[m.index()] = u;
            if matches!(unit, Unit::Group(_)) {
                group_of[m.index()] = u as u32;
            }
            data[m.index()] = inputs.contains(&m) || g.operands(m).iter().any(|o| data[o.index()]);
        }
    }
    let outputs: FxHashSet<NodeId> = g.outputs().iter().copied().collect();
    // Where `x`'s last reader other than `but` is (its own position when none).
    let last_use = |g: &Graph, x: NodeId, but: NodeId| -> usize {
        if outputs.contains(&x) || g.operands(x).is_empty() {
            return usize::MAX; // a graph output or an input: in memory throughout
        }
        g.use_iter(x)
            .filter(|&u| u != but)
            .map(|u| pos[u.index()])
            .fold(pos[x.index()], usize::max)
    };
    let mut plans: Vec<(NodeId, Vec<NodeId>)> = Vec::new();
    for unit in units {
        let Unit::Group(members) = unit else { continue };
        for &n in members {
            let &[x] = g.operands(n) else { continue };
            let home = group_of[n.index()];
            if outputs.contains(&n) {
                continue;
            }
            // The operand must be in memory: outside this kernel (a GEMM's output, an input,
            // another kernel's), or read outside it too; and not a view (keeping it would
            // keep the whole of what it views, a GEMM's four gates for one).
            if g.op(x).class() == OpClass::View || !data[x.index()] {
                continue;
            }
            let x_home = group_of[x.index()];
            let x_stored = x_home != home
                || outputs.contains(&x)
                || g.use_iter(x).any(|u| group_of[u.index()] != home);
            if !x_stored {
                continue;
            }
            // Its readers latest first, and the first gap of at least MIN_SAVED units between
            // two of them (or the last and `n`): the readers before it are far.
            let mut readers: Vec<NodeId> = g.use_iter(n).collect();
            readers.sort_by_key(|u| std::cmp::Reverse(pos[u.index()]));
            readers.dedup();
            let at = |i: usize| readers.get(i).map_or(pos[n.index()], |u| pos[u.index()]);
            let Some(far) = (0..readers.len()).find(|&i| at(i) - at(i + 1) >= MIN_SAVED) else {
                continue;
            };
            let taken = &readers[..=far];
            // Each far reader in a kernel of its own (not this one: a reader there is near).
            if taken.iter().any(|u| group_of[u.index()] == NONE) {
                continue;
            }
            // Its storage then ends at the near readers; the operand's is extended to the
            // last far reader, by at most an eighth of that.
            let saved = at(0) - at(far + 1);
            let extended = at(0).saturating_sub(last_use(g, x, n));
            if extended.saturating_mul(8) <= saved {
                plans.push((n, taken.to_vec()));
            }
        }
    }
    // A copy per reading kernel, so that each is read by one kernel only (fusion merges a
    // group into its sole consumer).
    let mut clones = FxHashSet::default();
    for (n, mut readers) in plans {
        let x = g.operands(n)[0];
        readers.sort_by_key(|u| group_of[u.index()]);
        for kernel in readers.chunk_by(|a, b| group_of[a.index()] == group_of[b.index()]) {
            let op = g.node(n).op.clone();
            let Ok(copy) = g.apply_arc(op, &[x], None) else {
                continue;
            };
            for &u in kernel {
                let ops: Vec<NodeId> = g
                    .operands(u)
                    .iter()
                    .map(|&o| if o == n { copy } else { o })
                    .collect();
                let op = g.node(u).op.clone();
                // (Same op, an operand of the same type: it cannot fail; if it did, `u` would
                // go on reading the stored value, still correct.)
                let _ = g.set_op(u, op, &ops);
            }
            if g.use_count(copy) == 0 {
                g.remove(copy);
            } else {
                clones.insert(copy);
            }
        }
        if g.use_count(n) == 0 {
            g.remove(n); // every reader was far: the kernel that made it need not
        }
    }
    clones
}
