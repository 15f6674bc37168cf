//! 1-D convolution and pooling (`trellis_ir::conv`): PyTorch's values and gradients in the f64
//! interpreter on batch-major and time-major sequences, Keras's padding amounts, f64 central
//! differences, and the errors for what does not fit.
#[path = "../../../tests/common/golden_conv.rs"]
mod golden_conv;
#[path = "../../../tests/common/golden_graph.rs"]
mod golden_graph;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis_autodiff::{gradcheck, Tolerance};
use trellis_ir::conv::{conv1d, pool1d, Conv1dSpec, Padding, Pool};
use trellis_ir::{DType, Feeds, Graph, Tensor, TensorType};

#[test]
fn convolutions_and_pooling_match_torch_in_either_layout() {
    let fx = Fixture::load("conv1d.json");
    for (case, pool) in golden_conv::all_cases() {
        for time_major in [false, true] {
            let gg = golden_conv::build(&fx, case, pool, time_major, DType::F64);
            let tag = format!("{case} (time-major {time_major})");
            gg.check_interp(&fx, 1e-9, 1e-12, &tag);
        }
    }
}

#[test]
fn keras_padding_amounts() {
    // (padding, T, k, stride, dilation) -> (before, after), as the fixture script computes.
    let cases = [
        (Padding::Valid, 7, 3, 1, 1, (0, 0)),
        (Padding::Same, 7, 3, 1, 1, (1, 1)),
        (Padding::Same, 7, 4, 1, 1, (1, 2)),
        (Padding::Same, 7, 3, 1, 2, (2, 2)),
        (Padding::Same, 7, 4, 3, 1, (1, 2)),
        (Padding::Same, 8, 2, 2, 1, (0, 0)),
        (Padding::Causal, 8, 2, 2, 1, (1, 0)),
        (Padding::Causal, 5, 3, 1, 2, (4, 0)),
    ];
    for (p, t, k, s, d, want) in cases {
        assert_eq!(
            p.amounts(t, k, s, d),
            want,
            "{p:?} T {t} k {k} stride {s} dilation {d}"
        );
        let spec = Conv1dSpec {
            stride: s,
            dilation: d,
            padding: want,
        };
        let out = trellis_ir::conv::output_len("conv1d", t, k, &spec).unwrap();
        if p != Padding::Valid {
            assert_eq!(
                out,
                if p == Padding::Same {
                    t.div_ceil(s)
                } else {
                    (t - 1) / s + 1
                }
            );
        }
    }
}

#[test]
fn conv_and_pool_gradcheck() {
    let mut rng = StdRng::seed_from_u64(31);
    let mut rand = |shape: &[usize]| {
        let n = shape.iter().product();
        Tensor::f64(shape, (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()).unwrap()
    };
    for (stride, dilation, padding) in [(1, 1, (0, 0)), (2, 2, (2, 1)), (3, 1, (1, 2))] {
        let mut g = Graph::new();
        let mut feeds = Feeds::new();
        let x = g.param("x", TensorType::f64([2, 9, 3]));
        let w = g.param("w", TensorType::f64([2, 3, 3]));
        let b = g.param("b", TensorType::f64([2]));
        feeds.insert(x, rand(&[2, 9, 3]));
        feeds.insert(w, rand(&[2, 3, 3]));
        feeds.insert(b, rand(&[2]));
        let spec = Conv1dSpec {
            stride,
            dilation,
            padding,
        };
        let y = conv1d(&mut g, x, 1, w, Some(b), &spec).unwrap();
        let p = pool1d(&mut g, y, 1, Pool::Average, 2, 1).unwrap();
        let r = g.constant(rand(g.ty(p).dims()));
        let pr = g.mul(p, r).unwrap();
        let loss = g.sum_all(pr).unwrap();
        let report = gradcheck(&g, loss, &[x, w, b], &feeds, Tolerance::default()).unwrap();
        if let Err(e) = report.check() {
            panic!("stride {stride}, dilation {dilation}, padding {padding:?}: {e}");
        }
        assert_eq!(report.elements, 54 + 18 + 2);
    }
}

#[test]
fn what_does_not_fit_is_named() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([2, 4, 3]));
    let w = g.input("w", TensorType::f32([5, 3, 6]));
    let spec = Conv1dSpec {
        stride: 1,
        dilation: 1,
        padding: (0, 0),
    };
    let e = conv1d(&mut g, x, 1, w, None, &spec)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spanning 6 steps") && e.contains("4 steps"),
        "{e}"
    );
    let w2 = g.input("w2", TensorType::f32([5, 2, 1]));
    let e = conv1d(&mut g, x, 1, w2, None, &spec)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[out, 3, k]"), "{e}");
    let flat = g.input("flat", TensorType::f32([2, 3]));
    let e = pool1d(&mut g, flat, 1, Pool::Max, 2, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sequence"), "{e}");
    let e = pool1d(&mut g, x, 1, Pool::Max, 2, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("stride"), "{e}");
}
