//! Recomputation (gradient checkpointing) for unrolled recurrences: long sequences in bounded
//! memory.
//!
//! A plain backward pass reads, at every step of a recurrence, values its forward step made
//! (gate activations, their derivatives, states): they stay alive from the forward to the
//! backward, T steps of them. [`grad_recomputing`] keeps instead the state every `k` steps (the
//! checkpoints) and gives each segment of `k` steps a copy of its forward computation, started
//! from the checkpoint before it, which the segment's backward reads in place of the
//! originals. The originals then die as soon as the forward has used them; one segment's copy
//! is alive at a time. The copies are the same ops on the same values: results are
//! bit-identical to storing everything.
//!
//! Each copy starts from `after(checkpoint, gradient entering the segment)` (`ir::ops::After`):
//! the copy cannot run before the backward reaches its segment (a schedule that runs nodes as
//! soon as their inputs are ready keeps it there), and it is not the same value as the
//! original, so common-subexpression elimination cannot merge it back. The last segment is not
//! copied: the backward starts there while its forward values are still fresh.
//!
//! Which nodes form a step comes from the unroller's record ([`Graph::recurrences`]); all work
//! is linear in the graph's size.
use crate::reverse::{loss_seed, reverse};
use crate::AutodiffError;
use trellis_ir::recurrent::Recurrence;
use trellis_ir::{Graph, NodeId};

/// Where the checkpoints go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoints {
    /// A checkpoint every `k` steps (`k >= 1`; `k` at least the sequence length: no
    /// recomputation).
    Every(usize),
    /// The largest `k` whose estimated bytes of saved step values ([`Recompute::estimate`]:
    /// checkpoints plus one segment) fit in this many bytes.
    Budget(usize),
    /// The largest `k` whose estimate frees at least this many bytes against storing every
    /// step (when none does, the `k` freeing the most): what a caller whose plan came out that
    /// much over its memory limit asks for.
    Free(usize),
}

/// What [`grad_recomputing`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recompute {
    /// The checkpoint interval chosen.
    pub every: usize,
    /// Segments given a copy of their forward, and the steps and nodes copied.
    pub segments: usize,
    pub steps: usize,
    pub nodes: usize,
    /// Estimated bytes of step values the backward reads when every step is stored
    /// (no recomputation).
    pub stored_bytes: usize,
    /// The estimate with checkpoints every `every` steps.
    pub estimate: usize,
}

/// Gradients of the scalar `loss` with respect to `wrt`, as [`crate::grad`], with the
/// recurrences of `g` recomputed segment by segment in the backward pass (see the module
/// docs). Call it on the forward graph: the nodes present before it runs are the forward.
pub fn grad_recomputing(
    g: &mut Graph,
    loss: NodeId,
    wrt: &[NodeId],
    checkpoints: Checkpoints,
) -> Result<(Vec<NodeId>, Recompute), AutodiffError> {
    let forward_end = g.node_bound();
    let seed = loss_seed(g, loss)?;
    let sweep = reverse(g, &[seed], wrt)?;
    let steps = analyse(g, forward_end);
    let (stored, every) = plan(&steps, checkpoints)?;
    let mut report = Recompute {
        every,
        stored_bytes: stored,
        estimate: estimate(&steps, every),
        ..Recompute::default()
    };
    copy_segments(g, &steps, forward_end, &sweep.total, &mut report)?;
    Ok((sweep.grads, report))
}

/// One step of a recurrence, as the backward sees it.
#[derive(Default)]
struct StepUse {
    /// The step's nodes that depend on the state before it, in index order: what a copy of
    /// the step recomputes.
    chain: Vec<NodeId>,
    /// Those the backward reads and nothing else in the forward keeps alive: the reads a copy
    /// takes over.
    redirect: Vec<NodeId>,
    /// Bytes the backward keeps of this step: `redirect`, and the values computed from the
    /// forward alone that the backward reads (an activation's derivative: the fused forward
    /// kernel writes it).
    saved: usize,
    /// Bytes of the state after the step that nothing else keeps (a checkpoint's cost).
    state: usize,
}

fn bytes(g: &Graph, n: NodeId) -> usize {
    let t = g.ty(n);
    t.numel() * t.dtype.size()
}

