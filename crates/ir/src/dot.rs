//! Graphviz export: each node shows its id, op, type, debug name and the op's attributes
//! (slice ranges, transpose flags, ...); the nodes of each unrolled time step are a cluster.
use crate::{Graph, NodeId};
use std::fmt::Write;

/// How [`to_dot_with`] draws a graph.
#[derive(Clone, Copy, Debug)]
pub struct DotOptions {
    /// Group each time step's nodes in a cluster (`step t`).
    pub clusters: bool,
    /// Draw one time step (the first) of each unrolled recurrence and elide the others into a
    /// single box: a T = 20 graph of a thousand nodes lays out as one step.
    pub collapse_steps: bool,
}

impl Default for DotOptions {
    fn default() -> Self {
        DotOptions {
            clusters: true,
            collapse_steps: false,
        }
    }
}

/// The graph in DOT syntax (`dot -Tsvg`), edges labelled with operand slots, time steps
/// clustered.
pub fn to_dot(g: &Graph) -> String {
    to_dot_with(g, DotOptions::default())
}

/// The time step of a name the unroller gives a step's state (`l0.t3.h` -> 3).
fn step_of_name(name: &str) -> Option<usize> {
    name.split('.').find_map(|part| {
        let digits = part.strip_prefix('t')?;
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    })
}

/// Each node's time step: the earliest step whose named state it feeds (the nodes that compute
/// step t's state, and nothing of step t - 1). Nodes that feed no step state (the loss, the
/// backward graph, the weights' uses after the loop) have none.
pub fn time_steps(g: &Graph) -> Vec<Option<usize>> {
    let mut step: Vec<Option<usize>> = vec![None; g.node_bound()];
    let order = g.topo_order();
    for &n in order.iter().rev() {
        let own = g.node(n).name.as_deref().and_then(step_of_name);
        let from_users = g.users(n).into_iter().filter_map(|u| step[u.index()]).min();
        step[n.index()] = match (own, from_users) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    // Leaves (inputs, weights, constants) are shared by every step: no cluster.
    for n in g.node_ids() {
        if g.operands(n).is_empty() {
            step[n.index()] = None;
        }
    }
    step
}

/// The op's attributes, from its `Debug` form when it has named fields
/// (`Slice { axis: 1, start: 0, end: 4 }` -> `axis: 1, start: 0, end: 4`).
fn attributes(g: &Graph, n: NodeId) -> Option<String> {
    let d = format!("{:?}", g.node(n).op);
    let open = d.find('{')?;
    let inner = d[open + 1..].trim_end_matches('}').trim();
    (!inner.is_empty()).then(|| inner.replace('"', "'"))
}

/// [`to_dot`] with options.
pub fn to_dot_with(g: &Graph, opts: DotOptions) -> String {
    let steps = if opts.clusters || opts.collapse_steps {
        time_steps(g)
    } else {
        vec![None; g.node_bound()]
    };
    let first = steps.iter().flatten().min().copied();
    let shown =
        |n: NodeId| !opts.collapse_steps || steps[n.index()].is_none_or(|t| Some(t) == first);
    let mut by_step: std::collections::BTreeMap<Option<usize>, Vec<NodeId>> = Default::default();
    for id in g.node_ids().filter(|&n| shown(n)) {
        by_step.entry(steps[id.index()]).or_default().push(id);
    }
    let mut out = String::from("digraph {\n");
    for (step, nodes) in &by_step {
        let indent = if let (Some(t), true) = (step, opts.clusters) {
            let _ = writeln!(out, "  subgraph cluster_t{t} {{\n    label=\"step {t}\"");
            "    "
        } else {
            "  "
        };
        for &id in nodes {
            let n = g.node(id);
            let name = n
                .name
                .as_deref()
                .map(|s| format!("\\n{}", s.replace('"', "'")))
                .unwrap_or_default();
            let attrs = attributes(g, id)
                .map(|a| format!("\\n{a}"))
                .unwrap_or_default();
            let shape = if n.inputs.is_empty() {
                "box"
            } else {
                "ellipse"
            };
            let _ = writeln!(
                out,
                "{indent}{} [ label=\"{id} {}\\n{}{name}{attrs}\" shape={shape} ]",
                id.index(),
                n.op.name(),
                n.ty,
            );
        }
        if step.is_some() && opts.clusters {
            out.push_str("  }\n");
        }
    }
    let hidden = g.node_ids().filter(|&n| !shown(n)).count();
    if hidden > 0 {
        let _ = writeln!(
            out,
            "  elided [ label=\"{hidden} nodes of the other time steps\" shape=box style=dashed ]"
        );
    }
    let mut elided_edges = std::collections::HashSet::new();
    for id in g.node_ids() {
        for (slot, x) in g.operands(id).iter().enumerate() {
            let (from, to) = (shown(*x), shown(id));
            if from && to {
                let _ = writeln!(
                    out,
                    "  {} -> {} [ label=\"{slot}\" ]",
                    x.index(),
                    id.index()
                );
            } else if from != to {
                // One dashed edge per shown node to or from the elided steps.
                let (a, b) = if from {
                    (x.index().to_string(), "elided".to_string())
                } else {
                    ("elided".to_string(), id.index().to_string())
                };
                if elided_edges.insert((a.clone(), b.clone())) {
                    let _ = writeln!(out, "  {a} -> {b} [ style=dashed ]");
                }
            }
        }
    }
    out.push_str("}\n");
    out
}
