//! Common-subexpression elimination.
use crate::{Graph, NodeId};
use rustc_hash::{FxHashMap, FxHasher};
use std::collections::hash_map::Entry;
use std::hash::Hasher;

/// Merges nodes with the same op (by [`crate::Op::same_as`]) applied to the same operands,
/// keeping the one with more uses, the one created first on a tie (both have the same operands,
/// so either may stand for the other; the kept one takes the other's debug name if it has
/// none). Moving the smaller use list keeps the pass near-linear: T copies of a constant merge
/// in O(T log T) moves, not O(T^2). One pass in topological order suffices: operands are
/// canonical before their users are looked at. Returns the number of nodes removed.
pub fn cse(g: &mut Graph) -> usize {
    // Per hash of (op, operands): the first node kept with it; `more` holds the others kept
    // under a hash already taken (a collision between different nodes: as good as never). A
    // compact table matters: at T = 20,000 it holds two million nodes.
    let mut seen: FxHashMap<u64, NodeId> = FxHashMap::default();
    seen.reserve(g.node_count());
    let mut more: FxHashMap<u64, Vec<NodeId>> = FxHashMap::default();
    let mut removed = 0;
    let order = g.topo_order();
    for (at, &n) in order.iter().enumerate() {
        if at % AHEAD == 0 {
            // Look up the next nodes' entries now, independently of one another: the table is
            // far larger than the caches, and a lookup at a time waits for each miss in turn.
            // (A hash gone stale by then only costs a wasted lookup.)
            for &m in order.iter().skip(at + AHEAD).take(AHEAD) {
                std::hint::black_box(seen.get(&identity(g, m)));
            }
        }
        let node = g.node(n);
        let hash = identity(g, n);
        let same = |k: NodeId| {
            let kn = g.node(k);
            kn.inputs == node.inputs && kn.op.same_as(&*node.op)
        };
        let kept = match seen.entry(hash) {
            Entry::Vacant(e) => {
                e.insert(n);
                continue;
            }
            Entry::Occupied(e) if same(*e.get()) => e.into_mut(),
            Entry::Occupied(_) => {
                let list = more.entry(hash).or_default();
                match list.iter().position(|&k| same(k)) {
                    Some(i) => &mut list[i],
                    None => {
                        list.push(n);
                        continue;
                    }
                }
            }
        };
        let key = |x: NodeId| (std::cmp::Reverse(g.use_count(x)), x);
        let (keep, drop) = if key(*kept) < key(n) {
            (*kept, n)
        } else {
            (n, *kept)
        };
        *kept = keep;
        if g.node(keep).name.is_none() {
            if let Some(name) = g.node(drop).name.clone() {
                g.set_name(keep, name);
            }
        }
        g.replace_uses(drop, keep);
        g.remove(drop);
        removed += 1;
    }
    removed
}

/// Nodes whose table entries are looked up ahead of time, in one batch.
const AHEAD: usize = 16;

/// The hash of a node's op and operands (CSE's key).
fn identity(g: &Graph, n: NodeId) -> u64 {
    let node = g.node(n);
    let mut h = FxHasher::default();
    node.op.identity_hash(&mut h);
    for i in &node.inputs {
        h.write_u32(i.index() as u32);
    }
    h.finish()
}
