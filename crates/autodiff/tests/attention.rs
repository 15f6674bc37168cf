//! Attention (`trellis_ir::attention`): f64 central differences for both scores, masked and
//! not, and the loss, values and gradients of Keras's semantics computed in PyTorch.
#[path = "../../../tests/common/golden_attention.rs"]
mod golden_attention;
#[path = "../../../tests/common/golden_graph.rs"]
mod golden_graph;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis_autodiff::{grad, gradcheck, Tolerance};
use trellis_ir::attention::{attention, AttentionSpec, Score};
use trellis_ir::{run, Feeds, Graph, Precision, Tensor, TensorType};

fn rand_tensor(rng: &mut StdRng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::f64(shape, (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()).unwrap()
}

#[test]
fn attention_matches_keras_semantics_from_torch() {
    for (file, dot) in golden_attention::FIXTURES {
        let fx = Fixture::load(file);
        golden_attention::build(&fx, dot).check_interp(&fx, 1e-9, 1e-12, file);
    }
}

/// Both scores, scaled, with and without masks (sample 1 has no real key): the analytic
/// gradient of every input against f64 central differences.
#[test]
fn attention_gradcheck() {
    let (b, tq, tk, d, dv) = (2, 2, 3, 2, 3);
    for dot in [true, false] {
        for masked in [false, true] {
            let mut rng = StdRng::seed_from_u64(17 + masked as u64);
            let mut g = Graph::new();
            let mut feeds = Feeds::new();
            let mut leaf = |g: &mut Graph, name: &str, shape: &[usize]| {
                let id = g.param(name, TensorType::f64(shape));
                feeds.insert(id, rand_tensor(&mut rng, shape));
                id
            };
            let q = leaf(&mut g, "q", &[b, tq, d]);
            let k = leaf(&mut g, "k", &[b, tk, d]);
            let v = leaf(&mut g, "v", &[b, tk, dv]);
            let scale_shape: &[usize] = if dot { &[] } else { &[d] };
            let scale = leaf(&mut g, "scale", scale_shape);
            let mut spec = AttentionSpec::new(if dot {
                Score::Dot { scale: Some(scale) }
            } else {
                Score::Additive { scale: Some(scale) }
            });
            if masked {
                let km = g.input("key_mask", TensorType::i64([b, tk]));
                feeds.insert(km, Tensor::i64([b, tk], vec![1, 0, 1, 0, 0, 0]).unwrap());
                let qm = g.input("query_mask", TensorType::f64([b, tq]));
                feeds.insert(qm, Tensor::f64([b, tq], vec![1.0, 0.0, 1.0, 1.0]).unwrap());
                spec.key_mask = Some(km);
                spec.query_mask = Some(qm);
            }
            let o = attention(&mut g, q, k, v, &spec).unwrap();
            let mut rng = StdRng::seed_from_u64(5);
            let rc = g.constant(rand_tensor(&mut rng, &[b, tq, dv]));
            let rw = g.constant(rand_tensor(&mut rng, &[b, tq, tk]));
            let cr = g.mul(o.context, rc).unwrap();
            let wr = g.mul(o.weights, rw).unwrap();
            let (s1, s2) = (g.sum_all(cr).unwrap(), g.sum_all(wr).unwrap());
            let loss = g.add(s1, s2).unwrap();
            let wrt = [q, k, v, scale];
            let report = gradcheck(&g, loss, &wrt, &feeds, Tolerance::default()).unwrap();
            if let Err(e) = report.check() {
                panic!("dot {dot}, masked {masked}: {e}");
            }
            assert_eq!(
                report.elements,
                wrt.iter().map(|&p| g.ty(p).numel()).sum::<usize>()
            );
            if !masked {
                continue;
            }
            // Masked keys have zero weight; sample 1 (no real key) has zero weights and
            // context, and finite gradients.
            let grads = grad(&mut g, loss, &wrt).unwrap();
            let mut outs = vec![o.weights, o.context];
            outs.extend(&grads);
            let r = run(&g, &feeds, &outs, Precision::F64).unwrap();
            let w = r[0].to_f64_vec();
            for i in 0..tq {
                let row = &w[i * tk..(i + 1) * tk];
                assert_eq!(row[1], 0.0, "padding key 1 of sample 0");
                assert!((row[0] + row[2] - 1.0).abs() < 1e-12, "row {i}: {row:?}");
            }
            assert!(w[tq * tk..].iter().all(|&x| x == 0.0), "{w:?}");
            let c = r[1].to_f64_vec();
            assert!(c[tq * dv..].iter().all(|&x| x == 0.0), "{c:?}");
            assert!(c[dv..2 * dv].iter().all(|&x| x == 0.0), "padding query 1");
            for t in &r[2..] {
                assert!(t.to_f64_vec().iter().all(|x| x.is_finite()));
            }
        }
    }
}

#[test]
fn attention_rejects_bad_shapes_with_the_shapes_named() {
    let mut g = Graph::new();
    let q = g.input("q", TensorType::f32([2, 3, 4]));
    let k = g.input("k", TensorType::f32([2, 5, 3]));
    let v = g.input("v", TensorType::f32([2, 5, 6]));
    let spec = AttentionSpec::new(Score::Dot { scale: None });
    let e = attention(&mut g, q, k, v, &spec).unwrap_err().to_string();
    assert!(e.contains("got key f32[2,5,3]"), "{e}");
    let k = g.input("k2", TensorType::f32([2, 5, 4]));
    let km = g.input("km", TensorType::f32([2, 4]));
    let spec = AttentionSpec {
        key_mask: Some(km),
        ..spec
    };
    let e = attention(&mut g, q, k, v, &spec).unwrap_err().to_string();
    assert!(e.contains("key mask must be [2,5], got f32[2,4]"), "{e}");
    let s = g.input("s", TensorType::f32([3]));
    let spec = AttentionSpec::new(Score::Additive { scale: Some(s) });
    let e = attention(&mut g, q, k, v, &spec).unwrap_err().to_string();
    assert!(
        e.contains("scale must be f32 of shape [4], got f32[3]"),
        "{e}"
    );
}
