//! Reduction steps (sums, means, maxima, minima) against the interpreter: every kind of axis
//! set, strided and broadcast operands, sizes that split across the two threads, NaN and
//! signed zeros; and the softmax's row maximum as one step.
#[allow(dead_code)]
mod common;
use common::{compile_threads, rand_f32, step_names};
use rand::rngs::StdRng;
use rand::SeedableRng;
use trellis_ir::{run, Feeds, Graph, NodeId, Precision, Tensor, TensorType};

type Build = fn(&mut Graph, NodeId, &[usize]) -> trellis_ir::Result<NodeId>;

const KINDS: [(&str, Build); 4] = [
    ("sum", |g, x, a| g.sum(x, a, false)),
    ("mean", |g, x, a| g.mean(x, a, true)),
    ("max", |g, x, a| g.max(x, a, false)),
    ("min", |g, x, a| g.min(x, a, true)),
];

/// Runs `g` (one input `x`) compiled at 1 and 2 threads and in the f64 interpreter: maxima
/// and minima must be equal to the bit, sums within f32 rounding. Nothing may fall back.
fn check(g: &Graph, x: NodeId, xv: &Tensor, outs: &[NodeId], what: &str) {
    let feeds: Feeds = [(x, xv.clone())].into();
    let want = run(g, &feeds, outs, Precision::F64).unwrap();
    for threads in [1, 2] {
        let mut plan = compile_threads(g, threads);
        assert!(
            plan.stats().fallbacks.is_empty(),
            "{what}: {:?}",
            plan.stats().fallbacks
        );
        plan.set(x, xv).unwrap();
        plan.run().unwrap();
        for (k, (&o, w)) in outs.iter().zip(&want).enumerate() {
            let got = plan.get(o).unwrap().to_f32_vec();
            let w: Vec<f32> = w.to_f64_vec().iter().map(|&v| v as f32).collect();
            let name = g.op(o).name().to_string();
            for (i, (a, b)) in got.iter().zip(&w).enumerate() {
                let ok = if name == "max" || name == "min" {
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
                } else {
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs())
                };
                assert!(
                    ok,
                    "{what} {name} output {k} at {i}, {threads} threads: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn reductions_match_the_interpreter_over_any_axes_and_sizes() {
    let mut rng = StdRng::seed_from_u64(11);
    let cases: &[(&[usize], &[usize])] = &[
        (&[5, 7], &[1]),
        (&[5, 7], &[0]),
        (&[5, 7], &[0, 1]),
        (&[3, 4, 6], &[2]),
        (&[3, 4, 6], &[1]), // middle axis: a step per block
        (&[3, 4, 6], &[0, 1]),
        (&[3, 1, 6], &[0, 1]),
        (&[4, 37], &[1]), // lanes and a tail
        // Large enough to split across two threads: rows, one long row, columns.
        (&[300, 257], &[1]),
        (&[70_001], &[0]),
        (&[257, 300], &[0]),
    ];
    for &(shape, axes) in cases {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32(shape));
        let outs: Vec<NodeId> = KINDS
            .iter()
            .map(|(_, f)| f(&mut g, x, axes).unwrap())
            .collect();
        g.set_outputs(outs.clone());
        // Values on a coarse grid, so maxima tie.
        let xv = rand_f32(&mut rng, shape, 4.0);
        let xv = Tensor::f32(
            shape,
            xv.to_f32_vec().iter().map(|v| v.round() / 2.0).collect(),
        )
        .unwrap();
        check(&g, x, &xv, &outs, &format!("{shape:?} over {axes:?}"));
    }
}

/// Operands that are windows: a column slice (strided rows) and a broadcast of a strided
/// column.
#[test]
fn reductions_of_strided_and_broadcast_windows_match_the_interpreter() {
    let mut rng = StdRng::seed_from_u64(12);
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([6, 9]));
    let cols = g.slice(x, 1, 2, 7).unwrap();
    let col = g.slice(x, 1, 4, 5).unwrap();
    let wide = g.broadcast_to(col, &[6, 5].into()).unwrap();
    let mut outs = Vec::new();
    for v in [cols, wide] {
        for axis in [0, 1] {
            for (_, f) in KINDS {
                outs.push(f(&mut g, v, &[axis]).unwrap());
            }
        }
    }
    g.set_outputs(outs.clone());
    let xv = rand_f32(&mut rng, &[6, 9], 2.0);
    check(&g, x, &xv, &outs, "windows");
}

/// A NaN anywhere in a row (among the lanes, in the tail, in either thread's half) makes its
/// maximum and minimum NaN; `+0` is above `-0` whichever comes first.
#[test]
fn compiled_maxima_propagate_nan_and_order_signed_zeros() {
    for (rows, cols) in [(6, 37), (2, 40_000)] {
        let mut v = vec![1.0f32; rows * cols];
        v[3] = f32::NAN; // row 0, first lanes
        v[cols + cols - 1] = f32::NAN; // row 1, the tail (the second half when split)
        for r in 2..rows {
            for c in 0..cols {
                v[r * cols + c] = if (r + c) % 2 == 0 { 0.0 } else { -0.0 };
            }
        }
        let xv = Tensor::f32([rows, cols], v).unwrap();
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32([rows, cols]));
        let outs = vec![
            g.max(x, &[1], false).unwrap(),
            g.min(x, &[1], false).unwrap(),
            g.max(x, &[0], false).unwrap(),
            g.min(x, &[0], false).unwrap(),
        ];
        g.set_outputs(outs.clone());
        check(&g, x, &xv, &outs, &format!("{rows}x{cols}"));
        let mut plan = compile_threads(&g, 2);
        plan.set(x, &xv).unwrap();
        plan.run().unwrap();
        let (mx, mn) = (
            plan.get(outs[0]).unwrap().to_f32_vec(),
            plan.get(outs[1]).unwrap(),
        );
        assert!(mx[0].is_nan() && mx[1].is_nan(), "{:?}", &mx[..2]);
        if rows > 2 {
            assert_eq!(
                (mx[2].to_bits(), mn.to_f32_vec()[2].to_bits()),
                (0, (-0.0f32).to_bits())
            );
        }
    }
}

/// The softmax's row maximum is one reduction step (it was `log2(C)` halvings), and its
/// gradient adds none: the maximum is taken through `stop_gradient`.
#[test]
fn a_log_softmax_loss_takes_one_maximum_step() {
    let (rows, classes) = (64, 100);
    let mut g = Graph::new();
    let z = g.input("z", TensorType::f32([rows, classes]));
    let lp = trellis_ir::softmax::log_softmax(&mut g, z).unwrap();
    let loss = g.sum_all(lp).unwrap();
    let dz = trellis_autodiff::grad(&mut g, loss, &[z]).unwrap()[0];
    g.set_outputs(vec![loss, dz]);
    let zv = rand_f32(&mut StdRng::seed_from_u64(13), &[rows, classes], 5.0);
    check(&g, z, &zv, &[loss, dz], "log_softmax");
    let steps = step_names(&compile_threads(&g, 1));
    let maxima = steps.iter().filter(|s| s.starts_with("reduce Max")).count();
    assert_eq!(maxima, 1, "{steps:#?}");
    assert!(steps.len() <= 8, "{steps:#?}");
}