/// Each recurrence's steps' [`StepUse`] (`forward_end`: the first node the backward made).
fn analyse(g: &Graph, forward_end: usize) -> Vec<Vec<StepUse>> {
    let bound = g.node_bound();
    // Step of each chain node (+1; 0: none), over all recurrences.
    let mut step_of = vec![0u32; bound];
    let mut out: Vec<Vec<StepUse>> = Vec::new();
    for (r_i, r) in g.recurrences().iter().enumerate() {
        let mut uses: Vec<StepUse> = Vec::with_capacity(r.steps.len());
        for (i, s) in r.steps.iter().enumerate() {
            let prev: &[NodeId] = match i {
                0 => r.initial.as_deref().unwrap_or(&[]),
                _ => &r.steps[i - 1].state,
            };
            let tag = step_tag(&out, r_i, i);
            let mut chain = Vec::new();
            for n in g.node_ids_in(s.nodes.clone()) {
                if g.operands(n)
                    .iter()
                    .any(|o| prev.contains(o) || step_of[o.index()] == tag)
                {
                    step_of[n.index()] = tag;
                    chain.push(n);
                }
            }
            uses.push(StepUse {
                chain,
                ..StepUse::default()
            });
        }
        out.push(uses);
    }
    let in_chain = |n: NodeId| n.index() < bound && step_of[n.index()] != 0;
    let backward = |u: NodeId| (forward_end..bound).contains(&u.index());
    // Backward nodes computed from the forward alone (derivatives of activations): fusion
    // computes them in the forward, and the backward keeps those it reads.
    let mut from_forward = vec![false; bound];
    for n in g.node_ids_in(forward_end..bound) {
        let ops = g.operands(n);
        from_forward[n.index()] = !ops.is_empty()
            && ops.iter().all(|o| {
                o.index() < forward_end || from_forward[o.index()] || g.operands(*o).is_empty()
            });
    }
    let owner = |n: NodeId| -> Option<(usize, usize)> {
        let tag = step_of[n.index()] as usize;
        (tag != 0).then(|| locate(&out, tag))
    };
    let mut saved: Vec<(usize, usize, usize)> = Vec::new();
    let mut redirect: Vec<(usize, usize, NodeId)> = Vec::new();
    for rec in &out {
        for s in rec {
            for &n in &s.chain {
                let mut read_back = false;
                let mut kept = false;
                for u in g.use_iter(n) {
                    if backward(u) {
                        read_back = true;
                    } else if !in_chain(u) {
                        kept = true; // a forward value outside the steps (a concat of them)
                    }
                }
                if read_back && !kept {
                    let (r, i) = owner(n).expect("a chain node");
                    redirect.push((r, i, n));
                    saved.push((r, i, bytes(g, n)));
                }
            }
        }
    }
    // Forward-computable backward nodes read by the rest of the backward, charged to the step
    // of a chain node they read.
    for n in g.node_ids_in(forward_end..bound) {
        if !from_forward[n.index()] || g.use_iter(n).all(|u| from_forward[u.index()]) {
            continue;
        }
        if let Some((r, i)) = g
            .operands(n)
            .iter()
            .find_map(|&o| in_chain(o).then(|| owner(o)).flatten())
        {
            saved.push((r, i, bytes(g, n)));
        }
    }
    for (r, i, b) in saved {
        out[r][i].saved += b;
    }
    for (r, i, n) in redirect {
        out[r][i].redirect.push(n);
    }
    for (r, rec) in g.recurrences().iter().enumerate() {
        for (i, s) in rec.steps.iter().enumerate() {
            out[r][i].state = s
                .state
                .iter()
                .filter(|&&n| g.use_iter(n).all(|u| in_chain(u) || backward(u)))
                .map(|&n| bytes(g, n))
                .sum();
        }
    }
    out
}

/// The tag of step `i` of recurrence `r` (recurrences before it fully listed in `done`).
fn step_tag(done: &[Vec<StepUse>], r: usize, i: usize) -> u32 {
    let before: usize = done[..r].iter().map(Vec::len).sum();
    u32::try_from(before + i + 1).expect("fewer than 2^32 steps")
}

/// The recurrence and step of a tag.
fn locate(done: &[Vec<StepUse>], tag: usize) -> (usize, usize) {
    let mut t = tag - 1;
    for (r, rec) in done.iter().enumerate() {
        if t < rec.len() {
            return (r, t);
        }
        t -= rec.len();
    }
    unreachable!("tags come from step_tag")
}

/// Estimated bytes of saved step values with a checkpoint every `k` steps: the checkpoints
/// of every recurrence, and one segment (the largest) of the recurrence whose backward runs.
fn estimate(steps: &[Vec<StepUse>], k: usize) -> usize {
    let mut checkpoints = 0;
    let mut segment = 0;
    for rec in steps {
        for seg in rec.chunks(k.max(1)) {
            checkpoints += seg.last().map_or(0, |s| s.state);
            segment = segment.max(seg.iter().map(|s| s.saved).sum::<usize>());
        }
    }
    if k >= steps.iter().map(Vec::len).max().unwrap_or(0) {
        return steps.iter().flatten().map(|s| s.saved).sum();
    }
    checkpoints + segment
}

