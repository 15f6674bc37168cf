//! Helpers the plan tests share: random tensors, the worst relative error, a plan run against
//! reference values, a plan's steps by name, and the seed model's training graph at a small size.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis_autodiff::grad;
use trellis_ir::models::{seed_model, SeedConfig};
use trellis_ir::{Feeds, Graph, NodeId, Tensor};

pub fn rand_f32(rng: &mut StdRng, shape: &[usize], scale: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(
        shape,
        (0..n).map(|_| rng.gen_range(-scale..scale)).collect(),
    )
    .unwrap()
}

/// Largest `|a - b| / (atol + |b|)` over two tensors of one shape.
pub fn worst(a: &Tensor, b: &Tensor, atol: f64) -> f64 {
    assert_eq!(a.dims(), b.dims());
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x - y).abs() / (atol + y.abs()))
        .fold(0.0, f64::max)
}

/// Runs `plan` on `feeds` and checks each of `outs` against the reference values `want`
/// (relative error under 1e-5, atol 1e-3); `what` names the case in a failure.
pub fn assert_plan_matches(
    plan: &mut trellis_jit::Plan,
    feeds: &Feeds,
    outs: &[NodeId],
    want: &[Tensor],
    what: &str,
) {
    for (n, t) in feeds {
        plan.set(*n, t).unwrap();
    }
    plan.run().unwrap();
    for (k, &o) in outs.iter().enumerate() {
        let w = worst(&plan.get(o).unwrap(), &want[k], 1e-3);
        assert!(w < 1e-5, "{what}, output {k}: relative error {w:e}");
    }
}

/// `g` compiled for `threads` threads, the other options their defaults.
pub fn compile_threads(g: &Graph, threads: usize) -> trellis_jit::Plan {
    let opts = trellis_jit::CompileOptions {
        threads,
        ..Default::default()
    };
    trellis_jit::compile(g, &opts).unwrap()
}

/// Every step of a plan, described (`Plan::describe_step`).
pub fn step_names(plan: &trellis_jit::Plan) -> Vec<String> {
    (0..plan.step_count())
        .map(|k| plan.describe_step(k))
        .collect()
}

/// The seed model at a small size with its gradients: (graph, feeds, outputs = [loss, grads..]).
pub fn seed_training_graph(c: &SeedConfig, seed: u64) -> (Graph, Feeds, Vec<NodeId>) {
    let mut g = Graph::new();
    let m = seed_model(&mut g, c).unwrap();
    let grads = grad(&mut g, m.loss, &m.params).unwrap();
    let mut outs = vec![m.loss, m.logits];
    outs.extend(&grads);
    g.set_outputs(outs.clone());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut feeds: Feeds = m
        .params
        .iter()
        .map(|&p| (p, rand_f32(&mut rng, g.ty(p).dims(), 0.3)))
        .collect();
    feeds.insert(
        m.ids,
        Tensor::i64(
            [c.batch, c.seq],
            (0..c.batch * c.seq)
                .map(|_| rng.gen_range(0..c.vocab as i64))
                .collect(),
        )
        .unwrap(),
    );
    feeds.insert(
        m.labels,
        Tensor::f32([c.batch, 1], (0..c.batch).map(|i| (i % 2) as f32).collect()).unwrap(),
    );
    (g, feeds, outs)
}
