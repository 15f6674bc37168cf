//! The graph: nodes holding ops, in a slot vector whose ids stay valid while passes delete
//! other nodes, with each node's uses indexed both ways so that removing or redirecting a use
//! is O(1) whatever the operand's fan-out (a weight read at every one of T steps).
use crate::ops::Input;
use crate::recurrent::Recurrence;
use crate::{IrError, Op, Result, Tensor, TensorType};
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;

/// A node of a [`Graph`]; stays valid while the node exists. Ids are given in creation order
/// and never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}
impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// What a node is: its op, its operands in order, its inferred type and a debug name.
#[derive(Debug)]
pub struct Node {
    pub op: Arc<dyn Op>,
    pub inputs: SmallVec<[NodeId; 3]>,
    pub ty: TensorType,
    pub name: Option<String>,
}

/// By hand: `SmallVec`'s derived clone copies element by element; a `Copy` slice is one
/// `memcpy` (compile clones graphs of millions of nodes).
impl Clone for Node {
    fn clone(&self) -> Self {
        Node {
            op: self.op.clone(),
            inputs: SmallVec::from_slice(&self.inputs),
            ty: self.ty.clone(),
            name: self.name.clone(),
        }
    }
}

/// Whether an interface node is data fed per call or a trained parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputKind {
    Data,
    Param,
}

/// One use of a node: operand `slot` of `user`.
#[derive(Clone, Copy, Debug)]
struct Use {
    user: NodeId,
    /// u32: a concat of every step of a 100,000-step sequence has that many operands.
    slot: u32,
}

/// Marks an operand slot whose operand was removed (the use went with it).
const UNLINKED: u32 = u32::MAX;

/// A dataflow graph of ops. Each node's `inputs` list its operands in order; `uses[x]` holds
/// every (user, slot) reading `x`, and `use_pos[user][slot]` where that entry sits in it, so
/// both directions are kept in step by every mutation here in O(1) per use.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: Vec<Option<Node>>,
    /// Inline up to two uses (most nodes have one or two): no allocation per node to make,
    /// clone or free.
    uses: Vec<SmallVec<[Use; 2]>>,
    use_pos: Vec<SmallVec<[u32; 3]>>,
    /// Whether each slot holds a node: scans of every node (the topological order, the node
    /// ids) read this instead of each node's hundred-odd bytes.
    present: Vec<bool>,
    live: usize,
    inputs: Vec<NodeId>,
    params: Vec<NodeId>,
    outputs: Vec<NodeId>,
    /// The unrolled recurrences, in the order built (see [`Recurrence`]).
    recurrences: Vec<Recurrence>,
}

/// By hand, for the per-node tables' `memcpy` clones (see [`Node`]'s `Clone`).
impl Clone for Graph {
    fn clone(&self) -> Self {
        Graph {
            nodes: self.nodes.clone(),
            uses: self.uses.iter().map(|u| SmallVec::from_slice(u)).collect(),
            use_pos: self
                .use_pos
                .iter()
                .map(|p| SmallVec::from_slice(p))
                .collect(),
            present: self.present.clone(),
            live: self.live,
            inputs: self.inputs.clone(),
            params: self.params.clone(),
            outputs: self.outputs.clone(),
            recurrences: self.recurrences.clone(),
        }
    }
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node applying `op` to `inputs`, inferring its type. Errors name the node's op,
    /// the operand shapes and, when given, the debug name.
    pub fn apply(&mut self, op: impl Op + 'static, inputs: &[NodeId]) -> Result<NodeId> {
        self.apply_arc(Arc::new(op), inputs, None)
    }
    /// [`Graph::apply`] with a debug name.
    pub fn apply_named(
        &mut self,
        op: impl Op + 'static,
        inputs: &[NodeId],
        name: impl Into<String>,
    ) -> Result<NodeId> {
        self.apply_arc(Arc::new(op), inputs, Some(name.into()))
    }
    pub fn apply_arc(
        &mut self,
        op: Arc<dyn Op>,
        inputs: &[NodeId],
        name: Option<String>,
    ) -> Result<NodeId> {
        for &i in inputs {
            if !self.contains(i) {
                return Err(IrError::Invalid(format!(
                    "{}: operand {i} is not in the graph",
                    op.name()
                )));
            }
        }
        if self.nodes.len() >= u32::MAX as usize {
            return Err(IrError::Invalid(format!(
                "{}: the graph is full ({} nodes)",
                op.name(),
                self.nodes.len()
            )));
        }
        // Leaves are made without a check (`input`, `param`): an impossible size is refused
        // at its first use, before any size is computed from it. (Every other node's type
        // was checked when it was made, below.)
        for &i in inputs {
            let n = self.node(i);
            if n.inputs.is_empty() {
                n.ty.check_size(|| format!("{}: operand {}", op.name(), self.describe(i)))?;
            }
        }
        let tys: SmallVec<[&TensorType; 3]> = inputs.iter().map(|&i| self.ty(i)).collect();
        let ty = op
            .infer(&tys)
            .and_then(|ty| ty.check_size(|| op.name().to_string()).map(|_| ty))
            .map_err(|e| match &name {
                Some(n) => e.at(format!("'{n}'")),
                None => e,
            });
        drop(tys);
        let ty = ty?;
        Ok(self.add_node(Node {
            op,
            inputs: SmallVec::from_slice(inputs),
            ty,
            name,
        }))
    }

