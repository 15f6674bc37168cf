//! Column slices pushed through elementwise ops: `slice(f(a, b), cols) = f(slice(a), slice(b))`.
//!
//! An LSTM step computes `z = x_t W_ih^T + b + h W_hh^T` and slices it into four gates. Pushing
//! the gate slices through the add lets the gate kernel read the two matrix products directly:
//! one fused kernel a step, and `z` is never written to memory.
use crate::ops::Slice;
use crate::{broadcast_shapes, Graph, NodeId};

/// Rewrites elementwise nodes whose every use is a slice of the last axis. Returns the number
/// of slices rewritten.
pub fn slices_through_elementwise(g: &mut Graph) -> usize {
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
            count += 1;
        }
    }
    count
}
