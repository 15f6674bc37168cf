//! The reference interpreter: evaluates a graph node by node with each op's `eval`.
//! Kept simple on purpose: it is the ground truth the JIT is tested against.
use crate::ops::{Cast, Input};
use crate::{DType, Graph, IrError, NodeId, Result, Tensor};
use std::collections::HashMap;

/// Values for the graph's inputs and parameters.
pub type Feeds = HashMap<NodeId, Tensor>;

/// Arithmetic precision of a run. `F64` promotes every float value to f64 (feeds, constants
/// and results), so an f32 graph can be gradient-checked without being rebuilt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F64,
}

/// Evaluates `outputs` given `feeds`; only the nodes they depend on run.
pub fn run(
    g: &Graph,
    feeds: &Feeds,
    outputs: &[NodeId],
    precision: Precision,
) -> Result<Vec<Tensor>> {
    let promote = |t: Tensor| match (precision, t.dtype()) {
        (Precision::F64, DType::F32) => t.cast(DType::F64),
        _ => t,
    };
    for &o in outputs {
        if !g.contains(o) {
            return Err(IrError::Invalid(format!("output {o} is not in the graph")));
        }
    }
    let needed = g.reachable_from(outputs);
    let order: Vec<NodeId> = g
        .topo_order()
        .into_iter()
        .filter(|n| needed[n.index()])
        .collect();
    // Remaining uses of each value, so intermediates are dropped once consumed.
    let mut uses: HashMap<NodeId, usize> = HashMap::new();
    for &n in &order {
        for &i in g.operands(n) {
            *uses.entry(i).or_default() += 1;
        }
    }
    for &o in outputs {
        *uses.entry(o).or_default() += 1;
    }
    let mut vals: HashMap<NodeId, Tensor> = HashMap::with_capacity(order.len());
    for &n in &order {
        let node = g.node(n);
        let value = if let Some(inp) = node.op.as_any().downcast_ref::<Input>() {
            let t = feeds
                .get(&n)
                .ok_or_else(|| IrError::MissingInput(inp.name.clone()))?;
            let fits = t.dims() == inp.ty.dims()
                && (t.dtype() == inp.ty.dtype
                    || (precision == Precision::F64
                        && t.dtype().is_float()
                        && inp.ty.dtype.is_float()));
            if !fits {
                return Err(IrError::FeedType {
                    name: inp.name.clone(),
                    expected: inp.ty.to_string(),
                    got: t.ty().to_string(),
                });
            }
            t.clone()
        } else {
            let args: Vec<&Tensor> = node.inputs.iter().map(|i| &vals[i]).collect();
            let to_f32 = node
                .op
                .as_any()
                .downcast_ref::<Cast>()
                .is_some_and(|c| c.dtype == DType::F32);
            if precision == Precision::F64 && to_f32 {
                args[0].cast(DType::F64) // a cast to f32 would round what F64 precision keeps
            } else {
                node.op.eval(&args).map_err(|e| e.at(g.describe(n)))?
            }
        };
        vals.insert(n, promote(value));
        for &i in g.operands(n) {
            let u = uses.get_mut(&i).expect("counted above");
            *u -= 1;
            if *u == 0 {
                vals.remove(&i);
            }
        }
    }
    Ok(outputs.iter().map(|o| vals[o].clone()).collect())
}