    /// Stores a node and links its operands' uses.
    fn add_node(&mut self, node: Node) -> NodeId {
        let id = NodeId(u32::try_from(self.nodes.len()).expect("fewer than 2^32 nodes"));
        let mut pos = SmallVec::with_capacity(node.inputs.len());
        for (slot, &x) in node.inputs.iter().enumerate() {
            let list = &mut self.uses[x.index()];
            pos.push(list.len() as u32);
            list.push(Use {
                user: id,
                slot: slot as u32,
            });
        }
        self.nodes.push(Some(node));
        self.present.push(true);
        self.uses.push(SmallVec::new());
        self.use_pos.push(pos);
        self.live += 1;
        id
    }
    /// Records that operand `slot` of `user` reads `x`.
    fn link(&mut self, x: NodeId, user: NodeId, slot: usize) {
        let list = &mut self.uses[x.index()];
        self.use_pos[user.index()][slot] = list.len() as u32;
        list.push(Use {
            user,
            slot: slot as u32,
        });
    }
    /// Forgets the use by operand `slot` of `user` (O(1): swap-remove, then fix the moved use).
    fn unlink(&mut self, user: NodeId, slot: usize) {
        let pos = std::mem::replace(&mut self.use_pos[user.index()][slot], UNLINKED);
        if pos == UNLINKED {
            return;
        }
        let x = self.node(user).inputs[slot];
        let list = &mut self.uses[x.index()];
        list.swap_remove(pos as usize);
        if let Some(moved) = list.get(pos as usize).copied() {
            self.use_pos[moved.user.index()][moved.slot as usize] = pos;
        }
    }

    /// [`Graph::input`], refusing an impossible size at once (rather than at its first use).
    pub fn try_input(&mut self, name: &str, ty: TensorType) -> Result<NodeId> {
        ty.check_size(|| format!("input '{name}'"))?;
        Ok(self.input(name, ty))
    }
    /// [`Graph::param`], refusing an impossible size at once (rather than at its first use).
    pub fn try_param(&mut self, name: &str, ty: TensorType) -> Result<NodeId> {
        ty.check_size(|| format!("parameter '{name}'"))?;
        Ok(self.param(name, ty))
    }
    /// A named input fed at every run. Its size is checked when an op uses it and when the
    /// graph is compiled ([`Graph::try_input`] checks it here).
    pub fn input(&mut self, name: &str, ty: TensorType) -> NodeId {
        let id = self.leaf(
            Input {
                name: name.into(),
                ty,
                kind: InputKind::Data,
            },
            name,
        );
        self.inputs.push(id);
        id
    }
    /// A named trained parameter (size checked as for [`Graph::input`]).
    pub fn param(&mut self, name: &str, ty: TensorType) -> NodeId {
        let id = self.leaf(
            Input {
                name: name.into(),
                ty,
                kind: InputKind::Param,
            },
            name,
        );
        self.params.push(id);
        id
    }
    fn leaf(&mut self, op: Input, name: &str) -> NodeId {
        let ty = op.ty.clone();
        self.add_node(Node {
            op: Arc::new(op),
            inputs: SmallVec::new(),
            ty,
            name: Some(name.into()),
        })
    }

