//! The node order fusion and lowering follow: topological, with each lookup (and the views of
//! it) moved to just before the first node that computes from it.
//!
//! A breadth-first topological order runs a node as soon as its operands exist. For a
//! lookup (`gather`) of a table that exists from the start, that is the start of the plan: a
//! sequence's per-step lookups (see `row_slices_through_gather`) would all run first, each
//! output live until its step, `[T B, width]` of memory written long before it is read. Run
//! where they are read, each step's rows come from cache and share memory with the next's.
use trellis_ir::ops::Gather;
use trellis_ir::{Graph, NodeId, OpClass};

/// Topological order of `g` with lookups placed late (see the module doc).
pub fn node_order(g: &Graph) -> Vec<NodeId> {
    let order = g.topo_order();
    // Per lookup: the position of the first node computing from it (through views), and the
    // lookup with its views, in order.
    let mut trees: Vec<(usize, Vec<NodeId>)> = Vec::new();
    let mut tree_of = vec![u32::MAX; g.node_bound()];
    for (i, &n) in order.iter().enumerate() {
        let ops = g.operands(n);
        if g.op(n).as_any().is::<Gather>() {
            tree_of[n.index()] = trees.len() as u32;
            trees.push((usize::MAX, vec![n]));
        } else if let [o] = ops[..] {
            let t = tree_of[o.index()];
            if t != u32::MAX && g.op(n).class() == OpClass::View {
                tree_of[n.index()] = t;
                trees[t as usize].1.push(n);
                continue;
            }
        }
        for o in ops {
            if let Some(t) = trees.get_mut(tree_of[o.index()] as usize) {
                t.0 = t.0.min(i);
            }
        }
    }
    trees.retain(|t| t.0 != usize::MAX);
    if trees.is_empty() {
        return order;
    }
    // Trees were made in order: sorting by reader keeps that order among trees read together.
    trees.sort_by_key(|t| t.0);
    let mut moved = vec![false; g.node_bound()];
    for n in trees.iter().flat_map(|t| &t.1) {
        moved[n.index()] = true;
    }
    // Each tree's operands came before it, so before its first reader: the result is still
    // topological (a tree read by a moved node lands before that node's old place).
    let mut out = Vec::with_capacity(order.len());
    let mut next = trees.iter().peekable();
    for (i, &n) in order.iter().enumerate() {
        while let Some(t) = next.next_if(|t| t.0 == i) {
            out.extend_from_slice(&t.1);
        }
        if !moved[n.index()] {
            out.push(n);
        }
    }
    debug_assert_eq!(out.len(), order.len());
    out
}
