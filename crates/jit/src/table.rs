//! Per-node tables (a value or a flag per node index) that lowering and plans share.
use trellis_ir::NodeId;

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
