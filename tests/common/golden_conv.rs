//! Shared by the tests that check `trellis_ir::conv` against PyTorch (`tests/fixtures/conv1d.json`,
//! from `scripts/golden/conv_golden.py`): builds one case's convolution or pooling, `loss =
//! sum(output * R)` and its gradients as a graph, on a batch-major or time-major sequence.
//! Included with `#[path]` beside `golden_lstm.rs` (whose fixture loader it uses).
#![allow(dead_code)]
use crate::golden_lstm::{Fixture, Golden};
use trellis_autodiff::grad;
use trellis_ir::conv::{conv1d, pool1d, Conv1dSpec, Pool};
use trellis_ir::{DType, Graph, NodeId, TensorType};

pub struct ConvCase {
    pub g: Graph,
    pub feeds: Vec<(NodeId, Golden)>,
    /// Batch-major `[B, T_out, O]`, as the fixture's `output`.
    pub output: NodeId,
    pub loss: NodeId,
    /// `(leaf, torch gradient name)`, and the gradient nodes in the same order.
    pub wrt: Vec<(NodeId, String)>,
    pub grads: Vec<NodeId>,
}

pub const CONVS: [&str; 5] = [
    "valid",
    "same_dilated",
    "causal_strided",
    "same_strided",
    "pointwise",
];
pub const POOLS: [(&str, Pool); 2] = [("max_pool", Pool::Max), ("avg_pool", Pool::Average)];

fn int(fx: &Fixture, key: &str) -> usize {
    fx.get(key).data[0] as usize
}

/// Case `case` (a convolution, or a pooling when `pool` is set) as a graph of `dtype`; with
/// `time_major` the sequence enters as `[T, B, F]` (a transpose of the fixture's `x`).
pub fn build(
    fx: &Fixture,
    case: &str,
    pool: Option<Pool>,
    time_major: bool,
    dtype: DType,
) -> ConvCase {
    let mut g = Graph::new();
    let mut feeds = Vec::new();
    let mut wrt = Vec::new();
    let mut param = |g: &mut Graph, name: &str| -> NodeId {
        let t = fx.get(&format!("{case}.{name}")).clone();
        let id = g.param(name, TensorType::new(t.shape.clone(), dtype));
        wrt.push((id, format!("{case}.grad_{name}")));
        feeds.push((id, t));
        id
    };
    let x = param(&mut g, "x");
    let (xs, axis) = if time_major {
        (g.transpose(x, &[1, 0, 2]).unwrap(), 0)
    } else {
        (x, 1)
    };
    let y = match pool {
        Some(p) => {
            let (size, stride) = (
                int(fx, &format!("{case}.size")),
                int(fx, &format!("{case}.stride")),
            );
            pool1d(&mut g, xs, axis, p, size, stride).unwrap()
        }
        None => {
            let w = param(&mut g, "weight");
            let b = param(&mut g, "bias");
            let spec = Conv1dSpec {
                stride: int(fx, &format!("{case}.stride")),
                dilation: int(fx, &format!("{case}.dilation")),
                padding: (
                    int(fx, &format!("{case}.pad_before")),
                    int(fx, &format!("{case}.pad_after")),
                ),
            };
            conv1d(&mut g, xs, axis, w, Some(b), &spec).unwrap()
        }
    };
    let output = if time_major {
        g.transpose(y, &[1, 0, 2]).unwrap()
    } else {
        y
    };
    let r_t = fx.get(&format!("{case}.R")).clone();
    let r = g.input("R", TensorType::new(r_t.shape.clone(), dtype));
    feeds.push((r, r_t));
    let yr = g.mul(output, r).unwrap();
    let loss = g.sum_all(yr).unwrap();
    let leaves: Vec<NodeId> = wrt.iter().map(|w| w.0).collect();
    let grads = grad(&mut g, loss, &leaves).unwrap();
    ConvCase {
        g,
        feeds,
        output,
        loss,
        wrt,
        grads,
    }
}

/// Every case: `(name, pooling)`.
pub fn all_cases() -> Vec<(&'static str, Option<Pool>)> {
    CONVS
        .iter()
        .map(|&c| (c, None))
        .chain(POOLS.iter().map(|&(c, p)| (c, Some(p))))
        .collect()
}
