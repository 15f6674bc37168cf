//! What a fused kernel computes, shared by every backend: the [`KernelSpec`] (a `ScalarFn` and
//! how each input broadcasts; also the cache key) and what both code generators read of it.
use trellis_ir::{Scalar, ScalarFn};

use crate::error::JitError;

/// What a compiled kernel computes and how it reads its inputs; the kernel cache key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelSpec {
    pub expr: ScalarFn,
    /// Per input: true when the input is constant along columns (column stride 0, e.g. a
    /// per-row value or a scalar).
    pub col_broadcast: Vec<bool>,
}

impl KernelSpec {
    /// A spec whose inputs are all full (not column-broadcast).
    pub fn new(expr: ScalarFn) -> Self {
        let col_broadcast = vec![false; expr.n_inputs];
        KernelSpec {
            expr,
            col_broadcast,
        }
    }

    /// Checks that the expression is well formed: operands refer to earlier nodes, inputs are
    /// in range, there is at least one output, and there is one broadcast flag per input.
    pub fn validate(&self) -> Result<(), JitError> {
        let e = &self.expr;
        let bad = |msg: String| Err(JitError::InvalidSpec(msg));
        if self.col_broadcast.len() != e.n_inputs {
            return bad(format!(
                "{} col_broadcast flags for {} inputs",
                self.col_broadcast.len(),
                e.n_inputs
            ));
        }
        if e.outputs.is_empty() {
            return bad("the expression has no outputs".into());
        }
        for (i, n) in e.nodes.iter().enumerate() {
            if let Scalar::Input(k) = n {
                if *k as usize >= e.n_inputs {
                    return bad(format!("node {i}: input {k} of {}", e.n_inputs));
                }
            }
            if let Some(o) = n.operands().find(|&o| o as usize >= i) {
                return bad(format!("node {i} uses node {o}, which does not precede it"));
            }
        }
        if let Some(o) = e.outputs.iter().find(|&&o| o as usize >= e.nodes.len()) {
            return bad(format!("output node {o} of {} nodes", e.nodes.len()));
        }
        Ok(())
    }
}

/// Which nodes (and so which inputs) the outputs depend on.
pub(crate) fn live_nodes(e: &ScalarFn) -> Vec<bool> {
    let mut live = vec![false; e.nodes.len()];
    for &o in &e.outputs {
        live[o as usize] = true;
    }
    for i in (0..e.nodes.len()).rev() {
        if !live[i] {
            continue;
        }
        for a in e.nodes[i].operands() {
            live[a as usize] = true;
        }
    }
    live
}
