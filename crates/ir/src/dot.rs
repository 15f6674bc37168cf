//! Graphviz export: each node shows its id, op, type and debug name.
use crate::Graph;
use petgraph::dot::{Config, Dot};

/// The graph in DOT syntax (`dot -Tsvg`), edges labelled with operand slots.
pub fn to_dot(g: &Graph) -> String {
    let pg = g.petgraph();
    let dot = Dot::with_attr_getters(
        pg,
        &[Config::NodeNoLabel, Config::EdgeNoLabel],
        &|_, e| format!("label=\"{}\"", e.weight()),
        &|_, (i, n)| {
            let name = n
                .name
                .as_deref()
                .map(|s| format!("\\n{s}"))
                .unwrap_or_default();
            let shape = if n.inputs.is_empty() {
                "box"
            } else {
                "ellipse"
            };
            format!(
                "label=\"%{} {}\\n{}{}\" shape={shape}",
                i.index(),
                n.op.name(),
                n.ty,
                name.replace('"', "'")
            )
        },
    );
    format!("{dot:?}")
}
