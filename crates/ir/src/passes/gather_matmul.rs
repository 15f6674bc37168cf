//! Embedding lookups folded into the projection that follows them:
//! `gather(E, ids) W^T = gather(E W^T, ids)`.
//!
//! Row selection commutes with multiplying on the right, so when the table has fewer rows than
//! are looked up (a vocabulary of 10,000 against `T·B` = 25,600 tokens), projecting the table
//! once is cheaper than projecting every looked-up row: 1.3 instead of 3.4 GFLOP for the seed
//! model's first LSTM layer, and its backward becomes a scatter into the projected table.
use crate::ops::{BinaryOp, Gather, MatMul, Reshape};
use crate::{Binary, Graph, NodeId};

/// Rewrites `matmul(reshape?(gather(E, ids)), W) [+ b]` into
/// `reshape(gather(matmul(E, W) [+ b], ids))`
/// when the table is smaller than the lookup and only such products read the lookup (one, or
/// several: a bidirectional layer's two directions), so that the lookup goes. Returns the
/// number rewritten. Run it before `autodiff::grad` so the backward graph follows.
pub fn gather_before_matmul(g: &mut Graph) -> usize {
    let mut count = 0;
    for m in g.topo_order() {
        let Some(mm) = g.op(m).as_any().downcast_ref::<MatMul>().copied() else {
            continue;
        };
        if mm.transpose_a || g.ty(m).rank() != 2 {
            continue;
        }
        let (x, w) = (g.operands(m)[0], g.operands(m)[1]);
        // Through an optional reshape to the gathered rows.
        let gat = if g.op(x).as_any().is::<Reshape>() {
            g.operands(x)[0]
        } else {
            x
        };
        if !g.op(gat).as_any().is::<Gather>() {
            continue;
        }
        // Every reader of the lookup, directly or through a reshape, is such a product (a
        // bidirectional layer's two directions read one), so the lookup goes once all are
        // rewritten.
        let is_output = |n: NodeId| g.outputs().contains(&n);
        let product_of = |u: NodeId, v: NodeId| {
            g.op(u)
                .as_any()
                .downcast_ref::<MatMul>()
                .is_some_and(|p| !p.transpose_a && g.operands(u)[1] != v)
        };
        let folds = |v: NodeId| {
            !is_output(v)
                && g.users(v).iter().all(|&u| {
                    product_of(u, v)
                        || (g.op(u).as_any().is::<Reshape>()
                            && !is_output(u)
                            && g.users(u).iter().all(|&w| product_of(w, u)))
                })
        };
        if !folds(gat) {
            continue;
        }
        let (table, ids) = (g.operands(gat)[0], g.operands(gat)[1]);
        let t = g.ty(table).dims().to_vec();
        let rows = g.ty(x).dims()[0];
        if t.len() != 2 || t[0] >= rows {
            continue;
        }
        let Ok(mut tw) = g.matmul_t(table, w, false, mm.transpose_b) else {
            continue;
        };
        // A bias added to every row right after (`x W^T + b`) goes into the table too.
        let mut replaced = m;
        if let [add] = g.users(m)[..] {
            let is_add = g
                .op(add)
                .as_any()
                .downcast_ref::<BinaryOp>()
                .is_some_and(|b| b.0 == Binary::Add);
            let other = g.operands(add).iter().copied().find(|&o| o != m);
            if let (true, Some(b), false) = (is_add, other, g.outputs().contains(&m)) {
                let n = g.ty(m).dims()[1];
                let row_bias = g.ty(b).numel() == n
                    && g.ty(b).dims().last() == Some(&n)
                    && g.ty(add) == g.ty(m);
                if row_bias {
                    if let Ok(biased) = g.add(tw, b) {
                        tw = biased;
                        replaced = add;
                    }
                }
            }
        }
        let Ok(picked) = g.gather(tw, ids) else {
            continue;
        };
        let shape = g.ty(m).shape.clone();
        let Ok(out) = g.reshape(picked, shape) else {
            continue;
        };
        g.replace_uses(replaced, out);
        count += 1;
    }
    count
}
