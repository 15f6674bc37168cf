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

/// The raw operands of a kernel call ([`crate::Kernel::run_raw`]'s contract) as slices, as
/// the AVX-512 backends read them.
pub(crate) struct RawOperands<'a> {
    pub ins: &'a [*const f32],
    pub in_rs: &'a [usize],
    pub outs: &'a [*mut f32],
    pub out_rs: &'a [usize],
}

impl RawOperands<'_> {
    /// # Safety
    /// `inputs` and `in_row_strides` point to `n_in` readable entries, `outputs` and
    /// `out_row_strides` to `n_out`, alive for the returned value's use.
    pub(crate) unsafe fn new<'a>(
        inputs: *const *const f32,
        in_row_strides: *const usize,
        outputs: *const *mut f32,
        out_row_strides: *const usize,
        n_in: usize,
        n_out: usize,
    ) -> RawOperands<'a> {
        // SAFETY: the caller's contract above.
        unsafe {
            RawOperands {
                ins: slice(inputs, n_in),
                in_rs: slice(in_row_strides, n_in),
                outs: slice(outputs, n_out),
                out_rs: slice(out_row_strides, n_out),
            }
        }
    }

    /// The grid to run: a dense one (every full input and output has row stride `cols`,
    /// every column-broadcast input is a single scalar) is one long row, so it runs as whole
    /// vectors instead of a pass per short row (an Adam update over an embedding table).
    pub(crate) fn grid(&self, col_broadcast: &[bool], rows: usize, cols: usize) -> (usize, usize) {
        let dense = (0..self.ins.len())
            .all(|k| self.in_rs[k] == if col_broadcast[k] { 0 } else { cols })
            && self.out_rs.iter().all(|&s| s == cols);
        if dense {
            (1, rows * cols)
        } else {
            (rows, cols)
        }
    }
}

/// `n` entries at `p` as a slice; none (whatever `p` is, null included) when `n` is 0.
///
/// # Safety
/// When `n > 0`, `p` points to `n` readable entries alive for `'a`.
unsafe fn slice<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if n == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(p, n) }
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
