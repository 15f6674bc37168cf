//! Graphviz export: each node shows its id, op, type and debug name.
use crate::Graph;
use std::fmt::Write;

/// The graph in DOT syntax (`dot -Tsvg`), edges labelled with operand slots.
pub fn to_dot(g: &Graph) -> String {
    let mut out = String::from("digraph {\n");
    for id in g.node_ids() {
        let n = g.node(id);
        let name = n
            .name
            .as_deref()
            .map(|s| format!("\\n{}", s.replace('"', "'")))
            .unwrap_or_default();
        let shape = if n.inputs.is_empty() {
            "box"
        } else {
            "ellipse"
        };
        let _ = writeln!(
            out,
            "    {} [ label=\"{id} {}\\n{}{name}\" shape={shape} ]",
            id.index(),
            n.op.name(),
            n.ty,
        );
    }
    for id in g.node_ids() {
        for (slot, x) in g.operands(id).iter().enumerate() {
            let _ = writeln!(
                out,
                "    {} -> {} [ label=\"{slot}\" ]",
                x.index(),
                id.index()
            );
        }
    }
    out.push_str("}\n");
    out
}
