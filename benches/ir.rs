//! Graph construction and transformation at the seed size (T = 200, B = 128): building the
//! unrolled forward graph with DCE + CSE (target < 50 ms) and deriving its backward graph
//! (target < 100 ms).
use criterion::{criterion_group, criterion_main, Criterion};
use trellis::autodiff::grad;
use trellis::ir::models::{seed_model, SeedConfig};
use trellis::ir::passes::{cse, dce};
use trellis::ir::Graph;

fn build_forward() -> (Graph, trellis::ir::models::SeedModel) {
    let mut g = Graph::new();
    let m = seed_model(&mut g, &SeedConfig::default()).expect("seed model builds");
    (g, m)
}

fn bench(c: &mut Criterion) {
    let (g, m) = build_forward();
    eprintln!("seed forward graph: {} nodes", g.node_count());
    let mut gb = g.clone();
    grad(&mut gb, m.loss, &m.params).unwrap();
    eprintln!("seed forward + backward graph: {} nodes", gb.node_count());

    c.bench_function("seed forward T=200: build + dce + cse", |b| {
        b.iter(|| {
            let (mut g, _) = build_forward();
            dce(&mut g);
            cse(&mut g);
            g
        })
    });
    c.bench_function("seed backward T=200: grad", |b| {
        b.iter_batched(
            || g.clone(),
            |mut g| {
                grad(&mut g, m.loss, &m.params).unwrap();
                g
            },
            criterion::BatchSize::LargeInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
