//! Elementwise fusion: maximal groups of elementwise nodes of one shape that can run as one
//! kernel, and a schedule in which each group runs as a unit.
use crate::table::{prefetch_ahead, prefetch_node, prefetch_op, PerOp, AHEAD};
use trellis_ir::{DType, Graph, NodeId};

/// `group_of` entry of a node in no group. Per-node tables are vectors indexed by node index:
/// fusion looks every node up several times, and hashing was most of its time at long T. (Of
/// u32: group and unit ids are fewer than the nodes, whose ids are u32.)
const NO_GROUP: u32 = u32::MAX;

/// The group of `n`, if any.
fn group(group_of: &[u32], n: NodeId) -> Option<usize> {
    Some(group_of[n.index()])
        .filter(|&g| g != NO_GROUP)
        .map(|g| g as usize)
}

/// A node (`Single`) or a fused group of elementwise nodes (`Group`, members in topological order).
#[derive(Clone, Debug)]
pub enum Unit {
    Single(NodeId),
    Group(Vec<NodeId>),
}

/// Whether `n` computes elementwise (has a scalar form) on f32.
pub fn is_elementwise(g: &Graph, n: NodeId) -> bool {
    g.ty(n).dtype == DType::F32 && g.op(n).is_elementwise()
}

/// Groups elementwise nodes and orders the result.
///
/// A node joins the group of an elementwise operand with the same shape when none of its other
/// operands depends on that group: `dep[n]`, the newest group `n` depends on (groups are
/// numbered in creation order), makes that test O(1), so grouping is linear and the grouped
/// graph stays acyclic. `fusible(n)` lets the caller keep a node out of fusion; a node in
/// `starts_group` joins no operand's group (a recomputed value, which its readers' kernel
/// then takes in: [`crate::remat`]).
pub fn fuse(
    g: &Graph,
    order: &[NodeId],
    split_chains: bool,
    fusible: impl Fn(NodeId) -> bool,
    starts_group: &rustc_hash::FxHashSet<NodeId>,
) -> Vec<Unit> {
    let mut group_of: Vec<u32> = vec![NO_GROUP; g.node_bound()];
    let mut groups: Vec<Vec<NodeId>> = Vec::new();
    let mut dep: Vec<i64> = vec![-1; g.node_bound()];
    for (at, &n) in order.iter().enumerate() {
        prefetch_ahead(g, order, at);
        let ops = g.operands(n);
        // Newest group the operands depend on, leaving out members of group `skip`.
        let max_dep = |group_of: &[u32], dep: &[i64], skip: Option<usize>| {
            ops.iter()
                .filter(|&&o| skip.is_none() || group(group_of, o) != skip)
                .map(|o| dep[o.index()])
                .max()
                .unwrap_or(-1)
        };
        if !fusible(n) {
            dep[n.index()] = max_dep(&group_of, &dep, None);
            continue;
        }
        // Newest compatible operand group first: it is the likeliest to be free of conflicts.
        let mut cands: smallvec::SmallVec<[usize; 4]> = ops
            .iter()
            .filter_map(|&o| group(&group_of, o))
            .filter(|&gi| g.ty(groups[gi][0]).shape == g.ty(n).shape)
            .collect();
        cands.sort_unstable_by(|a, b| b.cmp(a));
        cands.dedup();
        let joined = if starts_group.contains(&n) {
            None
        } else {
            cands
                .into_iter()
                .find(|&gi| max_dep(&group_of, &dep, Some(gi)) < gi as i64)
        };
        let gi = match joined {
            Some(gi) => {
                groups[gi].push(n);
                gi
            }
            None => {
                groups.push(vec![n]);
                groups.len() - 1
            }
        };
        let d = (gi as i64).max(max_dep(&group_of, &dep, None));
        group_of[n.index()] = gi as u32;
        dep[n.index()] = d;
    }
    merge_into_sole_consumer(g, &mut group_of, &mut groups);
    sink_cheap_outputs(g, &mut group_of, &mut groups);
    if split_chains {
        split_transcendental_chains(g, &mut group_of, &mut groups);
    }
    schedule(g, order, &group_of, groups)
}

