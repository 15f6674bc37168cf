//! Shared by the tests that check `trellis_ir::conv` against PyTorch (`tests/fixtures/conv1d.json`,
//! from `scripts/golden/conv_golden.py`): one case's convolution or pooling and `loss =
//! sum(output * R)` as a [`GoldenGraph`], on a batch-major or time-major sequence. Included
//! with `#[path]` beside `golden_graph.rs` and `golden_lstm.rs`.
#![allow(dead_code)]
use crate::golden_graph::GoldenGraph;
use crate::golden_lstm::Fixture;
use trellis_ir::conv::{conv1d, pool1d, Conv1dSpec, Pool};
use trellis_ir::DType;

pub const CONVS: [&str; 5] = [
    "valid",
    "same_dilated",
    "causal_strided",
    "same_strided",
    "pointwise",
];
pub const POOLS: [(&str, Pool); 2] = [("max_pool", Pool::Max), ("avg_pool", Pool::Average)];

/// Every case: `(name, pooling)`.
pub fn all_cases() -> Vec<(&'static str, Option<Pool>)> {
    CONVS
        .iter()
        .map(|&c| (c, None))
        .chain(POOLS.iter().map(|&(c, p)| (c, Some(p))))
        .collect()
}

/// Case `case` (a convolution, or a pooling when `pool` is set) as a graph of `dtype`; with
/// `time_major` the sequence enters as `[T, B, F]` (a transpose of the fixture's `x`) and the
/// output is transposed back to the fixture's `[B, T_out, O]`.
pub fn build(
    fx: &Fixture,
    case: &str,
    pool: Option<Pool>,
    time_major: bool,
    dtype: DType,
) -> GoldenGraph {
    let int = |k: &str| fx.get(&format!("{case}.{k}")).data[0] as usize;
    let mut gg = GoldenGraph::new(dtype);
    let x = gg.leaf(fx, &format!("{case}.x"), true).unwrap();
    let g = &mut gg.g;
    let (xs, axis) = if time_major {
        (g.transpose(x, &[1, 0, 2]).unwrap(), 0)
    } else {
        (x, 1)
    };
    let y = match pool {
        Some(p) => pool1d(&mut gg.g, xs, axis, p, int("size"), int("stride")).unwrap(),
        None => {
            let w = gg.leaf(fx, &format!("{case}.weight"), true).unwrap();
            let b = gg.leaf(fx, &format!("{case}.bias"), true);
            let spec = Conv1dSpec {
                stride: int("stride"),
                dilation: int("dilation"),
                padding: (int("pad_before"), int("pad_after")),
            };
            conv1d(&mut gg.g, xs, axis, w, b, &spec).unwrap()
        }
    };
    let y = if time_major {
        gg.g.transpose(y, &[1, 0, 2]).unwrap()
    } else {
        y
    };
    let loss = gg.dot_loss(fx, y, &format!("{case}.R"));
    gg.finish(
        vec![(y, format!("{case}.output"))],
        (loss, format!("{case}.loss")),
    )
}
