//! Dead-code elimination.
use crate::Graph;

/// Removes every node that no graph output depends on. Inputs and parameters stay: they are
/// the graph's interface. Returns the number of nodes removed.
pub fn dce(g: &mut Graph) -> usize {
    let mut roots = g.outputs().to_vec();
    roots.extend_from_slice(g.inputs());
    roots.extend_from_slice(g.params());
    let live = g.reachable_from(&roots);
    let dead: Vec<_> = g.node_ids().filter(|n| !live[n.index()]).collect();
    for &n in &dead {
        g.remove(n);
    }
    dead.len()
}
