//! Column slices pushed through elementwise ops: `slice(f(a, b), cols) = f(slice(a), slice(b))`.
//!
//! An LSTM step computes `z = x_t W_ih^T + b + h W_hh^T` and slices it into four gates. Pushing
//! the gate slices through the add lets the gate kernel read the two matrix products directly:
//! one fused kernel a step, and `z` is never written to memory.
use crate::ops::Slice;
use crate::{broadcast_shapes, Graph, NodeId};

/// Rewrites elementwise nodes whose every use is a slice of the last axis, until none is left
/// (a rewrite can expose the node before it). Returns the number of slices rewritten.
pub fn slices_through_elementwise(g: &mut Graph) -> usize {
    let mut count = 0;
    loop {
        let k = slices_through_once(g);
        count += k;
        if k == 0 {
            return count;
        }
    }
}

/// Row slices pushed through a bias add: `slice_rows(x + b) = slice_rows(x) + b` for an
/// elementwise `[rows, cols]` node with one full operand and the others broadcast along rows,
/// whose every use is a row slice. The LSTM's hoisted `x W^T + b` is sliced per step: the bias
/// then joins each step's gate kernel (a row read from cache) instead of a pass over the whole
/// `[T B, 4H]` projection. Returns the number of slices rewritten.
pub fn row_slices_through_bias(g: &mut Graph) -> usize {
    let mut count = 0;
    for n in g.topo_order() {
        if !g.contains(n)
            || g.op(n).scalar().is_none()
            || g.outputs().contains(&n)
            || g.ty(n).rank() != 2
        {
            continue;
        }
        let rows = g.ty(n).dims()[0];
        let inputs = g.operands(n).to_vec();
        let full: Vec<bool> = inputs
            .iter()
            .map(|&x| g.ty(x).rank() == 2 && g.ty(x).dims()[0] == rows && rows > 1)
            .collect();
        if full.iter().filter(|&&f| f).count() != 1 || inputs.len() < 2 {
            continue;
        }
        let slices: Option<Vec<(NodeId, Slice)>> = g
            .users(n)
            .iter()
            .map(|&u| {
                let s = g.op(u).as_any().downcast_ref::<Slice>()?;
                (s.axis == 0).then(|| (u, s.clone()))
            })
            .collect();
        let Some(slices) = slices.filter(|s| !s.is_empty()) else {
            continue;
        };
        let op = g.node(n).op.clone();
        for (u, s) in slices {
            let mut args = Vec::with_capacity(inputs.len());
            for (&x, &f) in inputs.iter().zip(&full) {
                args.push(if f {
                    g.slice(x, 0, s.start, s.end)
                } else {
                    Ok(x)
                });
            }
            let Ok(args) = args.into_iter().collect::<crate::Result<Vec<_>>>() else {
                continue;
            };
            let Ok(m) = g.apply_arc(op.clone(), &args, None) else {
                continue;
            };
            if g.ty(m) != g.ty(u) {
                g.remove(m);
                continue;
            }
            g.replace_uses(u, m);
            // The slice is dead now; removing it keeps it from counting as a use next time.
            g.remove(u);
            count += 1;
        }
        // Dead once every slice is rewritten: removing it exposes its operands' slices.
        if g.users(n).is_empty() {
            g.remove(n);
        }
    }
    count
}

fn slices_through_once(g: &mut Graph) -> usize {
    let mut count = 0;
    for n in g.topo_order() {
        if !g.contains(n) || g.op(n).scalar().is_none() || g.outputs().contains(&n) {
            continue;
        }
        let rank = g.ty(n).rank();
        let users = g.users(n);
        let slices: Option<Vec<(NodeId, Slice)>> = users
            .iter()
            .map(|&u| {
                let s = g.op(u).as_any().downcast_ref::<Slice>()?;
                (rank >= 1 && s.axis == rank - 1).then(|| (u, s.clone()))
            })
            .collect();
        let Some(slices) = slices.filter(|s| !s.is_empty()) else {
            continue;
        };
        let op = g.node(n).op.clone();
        let inputs = g.operands(n).to_vec();
        let out_shape = g.ty(n).shape.clone();
        for (u, s) in slices {
            // Inputs that span the last axis are sliced; broadcast ones (last dim 1 or absent)
            // are shared.
            let mut args = Vec::with_capacity(inputs.len());
            for &x in &inputs {
                let xs = g.ty(x).shape.clone();
                let last = xs.rank().wrapping_sub(1);
                let full = xs.rank() >= 1
                    && xs.dims()[last] == out_shape.dims()[rank - 1]
                    && xs.dims()[last] > 1;
                let a = if full {
                    g.slice(x, last, s.start, s.end)
                } else {
                    Ok(x)
                };
                match a {
                    Ok(a) => args.push(a),
                    Err(_) => break,
                }
            }
            if args.len() != inputs.len() {
                continue;
            }
            // The new node must have the slice's shape (a broadcast-only input would not).
            let Ok(m) = g.apply_arc(op.clone(), &args, None) else {
                continue;
            };
            if g.ty(m) != g.ty(u) || broadcast_shapes(&g.ty(m).shape, &g.ty(u).shape).is_none() {
                g.remove(m);
                continue;
            }
            g.replace_uses(u, m);
            // The slice is dead now; removing it keeps it from counting as a use next time.
            g.remove(u);
            count += 1;
        }
        // Dead once every slice is rewritten: removing it exposes its operands' slices.
        if g.users(n).is_empty() {
            g.remove(n);
        }
    }
    count
}