/// Merges a group into the group that consumes all of its outputs (same shape): its values
/// then stay in registers instead of a round trip through memory. Safe without a cycle check:
/// every path out of the producer enters the consumer directly.
fn merge_into_sole_consumer(g: &Graph, group_of: &mut [u32], groups: &mut [Vec<NodeId>]) {
    let outputs: rustc_hash::FxHashSet<NodeId> = g.outputs().iter().copied().collect();
    for gi in (0..groups.len()).rev() {
        if groups[gi].is_empty() {
            continue;
        }
        let mut consumer: Option<usize> = None;
        let mut ok = true;
        for &m in &groups[gi] {
            if outputs.contains(&m) {
                ok = false;
                break;
            }
            // Each use (a user reading twice is seen twice, with the same answer).
            for u in g.use_iter(m) {
                match group(group_of, u) {
                    Some(x) if x == gi => {}
                    Some(x) if consumer.is_none() || consumer == Some(x) => consumer = Some(x),
                    _ => ok = false,
                }
            }
        }
        let Some(c) = consumer.filter(|_| ok) else {
            continue;
        };
        if g.ty(groups[c][0]).shape != g.ty(groups[gi][0]).shape {
            continue;
        }
        let moved = std::mem::take(&mut groups[gi]);
        for &m in &moved {
            group_of[m.index()] = c as u32;
        }
        let mut merged = moved;
        merged.append(&mut groups[c]);
        groups[c] = merged;
    }
}

/// Moves a cheap member (no polynomial) into the one other group that uses it, when its
/// operands from its own group are in memory anyway: it is then recomputed there instead of
/// written out and read back. An LSTM gate's derivative `s (1 - s)` was computed in the
/// forward kernel beside `s` and read by the backward kernel a whole sequence later, which
/// reads `s` too: five such `[B, H]` arrays a step and layer went to memory and back. Safe for
/// the order: the consumer already comes after the producer, and no operand of the member can
/// be in the consumer (the producer would then depend on it), so the member goes first there.
fn sink_cheap_outputs(g: &Graph, group_of: &mut [u32], groups: &mut [Vec<NodeId>]) {
    let outputs: rustc_hash::FxHashSet<NodeId> = g.outputs().iter().copied().collect();
    let mut depths = PerOp::default();
    for gi in 0..groups.len() {
        if groups[gi].len() < 2 {
            continue;
        }
        let mut any = false;
        for k in (0..groups[gi].len()).rev() {
            let n = groups[gi][k];
            if group_of[n.index()] != gi as u32
                || outputs.contains(&n)
                || transcendental_depth(g, n, &mut depths) > 0
            {
                continue;
            }
            let mut target: Option<usize> = None;
            let consumers_agree = g.use_iter(n).all(|u| match group(group_of, u) {
                Some(x) if x != gi && target.is_none_or(|t| t == x) => {
                    target = Some(x);
                    true
                }
                _ => false,
            });
            let Some(h) = target.filter(|_| consumers_agree) else {
                continue;
            };
            if groups[h].is_empty() || g.ty(groups[h][0]).shape != g.ty(n).shape {
                continue;
            }
            // `n` and the cheap members only it (and such members) reads — `1 - s` under
            // `s (1 - s)` — move together; every other operand from this group must stay in
            // memory without them (something outside the group reads it too).
            let mut set = vec![n];
            let mut at = 0;
            let mut movable = true;
            while movable && at < set.len() {
                let m = set[at];
                at += 1;
                for &o in g.operands(m) {
                    if group(group_of, o) != Some(gi) || set.contains(&o) {
                        continue;
                    }
                    let read_outside = outputs.contains(&o)
                        || g.use_iter(o).any(|u| group(group_of, u) != Some(gi));
                    if read_outside {
                        continue;
                    }
                    let only_by_set = g.use_iter(o).all(|u| set.contains(&u));
                    if only_by_set && transcendental_depth(g, o, &mut depths) == 0 {
                        set.push(o);
                    } else {
                        movable = false;
                        break;
                    }
                }
            }
            if !movable {
                continue;
            }
            // In the producer's (topological) order, ahead of the consumer's members.
            let ordered: Vec<NodeId> = groups[gi]
                .iter()
                .copied()
                .filter(|m| set.contains(m))
                .collect();
            for &m in &ordered {
                group_of[m.index()] = h as u32;
            }
            groups[h].splice(0..0, ordered);
            any = true;
        }
        if any {
            groups[gi].retain(|&m| group_of[m.index()] == gi as u32);
        }
    }
}

