//! Constant folding.
use crate::ops::{Constant, Fill};
use crate::{Graph, NodeId, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest result (in elements) that folding materialises; bigger constant expressions stay
/// symbolic so a fill of a large shape is not turned into megabytes of data.
pub const FOLD_LIMIT: usize = 1 << 16;

/// Evaluates every node whose operands are all constants (or fills) and replaces it with a
/// [`Constant`]. Operands left unused are for [`super::dce`]. Returns the number folded.
pub fn constant_fold(g: &mut Graph) -> usize {
    let mut values: HashMap<NodeId, Tensor> = HashMap::new();
    let mut folded = 0;
    for n in g.topo_order() {
        let node = g.node(n);
        let any = node.op.as_any();
        if let Some(c) = any.downcast_ref::<Constant>() {
            values.insert(n, (*c.0).clone());
            continue;
        }
        if let Some(f) = any.downcast_ref::<Fill>() {
            if f.ty.numel() <= FOLD_LIMIT {
                values.insert(n, Tensor::full(&f.ty, f.value));
            }
            continue;
        }
        if node.inputs.is_empty()
            || node.ty.numel() > FOLD_LIMIT
            || !node.inputs.iter().all(|i| values.contains_key(i))
        {
            continue;
        }
        let args: Vec<&Tensor> = node.inputs.iter().map(|i| &values[i]).collect();
        // An op that fails on constant data (e.g. an out-of-range gather) is left for run time,
        // where its error is reported with the node.
        if let Ok(t) = node.op.eval(&args) {
            g.set_op(n, Arc::new(Constant::new(t.clone())), &[])
                .expect("same type by construction");
            values.insert(n, t);
            folded += 1;
        }
    }
    folded
}
