//! Reverse accumulation over the graph.
use crate::AutodiffError;
use smallvec::SmallVec;
use trellis_ir::{Graph, NodeId};

/// Gradients of the scalar `loss` with respect to each node of `wrt`, appended to `g`.
///
/// Nodes between `loss` and `wrt` are visited in reverse topological order; each node's
/// incoming gradients (one per use) are summed, then its op's `vjp` builds its inputs'
/// gradients. Branches that cannot reach the loss, and operands that do not depend on `wrt`,
/// get no backward nodes. A `wrt` node the loss does not depend on gets a zero gradient.
pub fn grad(g: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, AutodiffError> {
    let seed = loss_seed(g, loss)?;
    grad_with_seed(g, &[seed], wrt)
}

/// `(loss, 1)`: the seed of a scalar loss, after checking that it is one.
pub(crate) fn loss_seed(g: &mut Graph, loss: NodeId) -> Result<(NodeId, NodeId), AutodiffError> {
    if !g.contains(loss) {
        return Err(AutodiffError::NotInGraph(loss.to_string()));
    }
    let ty = g.ty(loss).clone();
    if ty.rank() != 0 || !ty.dtype.is_float() {
        return Err(AutodiffError::BadLoss {
            node: g.describe(loss),
            ty: ty.to_string(),
        });
    }
    Ok((loss, g.scalar(1.0, ty.dtype)))
}

/// Vector-Jacobian product: the gradients of `sum_k <outputs_k, seed_k>` with respect to `wrt`.
/// Each seed has its output's type.
pub fn grad_with_seed(
    g: &mut Graph,
    seeds: &[(NodeId, NodeId)],
    wrt: &[NodeId],
) -> Result<Vec<NodeId>, AutodiffError> {
    Ok(reverse(g, seeds, wrt)?.grads)
}

/// What a reverse sweep built: the gradients asked for, and the summed gradient of every node
/// the sweep reached (indexed by node index; what recomputation waits on).
pub(crate) struct Sweep {
    pub grads: Vec<NodeId>,
    pub total: Vec<Option<NodeId>>,
}

/// [`grad_with_seed`], keeping each node's summed gradient.
pub(crate) fn reverse(
    g: &mut Graph,
    seeds: &[(NodeId, NodeId)],
    wrt: &[NodeId],
) -> Result<Sweep, AutodiffError> {
    for &(o, s) in seeds {
        for n in [o, s] {
            if !g.contains(n) {
                return Err(AutodiffError::NotInGraph(n.to_string()));
            }
        }
        if g.ty(o) != g.ty(s) {
            return Err(AutodiffError::BadSeed {
                node: g.describe(o),
                expected: g.ty(o).to_string(),
                got: g.ty(s).to_string(),
            });
        }
    }
    if let Some(w) = wrt.iter().find(|w| !g.contains(**w)) {
        return Err(AutodiffError::NotInGraph(w.to_string()));
    }
    let order = g.topo_order();
    let bound = order.iter().map(|n| n.index() + 1).max().unwrap_or(0);
    // Nodes that depend on some `wrt` node (forward sweep) ...
    let mut from_wrt = vec![false; bound];
    for &w in wrt {
        from_wrt[w.index()] = true;
    }
    for &n in &order {
        if !from_wrt[n.index()] && g.operands(n).iter().any(|i| from_wrt[i.index()]) {
            from_wrt[n.index()] = true;
        }
    }
    // ... and that the outputs depend on: the only nodes whose gradient is needed.
    let roots: Vec<NodeId> = seeds.iter().map(|s| s.0).collect();
    let to_out = g.reachable_from(&roots);
    let active = |n: NodeId| n.index() < bound && from_wrt[n.index()] && to_out[n.index()];

    // Inline: most nodes get one or two gradients (no allocation per node of a long unroll).
    let mut pending: Vec<SmallVec<[NodeId; 2]>> = vec![SmallVec::new(); bound];
    for &(o, s) in seeds {
        pending[o.index()].push(s);
    }
    let mut total: Vec<Option<NodeId>> = vec![None; bound];
    for &n in order.iter().rev() {
        if !active(n) || pending[n.index()].is_empty() {
            continue;
        }
        // Fan-out: d n = sum of the gradients from each use.
        let parts = std::mem::take(&mut pending[n.index()]);
        let mut d = parts[0];
        for &p in &parts[1..] {
            d = g.add(d, p)?;
        }
        total[n.index()] = Some(d);
        let inputs: SmallVec<[NodeId; 3]> = SmallVec::from_slice(g.operands(n));
        if !inputs.iter().any(|&i| active(i)) {
            continue;
        }
        let op = g.node(n).op.clone();
        let grads = op
            .vjp(g, &inputs, n, d)
            .map_err(|e| e.at(format!("vjp of {}", g.describe(n))))?;
        check_vjp(g, n, &inputs, &grads)?;
        for (i, gi) in inputs.iter().zip(grads) {
            if let (true, Some(gi)) = (active(*i), gi) {
                pending[i.index()].push(gi);
            }
        }
    }
    let grads = wrt
        .iter()
        .map(|&w| match total[w.index()] {
            Some(d) => Ok(d),
            None => {
                let ty = g.ty(w).clone();
                Ok(g.fill(ty, 0.0)?)
            }
        })
        .collect::<Result<_, AutodiffError>>()?;
    Ok(Sweep { grads, total })
}

/// A vjp must give one gradient (or `None`) per input, each of its input's type: a short or
/// misshapen result would otherwise be zipped away or summed into the wrong shape silently.
fn check_vjp(
    g: &Graph,
    n: NodeId,
    inputs: &[NodeId],
    grads: &[Option<NodeId>],
) -> Result<(), AutodiffError> {
    let bad = |detail: String| AutodiffError::BadVjp {
        node: g.describe(n),
        detail,
    };
    if grads.len() != inputs.len() {
        return Err(bad(format!(
            "returned {} gradients for {} inputs",
            grads.len(),
            inputs.len()
        )));
    }
    for (k, (&x, d)) in inputs.iter().zip(grads).enumerate() {
        let Some(d) = *d else { continue };
        if !g.contains(d) {
            return Err(bad(format!(
                "returned {d} for input {k}, not a node of the graph"
            )));
        }
        if g.ty(d) != g.ty(x) {
            return Err(bad(format!(
                "returned a gradient of type {} for input {k} of type {}",
                g.ty(d),
                g.ty(x)
            )));
        }
    }
    Ok(())
}
