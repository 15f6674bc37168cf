//! Rewrites of sums that autodiff produces, into the forms the JIT runs fast.
//!
//! * `pad(a) + pad(b) + ...` over disjoint ranges of one axis is `concat(a, b, ...)` (with zero
//!   fills in the gaps): the gradient of a value sliced into pieces (an LSTM's `z` into its
//!   gates, the hoisted projection into its steps) is assembled in place, not summed.
//! * `sum_t A_t^T B_t` is `concat_t(A_t)^T concat_t(B_t)`: the per-step weight gradients of a
//!   recurrence become one GEMM with `K = T·B` (one large GEMM in place of T small ones). A
//!   concat that is a contiguous run of an existing concat's operands becomes a slice of it, so
//!   step values stored contiguously once are reused.
use crate::ops::{BinaryOp, Concat, MatMul, Pad};
use crate::{Binary, Graph, NodeId};
use rustc_hash::FxHashMap;

/// The leaves of the tree of `add`s rooted at `n`, descending into adds of the same type that
/// are not outputs and are used only there, or, with `shared`, also into adds used elsewhere
/// (a sum CSE merged between two trees). Iterative; `None` past as many leaves as the graph
/// has nodes, and at least 2^16 (sharing can make a small DAG a large tree; a tree of distinct
/// terms, such as T steps' weight gradients, is never cut).
fn add_leaves(g: &Graph, n: NodeId, shared: bool) -> Option<Vec<NodeId>> {
    let max_leaves = g.node_count().max(1 << 16);
    let mut out = Vec::new();
    let mut stack: Vec<NodeId> = g.operands(n).iter().rev().copied().collect();
    while let Some(o) = stack.pop() {
        let descend = is_add(g, o)
            && (shared || g.sole_user(o).is_some())
            && g.ty(o) == g.ty(n)
            && !g.outputs().contains(&o);
        if descend {
            stack.extend(g.operands(o).iter().rev());
        } else {
            out.push(o);
            if out.len() > max_leaves {
                return None;
            }
        }
    }
    Some(out)
}

fn is_add(g: &Graph, n: NodeId) -> bool {
    g.op(n)
        .as_any()
        .downcast_ref::<BinaryOp>()
        .is_some_and(|b| b.0 == Binary::Add)
}

/// Roots of add trees: adds not themselves inside a larger tree.
fn add_roots(g: &Graph) -> Vec<NodeId> {
    let root = g.mark(|n, _| {
        is_add(g, n)
            && !g
                .sole_user(n)
                .is_some_and(|u| is_add(g, u) && g.ty(u) == g.ty(n) && !g.outputs().contains(&n))
    });
    g.topo_order()
        .into_iter()
        .filter(|&n| root[n.index()])
        .collect()
}

/// Replaces sums of disjoint pads along one axis by a concat. Returns the number rewritten.
///
/// A sum of pads that CSE shared between two trees (the GRU's `pad(dr) + pad(dz)`, common to
/// the gradients of its input and recurrent projections) is read through from each tree, outer
/// trees first, so both become concats and the shared sum dies.
pub fn pads_to_concat(g: &mut Graph) -> usize {
    let mut count = 0;
    for root in add_roots(g).into_iter().rev() {
        if g.use_count(root) == 0 && !g.outputs().contains(&root) {
            continue; // a shared sum whose trees were all rewritten
        }
        let Some(leaves) = add_leaves(g, root, true) else {
            continue;
        };
        // The pads of the root's full type along the first such pad's axis; the rest of the
        // sum (other terms, e.g. a bias gradient's other steps) is added to their concat.
        let pad_of = |l: NodeId| {
            let p = g.op(l).as_any().downcast_ref::<Pad>()?;
            (g.ty(l) == g.ty(root)).then(|| (p.clone(), g.operands(l)[0]))
        };
        let Some((first, _)) = leaves.iter().find_map(|&l| pad_of(l)) else {
            continue;
        };
        let (axis, total) = (first.axis, first.total);
        let (mut pads, mut others) = (Vec::new(), Vec::new());
        for &l in &leaves {
            match pad_of(l) {
                Some((p, x)) if p.axis == axis && p.total == total => pads.push((p, x)),
                _ => others.push(l),
            }
        }
        if pads.len() < 2 {
            continue;
        }
        pads.sort_by_key(|(p, _)| p.start);
        let disjoint = pads
            .windows(2)
            .all(|w| w[0].0.start + g.ty(w[0].1).dims()[axis] <= w[1].0.start);
        if !disjoint {
            continue; // overlapping ranges: a real sum
        }
        let mut parts = Vec::new();
        let mut at = 0;
        let mut gap_failed = false;
        for (p, x) in &pads {
            if p.start > at {
                let mut ty = g.ty(*x).clone();
                ty.shape.0[axis] = p.start - at;
                match g.fill(ty, 0.0) {
                    Ok(f) => parts.push(f),
                    Err(_) => {
                        gap_failed = true;
                        break;
                    }
                }
            }
            parts.push(*x);
            at = p.start + g.ty(*x).dims()[axis];
        }
        if gap_failed {
            continue;
        }
        if at < total {
            let mut ty = g.ty(root).clone();
            ty.shape.0[axis] = total - at;
            match g.fill(ty, 0.0) {
                Ok(f) => parts.push(f),
                Err(_) => continue,
            }
        }
        let Ok(mut sum) = g.apply(Concat { axis }, &parts) else {
            continue;
        };
        for o in others {
            match g.add(sum, o) {
                Ok(s) => sum = s,
                Err(_) => break,
            }
        }
        if g.ty(sum) == g.ty(root) {
            g.replace_uses(root, sum);
            count += 1;
        }
    }
    count
}

