//! Layer and batch normalisation (`trellis_ir::normalization`): PyTorch's values and
//! gradients in the f64 interpreter, f64 central differences, and the errors they give for
//! shapes that do not fit.
#[path = "../../../tests/common/golden_batchnorm.rs"]
mod golden_batchnorm;
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
use trellis_ir::normalization::{batch_norm_inference, batch_norm_training, layer_norm};
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

#[test]
fn batch_norm_matches_torch() {
    for file in golden_batchnorm::FIXTURES {
        let fx = Fixture::load(file);
        let gg = golden_batchnorm::build(&fx, DType::F64);
        // Output, both moments, the inference output, loss, and the gradient of x (and of
        // gamma and beta when present).
        assert_eq!(
            gg.checks.len(),
            if file == "batchnorm_plain.json" { 6 } else { 8 }
        );
        gg.check_interp(&fx, 1e-9, 1e-12, file);
    }
}

#[test]
fn batch_norm_gradcheck() {
    let mut rng = StdRng::seed_from_u64(29);
    let mut rand = |shape: &[usize], lo: f64, hi: f64| {
        let n = shape.iter().product();
        Tensor::f64(shape, (0..n).map(|_| rng.gen_range(lo..hi)).collect()).unwrap()
    };
    for (shape, affine) in [(vec![3, 2, 4], true), (vec![5, 3], false)] {
        let f = *shape.last().unwrap();
        let mut g = Graph::new();
        let mut feeds = Feeds::new();
        let x = g.param("x", TensorType::f64(shape.as_slice()));
        feeds.insert(x, rand(&shape, -2.0, 2.0));
        let (gamma, beta) = if affine {
            let s = g.param("gamma", TensorType::f64([f]));
            let b = g.param("beta", TensorType::f64([f]));
            feeds.insert(s, rand(&[f], 0.5, 1.5));
            feeds.insert(b, rand(&[f], -1.0, 1.0));
            (Some(s), Some(b))
        } else {
            (None, None)
        };
        let b = batch_norm_training(&mut g, x, None, gamma, beta, 1e-3).unwrap();
        let r = g.constant(rand(&shape, -1.0, 1.0));
        let yr = g.mul(b.y, r).unwrap();
        let loss = g.sum_all(yr).unwrap();
        let wrt: Vec<NodeId> = [Some(x), gamma, beta].into_iter().flatten().collect();
        let report = gradcheck(&g, loss, &wrt, &feeds, Tolerance::default()).unwrap();
        if let Err(e) = report.check() {
            panic!("{shape:?} affine {affine}: {e}");
        }
        assert_eq!(
            report.elements,
            wrt.iter().map(|&p| g.ty(p).numel()).sum::<usize>()
        );
    }
}

#[test]
fn batch_norm_names_what_does_not_fit() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([2, 4]));
    let bad = g.input("mean", TensorType::f32([3]));
    let var = g.input("var", TensorType::f32([4]));
    let e = batch_norm_inference(&mut g, x, bad, var, None, None, 1e-3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mean must be [4]"), "{e}");
    let row = g.input("row", TensorType::f32([4]));
    let e = batch_norm_training(&mut g, row, None, None, None, 1e-3)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("batch axis"), "{e}");
    let e = batch_norm_training(&mut g, x, None, None, None, f64::NAN)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("epsilon"), "{e}");
}
