//! Per-token latency of a one-step LSTM decoder attached to the plan that unrolls the same
//! LSTM (`Plan::attach`: the step plan reads the unrolled plan's weight buffers), against the
//! full unrolled forward pass, for a 1-layer LSTM(H) at batch 1 and 64.
//! `cargo run --release --example decode_step -- [T] [H]` (default 20 128). Times are medians
//! over repeated runs; noisy on a shared machine.
#[path = "common/timing.rs"]
mod timing;

use std::time::Instant;
use trellis::ir::lstm::{lstm, LstmSpec, LstmWeights};
use trellis::ir::{Graph, NodeId, Tensor, TensorType};
use trellis::jit::{compile, Attach, CompileOptions};

/// `x [T, B, H]` through one LSTM layer from `init`: (sequence, final h, final c).
fn layer(g: &mut Graph, w: [NodeId; 3], x: NodeId, init: Option<(NodeId, NodeId)>) -> [NodeId; 3] {
    let o = lstm(
        g,
        x,
        &LstmSpec {
            layers: vec![LstmWeights {
                w_ih: w[0],
                w_hh: w[1],
                bias: Some(w[2]),
            }],
            return_sequences: true,
            initial_state: init.map(|s| vec![s]),
            ..Default::default()
        },
    )
    .expect("the LSTM builds");
    [o.output, o.h[0], o.c[0]]
}

fn weights(g: &mut Graph, h: usize) -> [NodeId; 3] {
    [
        g.param("w_ih", TensorType::f32([4 * h, h])),
        g.param("w_hh", TensorType::f32([4 * h, h])),
        g.param("bias", TensorType::f32([4 * h])),
    ]
}

fn main() {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(d)
    };
    let (t_len, h) = (arg(1, 20), arg(2, 128));
    let mut seed = 9u64;
    let mut rnd = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    };
    for b in [1, 64] {
        // The unrolled forward pass (the host).
        let mut g = Graph::new();
        let w = weights(&mut g, h);
        let x = g.input("x", TensorType::f32([t_len, b, h]));
        let [seq, _, _] = layer(&mut g, w, x, None);
        g.set_outputs(vec![seq]);
        let mut host = compile(&g, &CompileOptions::default()).expect("compiles");
        for &p in &w {
            let n = g.ty(p).numel();
            let v = rnd(n).iter().map(|v| v * 0.1).collect();
            host.set(p, &Tensor::f32(g.ty(p).dims(), v).unwrap())
                .unwrap();
        }
        let xs = rnd(t_len * b * h);
        host.set_f32(x, &xs).unwrap();
        // The one-step decoder, attached: its weights are the host's buffers.
        let mut sg = Graph::new();
        let sw = weights(&mut sg, h);
        let xt = sg.input("x_t", TensorType::f32([1, b, h]));
        let hi = sg.input("h", TensorType::f32([b, h]));
        let ci = sg.input("c", TensorType::f32([b, h]));
        let [_, ho, co] = layer(&mut sg, sw, xt, Some((hi, ci)));
        sg.set_outputs(vec![ho, co]);
        let spec = Attach {
            share: sw.iter().copied().zip(w).collect(),
            carry: vec![(hi, ho), (ci, co)],
        };
        let t0 = Instant::now();
        let id = host
            .attach(&sg, &CompileOptions::default(), &spec)
            .expect("attaches");
        let attach_ms = t0.elapsed().as_secs_f64() * 1e3;
        let reps = if b == 1 { 400 } else { 100 };
        let full = timing::median_us(reps / 4, || host.run()).expect("runs");
        let want = host.get(seq).unwrap().to_f64_vec();
        let mut step = host.attached(id).unwrap();
        let decode = |step: &mut trellis::jit::Attached| -> Result<(), trellis::jit::JitError> {
            step.set_f32(hi, &vec![0.0; b * h])?;
            step.set_f32(ci, &vec![0.0; b * h])?;
            for k in 0..t_len {
                step.set_f32(xt, &xs[k * b * h..(k + 1) * b * h])?;
                step.run()?;
            }
            Ok(())
        };
        // The step plan run T times gives the unrolled output's last step.
        decode(&mut step).expect("decodes");
        let last = step.get(ho).unwrap().to_f64_vec();
        let diff = last
            .iter()
            .zip(&want[(t_len - 1) * b * h..])
            .map(|(a, e)| (a - e).abs())
            .fold(0.0, f64::max);
        assert!(diff <= 1e-5, "step plan vs unrolled: {diff}");
        let per_seq = timing::median_us(reps / 4, || decode(&mut step)).expect("decodes");
        let per_step = timing::median_us(reps * 4, || step.run()).expect("runs");
        println!(
            "B={b:>2} H={h}: decoder step {per_step:.1} us (one run), {:.1} us/token with its \
             input set (T={t_len} steps {per_seq:.0} us); unrolled forward T={t_len} {full:.0} \
             us = {:.1} us/token; attach {attach_ms:.0} ms; max |step - unrolled| {diff:.1e}",
            per_seq / t_len as f64,
            full / t_len as f64
        );
    }
}
