//! Per-node tables (a value or a flag per node index) that lowering and plans share, and a
//! per-op table.
use std::sync::Arc;

use rustc_hash::FxHashMap;
use trellis_ir::{Graph, NodeId, Op, TensorType};

use crate::memory::{prefetch, Near};
use crate::step::Val;

/// A value per node, indexed by node index: lowering looks one up per operand of every node,
/// and a hash table of millions of nodes was a tenth of lowering at long T.
#[derive(Clone, Debug)]
pub(crate) struct NodeTable<T>(Vec<Option<T>>);

impl<T: Clone> NodeTable<T> {
    /// A table for nodes with index below `bound` (it grows when given a larger one).
    pub(crate) fn new(bound: usize) -> Self {
        NodeTable(vec![None; bound])
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
    /// Each present value, mutably.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.0.iter_mut().flatten()
    }
}

/// Each node's value and type, as a plan keeps them: the values by node index, the types
/// interned (a few distinct types among millions of nodes at long T, where a type per node
/// was a third of a gigabyte of fresh memory to fill).
#[derive(Clone, Debug)]
pub(crate) struct Values {
    vals: NodeTable<Val>,
    /// Per node index with a value: its type's index in `types`.
    type_of: Vec<u32>,
    types: Vec<TensorType>,
}

impl Values {
    /// The table of `vals` (values of nodes of `g`), with the nodes' types.
    pub(crate) fn new(vals: NodeTable<Val>, g: &Graph) -> Self {
        let mut type_of = vec![0; vals.0.len()];
        let mut types = Vec::new();
        let mut ids: FxHashMap<&TensorType, u32> = FxHashMap::default();
        for n in g.node_ids() {
            if vals.contains_key(&n) {
                let ty = g.ty(n);
                type_of[n.index()] = *ids.entry(ty).or_insert_with(|| {
                    types.push(ty.clone());
                    types.len() as u32 - 1
                });
            }
        }
        Values {
            vals,
            type_of,
            types,
        }
    }
    /// Each value, mutably (types stay).
    pub(crate) fn vals_mut(&mut self) -> impl Iterator<Item = &mut Val> {
        self.vals.values_mut()
    }
    pub(crate) fn get(&self, n: &NodeId) -> Option<(&Val, &TensorType)> {
        let v = self.vals.get(n)?;
        Some((v, &self.types[self.type_of[n.index()] as usize]))
    }
    pub(crate) fn insert(&mut self, n: NodeId, v: Val, ty: &TensorType) {
        let t = match self.types.iter().position(|t| t == ty) {
            Some(t) => t,
            None => {
                self.types.push(ty.clone());
                self.types.len() - 1
            }
        };
        if n.index() >= self.type_of.len() {
            self.type_of.resize(n.index() + 1, 0);
        }
        self.type_of[n.index()] = t as u32;
        self.vals.insert(n, v);
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
        prefetch(p, Near::L1);
        prefetch(p.wrapping_add(64), Near::L1);
    }
}

/// Starts loading node `n`'s op into the cache (reads the node: prefetch it first).
#[inline]
pub(crate) fn prefetch_op(g: &Graph, n: NodeId) {
    if let Some(node) = g.get(n) {
        prefetch(Arc::as_ptr(&node.op).cast(), Near::L1);
    }
}
