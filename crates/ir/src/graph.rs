//! The graph: nodes holding ops, on a petgraph `StableGraph` so passes can delete nodes
//! without invalidating the ids others hold.
use crate::ops::Input;
use crate::{IrError, Op, Result, Tensor, TensorType};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, NodeIndexable};
use petgraph::Direction;
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;

/// A node of a [`Graph`]; stays valid while the node exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub NodeIndex);

impl NodeId {
    pub fn index(self) -> usize {
        self.0.index()
    }
}
impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0.index())
    }
}

/// What a node is: its op, its operands in order, its inferred type and a debug name.
#[derive(Clone, Debug)]
pub struct Node {
    pub op: Arc<dyn Op>,
    pub inputs: SmallVec<[NodeId; 3]>,
    pub ty: TensorType,
    pub name: Option<String>,
}

/// Whether an interface node is data fed per call or a trained parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputKind {
    Data,
    Param,
}

/// A dataflow graph of ops. Edges run operand -> user and carry the operand's slot; the
/// node's `inputs` list is the same information in order, kept in step by every mutation here.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    g: StableDiGraph<Node, u16>,
    inputs: Vec<NodeId>,
    params: Vec<NodeId>,
    outputs: Vec<NodeId>,
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
            if !self.g.contains_node(i.0) {
                return Err(IrError::Invalid(format!(
                    "{}: operand {i} is not in the graph",
                    op.name()
                )));
            }
        }
        // Leaves are made without a check (`input`, `param`): an impossible size is refused
        // at its first use, before any size is computed from it.
        for &i in inputs {
            self.g[i.0]
                .ty
                .check_size(&format!("{}: operand {}", op.name(), self.describe(i)))?;
        }
        let tys: SmallVec<[&TensorType; 3]> = inputs.iter().map(|&i| &self.g[i.0].ty).collect();
        let ty = op
            .infer(&tys)
            .and_then(|ty| ty.check_size(op.name()).map(|_| ty))
            .map_err(|e| match &name {
                Some(n) => e.at(format!("'{n}'")),
                None => e,
            });
        drop(tys);
        let ty = ty?;
        let id = NodeId(self.g.add_node(Node {
            op,
            inputs: SmallVec::from_slice(inputs),
            ty,
            name,
        }));
        for (slot, &i) in inputs.iter().enumerate() {
            self.g.add_edge(i.0, id.0, slot as u16);
        }
        Ok(id)
    }

    /// [`Graph::input`], refusing an impossible size at once (rather than at its first use).
    pub fn try_input(&mut self, name: &str, ty: TensorType) -> Result<NodeId> {
        ty.check_size(&format!("input '{name}'"))?;
        Ok(self.input(name, ty))
    }
    /// [`Graph::param`], refusing an impossible size at once (rather than at its first use).
    pub fn try_param(&mut self, name: &str, ty: TensorType) -> Result<NodeId> {
        ty.check_size(&format!("parameter '{name}'"))?;
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
        NodeId(self.g.add_node(Node {
            op: Arc::new(op),
            inputs: SmallVec::new(),
            ty,
            name: Some(name.into()),
        }))
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id.0]
    }
    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.g.node_weight(id.0)
    }
    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.g[id.0].ty
    }
    pub fn op(&self, id: NodeId) -> &dyn Op {
        &*self.g[id.0].op
    }
    pub fn operands(&self, id: NodeId) -> &[NodeId] {
        &self.g[id.0].inputs
    }
    pub fn set_name(&mut self, id: NodeId, name: impl Into<String>) {
        self.g[id.0].name = Some(name.into());
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
        let mut u: Vec<NodeId> = self
            .g
            .neighbors_directed(id.0, Direction::Outgoing)
            .map(NodeId)
            .collect();
        u.sort();
        u.dedup();
        u
    }
    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id.0)
    }
    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }
    /// All node ids, in index order (not necessarily topological; see [`Graph::topo_order`]).
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices().map(NodeId)
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
    /// The data input or parameter of that name.
    pub fn find_input(&self, name: &str) -> Option<NodeId> {
        self.inputs
            .iter()
            .chain(&self.params)
            .copied()
            .find(|&i| self.node(i).name.as_deref() == Some(name))
    }
    /// The underlying petgraph, for algorithms and export.
    pub fn petgraph(&self) -> &StableDiGraph<Node, u16> {
        &self.g
    }

    /// Nodes in an order where operands come before users (Kahn's algorithm, linear).
    pub fn topo_order(&self) -> Vec<NodeId> {
        let mut indeg: Vec<u32> = vec![0; self.g.node_bound()];
        for n in self.g.node_indices() {
            indeg[n.index()] = self.g[n].inputs.len() as u32;
        }
        let mut order: Vec<NodeId> = self
            .g
            .node_indices()
            .filter(|n| self.g[*n].inputs.is_empty())
            .map(NodeId)
            .collect();
        let mut head = 0;
        while head < order.len() {
            let n = order[head].0;
            head += 1;
            for e in self.g.edges_directed(n, Direction::Outgoing) {
                let t = e.target();
                indeg[t.index()] -= 1;
                if indeg[t.index()] == 0 {
                    order.push(NodeId(t));
                }
            }
        }
        debug_assert_eq!(
            order.len(),
            self.g.node_count(),
            "graphs are acyclic by construction"
        );
        order
    }

    /// Marks the nodes `roots` depend on (themselves included), indexed by node index.
    pub fn reachable_from(&self, roots: &[NodeId]) -> Vec<bool> {
        let mut seen = vec![false; self.g.node_bound()];
        let mut stack: Vec<NodeId> = roots.to_vec();
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut seen[n.index()], true) {
                continue;
            }
            stack.extend(
                self.g[n.0]
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
        let edges: Vec<_> = self
            .g
            .edges_directed(old.0, Direction::Outgoing)
            .map(|e| (e.id(), e.target(), *e.weight()))
            .collect();
        for (e, user, slot) in edges {
            self.g.remove_edge(e);
            self.g.add_edge(new.0, user, slot);
            self.g[user].inputs[slot as usize] = new;
        }
        for o in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Removes a node with its edges. Interface lists drop it too.
    pub fn remove(&mut self, id: NodeId) {
        self.g.remove_node(id.0);
        self.inputs.retain(|&i| i != id);
        self.params.retain(|&i| i != id);
        self.outputs.retain(|&i| i != id);
    }

    /// Replaces a node's op (its type must stay the same), used by constant folding.
    pub fn set_op(&mut self, id: NodeId, op: Arc<dyn Op>, inputs: &[NodeId]) -> Result<()> {
        let tys: Vec<&TensorType> = inputs.iter().map(|&i| &self.g[i.0].ty).collect();
        let ty = op.infer(&tys)?;
        if ty != self.g[id.0].ty {
            return Err(IrError::Invalid(format!(
                "set_op on {id}: type {ty} differs from {}",
                self.g[id.0].ty
            )));
        }
        let old: Vec<_> = self
            .g
            .edges_directed(id.0, Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        for (slot, &i) in inputs.iter().enumerate() {
            self.g.add_edge(i.0, id.0, slot as u16);
        }
        let n = &mut self.g[id.0];
        n.op = op;
        n.inputs = SmallVec::from_slice(inputs);
        Ok(())
    }

    /// A constant node.
    pub fn constant(&mut self, t: Tensor) -> NodeId {
        self.apply(crate::ops::Constant::new(t), &[])
            .expect("a constant always infers")
    }
}
