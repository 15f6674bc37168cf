//! Column slices pushed through elementwise ops: `slice(f(a, b), cols) = f(slice(a), slice(b))`.
//!
//! An LSTM step computes `z = x_t W_ih^T + b + h W_hh^T` and slices it into four gates. Pushing
//! the gate slices through the add lets the gate kernel read the two matrix products directly:
//! one fused kernel a step, and `z` is never written to memory.
use crate::ops::{Gather, Reshape, Slice};
use crate::{Graph, NodeId};

/// Rewrites elementwise nodes whose every use is a slice of the last axis, until none is left
/// (a rewrite can expose the node before it). Returns the number of slices rewritten.
///
/// Each pass after the first visits, in the same order as a full pass, only the nodes whose
/// uses the previous pass changed: the operands of the nodes it rewrote and the nodes it
/// created. Any other node would be looked at again with the same uses and make no change.
pub fn slices_through_elementwise(g: &mut Graph) -> usize {
    let mut count = 0;
    let mut dirty: Option<Vec<bool>> = None;
    loop {
        let (k, next) = slices_through_once(g, dirty.as_deref());
        count += k;
        if k == 0 || !next.contains(&true) {
            return count;
        }
        dirty = Some(next);
    }
}

/// Row slices pushed through a bias add: `slice_rows(x + b) = slice_rows(x) + b` for an
/// elementwise `[rows, cols]` node with one full operand and the others broadcast along rows,
/// whose every use is a row slice. The LSTM's hoisted `x W^T + b` is sliced per step: the bias
/// then joins each step's gate kernel (a row read from cache) instead of a pass over the whole
/// `[T B, 4H]` projection. Returns the number of slices rewritten.
pub fn row_slices_through_bias(g: &mut Graph) -> usize {
    let mut count = 0;
    // (What a rewrite cannot change: it makes new nodes, which this walk does not visit.)
    let elementwise = g.mark(|_, node| node.op.is_elementwise() && node.ty.rank() == 2);
    for n in g.topo_order() {
        if !elementwise[n.index()]
            || !g.contains(n)
            || g.outputs().contains(&n)
            || g.ty(n).rank() != 2
            || !all_uses_slice(g, n, 0)
        {
            continue;
        }
        let rows = g.ty(n).dims()[0];
        let cut: Vec<Option<usize>> = g
            .operands(n)
            .iter()
            .map(|&x| (g.ty(x).rank() == 2 && g.ty(x).dims()[0] == rows && rows > 1).then_some(0))
            .collect();
        if cut.iter().flatten().count() != 1 || cut.len() < 2 {
            continue;
        }
        count += rewrite_slices(g, n, 0, &cut);
    }
    count
}

/// Row slices pushed through a lookup: `slice_rows(gather(E, ids)) = gather(E, slice_rows(ids))`.
/// An embedding (or, after [`super::gather_before_matmul`], a projected table) looked up for a
/// whole sequence and then sliced per step becomes one small lookup per step, run where its
/// step runs: the `[T B, width]` rows are never written out and read back a sequence later
/// (52 MB a batch for the seed model's first layer), the step reads them from cache. Returns
/// the number of slices rewritten.
pub fn row_slices_through_gather(g: &mut Graph) -> usize {
    let mut count = 0;
    for n in g.topo_order() {
        if !g.contains(n) || !g.op(n).as_any().is::<Gather>() || g.outputs().contains(&n) {
            continue;
        }
        let (table, ids) = (g.operands(n)[0], g.operands(n)[1]);
        let id_count = g.ty(ids).numel();
        if g.ty(ids).rank() == 0 {
            continue;
        }
        // Ids of several axes (`[T, B]`) whose rows are read flat (`[T B, width]`): look the
        // flat ids up instead, so a row slice is a window of them.
        let mut rows = n;
        if let [r] = g.users(n)[..] {
            let flat: Vec<usize> = std::iter::once(id_count)
                .chain(g.ty(table).dims()[1..].iter().copied())
                .collect();
            let flattens = g.op(r).as_any().is::<Reshape>()
                && g.ty(r).dims() == flat.as_slice()
                && !g.outputs().contains(&r)
                && all_uses_slice(g, r, 0);
            if flattens {
                let Ok(flat_ids) = g.reshape(ids, [id_count]) else {
                    continue;
                };
                let Ok(looked_up) = g.gather(table, flat_ids) else {
                    continue;
                };
                g.replace_uses(r, looked_up);
                rows = looked_up;
            }
        }
        if all_uses_slice(g, rows, 0) {
            count += rewrite_slices(g, rows, 0, &[None, Some(0)]);
        }
    }
    count
}

