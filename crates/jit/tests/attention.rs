//! Attention and softmax compiled: the Keras-semantics golden values (from PyTorch) in the f32
//! plan, the plan against the interpreter on a larger masked case, and how many kernels the
//! softmax over the keys takes.
#[path = "../../../tests/common/golden_attention.rs"]
mod golden_attention;
#[path = "../../../tests/common/golden_graph.rs"]
mod golden_graph;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
#[path = "../../../tests/common/golden_plan.rs"]
mod golden_plan;
use golden_lstm::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use trellis_autodiff::grad;
use trellis_ir::attention::{attention, AttentionSpec, Score};
use trellis_ir::softmax::softmax;
use trellis_ir::{run, Graph, NodeId, Precision, Tensor, TensorType};
use trellis_jit::{compile, CompileOptions, Plan};

fn plan_of(g: &Graph, feeds: &HashMap<NodeId, Tensor>) -> Plan {
    let mut plan = compile(g, &CompileOptions::default()).unwrap();
    for (id, t) in feeds {
        plan.set(*id, t).unwrap();
    }
    plan.run().unwrap();
    let fallbacks = &plan.stats().fallbacks;
    assert!(
        fallbacks.is_empty(),
        "left to the interpreter: {fallbacks:?}"
    );
    plan
}

#[test]
fn attention_plan_matches_keras_semantics_from_torch() {
    for (file, dot) in golden_attention::FIXTURES {
        let fx = Fixture::load(file);
        let gg = golden_attention::build(&fx, dot);
        golden_plan::check_plan(&gg, &fx, 1e-4, 1e-5, file);
    }
}

