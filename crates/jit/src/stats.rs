//! What lowering counts about a plan ([`PlanStats`]), filled by its phases.
use std::collections::HashMap;

/// Counts and sizes of a compiled plan.
#[derive(Clone, Debug, Default)]
pub struct PlanStats {
    pub nodes: usize,
    pub gemms: usize,
    pub kernel_steps: usize,
    /// Distinct compiled kernels the plan uses.
    pub kernels: usize,
    pub other_steps: usize,
    /// Ops run through their reference `eval` (no dedicated lowering), by op name.
    pub fallbacks: HashMap<String, usize>,
    /// Steps that run as two half-batch chains on two cores.
    pub split_steps: usize,
    /// Buffers of those runs that reuse the memory of an earlier one in the same run.
    pub run_shared_buffers: usize,
    /// Steps computed from parameters and constants only (e.g. the embedding table times the
    /// first layer's input weights): run again only after a parameter is set.
    pub invariant_steps: usize,
    /// Bytes of intermediate values (shared by liveness) and of inputs, parameters and
    /// constants: the plan's memory, known (and checked against the limit) before allocating.
    pub arena_bytes: usize,
    pub persistent_bytes: usize,
    pub compile_ms: f64,
}
