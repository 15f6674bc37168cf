//! Phase 1, placement: where each value lives before any step exists. Inputs, parameters and
//! constants get persistent memory (their total checked against the limit first); concat
//! inputs are computed straight into the concat's memory (DESIGN point 3: step tensors
//! contiguous, no copies). [`Placement`] is also the memory map later phases extend: a value
//! gets a fresh buffer when selection first writes it, or a window of its operand when it is a
//! view (reshape, slice, broadcast, `after`).
use std::collections::HashMap;

use trellis_ir::ops::{
    After, BroadcastTo, Concat, Constant, Fill, Input, Reshape, Slice, StopGradient,
};
use trellis_ir::{DType, Graph, NodeId, Op, OpClass, Shape, Tensor};

use crate::fusion::Unit;
use crate::loc::Loc;
use crate::memory::check_limit;
use crate::step::{IntLoc, Val};
use crate::table::{NodeSet, NodeTable};
use crate::JitError;

/// Where values live: the memory map of a plan being lowered.
pub(crate) struct Placement<'g> {
    pub(crate) g: &'g Graph,
    pub(crate) vals: NodeTable<Val>,
    /// Nodes whose location a concat user decided (they are written in place).
    pub(crate) placed: NodeSet,
    /// Size of each root buffer; root 0 is the persistent region.
    pub(crate) roots: Vec<usize>,
    pub(crate) persistent: Vec<f32>,
    pub(crate) ints: Vec<Vec<i64>>,
    /// The plan's inputs and parameters, by name.
    pub(crate) inputs: HashMap<NodeId, String>,
    /// Most bytes the plan may take, and what that limit is (for the error).
    pub(crate) limit: (usize, &'static str),
}