/// Both scores on a larger masked case (every sample a different number of real keys and
/// queries): the plan's context, weights and gradients against the f32 interpreter.
#[test]
fn attention_plan_matches_the_interpreter() {
    let (b, tq, tk, d, dv) = (4, 5, 7, 6, 3);
    for dot in [true, false] {
        let mut rng = StdRng::seed_from_u64(23);
        let mut g = Graph::new();
        let mut feeds = HashMap::new();
        let mut leaf = |g: &mut Graph, name: &str, shape: &[usize], param: bool| {
            let ty = TensorType::f32(shape);
            let id = if param {
                g.param(name, ty)
            } else {
                g.input(name, ty)
            };
            let n = shape.iter().product();
            let v = (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            feeds.insert(id, Tensor::f32(shape, v).unwrap());
            id
        };
        let q = leaf(&mut g, "q", &[b, tq, d], true);
        let k = leaf(&mut g, "k", &[b, tk, d], true);
        let v = leaf(&mut g, "v", &[b, tk, dv], true);
        let scale_shape: &[usize] = if dot { &[] } else { &[d] };
        let scale = leaf(&mut g, "scale", scale_shape, true);
        let rc = leaf(&mut g, "rc", &[b, tq, dv], false);
        let rw = leaf(&mut g, "rw", &[b, tq, tk], false);
        let km = g.input("key_mask", TensorType::f32([b, tk]));
        let qm = g.input("query_mask", TensorType::f32([b, tq]));
        let lens = |n: usize, lengths: [usize; 4]| -> Vec<f32> {
            lengths
                .iter()
                .flat_map(|&l| (0..n).map(move |s| (s < l) as u8 as f32))
                .collect()
        };
        feeds.insert(km, Tensor::f32([b, tk], lens(tk, [7, 3, 0, 1])).unwrap());
        feeds.insert(qm, Tensor::f32([b, tq], lens(tq, [5, 2, 4, 5])).unwrap());
        let score = if dot {
            Score::Dot { scale: Some(scale) }
        } else {
            Score::Additive { scale: Some(scale) }
        };
        // The dot case also masks causally (query i reads keys 0..=i).
        let spec = AttentionSpec {
            score,
            key_mask: Some(km),
            query_mask: Some(qm),
            causal: dot,
        };
        let o = attention(&mut g, q, k, v, &spec).unwrap();
        let cr = g.mul(o.context, rc).unwrap();
        let wr = g.mul(o.weights, rw).unwrap();
        let (s1, s2) = (g.sum_all(cr).unwrap(), g.sum_all(wr).unwrap());
        let loss = g.add(s1, s2).unwrap();
        let grads = grad(&mut g, loss, &[q, k, v, scale]).unwrap();
        let mut outs = vec![o.context, o.weights, loss];
        outs.extend(grads);
        g.set_outputs(outs.clone());
        let want = run(&g, &feeds, &outs, Precision::F32).unwrap();
        let plan = plan_of(&g, &feeds);
        for (k, (n, w)) in outs.iter().zip(&want).enumerate() {
            let got = plan.get(*n).unwrap().to_f64_vec();
            for (i, (a, e)) in got.iter().zip(w.to_f64_vec()).enumerate() {
                assert!(
                    (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                    "dot {dot}, output {k}[{i}]: plan {a}, interpreter {e}"
                );
            }
        }
    }
}

/// The softmax over `C` keys compiles to two reductions and two kernels: the row maximum,
/// `exp(z - m)`, the row sum, and the division. The gradient of an odd width runs without the
/// interpreter too.
#[test]
fn softmax_kernels() {
    for c in [32, 7] {
        softmax_kernels_over(c);
    }
}

fn softmax_kernels_over(c: usize) {
    let rows = 24;
    let mut g = Graph::new();
    let z = g.input("z", TensorType::f32([rows, c]));
    let s = softmax(&mut g, z).unwrap();
    g.set_outputs(vec![s]);
    let mut rng = StdRng::seed_from_u64(3);
    let zv: Vec<f32> = (0..rows * c).map(|_| rng.gen_range(-30.0..30.0)).collect();
    let feeds = HashMap::from([(z, Tensor::f32([rows, c], zv).unwrap())]);
    let plan = plan_of(&g, &feeds);
    let st = plan.stats();
    let kernels = st.kernel_steps;
    let steps: Vec<String> = (0..plan.step_count())
        .map(|i| plan.describe_step(i))
        .collect();
    assert_eq!(kernels, 2, "{steps:#?}");
    assert_eq!(plan.step_count(), 4, "{steps:#?}");
    assert!(
        steps[0].starts_with("reduce Max"),
        "the row maximum: {steps:#?}"
    );
    assert!(
        steps[2].starts_with("reduce Sum"),
        "the row sum: {steps:#?}"
    );
    let want = run(&g, &feeds, &[s], Precision::F64).unwrap();
    let got = plan.get(s).unwrap().to_f64_vec();
    for (r, row) in got.chunks(c).enumerate() {
        let sum: f64 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "row {r} sums to {sum}");
    }
    for (a, e) in got.iter().zip(want[0].to_f64_vec()) {
        assert!((a - e).abs() <= 1e-6 * (1.0 + e.abs()), "{a} vs {e}");
    }
    // Its gradient compiles without fallbacks and matches the interpreter.
    let r = g.input("r", TensorType::f32([rows, c]));
    let sr = g.mul(s, r).unwrap();
    let loss = g.sum_all(sr).unwrap();
    let dz = grad(&mut g, loss, &[z]).unwrap()[0];
    g.set_outputs(vec![dz]);
    let rv: Vec<f32> = (0..rows * c).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut feeds = feeds;
    feeds.insert(r, Tensor::f32([rows, c], rv).unwrap());
    let plan = plan_of(&g, &feeds);
    let want = run(&g, &feeds, &[dz], Precision::F64).unwrap();
    for (a, e) in plan
        .get(dz)
        .unwrap()
        .to_f64_vec()
        .iter()
        .zip(want[0].to_f64_vec())
    {
        assert!(
            (a - e).abs() <= 1e-6 * (1.0 + e.abs()),
            "C = {c}: {a} vs {e}"
        );
    }
}