/// How many range-reduced polynomials (exp, log, tanh, sigmoid, erf, ...) a node chains, read
/// from its scalar form ([`trellis_ir::ScalarFn::transcendental_depth`]), so built-ins and
/// outside ops are treated alike. (`pow` by a small integer constant is a few
/// multiplications: 0.)
fn transcendental_depth(g: &Graph, n: NodeId, depths: &mut PerOp<usize>) -> usize {
    *depths.get(&g.node(n).op, |op| {
        op.scalar().map_or(0, |e| e.transcendental_depth())
    })
}

/// Splits a group at each transcendental that depends on another inside the group (the LSTM
/// step's `tanh(c)` after its gate sigmoids): one level per kernel. For the backends that run
/// a loop per vector of the whole expression (Cranelift) or per node (tiles): two chained
/// polynomials per element are ~150 cycles of dependent latency, more than the out-of-order
/// window covers with other elements' work; as two loops the core overlaps more elements of
/// each (measured on the tiles: the LSTM forward step 109 -> 96 us at B = H = 128, `cargo bench
/// --bench jit -- "lstm step forward"`). The AVX-512 code interleaves two vectors' chains and
/// keeps the values in registers: there the cut cost a pass (seed inference 1,914-1,934 vs
/// 1,977-1,982 samples/s without it, alternating runs of the bench example), so it is not
/// made. Splitting by depth keeps the parts acyclic: a member never depends on a member of a
/// deeper level.
fn split_transcendental_chains(g: &Graph, group_of: &mut [u32], groups: &mut Vec<Vec<NodeId>>) {
    // Depth of each member within its group (only read for members of the group at hand).
    // (u32: tables of millions of slots at long T, half the memory to fill.)
    let mut depth: Vec<u32> = vec![0; g.node_bound()];
    let mut level_of: Vec<u32> = vec![0; g.node_bound()];
    // (Each distinct op's depth once: its scalar form is built to read it.)
    let mut depths = PerOp::default();
    for gi in 0..groups.len() {
        // The members of groups a few ahead, then their ops once the members are in.
        if let Some(m) = groups.get(gi + AHEAD) {
            m.iter().for_each(|&n| prefetch_node(g, n));
        }
        if let Some(m) = groups.get(gi + AHEAD / 2) {
            m.iter().for_each(|&n| prefetch_op(g, n));
        }
        // (One member is one level: nothing to split, and its depth is never read.)
        if groups[gi].len() < 2 {
            continue;
        }
        // A member that runs polynomials starts at the level of the chains before it; one
        // that does not joins the level of its deepest operand's last polynomial.
        let mut levels = 0;
        for &m in &groups[gi] {
            let d = g
                .operands(m)
                .iter()
                .filter(|o| group_of[o.index()] == gi as u32)
                .map(|o| depth[o.index()])
                .max()
                .unwrap_or(0);
            let own = transcendental_depth(g, m, &mut depths) as u32;
            depth[m.index()] = d + own;
            let level = if own > 0 { d } else { d.saturating_sub(1) };
            level_of[m.index()] = level;
            levels = levels.max(level as usize + 1);
        }
        if levels < 2 {
            continue;
        }
        let members = std::mem::take(&mut groups[gi]);
        let base = groups.len();
        groups.extend((1..levels).map(|_| Vec::new()));
        for m in members {
            let level = level_of[m.index()] as usize;
            let to = if level == 0 { gi } else { base + level - 1 };
            groups[to].push(m);
            group_of[m.index()] = to as u32;
        }
    }
}

