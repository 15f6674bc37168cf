//! Per-node tables (a value or a flag per node index) that lowering and plans share, and a
//! per-op table.
use std::sync::Arc;

use rustc_hash::FxHashMap;
use trellis_ir::{Graph, NodeId, Op};

/// A value per node, indexed by node index: lowering looks one up per operand of every node,
/// and a hash table of millions of nodes was a tenth of lowering at long T.
#[derive(Clone, Debug)]
pub(crate) struct NodeTable<T>(Vec<Option<T>>);

impl<T: Clone> NodeTable<T> {
    /// A table for nodes with index below `bound` (it grows when given a larger one).
    pub(crate) fn new(bound: usize) -> Self {
        NodeTable(vec![None; bound])
    }
    /// A table from its values in node index order.
    pub(crate) fn from_vec(values: Vec<Option<T>>) -> Self {
        NodeTable(values)
    }
    pub(crate) fn get(&self, n: &NodeId) -> Option<&T> {
        self.0.get(n.index())?.as_ref()
    }
    pub(crate) fn contains_key(&self, n: &NodeId) -> bool {
        self.get(n).is_some()
    }
    pub(crate) fn insert(&mut self, n: NodeId, v: T) {
        if n.index() >= self.0.len() {
            self.0.resize(n.index() + 1, None);
        }
        self.0[n.index()] = Some(v);
    }
}

impl<T: Clone> std::ops::Index<&NodeId> for NodeTable<T> {
    type Output = T;
    fn index(&self, n: &NodeId) -> &T {
        self.get(n)
            .unwrap_or_else(|| panic!("no value for node {n}"))
    }
}

/// A set of nodes as a flag per node index (lowering asks it for most nodes).
pub(crate) struct NodeSet(Vec<bool>);

impl NodeSet {
    pub(crate) fn new(bound: usize) -> Self {
        NodeSet(vec![false; bound])
    }
    pub(crate) fn contains(&self, n: &NodeId) -> bool {
        self.0.get(n.index()).copied().unwrap_or(false)
    }
    pub(crate) fn insert(&mut self, n: NodeId) {
        if n.index() >= self.0.len() {
            self.0.resize(n.index() + 1, false);
        }
        self.0[n.index()] = true;
    }
}

/// A value derived once per distinct op, by op identity (as CSE compares ops: equal ops
/// compute alike): fusion and lowering ask for each elementwise member's scalar form or depth,
/// hundreds of thousands of times over at long T, where a handful of distinct ops occur.
pub(crate) struct PerOp<T>(FxHashMap<u64, Vec<OpEntry<T>>>);

/// An op and its value.
type OpEntry<T> = (Arc<dyn Op>, T);

impl<T> Default for PerOp<T> {
    fn default() -> Self {
        PerOp(FxHashMap::default())
    }
}

impl<T> PerOp<T> {
    /// The value for `op`, made by `make` the first time an op equal to it is met.
    pub(crate) fn get(&mut self, op: &Arc<dyn Op>, make: impl FnOnce(&dyn Op) -> T) -> &T {
        let mut h = rustc_hash::FxHasher::default();
        op.identity_hash(&mut h);
        let list = self.0.entry(std::hash::Hasher::finish(&h)).or_default();
        let i = match list.iter().position(|(o, _)| o.same_as(&**op)) {
            Some(i) => i,
            None => {
                list.push((op.clone(), make(&**op)));
                list.len() - 1
            }
        };
        &list[i].1
    }
}

/// How many places ahead of a walk over nodes [`prefetch_ahead`] loads.
pub(crate) const AHEAD: usize = 8;

/// Starts loading into the cache the node `AHEAD` places after position `at` of `order`:
/// a walk in topological order visits nodes scattered over hundreds of megabytes at long T,
/// and would otherwise wait for each node's cache miss in turn.
#[inline]
pub(crate) fn prefetch_ahead(g: &Graph, order: &[NodeId], at: usize) {
    if let Some(&m) = order.get(at + AHEAD) {
        prefetch_node(g, m);
    }
}

/// Starts loading node `n` into the cache.
#[inline]
pub(crate) fn prefetch_node(g: &Graph, n: NodeId) {
    let p = g.slot_addr(n);
    if !p.is_null() {
        // A node is about two cache lines.
        prefetch(p);
        prefetch(p.wrapping_add(64));
    }
}

/// A cache prefetch of the line holding `p` (nothing on other targets).
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing the program sees, and never faults,
    // whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