/// One pass over the nodes marked in `visit` (all when `None`). Returns the slices rewritten
/// and the nodes the next pass must visit.
fn slices_through_once(g: &mut Graph, visit: Option<&[bool]>) -> (usize, Vec<bool>) {
    let mut count = 0;
    let bound = g.node_bound();
    let mut touched: Vec<usize> = Vec::new();
    // A full pass visits the elementwise nodes (a rewrite changes no node's op; the nodes it
    // makes are not visited).
    let all;
    let visit = match visit {
        Some(v) => v,
        None => {
            all = g.mark(|_, node| node.op.is_elementwise());
            &all
        }
    };
    let visits = |n: NodeId| visit.get(n.index()).copied().unwrap_or(true);
    // The first rewrite of a pass is at a node that qualified when the pass began (nothing
    // changed before it): when none does, the pass would do nothing, so skip its sort.
    if !g.node_ids().any(|n| visits(n) && qualifies(g, n)) {
        return (0, Vec::new());
    }
    for n in g.topo_order() {
        if !visits(n) || !qualifies(g, n) {
            continue;
        }
        let rank = g.ty(n).rank();
        let width = g.ty(n).dims()[rank - 1];
        // Inputs that span the last axis are sliced (along their own last axis); broadcast
        // ones (last dim 1 or absent) are shared.
        let cut: Vec<Option<usize>> = g
            .operands(n)
            .iter()
            .map(|&x| {
                let d = g.ty(x).dims();
                let last = d.len().wrapping_sub(1);
                (!d.is_empty() && d[last] == width && d[last] > 1).then_some(last)
            })
            .collect();
        touched.push(n.index());
        touched.extend(g.operands(n).iter().map(|x| x.index()));
        count += rewrite_slices(g, n, rank - 1, &cut);
    }
    let mut next = vec![false; g.node_bound()];
    next[bound..].fill(true);
    for i in touched {
        next[i] = true;
    }
    (count, next)
}

/// Whether [`slices_through_once`] rewrites `n`: an elementwise node, not an output, whose
/// every use slices its last axis.
fn qualifies(g: &Graph, n: NodeId) -> bool {
    if !g.contains(n) || !g.op(n).is_elementwise() || g.outputs().contains(&n) {
        return false;
    }
    let rank = g.ty(n).rank();
    rank > 0 && all_uses_slice(g, n, rank - 1)
}

/// Whether `n` has uses and each is a slice along `axis` (what [`rewrite_slices`] needs).
fn all_uses_slice(g: &Graph, n: NodeId, axis: usize) -> bool {
    g.use_count(n) > 0
        && g.use_iter(n).all(|u| {
            g.op(u)
                .as_any()
                .downcast_ref::<Slice>()
                .is_some_and(|s| s.axis == axis)
        })
}

/// When every use of `n` is a slice along `axis`, rewrites each into `n`'s op applied to its
/// operands, operand `i` sliced the same way along its axis `cut[i]` or shared when `None`. The
/// rewritten slices are removed (so they no longer count as uses), and `n` once it has no use
/// left, which exposes its operands' slices. Returns the number of slices rewritten.
fn rewrite_slices(g: &mut Graph, n: NodeId, axis: usize, cut: &[Option<usize>]) -> usize {
    let slices: Option<Vec<(NodeId, Slice)>> = g
        .users(n)
        .iter()
        .map(|&u| {
            let s = g.op(u).as_any().downcast_ref::<Slice>()?;
            (s.axis == axis).then(|| (u, s.clone()))
        })
        .collect();
    let Some(slices) = slices.filter(|s| !s.is_empty()) else {
        return 0;
    };
    let op = g.node(n).op.clone();
    let inputs = g.operands(n).to_vec();
    let mut count = 0;
    for (u, s) in slices {
        let args: crate::Result<Vec<NodeId>> = inputs
            .iter()
            .zip(cut)
            .map(|(&x, c)| match *c {
                Some(a) => g.slice(x, a, s.start, s.end),
                None => Ok(x),
            })
            .collect();
        let Ok(args) = args else {
            continue;
        };
        // The new node must have the slice's type (a broadcast-only input would not).
        let Ok(m) = g.apply_arc(op.clone(), &args, None) else {
            continue;
        };
        if g.ty(m) != g.ty(u) {
            g.remove(m);
            continue;
        }
        g.replace_uses(u, m);
        g.remove(u);
        count += 1;
    }
    if g.users(n).is_empty() {
        g.remove(n);
    }
    count
}
