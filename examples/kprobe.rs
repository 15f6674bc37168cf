use std::time::Instant;
use trellis::ir::{Graph, NodeId, Tensor, TensorType};
use trellis::jit::{compile, CompileOptions};
fn main() {
    for (name, f) in [
        (
            "mul",
            (|g: &mut Graph, x: NodeId| g.mul(x, x).unwrap()) as fn(&mut Graph, NodeId) -> NodeId,
        ),
        ("exp", |g, x| g.exp(x).unwrap()),
        ("sigmoid", |g, x| g.sigmoid(x).unwrap()),
        ("tanh", |g, x| g.tanh(x).unwrap()),
    ] {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32([128, 128]));
        let y = f(&mut g, x);
        g.set_outputs(vec![y]);
        let mut p = compile(
            &g,
            &CompileOptions {
                threads: 1,
                ..Default::default()
            },
        )
        .unwrap();
        p.set(
            x,
            &Tensor::f32(
                [128, 128],
                (0..16384).map(|i| (i % 200) as f32 / 50.0 - 2.0).collect(),
            )
            .unwrap(),
        )
        .unwrap();
        p.run().unwrap();
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            p.run().unwrap();
        }
        let s = t.elapsed().as_secs_f64() / n as f64;
        println!(
            "{name}: {:.1} us per 16384 = {:.2} ns/elem",
            s * 1e6,
            s * 1e9 / 16384.0
        );
    }
}
