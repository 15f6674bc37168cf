//! The seed training step (loss and every gradient) compiled three ways (threads 1 and 2,
//! fused and not) against the f64 interpreter, at any size: the tests check small sizes, this
//! checks the real one. `cargo run --release --example plan_vs_interpreter -- T B H`
//! (default 50 128 64; the interpreter takes a minute at 200 128 128).
use trellis::autodiff::grad;
use trellis::ir::models::{seed_model, SeedConfig};
use trellis::ir::{Graph, Tensor};
use trellis::jit::{compile, CompileOptions};
fn main() {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .map(|v| v.parse().unwrap())
            .unwrap_or(d)
    };
    let c = SeedConfig {
        seq: arg(1, 50),
        batch: arg(2, 128),
        vocab: 1000,
        hidden: arg(3, 64),
        embed: arg(3, 64),
        ..SeedConfig::default()
    };
    let mut g = Graph::new();
    let m = seed_model(&mut g, &c).unwrap();
    let grads = grad(&mut g, m.loss, &m.params).unwrap();
    let mut outs = vec![m.loss];
    outs.extend(&grads);
    g.set_outputs(outs.clone());
    let mut s = 7u64;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut feeds: Vec<(trellis::ir::NodeId, Tensor)> = Vec::new();
    for &p in &m.params {
        let ty = g.ty(p).clone();
        feeds.push((
            p,
            Tensor::f32(
                ty.shape.clone(),
                (0..ty.numel())
                    .map(|_| ((rnd() % 1000) as f32 / 1000.0 - 0.5) * 0.2)
                    .collect(),
            )
            .unwrap(),
        ));
    }
    feeds.push((
        m.ids,
        Tensor::i64(
            [c.batch, c.seq],
            (0..c.batch * c.seq)
                .map(|_| (rnd() % 1000) as i64)
                .collect(),
        )
        .unwrap(),
    ));
    feeds.push((
        m.labels,
        Tensor::f32(
            [c.batch, 1],
            (0..c.batch).map(|i| (i % 3 == 0) as u8 as f32).collect(),
        )
        .unwrap(),
    ));
    let mut res = Vec::new();
    for (threads, fuse) in [(1, false), (1, true), (2, true)] {
        let mut p = compile(
            &g,
            &CompileOptions {
                threads,
                fuse,
                ..Default::default()
            },
        )
        .unwrap();
        for (n, t) in &feeds {
            p.set(*n, t).unwrap();
        }
        p.run().unwrap();
        res.push(
            outs.iter()
                .map(|&o| p.get(o).unwrap().to_f64_vec())
                .collect::<Vec<_>>(),
        );
    }
    let fm: trellis::ir::Feeds = feeds.iter().cloned().collect();
    let t = std::time::Instant::now();
    let want = trellis::ir::run(&g, &fm, &outs, trellis::ir::Precision::F64).unwrap();
    eprintln!("interpreter {:.1}s", t.elapsed().as_secs_f64());
    let mut bad = 0;
    res.insert(0, want.iter().map(|t| t.to_f64_vec()).collect());
    for k in 1..res.len() {
        for (i, (a, b)) in res[0].iter().zip(&res[k]).enumerate() {
            let scale = a.iter().map(|x| x.abs()).fold(0.0, f64::max).max(1e-12);
            let d = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            if d / scale > 1e-3 {
                bad += 1;
                println!("config {k} output {i}: max diff {d:e} vs scale {scale:e}; first values {:?} vs {:?}", &a[..a.len().min(3)], &b[..b.len().min(3)]);
            }
        }
    }
    println!("loss {:?}", res.iter().map(|r| r[0][0]).collect::<Vec<_>>());
    println!("{bad} outputs differ by more than 1e-3 of their largest element");
    std::process::exit(if bad == 0 { 0 } else { 1 });
}
