//! Common-subexpression elimination.
use crate::{Graph, NodeId};
use rustc_hash::{FxHashMap, FxHasher};
use std::collections::hash_map::Entry;
use std::hash::Hasher;

/// The kept nodes by 32 bits of the hash of (op, operands): 8 bytes an entry, since at long T
/// the lookups that miss the caches are what CSE waits on. `more` holds the others kept under
/// a hash already taken (a collision between different nodes, told apart by
/// [`crate::Op::same_as`] and the operands: rare).
#[derive(Default)]
struct Table {
    seen: FxHashMap<u32, NodeId>,
    more: FxHashMap<u32, Vec<NodeId>>,
}

/// Merges nodes with the same op (by [`crate::Op::same_as`]) applied to the same operands,
/// keeping the one with more uses, the one created first on a tie (both have the same operands,
/// so either may stand for the other; the kept one takes the other's debug name if it has
/// none). Moving the smaller use list keeps the pass near-linear: T copies of a constant merge
/// in O(T log T) moves, not O(T^2). One pass in topological order suffices: operands are
/// canonical before their users are looked at. Returns the number of nodes removed.
pub fn cse(g: &mut Graph) -> usize {
    let mut table = Table::default();
    // Nodes left out of the table, which at T = 20,000 outgrows the caches: a node reading an
    // operand that no other node reads cannot equal any other node. It waits until that
    // operand gains a use, which only a merge keeping it does; the node is then entered as
    // it would have been when visited (its operands have not changed since: a node whose
    // operand is merged away reads the kept one instead, and its entry, had it been made,
    // could never be found again).
    let mut waiting = vec![false; g.node_bound()];
    let unique = |g: &Graph, n: NodeId| g.operands(n).iter().any(|&x| g.use_count(x) == 1);
    let mut removed = 0;
    let order = g.topo_order();
    for (at, &n) in order.iter().enumerate() {
        if at % AHEAD == 0 {
            // Look up the next nodes' entries now, independently of one another: a lookup at
            // a time waits for each cache miss in turn. (A hash gone stale by then only costs
            // a wasted lookup.)
            for &m in order.iter().skip(at + AHEAD).take(AHEAD) {
                if !unique(g, m) {
                    std::hint::black_box(table.seen.get(&identity(g, m)));
                }
            }
        }
        if unique(g, n) {
            waiting[n.index()] = true;
            continue;
        }
        let Some(kept) = enter(g, &mut table, n) else {
            continue;
        };
        let key = |x: NodeId| (std::cmp::Reverse(g.use_count(x)), x);
        let (keep, drop) = if key(kept) < key(n) {
            (kept, n)
        } else {
            (n, kept)
        };
        if keep != kept {
            replace_entry(g, &mut table, kept, keep);
        }
        if g.node(keep).name.is_none() {
            if let Some(name) = g.node(drop).name.clone() {
                g.set_name(keep, name);
            }
        }
        // The users of `drop` now read `keep`: those waiting never enter (see above).
        for u in g.use_iter(drop) {
            waiting[u.index()] = false;
        }
        let lone = match g.use_count(keep) {
            1 => g.use_iter(keep).next(),
            _ => None,
        };
        g.replace_uses(drop, keep);
        g.remove(drop);
        removed += 1;
        // The one node reading `keep` may have been waiting for it to gain a use.
        if let Some(u) = lone.filter(|u| waiting[u.index()]) {
            waiting[u.index()] = false;
            let found = enter(g, &mut table, u);
            debug_assert!(found.is_none(), "a waiting node equals no other");
        }
    }
    removed
}

/// Looks `n` up: the kept node equal to it, or `None` after recording `n` as kept.
fn enter(g: &Graph, table: &mut Table, n: NodeId) -> Option<NodeId> {
    let node = g.node(n);
    let hash = identity(g, n);
    let same = |k: NodeId| {
        let kn = g.node(k);
        kn.inputs == node.inputs && kn.op.same_as(&*node.op)
    };
    match table.seen.entry(hash) {
        Entry::Vacant(e) => {
            e.insert(n);
            None
        }
        Entry::Occupied(e) if same(*e.get()) => Some(*e.get()),
        Entry::Occupied(_) => {
            let list = table.more.entry(hash).or_default();
            match list.iter().position(|&k| same(k)) {
                Some(i) => Some(list[i]),
                None => {
                    list.push(n);
                    None
                }
            }
        }
    }
}

/// Makes `new` the kept node where `old` (equal to it) was.
fn replace_entry(g: &Graph, table: &mut Table, old: NodeId, new: NodeId) {
    let hash = identity(g, old);
    match table.seen.get_mut(&hash) {
        Some(k) if *k == old => *k = new,
        _ => {
            let list = table
                .more
                .get_mut(&hash)
                .expect("a kept node is in the table");
            let i = list.iter().position(|&k| k == old).expect("kept");
            list[i] = new;
        }
    }
}

/// Nodes whose table entries are looked up ahead of time, in one batch.
const AHEAD: usize = 16;

/// 32 bits of the hash of a node's op and operands (CSE's key).
fn identity(g: &Graph, n: NodeId) -> u32 {
    let node = g.node(n);
    let mut h = FxHasher::default();
    node.op.identity_hash(&mut h);
    for i in &node.inputs {
        h.write_u32(i.index() as u32);
    }
    let x = h.finish();
    (x ^ (x >> 32)) as u32
}