impl<'g> Placement<'g> {
    /// Places the leaves of `order`, then the concat inputs of `units` that can be written in
    /// place.
    pub(crate) fn new(
        g: &'g Graph,
        order: &[NodeId],
        units: &[Unit],
        limit: (usize, &'static str),
    ) -> Result<Self, JitError> {
        let mut p = Placement {
            g,
            vals: NodeTable::new(g.node_bound()),
            placed: NodeSet::new(g.node_bound()),
            roots: vec![0],
            persistent: Vec::new(),
            ints: Vec::new(),
            inputs: HashMap::new(),
            limit,
        };
        p.place_leaves(order)?;
        p.place_concats(order, units);
        Ok(p)
    }

    pub(crate) fn shape(&self, n: NodeId) -> &Shape {
        &self.g.ty(n).shape
    }
    pub(crate) fn loc(&self, n: NodeId) -> Loc {
        match self.vals[&n] {
            Val::F(l) => l,
            Val::I(_) => unreachable!("f32 value expected for {}", self.g.describe(n)),
        }
    }
    pub(crate) fn new_root(&mut self, shape: &Shape) -> Loc {
        self.roots.push(shape.numel());
        Loc::dense(self.roots.len() - 1, 0, shape)
    }
    /// A persistent value (in memory reserved by `place_leaves`), `fill` when no `data`.
    fn persist(&mut self, shape: &Shape, data: Option<&[f32]>, fill: f32) -> Loc {
        let off = self.persistent.len().next_multiple_of(16);
        self.persistent.resize(off, 0.0);
        match data {
            Some(d) => self.persistent.extend_from_slice(d),
            None => self.persistent.resize(off + shape.numel(), fill),
        }
        Loc::dense(0, off, shape)
    }
    /// The location node `n` is computed into: where a concat placed it, else a new buffer.
    pub(crate) fn out_loc(&mut self, n: NodeId) -> Loc {
        match self.vals.get(&n) {
            Some(Val::F(l)) if self.placed.contains(&n) => *l,
            _ => {
                let l = self.new_root(&self.g.ty(n).shape.clone());
                self.vals.insert(n, Val::F(l));
                l
            }
        }
    }

    /// Node `n` as a window of its operand's memory, when it is a view a window can express
    /// (see [`window`]) and the operand's layout allows it.
    pub(crate) fn view(&self, n: NodeId) -> Option<Loc> {
        let x = self.g.operands(n).first().copied()?;
        match window(self.g.op(n))? {
            Window::Whole => Some(self.loc(x)),
            Window::Reshape(to) => self.loc(x).reshape(to),
            Window::Slice(s) => self.loc(x).slice(self.shape(x), s.axis, s.start, s.end),
            Window::Broadcast(to) => self.loc(x).broadcast(self.shape(x), to),
        }
    }

    /// Inputs, parameters, constants: persistent, set before any run. Their total size is
    /// checked against the memory limit and reserved before any of it is allocated.
    pub(crate) fn place_leaves(&mut self, order: &[NodeId]) -> Result<(), JitError> {
        let g = self.g;
        let is_leaf = g.mark(|_, node| leaf(&*node.op).is_some());
        let leaves: Vec<NodeId> = order
            .iter()
            .copied()
            .filter(|n| is_leaf[n.index()])
            .collect();
        // Elements of f32 values (each aligned to 16) and bytes of i64 ones; sizes were
        // checked in `compile`, so only the sums can overflow.
        let (mut floats, mut int_bytes) = (Some(0usize), Some(0usize));
        for &n in &leaves {
            let ty = self.g.ty(n);
            if ty.dtype == DType::I64 {
                int_bytes = int_bytes.and_then(|b| b.checked_add(ty.numel().checked_mul(8)?));
            } else {
                floats = floats.and_then(|f| f.next_multiple_of(16).checked_add(ty.numel()));
            }
        }
        let sizes = floats.and_then(|f| Some((f, f.checked_mul(4)?.checked_add(int_bytes?)?)));
        let Some((floats, bytes)) = sizes else {
            return Err(JitError::MemoryLimit {
                needed: usize::MAX,
                persistent: usize::MAX,
                arena: 0,
                limit: self.limit.0,
                limit_is: self.limit.1,
            });
        };
        check_limit(self.limit, bytes, 0)?;
        self.persistent
            .try_reserve_exact(floats)
            .map_err(|_| JitError::Alloc {
                bytes: floats * 4,
                what: "inputs, parameters and constants",
            })?;
        for n in leaves {
            let node = g.node(n);
            let Some(value) = leaf(&*node.op) else {
                continue;
            };
            let (constant, fill) = match value {
                Leaf::Input(name) => {
                    self.inputs.insert(n, name.to_string());
                    (None, 0.0)
                }
                Leaf::Constant(t) => (Some(t), 0.0),
                Leaf::Fill(v) => (None, v),
            };
            let v = if node.ty.dtype == DType::I64 {
                let ids = match &constant {
                    Some(t) => t.as_i64().expect("i64").to_vec(),
                    None => vec![fill as i64; node.ty.numel()],
                };
                let len = ids.len();
                self.ints.push(ids);
                Val::I(IntLoc::whole(self.ints.len() - 1, len))
            } else {
                let shape = node.ty.shape.clone();
                let data = constant.map(|t| t.to_f32_vec());
                Val::F(self.persist(&shape, data.as_deref(), fill as f32))
            };
            self.vals.insert(n, v);
        }
        Ok(())
    }

    /// Decides, from the last concat back, which concat inputs are computed straight into the
    /// concat's memory (DESIGN point 3: step tensors contiguous, no copies).
    pub(crate) fn place_concats(&mut self, order: &[NodeId], units: &[Unit]) {
        // Nodes whose producer can write a strided window: GEMM and kernel outputs, concats.
        let mut strided_ok = NodeSet::new(self.g.node_bound());
        for u in units {
            if let Unit::Group(m) = u {
                m.iter().for_each(|&n| strided_ok.insert(n));
            }
        }
        for n in self.g.node_ids() {
            let op = self.g.op(n);
            if op.class() == OpClass::Contraction || concat_axis(op).is_some() {
                strided_ok.insert(n);
            }
        }
        // Leaves and views keep their own memory: a view is a window of its operand's.
        let leafish = |b: &Self, n: NodeId| b.vals.contains_key(&n) || window(b.g.op(n)).is_some();
        let concat = self
            .g
            .mark(|_, node| node.ty.dtype == DType::F32 && concat_axis(&*node.op).is_some());
        for &c in order.iter().rev() {
            if !concat[c.index()] {
                continue;
            }
            let shape = self.shape(c).clone();
            if concat_windows(self.g, c, Loc::dense(0, 0, &shape)).is_none() {
                continue; // not a concat, or neither rows nor columns: computed by the fallback
            }
            let base = match self.vals.get(&c) {
                Some(Val::F(l)) => *l,
                _ => {
                    let l = self.new_root(&shape);
                    self.vals.insert(c, Val::F(l));
                    l
                }
            };
            let wins = concat_windows(self.g, c, base).expect("checked above");
            for (&x, win) in self.g.operands(c).iter().zip(wins) {
                let strided = !win.is_dense();
                // A concat placed here must itself be windows of its place (else it is
                // computed by the fallback, into memory of its own).
                let windowless = concat[x.index()]
                    && concat_windows(self.g, x, Loc::dense(0, 0, self.shape(x))).is_none();
                if self.placed.contains(&x)
                    || leafish(self, x)
                    || windowless
                    || (strided && !strided_ok.contains(&x))
                {
                    continue;
                }
                self.vals.insert(x, Val::F(win));
                self.placed.insert(x);
            }
        }
    }
}

/// What placement stores of a leaf: an input's name (its value is set later), a constant's
/// data, a fill value.
enum Leaf<'a> {
    Input(&'a str),
    Constant(&'a Tensor),
    Fill(f64),
}

/// `op` as one of the leaves placement stores (their fields are what it stores). Another op
/// of class leaf (an outside one) is computed by its `eval`.
fn leaf(op: &dyn Op) -> Option<Leaf<'_>> {
    if op.class() != OpClass::Leaf {
        return None;
    }
    let any = op.as_any();
    if let Some(i) = any.downcast_ref::<Input>() {
        Some(Leaf::Input(&i.name))
    } else if let Some(c) = any.downcast_ref::<Constant>() {
        Some(Leaf::Constant(&c.0))
    } else {
        any.downcast_ref::<Fill>().map(|f| Leaf::Fill(f.value))
    }
}

/// How a view's output lies in its operand's memory, when a window can say so: a reshape, a
/// slice, a broadcast, or all of it (`after`, an ordering edge, and `stop_gradient`: the value
/// itself). (A transpose
/// is a step; other ops compute.)
enum Window<'a> {
    Whole,
    Reshape(&'a Shape),
    Slice(&'a Slice),
    Broadcast(&'a Shape),
}

/// `op` as a window of its operand, if it is one of those views (their fields say where).
fn window(op: &dyn Op) -> Option<Window<'_>> {
    if op.class() != OpClass::View {
        return None;
    }
    let any = op.as_any();
    if any.is::<After>() || any.is::<StopGradient>() {
        Some(Window::Whole)
    } else if let Some(r) = any.downcast_ref::<Reshape>() {
        Some(Window::Reshape(&r.shape))
    } else if let Some(s) = any.downcast_ref::<Slice>() {
        Some(Window::Slice(s))
    } else {
        any.downcast_ref::<BroadcastTo>()
            .map(|b| Window::Broadcast(&b.shape))
    }
}

/// The axis of a concat.
pub(crate) fn concat_axis(op: &dyn Op) -> Option<usize> {
    op.as_any().downcast_ref::<Concat>().map(|c| c.axis)
}

/// Where each operand of concat `c` lies inside `base` (the concat's location), when each is
/// a window of it ([`Loc::slice`]: columns, whole rows, or one step of the second-to-last
/// axis); `None` for other concats.
pub(crate) fn concat_windows(g: &Graph, c: NodeId, base: Loc) -> Option<Vec<Loc>> {
    let axis = concat_axis(g.op(c))?;
    let shape = &g.ty(c).shape;
    let mut at = 0;
    g.operands(c)
        .iter()
        .map(|&x| {
            let len = g.ty(x).dims()[axis];
            at += len;
            base.slice(shape, axis, at - len, at)
        })
        .collect()
}