/// Topological order of the units (Kahn's algorithm on the condensed graph), keeping the
/// original order where free so the result reads like the graph.
fn schedule(g: &Graph, order: &[NodeId], group_of: &[u32], groups: Vec<Vec<NodeId>>) -> Vec<Unit> {
    // Unit id: groups first, then singles.
    let mut unit_of: Vec<u32> = vec![0; g.node_bound()];
    let mut units: Vec<Unit> = groups.into_iter().map(Unit::Group).collect();
    // (Emptied groups stay as placeholders so group ids keep their meaning; dropped below.)
    for &n in order {
        match group(group_of, n) {
            Some(gi) => unit_of[n.index()] = gi as u32,
            None => {
                unit_of[n.index()] = units.len() as u32;
                units.push(Unit::Single(n));
            }
        }
    }
    // Successor lists in one array (CSR), each list in the order the edges are met below:
    // a vector per unit was most of scheduling at long T.
    let mut indeg = vec![0u32; units.len()];
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (at, &n) in order.iter().enumerate() {
        prefetch_ahead(g, order, at);
        let u = unit_of[n.index()] as usize;
        for o in g.operands(n) {
            let p = unit_of[o.index()] as usize;
            if p != u {
                edges.push((p, u));
                indeg[u] += 1;
            }
        }
    }
    let mut start = vec![0usize; units.len() + 1];
    for &(p, _) in &edges {
        start[p + 1] += 1;
    }
    for i in 0..units.len() {
        start[i + 1] += start[i];
    }
    let mut succ = vec![0u32; edges.len()];
    let mut fill = start.clone();
    for &(p, u) in &edges {
        succ[fill[p]] = u as u32;
        fill[p] += 1;
    }
    // Ready units are taken in the order their first node appears in `order`. That position
    // names the unit (each node is in one unit), so the heap holds positions alone: 4 bytes
    // an entry instead of 16 (it holds up to a unit per step at long T). Emptied groups have
    // no position and no edges: they go first (and are dropped below).
    let mut first = vec![u32::MAX; units.len()];
    for (i, &n) in order.iter().enumerate() {
        let u = unit_of[n.index()] as usize;
        first[u] = first[u].min(i as u32);
    }
    let unit_at = |i: u32| unit_of[order[i as usize].index()] as usize;
    let mut ready = std::collections::BinaryHeap::new();
    let mut out = Vec::with_capacity(units.len());
    for u in 0..units.len() {
        if indeg[u] == 0 {
            match first[u] {
                u32::MAX => out.push(u),
                i => ready.push(std::cmp::Reverse(i)),
            }
        }
    }
    while let Some(std::cmp::Reverse(i)) = ready.pop() {
        let u = unit_at(i);
        out.push(u);
        for &s in &succ[start[u]..start[u + 1]] {
            let s = s as usize;
            indeg[s] -= 1;
            if indeg[s] == 0 {
                ready.push(std::cmp::Reverse(first[s]));
            }
        }
    }
    assert_eq!(out.len(), units.len(), "fusion keeps the graph acyclic");
    let mut slots: Vec<Option<Unit>> = units.into_iter().map(Some).collect();
    out.into_iter()
        .map(|u| slots[u].take().expect("each unit once"))
        .filter(|u| !matches!(u, Unit::Group(m) if m.is_empty()))
        .collect()
}