/// Replaces `sum_t matmul_t(A_t, B_t, true, false)` by one matmul over row-concatenated
/// operands. Returns the number rewritten.
pub fn batch_weight_gradients(g: &mut Graph) -> usize {
    // Where each node appears in existing row concats: (concat, position).
    let mut in_concat: FxHashMap<NodeId, Vec<(NodeId, usize)>> = FxHashMap::default();
    let mut count = 0;
    for n in g.node_ids().collect::<Vec<_>>() {
        if g.op(n)
            .as_any()
            .downcast_ref::<Concat>()
            .is_some_and(|c| c.axis == 0)
        {
            for (i, &x) in g.operands(n).iter().enumerate() {
                in_concat.entry(x).or_default().push((n, i));
            }
        }
    }
    for root in add_roots(g) {
        let Some(leaves) = add_leaves(g, root, false) else {
            continue;
        };
        if leaves.len() < 2 {
            continue;
        }
        let want = MatMul {
            transpose_a: true,
            transpose_b: false,
        };
        let pairs: Option<Vec<(NodeId, NodeId)>> = leaves
            .iter()
            .map(|&l| {
                let is = g.op(l).as_any().downcast_ref::<MatMul>() == Some(&want)
                    && g.sole_user(l).is_some();
                is.then(|| (g.operands(l)[0], g.operands(l)[1]))
            })
            .collect();
        let Some(mut pairs) = pairs else { continue };
        if pairs
            .iter()
            .any(|&(a, b)| g.ty(a).rank() != 2 || g.ty(b).rank() != 2)
        {
            continue;
        }
        // Sum terms come newest first; order them as an existing concat stores their A (or B)
        // operands, so the concats below can be slices of it.
        if let Some(pos) = positions(
            g,
            &pairs.iter().map(|p| p.0).collect::<Vec<_>>(),
            &in_concat,
        )
        .or_else(|| {
            positions(
                g,
                &pairs.iter().map(|p| p.1).collect::<Vec<_>>(),
                &in_concat,
            )
        }) {
            let mut keyed: Vec<(usize, (NodeId, NodeId))> = pos.into_iter().zip(pairs).collect();
            keyed.sort_by_key(|k| k.0);
            pairs = keyed.into_iter().map(|k| k.1).collect();
        }
        let a: Vec<NodeId> = pairs.iter().map(|p| p.0).collect();
        let b: Vec<NodeId> = pairs.iter().map(|p| p.1).collect();
        let (Some(ca), Some(cb)) = (row_concat(g, &a, &in_concat), row_concat(g, &b, &in_concat))
        else {
            continue;
        };
        if let Ok(m) = g.apply(want, &[ca, cb]) {
            g.replace_uses(root, m);
            count += 1;
        }
    }
    count
}

/// Positions of `xs` among the operands of one existing row concat holding all of them. Each
/// position is read from `index` (T terms searched in a T-operand concat were O(T^2)), and
/// searched for only when this pass has since redirected that operand (a node it made).
fn positions(
    g: &Graph,
    xs: &[NodeId],
    index: &FxHashMap<NodeId, Vec<(NodeId, usize)>>,
) -> Option<Vec<usize>> {
    index.get(&xs[0])?.iter().find_map(|&(c, _)| {
        let ops = g.operands(c);
        xs.iter()
            .map(|x| {
                let indexed = index
                    .get(x)
                    .and_then(|at| at.iter().find(|&&(c2, _)| c2 == c))
                    .map(|&(_, i)| i)
                    .filter(|&i| ops.get(i) == Some(x));
                indexed.or_else(|| ops.iter().position(|o| o == x))
            })
            .collect()
    })
}

/// `concat(xs, axis 0)`, or a slice of an existing concat whose operands include `xs` as a
/// contiguous run in this order (step values stored once are reused, not copied).
fn row_concat(
    g: &mut Graph,
    xs: &[NodeId],
    index: &FxHashMap<NodeId, Vec<(NodeId, usize)>>,
) -> Option<NodeId> {
    for &(c, p) in index.get(&xs[0]).map(|v| v.as_slice()).unwrap_or(&[]) {
        let ops = g.operands(c).to_vec();
        if ops.len() >= p + xs.len() && ops[p..p + xs.len()] == *xs {
            let rows = |k: usize| -> usize { ops[..k].iter().map(|o| g.ty(*o).dims()[0]).sum() };
            let (start, end) = (rows(p), rows(p + xs.len()));
            return g.slice(c, 0, start, end).ok();
        }
    }
    g.apply(Concat { axis: 0 }, xs).ok()
}
