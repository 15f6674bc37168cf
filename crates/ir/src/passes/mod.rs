//! Graph-to-graph passes. Each is near-linear in the node count: the seed training graph at
//! T = 200 has tens of thousands of nodes.
mod cse;
mod dce;
mod fold;
mod gather_matmul;
mod gather_sums;
mod pretranspose;
mod slice_through;

pub use cse::cse;
pub use dce::dce;
pub use fold::{constant_fold, FOLD_LIMIT};
pub use gather_matmul::gather_before_matmul;
pub use gather_sums::{batch_weight_gradients, pads_to_concat};
pub use pretranspose::{pretranspose_weights, PRETRANSPOSE_MIN_USES};
pub use slice_through::{
    row_slices_through_bias, row_slices_through_gather, slices_through_elementwise,
};

use crate::Graph;

/// The standard pipeline: fold constants, merge common subexpressions, fold embedding
/// lookups into the projection after them, push per-step row slices through bias adds and
/// column slices through elementwise ops, assemble sums of
/// pads and per-step weight gradients, drop dead nodes.
pub fn optimize(g: &mut Graph) {
    let laps = crate::timing::Laps::new("  optimize");
    let lap = |what: &str, g: &Graph| {
        laps.lap(
            what,
            format_args!(" ({} nodes, {} slots)", g.node_count(), g.node_bound()),
        )
    };
    lap("start", g);
    constant_fold(g);
    lap("fold", g);
    cse(g);
    lap("cse", g);
    gather_before_matmul(g);
    lap("gather_before_matmul", g);
    row_slices_through_bias(g);
    lap("row_slices", g);
    row_slices_through_gather(g);
    lap("row_slices_through_gather", g);
    slices_through_elementwise(g);
    lap("slices_through", g);
    pads_to_concat(g);
    lap("pads_to_concat", g);
    batch_weight_gradients(g);
    lap("batch_weight_gradients", g);
    cse(g);
    lap("cse", g);
    dce(g);
    lap("dce", g);
}
