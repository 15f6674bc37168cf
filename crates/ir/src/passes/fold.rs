//! Constant folding.
use crate::ops::{Constant, Fill};
use crate::{Graph, Tensor};
use std::sync::Arc;

/// Largest result (in elements) that folding materialises; bigger constant expressions stay
/// symbolic so a fill of a large shape is not turned into megabytes of data.
pub const FOLD_LIMIT: usize = 1 << 16;

/// Evaluates every node whose operands are all constants (or fills) and replaces it with a
/// [`Constant`]. Operands left unused are for [`super::dce`]. Returns the number folded.
pub fn constant_fold(g: &mut Graph) -> usize {
    // Values by node index, shared with the constants holding them (no copy per constant).
    let mut values: Vec<Option<Arc<Tensor>>> = vec![None; g.node_bound()];
    let mut folded = 0;
    for n in g.topo_order() {
        let node = g.node(n);
        let any = node.op.as_any();
        if let Some(c) = any.downcast_ref::<Constant>() {
            values[n.index()] = Some(c.0.clone());
            continue;
        }
        if let Some(f) = any.downcast_ref::<Fill>() {
            if f.ty.numel() <= FOLD_LIMIT {
                values[n.index()] = Some(Arc::new(Tensor::full(&f.ty, f.value)));
            }
            continue;
        }
        if node.inputs.is_empty()
            || node.ty.numel() > FOLD_LIMIT
            || !node.inputs.iter().all(|i| values[i.index()].is_some())
        {
            continue;
        }
        let args: Vec<&Tensor> = node
            .inputs
            .iter()
            .filter_map(|i| values[i.index()].as_deref())
            .collect();
        // An op that fails on constant data (e.g. an out-of-range gather) is left for run time,
        // where its error is reported with the node.
        if let Ok(t) = node.op.eval(&args) {
            let t = Arc::new(t);
            g.set_op(n, Arc::new(Constant(t.clone())), &[])
                .expect("same type by construction");
            values[n.index()] = Some(t);
            folded += 1;
        }
    }
    folded
}