    /// The node `id` (panics when it was removed, like indexing a removed slot).
    pub fn node(&self, id: NodeId) -> &Node {
        match self.get(id) {
            Some(n) => n,
            None => panic!("node {id} is not in the graph"),
        }
    }
    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        match self.nodes.get_mut(id.index()).and_then(Option::as_mut) {
            Some(n) => n,
            None => panic!("node {id} is not in the graph"),
        }
    }
    /// Where node `id`'s slot is stored, read from nothing but the slot vector's length (a
    /// null pointer past its end): walks over millions of nodes in topological order visit
    /// them scattered in memory, and a caller can prefetch the slots it will visit next.
    pub fn slot_addr(&self, id: NodeId) -> *const u8 {
        self.nodes
            .get(id.index())
            .map_or(std::ptr::null(), |s| (s as *const Option<Node>).cast())
    }
    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.index()).and_then(Option::as_ref)
    }
    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.node(id).ty
    }
    pub fn op(&self, id: NodeId) -> &dyn Op {
        &*self.node(id).op
    }
    pub fn operands(&self, id: NodeId) -> &[NodeId] {
        &self.node(id).inputs
    }
    pub fn set_name(&mut self, id: NodeId, name: impl Into<String>) {
        self.node_mut(id).name = Some(name.into());
    }
    /// `%id` and the debug name, for error messages.
    pub fn describe(&self, id: NodeId) -> String {
        match self.get(id) {
            Some(Node {
                name: Some(n), op, ..
            }) => format!("{id} ({} '{n}')", op.name()),
            Some(n) => format!("{id} ({})", n.op.name()),
            None => format!("{id} (removed)"),
        }
    }
    /// Distinct nodes that use `id` as an operand.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut u: Vec<NodeId> = self.uses[id.index()].iter().map(|u| u.user).collect();
        u.sort();
        u.dedup();
        u
    }
    /// The user of each use of `id`, unordered, a user once per operand slot reading `id`
    /// ([`Graph::users`] without sorting or allocating).
    pub fn use_iter(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.uses[id.index()].iter().map(|u| u.user)
    }
    /// The one node using `id` (in one or more operand slots), `None` when there are none
    /// or several: `users(id).len() == 1` without allocating.
    pub fn sole_user(&self, id: NodeId) -> Option<NodeId> {
        let mut it = self.use_iter(id);
        let first = it.next()?;
        it.all(|u| u == first).then_some(first)
    }
    /// Number of uses of `id` (an operand read twice by one user counts twice).
    pub fn use_count(&self, id: NodeId) -> usize {
        self.uses[id.index()].len()
    }
    pub fn contains(&self, id: NodeId) -> bool {
        self.get(id).is_some()
    }
    pub fn node_count(&self) -> usize {
        self.live
    }
    /// One more than the largest node index ever given: the length of per-node tables.
    pub fn node_bound(&self) -> usize {
        self.nodes.len()
    }
    /// All node ids, in index order (not necessarily topological; see [`Graph::topo_order`]).
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.present
            .iter()
            .enumerate()
            .filter(|(_, &p)| p)
            .map(|(i, _)| NodeId(i as u32))
    }
    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }
    pub fn params(&self) -> &[NodeId] {
        &self.params
    }
    pub fn outputs(&self) -> &[NodeId] {
        &self.outputs
    }
    pub fn set_outputs(&mut self, outputs: Vec<NodeId>) {
        self.outputs = outputs;
    }
    /// The recurrences the unroller built into this graph, each step's nodes and state.
    pub fn recurrences(&self) -> &[Recurrence] {
        &self.recurrences
    }
    /// Records an unrolled recurrence (the unroller does, for every layer).
    pub fn note_recurrence(&mut self, r: Recurrence) {
        self.recurrences.push(r);
    }
    /// The nodes still present whose indices lie in `range`, in index order.
    pub fn node_ids_in(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = NodeId> + '_ {
        let end = range.end.min(self.present.len());
        let start = range.start.min(end);
        self.present[start..end]
            .iter()
            .enumerate()
            .filter(|(_, &p)| p)
            .map(move |(i, _)| NodeId((start + i) as u32))
    }
    /// The data input or parameter of that name.
    pub fn find_input(&self, name: &str) -> Option<NodeId> {
        self.inputs
            .iter()
            .chain(&self.params)
            .copied()
            .find(|&i| self.node(i).name.as_deref() == Some(name))
    }
    /// Nodes in an order where operands come before users (Kahn's algorithm, linear).
    pub fn topo_order(&self) -> Vec<NodeId> {
        // One sequential scan for in-degrees and leaves (leaves in index order); a live node's
        // `use_pos` has one entry per operand, and is much smaller to scan than the nodes.
        let mut indeg: Vec<u32> = vec![0; self.nodes.len()];
        let mut order: Vec<NodeId> = Vec::with_capacity(self.live);
        for (i, (&present, pos)) in self.present.iter().zip(&self.use_pos).enumerate() {
            if present {
                indeg[i] = pos.len() as u32;
                if pos.is_empty() {
                    order.push(NodeId(i as u32));
                }
            }
        }
        let mut head = 0;
        while head < order.len() {
            let n = order[head];
            head += 1;
            // Newest use first, as the graph stored them before (a stable schedule).
            for u in self.uses[n.index()].iter().rev() {
                let t = u.user.index();
                indeg[t] -= 1;
                if indeg[t] == 0 {
                    order.push(u.user);
                }
            }
        }
        debug_assert_eq!(order.len(), self.live, "graphs are acyclic by construction");
        order
    }

    /// Marks, by node index, the nodes for which `pred` holds, read in index order: one
    /// sequential scan, where a walk in topological order that reads every node to skip most
    /// of them waits for a cache miss at each (millions of nodes at long T). Passes test the
    /// mark first on their walk.
    pub fn mark(&self, pred: impl Fn(NodeId, &Node) -> bool) -> Vec<bool> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| n.as_ref().is_some_and(|n| pred(NodeId(i as u32), n)))
            .collect()
    }

    /// Marks the nodes `roots` depend on (themselves included), indexed by node index.
    pub fn reachable_from(&self, roots: &[NodeId]) -> Vec<bool> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack: Vec<NodeId> = roots.to_vec();
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut seen[n.index()], true) {
                continue;
            }
            stack.extend(
                self.node(n)
                    .inputs
                    .iter()
                    .copied()
                    .filter(|i| !seen[i.index()]),
            );
        }
        seen
    }

    /// Redirects every use of `old` (as an operand or a graph output) to `new`.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        if old == new {
            return;
        }
        for u in std::mem::take(&mut self.uses[old.index()]) {
            self.node_mut(u.user).inputs[u.slot as usize] = new;
            self.link(new, u.user, u.slot as usize);
        }
        for o in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Removes a node with its uses. Interface lists drop it too; users left reading it keep
    /// its id among their operands (passes remove or redirect them).
    pub fn remove(&mut self, id: NodeId) {
        if !self.contains(id) {
            return;
        }
        for slot in 0..self.node(id).inputs.len() {
            self.unlink(id, slot);
        }
        for u in std::mem::take(&mut self.uses[id.index()]) {
            self.use_pos[u.user.index()][u.slot as usize] = UNLINKED;
        }
        self.nodes[id.index()] = None;
        self.present[id.index()] = false;
        self.use_pos[id.index()] = SmallVec::new();
        self.live -= 1;
        self.inputs.retain(|&i| i != id);
        self.params.retain(|&i| i != id);
        self.outputs.retain(|&i| i != id);
    }

    /// Replaces a node's op (its type must stay the same), used by constant folding.
    pub fn set_op(&mut self, id: NodeId, op: Arc<dyn Op>, inputs: &[NodeId]) -> Result<()> {
        let tys: Vec<&TensorType> = inputs.iter().map(|&i| self.ty(i)).collect();
        let ty = op.infer(&tys)?;
        if ty != self.node(id).ty {
            return Err(IrError::Invalid(format!(
                "set_op on {id}: type {ty} differs from {}",
                self.node(id).ty
            )));
        }
        for slot in 0..self.node(id).inputs.len() {
            self.unlink(id, slot);
        }
        let n = self.node_mut(id);
        n.op = op;
        n.inputs = SmallVec::from_slice(inputs);
        self.use_pos[id.index()] = SmallVec::from_elem(UNLINKED, inputs.len());
        for (slot, &x) in inputs.iter().enumerate() {
            self.link(x, id, slot);
        }
        Ok(())
    }

    /// A constant node.
    pub fn constant(&mut self, t: Tensor) -> NodeId {
        self.apply(crate::ops::Constant::new(t), &[])
            .expect("a constant always infers")
    }
}
