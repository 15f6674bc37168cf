//! Graph-to-graph passes. Each is near-linear in the node count: the seed training graph at
//! T = 200 has tens of thousands of nodes.
mod cse;
mod dce;
mod fold;

pub use cse::cse;
pub use dce::dce;
pub use fold::{constant_fold, FOLD_LIMIT};

use crate::Graph;

/// The standard clean-up: fold constants, merge common subexpressions, drop dead nodes.
pub fn optimize(g: &mut Graph) {
    constant_fold(g);
    cse(g);
    dce(g);
}
