//! The CRF (`trellis_ir::crf`): PyTorch's nll, Viterbi path and gradients (every path
//! enumerated, checked against pytorch-crf) in the f64 interpreter, and the nll's gradient
//! against f64 central differences with padding in every position and a row of padding only.
#[path = "../../../tests/common/golden_crf.rs"]
mod golden_crf;
#[path = "../../../tests/common/golden_graph.rs"]
mod golden_graph;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis_autodiff::{gradcheck, Tolerance};
use trellis_ir::crf::{crf_nll, CrfWeights};
use trellis_ir::{DType, Feeds, Graph, Tensor, TensorType};

#[test]
fn crf_matches_pytorch() {
    let fx = Fixture::load(golden_crf::FIXTURE);
    golden_crf::build(&fx, DType::F64).check_interp(&fx, 1e-10, 1e-12, "crf chain");
}

#[test]
fn crf_nll_gradcheck() {
    let (b, t, k) = (4, 4, 3);
    let mut rng = StdRng::seed_from_u64(11);
    let mut g = Graph::new();
    let mut feeds = Feeds::new();
    let mut leaf = |g: &mut Graph, name: &str, shape: &[usize]| {
        let id = g.param(name, TensorType::f64(shape));
        let n = shape.iter().product();
        let v = (0..n).map(|_| rng.gen_range(-1.5..1.5)).collect();
        feeds.insert(id, Tensor::f64(shape, v).unwrap());
        id
    };
    let e = leaf(&mut g, "e", &[b, t, k]);
    let w = CrfWeights {
        transitions: leaf(&mut g, "a", &[k, k]),
        start: leaf(&mut g, "start", &[k]),
        end: leaf(&mut g, "end", &[k]),
    };
    let tags: Vec<f64> = (0..b * t)
        .flat_map(|i| (0..k).map(move |c| (c == (i * 7 + 1) % k) as u8 as f64))
        .collect();
    let y = g.constant(Tensor::f64([b, t, k], tags).unwrap());
    let mask = g.constant(
        Tensor::f64(
            [b, t],
            vec![
                1., 1., 1., 0., // post-padded
                0., 1., 1., 1., // pre-padded
                1., 0., 0., 1., // a hole
                0., 0., 0., 0., // no real step
            ],
        )
        .unwrap(),
    );
    let nll = crf_nll(&mut g, e, y, Some(mask), &w).unwrap();
    let r = g.constant(Tensor::f64([b, 1], vec![0.7, -1.3, 0.4, 2.0]).unwrap());
    let l = g.mul(nll, r).unwrap();
    let loss = g.sum_all(l).unwrap();
    let wrt = [e, w.transitions, w.start, w.end];
    let report = gradcheck(&g, loss, &wrt, &feeds, Tolerance::default()).unwrap();
    report.check().unwrap();
    assert_eq!(report.elements, b * t * k + k * k + 2 * k);
}

/// Forbidden transitions (`-inf`: tag 2 only after tag 2, never first): the nll of allowed
/// tags and its gradient by every input stay finite, and no gradient reaches tag 2.
#[test]
fn forbidden_transitions_keep_gradients_finite() {
    let (b, t, k) = (2, 4, 3);
    let mut g = Graph::new();
    let mut feeds = Feeds::new();
    let mut rng = StdRng::seed_from_u64(3);
    let mut leaf = |g: &mut Graph, name: &str, shape: &[usize], v: Option<Vec<f64>>| {
        let id = g.param(name, TensorType::f64(shape));
        let n = shape.iter().product();
        let v = v.unwrap_or_else(|| (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect());
        feeds.insert(id, Tensor::f64(shape, v).unwrap());
        id
    };
    let inf = f64::NEG_INFINITY;
    let e = leaf(&mut g, "e", &[b, t, k], None);
    let w = CrfWeights {
        transitions: leaf(
            &mut g,
            "a",
            &[k, k],
            Some(vec![0.1, -0.2, inf, 0.3, 0.0, inf, 0.2, 0.1, 0.4]),
        ),
        start: leaf(&mut g, "start", &[k], Some(vec![0.2, -0.1, inf])),
        end: leaf(&mut g, "end", &[k], None),
    };
    let tags: Vec<f64> = (0..b * t)
        .flat_map(|i| (0..k).map(move |c| (c == i % 2) as u8 as f64))
        .collect();
    let y = g.constant(Tensor::f64([b, t, k], tags).unwrap());
    let mask = g.constant(Tensor::f64([b, t], vec![1., 1., 1., 0., 0., 1., 1., 1.]).unwrap());
    let nll = crf_nll(&mut g, e, y, Some(mask), &w).unwrap();
    let loss = g.sum_all(nll).unwrap();
    let wrt = [e, w.transitions, w.start, w.end];
    let grads = trellis_autodiff::grad(&mut g, loss, &wrt).unwrap();
    let mut outs = vec![loss];
    outs.extend(&grads);
    let v = trellis_ir::run(&g, &feeds, &outs, trellis_ir::Precision::F64).unwrap();
    assert!(v[0].to_f64_vec()[0].is_finite(), "{:?}", v[0]);
    for (i, t) in v[1..].iter().enumerate() {
        let t = t.to_f64_vec();
        assert!(t.iter().all(|x| x.is_finite()), "gradient {i}: {t:?}");
    }
    let de = v[1].to_f64_vec();
    assert!(de.chunks(k).all(|s| s[2] == 0.0), "{de:?}");
}
