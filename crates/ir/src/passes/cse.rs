//! Common-subexpression elimination.
use crate::{Graph, NodeId};
use smallvec::SmallVec;
use std::collections::HashMap;

/// Merges nodes with the same op (by its `Debug` form) applied to the same operands, keeping
/// the one created first (both have the same operands, so either may stand for the other).
/// One pass in topological order suffices: operands are canonical before their users are
/// looked at. Returns the number of nodes removed.
pub fn cse(g: &mut Graph) -> usize {
    let mut seen: HashMap<(String, SmallVec<[NodeId; 3]>), NodeId> = HashMap::new();
    let mut removed = 0;
    for n in g.topo_order() {
        let node = g.node(n);
        let key = (format!("{:?}", node.op), node.inputs.clone());
        match seen.get_mut(&key) {
            Some(kept) => {
                let (keep, drop) = if *kept < n { (*kept, n) } else { (n, *kept) };
                *kept = keep;
                g.replace_uses(drop, keep);
                g.remove(drop);
                removed += 1;
            }
            None => {
                seen.insert(key, n);
            }
        }
    }
    removed
}
