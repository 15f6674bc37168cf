//! Common-subexpression elimination.
use crate::{Graph, NodeId, Op};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::fmt::Write;
use std::hash::{DefaultHasher, Hasher};

/// A hash of `op`'s `Debug` form, written straight into the hasher: no string per node (the
/// strings were a third of the pass at long T). Equal hashes are confirmed on the strings.
fn op_hash(op: &dyn Op) -> u64 {
    struct H(DefaultHasher);
    impl Write for H {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    let mut h = H(DefaultHasher::new());
    let _ = write!(h, "{op:?}");
    h.0.finish()
}

/// Merges nodes with the same op (by its `Debug` form) applied to the same operands, keeping
/// the one with more uses, the one created first on a tie (both have the same operands, so
/// either may stand for the other; the kept one takes the other's debug name if it has none).
/// Moving the smaller use list keeps the pass near-linear: T copies of a constant merge in
/// O(T log T) moves, not O(T^2). One pass in topological order suffices: operands are
/// canonical before their users are looked at. Returns the number of nodes removed.
pub fn cse(g: &mut Graph) -> usize {
    let mut seen: HashMap<(u64, SmallVec<[NodeId; 3]>), NodeId> = HashMap::new();
    let mut removed = 0;
    for n in g.topo_order() {
        let node = g.node(n);
        let key = (op_hash(&*node.op), node.inputs.clone());
        match seen.get_mut(&key) {
            Some(kept) if format!("{:?}", g.node(*kept).op) == format!("{:?}", node.op) => {
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
            // Equal hashes of different ops: left unmerged (as good as never).
            Some(_) => {}
            None => {
                seen.insert(key, n);
            }
        }
    }
    removed
}
