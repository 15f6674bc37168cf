//! A training plan within a memory budget: storing every step when that fits, else
//! recomputing the recurrences from checkpoints (`autodiff::grad_recomputing`), the checkpoint
//! interval chosen from how far over the budget storing everything comes out.
use trellis_autodiff::{grad, grad_recomputing, Checkpoints, Recompute};
use trellis_ir::{Graph, NodeId};
use trellis_jit::{compile, CompileOptions, JitError, Plan};

use crate::{NnError, Result};

/// A compiled training plan, the graph it was compiled from and the recomputation it uses.
pub struct Budgeted<T> {
    pub graph: Graph,
    pub plan: Plan,
    /// `None`: every step stored (it fits, or there is no budget).
    pub recompute: Option<Recompute>,
    /// What `finish` returned with the plan's options (an optimiser's nodes, say).
    pub extra: T,
}

/// Differentiates `loss` of the forward graph `forward` with respect to `params`, lets `finish`
/// add what follows the gradients (an optimiser) and give the compile options, and compiles
/// within `budget` bytes (`None`: [`CompileOptions::memory_limit`] as `finish` gives it).
/// `first` is the recomputation tried first (`None`: store every step). When that comes out
/// over the budget, the recurrences are recomputed with the largest checkpoint interval whose
/// estimate frees the excess (`Checkpoints::Free`); while the plan is still over, the interval
/// is halved, down to 1 (then the error says what the plan needs). The plan's memory
/// ([`Plan::stats`]) is known before it runs.
pub fn compile_within<T>(
    forward: &Graph,
    loss: NodeId,
    params: &[NodeId],
    budget: Option<usize>,
    first: Option<Checkpoints>,
    mut finish: impl FnMut(&mut Graph, &[NodeId]) -> Result<(CompileOptions, T)>,
) -> Result<Budgeted<T>> {
    let mut checkpoints = first;
    let mut search = IntervalSearch::default();
    loop {
        let mut graph = forward.clone();
        let (grads, recompute) = match checkpoints {
            None => (grad(&mut graph, loss, params)?, None),
            Some(ck) => {
                let (grads, r) = grad_recomputing(&mut graph, loss, params, ck)?;
                (grads, Some(r))
            }
        };
        let (mut opts, extra) = finish(&mut graph, &grads)?;
        if budget.is_some() {
            opts.memory_limit = budget;
        }
        match compile(&graph, &opts) {
            Ok(plan) => {
                return Ok(Budgeted {
                    graph,
                    plan,
                    recompute,
                    extra,
                })
            }
            Err(e) => checkpoints = Some(search.next(e, recompute.as_ref())?),
        }
    }
}

/// The search for a checkpoint interval that brings a training plan under its memory limit,
/// shared by [`compile_within`] and a `Model`'s training plans.
#[derive(Default)]
pub(crate) struct IntervalSearch {
    /// The smallest plan tried: bytes needed and its checkpoint interval (0: none).
    smallest: Option<(usize, usize)>,
}

impl IntervalSearch {
    /// What to try after compiling with `tried` (`None`: every step stored) failed with `e`.
    /// Over the memory limit with parameters and inputs that fit: first the largest interval
    /// whose estimate frees the excess, then the interval halved while still over, down to 1.
    /// Any other error, a plan over on parameters and inputs alone (recomputation shrinks the
    /// arena only), or a graph with nothing to recompute, is the error itself.
    pub(crate) fn next(&mut self, e: JitError, tried: Option<&Recompute>) -> Result<Checkpoints> {
        let (needed, limit) = match &e {
            JitError::MemoryLimit {
                needed,
                limit,
                persistent,
                ..
            } if persistent < limit => (*needed, *limit),
            _ => return Err(e.into()),
        };
        let every = tried.map_or(0, |r| r.every);
        self.smallest = Some(
            self.smallest
                .map_or((needed, every), |s| s.min((needed, every))),
        );
        match tried {
            None => Ok(Checkpoints::Free(needed.saturating_sub(limit))),
            Some(r) if r.segments == 0 => Err(e.into()),
            Some(r) if r.every > 1 => Ok(Checkpoints::Every(r.every / 2)),
            // A checkpoint every step is still over: say what the smallest plan tried needs.
            Some(_) => {
                let (bytes, k) = self.smallest.unwrap_or((needed, every));
                Err(NnError::TooLarge {
                    what: "training plan".into(),
                    message: format!(
                        "{e}; the smallest plan tried (a checkpoint every {k} steps) needs \
                         {bytes} bytes"
                    ),
                })
            }
        }
    }
}
