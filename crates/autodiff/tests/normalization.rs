//! Layer normalisation (`trellis_ir::normalization`): PyTorch's values and gradients in the f64
//! interpreter, f64 central differences, and the errors it gives for shapes that do not fit.
#[path = "../../../tests/common/golden_graph.rs"]
mod golden_graph;
#[path = "../../../tests/common/golden_layernorm.rs"]
mod golden_layernorm;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis_autodiff::{gradcheck, Tolerance};
use trellis_ir::normalization::layer_norm;
use trellis_ir::{DType, Feeds, Graph, NodeId, Tensor, TensorType};

#[test]
fn layer_norm_matches_torch() {
    for file in golden_layernorm::FIXTURES {
        let fx = Fixture::load(file);
        let gg = golden_layernorm::build(&fx, DType::F64);
        // Output, loss, and the gradient of x (and of gamma and beta when present).
        assert_eq!(
            gg.checks.len(),
            if file == "layernorm.json" { 5 } else { 3 }
        );
        gg.check_interp(&fx, 1e-9, 1e-12, file);
    }
}

#[test]
fn layer_norm_gradcheck() {
    let mut rng = StdRng::seed_from_u64(23);
    let mut rand = |shape: &[usize], lo: f64, hi: f64| {
        let n = shape.iter().product();
        Tensor::f64(shape, (0..n).map(|_| rng.gen_range(lo..hi)).collect()).unwrap()
    };
    for affine in [true, false] {
        let mut g = Graph::new();
        let mut feeds = Feeds::new();
        let x = g.param("x", TensorType::f64([2, 3, 4]));
        feeds.insert(x, rand(&[2, 3, 4], -2.0, 2.0));
        let (gamma, beta) = if affine {
            let s = g.param("gamma", TensorType::f64([4]));
            let b = g.param("beta", TensorType::f64([4]));
            feeds.insert(s, rand(&[4], 0.5, 1.5));
            feeds.insert(b, rand(&[4], -1.0, 1.0));
            (Some(s), Some(b))
        } else {
            (None, None)
        };
        let y = layer_norm(&mut g, x, gamma, beta, 1e-3).unwrap();
        let r = g.constant(rand(&[2, 3, 4], -1.0, 1.0));
        let yr = g.mul(y, r).unwrap();
        let loss = g.sum_all(yr).unwrap();
        let wrt: Vec<NodeId> = [Some(x), gamma, beta].into_iter().flatten().collect();
        let report = gradcheck(&g, loss, &wrt, &feeds, Tolerance::default()).unwrap();
        if let Err(e) = report.check() {
            panic!("affine {affine}: {e}");
        }
        assert_eq!(
            report.elements,
            wrt.iter().map(|&p| g.ty(p).numel()).sum::<usize>()
        );
    }
}

#[test]
fn layer_norm_names_what_does_not_fit() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([2, 4]));
    let bad_gamma = g.input("gamma", TensorType::f32([3]));
    let e = layer_norm(&mut g, x, Some(bad_gamma), None, 1e-3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("gamma must be [4]"), "{e}");
    let e = layer_norm(&mut g, x, None, None, 0.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("epsilon"), "{e}");
    let ids = g.input("ids", TensorType::i64([2, 4]));
    let e = layer_norm(&mut g, ids, None, None, 1e-3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("float"), "{e}");
}