/// The bytes stored without recomputation and the checkpoint interval to use.
fn plan(steps: &[Vec<StepUse>], checkpoints: Checkpoints) -> Result<(usize, usize), AutodiffError> {
    let stored: usize = steps.iter().flatten().map(|s| s.saved).sum();
    let longest = steps.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let every = match checkpoints {
        Checkpoints::Every(0) => {
            return Err(AutodiffError::Recompute(
                "a checkpoint every 0 steps: the interval must be at least 1".into(),
            ))
        }
        Checkpoints::Every(k) => k,
        Checkpoints::Free(bytes) => {
            let target = stored.saturating_sub(bytes);
            // The largest interval freeing that much; else the one freeing the most.
            largest_within(steps, longest, target)
                .unwrap_or_else(|| least(steps, longest))
                .0
        }
        Checkpoints::Budget(budget) => match largest_within(steps, longest, budget) {
            Some((k, _)) => k,
            None => {
                let (k, least) = least(steps, longest);
                return Err(AutodiffError::Recompute(format!(
                    "the recurrences' saved values need at least {least} bytes (a checkpoint \
                         every {k} steps), over the budget of {budget} bytes"
                )));
            }
        },
    };
    Ok((stored, every))
}

/// The largest interval (up to `longest`) whose estimate is at most `bytes`, and that estimate.
/// Each estimate is a sum over the steps: they are scanned, largest first.
fn largest_within(steps: &[Vec<StepUse>], longest: usize, bytes: usize) -> Option<(usize, usize)> {
    (1..=longest)
        .rev()
        .map(|k| (k, estimate(steps, k)))
        .find(|&(_, e)| e <= bytes)
}

/// The interval (up to `longest`) with the least estimate, and that estimate.
fn least(steps: &[Vec<StepUse>], longest: usize) -> (usize, usize) {
    (1..=longest)
        .map(|k| (k, estimate(steps, k)))
        .min_by_key(|&(k, e)| (e, k))
        .expect("one interval at least")
}

/// Gives each segment but the last a copy of its forward and points the backward's reads at
/// it.
fn copy_segments(
    g: &mut Graph,
    steps: &[Vec<StepUse>],
    forward_end: usize,
    total: &[Option<NodeId>],
    report: &mut Recompute,
) -> Result<(), AutodiffError> {
    let backward_end = g.node_bound();
    let k = report.every;
    let recs: Vec<Recurrence> = g.recurrences().to_vec();
    // The copy of each copied chain node, and what the backward reads instead of a node.
    let mut copy: Vec<Option<NodeId>> = vec![None; backward_end];
    let mut instead: Vec<Option<NodeId>> = vec![None; backward_end];
    let mut redirected: Vec<NodeId> = Vec::new();
    for (rec, uses) in recs.iter().zip(steps) {
        let t_len = rec.steps.len();
        for lo in (0..t_len).step_by(k) {
            let hi = (lo + k).min(t_len);
            if hi == t_len {
                break; // the last segment: still fresh when the backward starts
            }
            // Without an initial state the first step reads none: it is kept, and the copy
            // starts from its state.
            let first = if lo == 0 && rec.initial.is_none() {
                1
            } else {
                lo
            };
            let entry: &[NodeId] = match first {
                0 => rec.initial.as_deref().unwrap_or(&[]),
                _ => &rec.steps[first - 1].state,
            };
            let end_state = &rec.steps[hi - 1].state;
            let Some(dep) = end_state
                .iter()
                .find_map(|s| total.get(s.index()).copied().flatten())
            else {
                continue; // the backward does not reach this segment
            };
            if first >= hi {
                continue;
            }
            let mut gate = Vec::with_capacity(entry.len());
            for &e in entry {
                gate.push((e, g.after(e, &[dep])?));
            }
            for step in &uses[first..hi] {
                for &n in &step.chain {
                    let ops: Vec<NodeId> = g
                        .operands(n)
                        .iter()
                        .map(|&o| {
                            gate.iter()
                                .find(|(e, _)| *e == o)
                                .map(|p| p.1)
                                .or_else(|| copy.get(o.index()).copied().flatten())
                                .unwrap_or(o)
                        })
                        .collect();
                    let op = g.node(n).op.clone();
                    let c = g.apply_arc(op, &ops, None)?;
                    copy[n.index()] = Some(c);
                    report.nodes += 1;
                }
                for &n in &step.redirect {
                    // The segment's end state is the next checkpoint: read as it is.
                    if !end_state.contains(&n) {
                        instead[n.index()] = copy[n.index()];
                        redirected.push(n);
                    }
                }
            }
            report.segments += 1;
            report.steps += hi - first;
        }
    }
    // The backward's reads of redirected nodes, rewritten once per reading node.
    let mut readers: Vec<NodeId> = Vec::new();
    for &n in &redirected {
        readers.extend(
            g.use_iter(n)
                .filter(|u| (forward_end..backward_end).contains(&u.index())),
        );
    }
    readers.sort_unstable();
    readers.dedup();
    for u in readers {
        let ops: Vec<NodeId> = g
            .operands(u)
            .iter()
            .map(|&o| instead.get(o.index()).copied().flatten().unwrap_or(o))
            .collect();
        let op = g.node(u).op.clone();
        g.set_op(u, op, &ops)?;
    }
    if g.topo_order().len() != g.node_count() {
        return Err(AutodiffError::Recompute(
            "the copies made the graph cyclic (a recurrence record that does not match the graph)"
                .into(),
        ));
    }
    Ok(())
}
