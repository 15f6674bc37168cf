//! Attached plans (`Plan::attach`): a one-step LSTM decoder compiled onto the memory of a plan
//! that unrolls (and trains) the same LSTM. The step plan reads the host's weight buffers
//! (same addresses), sees the host's weight updates, and run T times equals the unrolled
//! forward pass.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use trellis_autodiff::grad;
use trellis_ir::lstm::{lstm, LstmSpec, LstmWeights};
use trellis_ir::{run, Graph, NodeId, Precision, Tensor, TensorType};
use trellis_jit::{compile, Attach, CompileOptions, Plan};

const V: usize = 11;
const E: usize = 5;
const H: usize = 6;

/// The decoder's parameters in a graph: embedding `[V, E]`, `w_ih [4H, E]`, `w_hh [4H, H]`,
/// bias `[4H]`.
fn params(g: &mut Graph) -> [NodeId; 4] {
    [
        g.param("emb", TensorType::f32([V, E])),
        g.param("w_ih", TensorType::f32([4 * H, E])),
        g.param("w_hh", TensorType::f32([4 * H, H])),
        g.param("bias", TensorType::f32([4 * H])),
    ]
}

/// Token ids `[T, B]` -> embedded -> LSTM from `init`: `(sequence output, final h, final c)`.
fn decoder(
    g: &mut Graph,
    p: [NodeId; 4],
    ids: NodeId,
    init: Option<(NodeId, NodeId)>,
) -> (NodeId, NodeId, NodeId) {
    let x = g.gather(p[0], ids).unwrap();
    let o = lstm(
        g,
        x,
        &LstmSpec {
            layers: vec![LstmWeights {
                w_ih: p[1],
                w_hh: p[2],
                bias: Some(p[3]),
            }],
            return_sequences: true,
            initial_state: init.map(|s| vec![s]),
            ..Default::default()
        },
    )
    .unwrap();
    (o.output, o.h[0], o.c[0])
}

fn random(rng: &mut StdRng, shape: &[usize], scale: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(
        shape,
        (0..n).map(|_| rng.gen_range(-scale..scale)).collect(),
    )
    .unwrap()
}

/// The one-step graph: ids `[1, B]`, state inputs `h`, `c`, its own parameter nodes.
struct StepGraph {
    g: Graph,
    p: [NodeId; 4],
    ids: NodeId,
    h: NodeId,
    c: NodeId,
    h_out: NodeId,
    c_out: NodeId,
}

fn step_graph(b: usize) -> StepGraph {
    let mut g = Graph::new();
    let p = params(&mut g);
    let ids = g.input("ids", TensorType::i64([1, b]));
    let h = g.input("h", TensorType::f32([b, H]));
    let c = g.input("c", TensorType::f32([b, H]));
    let (_, h_out, c_out) = decoder(&mut g, p, ids, Some((h, c)));
    g.set_outputs(vec![h_out, c_out]);
    StepGraph {
        g,
        p,
        ids,
        h,
        c,
        h_out,
        c_out,
    }
}

/// Attaches `s` to `host` (whose parameters are `hp`), carrying the state.
fn attach(host: &mut Plan, hp: [NodeId; 4], s: &StepGraph) -> trellis_jit::AttachedId {
    let spec = Attach {
        share: s.p.iter().copied().zip(hp).collect(),
        carry: vec![(s.h, s.h_out), (s.c, s.c_out)],
    };
    host.attach(&s.g, &CompileOptions::default(), &spec)
        .unwrap()
}

#[test]
fn step_plan_run_t_times_equals_the_unrolled_forward() {
    let (t, b) = (7, 3);
    let mut rng = StdRng::seed_from_u64(1);
    let mut g = Graph::new();
    let hp = params(&mut g);
    let ids = g.input("ids", TensorType::i64([t, b]));
    let (seq, _, _) = decoder(&mut g, hp, ids, None);
    g.set_outputs(vec![seq]);
    let mut host = compile(&g, &CompileOptions::default()).unwrap();
    for &p in &hp {
        host.set(p, &random(&mut rng, g.ty(p).dims(), 0.6)).unwrap();
    }
    let tokens: Vec<i64> = (0..t * b).map(|_| rng.gen_range(0..V as i64)).collect();
    host.set_i64(ids, &tokens).unwrap();
    host.run().unwrap();
    let want = host.get(seq).unwrap().to_f64_vec();
    let s = step_graph(b);
    let id = attach(&mut host, hp, &s);
    let mut step = host.attached(id).unwrap();
    step.set_f32(s.h, &vec![0.0; b * H]).unwrap();
    step.set_f32(s.c, &vec![0.0; b * H]).unwrap();
    for k in 0..t {
        step.set_i64(s.ids, &tokens[k * b..(k + 1) * b]).unwrap();
        step.run().unwrap();
        let got = step.get(s.h_out).unwrap().to_f64_vec();
        // The carried state is the output just computed.
        assert_eq!(step.get(s.h).unwrap().to_f64_vec(), got);
        for (i, (a, e)) in got.iter().zip(&want[k * b * H..]).enumerate() {
            assert!(
                (a - e).abs() <= 1e-6,
                "step {k}, element {i}: {a} vs unrolled {e}"
            );
        }
    }
}

/// One step from a zero state in the interpreter, with the weights `w` (emb, w_ih, w_hh, bias).
fn step_by_interpreter(s: &StepGraph, w: &[Tensor], tokens: &[i64]) -> Vec<f64> {
    let b = tokens.len();
    let mut feeds: HashMap<NodeId, Tensor> = s.p.iter().copied().zip(w.iter().cloned()).collect();
    feeds.insert(s.ids, Tensor::i64([1, b], tokens.to_vec()).unwrap());
    feeds.insert(s.h, Tensor::f32([b, H], vec![0.0; b * H]).unwrap());
    feeds.insert(s.c, Tensor::f32([b, H], vec![0.0; b * H]).unwrap());
    run(&s.g, &feeds, &[s.h_out], Precision::F32).unwrap()[0].to_f64_vec()
}

fn assert_near(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (a, e)) in got.iter().zip(want).enumerate() {
        assert!((a - e).abs() <= 1e-6, "{what}[{i}]: {a} vs {e}");
    }
}

/// The host trains (SGD updates its weights in each run); the step plan reads the same
/// buffers (same addresses) and its next step uses the updated weights, also those its cached
/// parameter-only steps (the projected embedding table, the transposed weights) derive from.
#[test]
fn host_weight_updates_reach_the_step_plan_without_copying() {
    // B > V: the step plan looks its input projection up in the projected embedding table, a
    // parameter-only step it caches.
    let (t, b) = (3, 16);
    let mut rng = StdRng::seed_from_u64(2);
    let mut g = Graph::new();
    let hp = params(&mut g);
    let ids = g.input("ids", TensorType::i64([t, b]));
    let (seq, _, _) = decoder(&mut g, hp, ids, None);
    let r = g.input("r", TensorType::f32([t, b, H]));
    let sr = g.mul(seq, r).unwrap();
    let loss = g.sum_all(sr).unwrap();
    let grads = grad(&mut g, loss, &hp).unwrap();
    let lr = g.scalar(0.5, trellis_ir::DType::F32);
    let mut updates = Vec::new();
    for (&p, &d) in hp.iter().zip(&grads) {
        let step = g.mul(d, lr).unwrap();
        updates.push((p, g.sub(p, step).unwrap()));
    }
    g.set_outputs(vec![loss]);
    let opts = CompileOptions {
        updates,
        ..Default::default()
    };
    let mut host = compile(&g, &opts).unwrap();
    for &p in &hp {
        host.set(p, &random(&mut rng, g.ty(p).dims(), 0.6)).unwrap();
    }
    let tokens: Vec<i64> = (0..t * b).map(|_| rng.gen_range(0..V as i64)).collect();
    host.set_i64(ids, &tokens).unwrap();
    host.set(r, &random(&mut rng, &[t, b, H], 1.0)).unwrap();
    let s = step_graph(b);
    let id = attach(&mut host, hp, &s);
    let first = &tokens[..b];
    let weights =
        |host: &Plan| -> Vec<Tensor> { hp.iter().map(|&p| host.get(p).unwrap()).collect() };
    let step_once = |host: &mut Plan| -> Vec<f64> {
        let mut step = host.attached(id).unwrap();
        step.set_f32(s.h, &vec![0.0; b * H]).unwrap();
        step.set_f32(s.c, &vec![0.0; b * H]).unwrap();
        step.set_i64(s.ids, first).unwrap();
        step.run().unwrap();
        step.get(s.h_out).unwrap().to_f64_vec()
    };
    // The same memory: the step plan's parameters are the host's buffers.
    for (&sp, &p) in s.p.iter().zip(&hp) {
        let step = host.attached(id).unwrap();
        let a = step.f32_slice(sp).unwrap().as_ptr();
        assert_eq!(a, host.f32_slice(p).unwrap().as_ptr(), "{p}");
    }
    let cached = host.attached(id).unwrap().stats().invariant_steps;
    assert!(cached > 0, "the step plan caches parameter-only steps");
    let before = step_once(&mut host);
    assert_near(
        "before training",
        &before,
        &step_by_interpreter(&s, &weights(&host), first),
    );
    let w0 = weights(&host);
    host.run().unwrap(); // one SGD step
    let w1 = weights(&host);
    assert_ne!(w0[0].to_f64_vec(), w1[0].to_f64_vec(), "the host trained");
    let after = step_once(&mut host);
    assert_ne!(before, after, "the step plan sees the new weights");
    assert_near(
        "after one SGD step",
        &after,
        &step_by_interpreter(&s, &w1, first),
    );
    // A weight set on the host is seen too.
    let emb = random(&mut rng, &[V, E], 0.6);
    host.set(hp[0], &emb).unwrap();
    let mut w2 = w1;
    w2[0] = emb;
    assert_near(
        "after host.set",
        &step_once(&mut host),
        &step_by_interpreter(&s, &w2, first),
    );
}

#[test]
fn attach_refuses_what_it_cannot_share_naming_it() {
    let b = 2;
    let mut g = Graph::new();
    let hp = params(&mut g);
    let ids = g.input("ids", TensorType::i64([3, b]));
    let (seq, _, _) = decoder(&mut g, hp, ids, None);
    g.set_outputs(vec![seq]);
    let mut host = compile(&g, &CompileOptions::default()).unwrap();
    let s = step_graph(b);
    let opts = CompileOptions::default();
    // A type mismatch: the step's w_ih shared with the host's w_hh.
    let mut share: Vec<(NodeId, NodeId)> = s.p.iter().copied().zip(hp).collect();
    share[1].1 = hp[2];
    let spec = Attach {
        share,
        carry: vec![],
    };
    let e = host.attach(&s.g, &opts, &spec).err().unwrap().to_string();
    assert!(
        e.contains("'w_ih') <- 'w_hh'") && e.contains("is f32[24,5], the host's f32[24,6]"),
        "{e}"
    );
    // Carrying into a parameter.
    let spec = Attach {
        share: vec![],
        carry: vec![(s.p[3], s.p[3])],
    };
    let e = host.attach(&s.g, &opts, &spec).err().unwrap().to_string();
    assert!(e.contains("data input"), "{e}");
    // Updates in an attached plan.
    let upd = CompileOptions {
        updates: vec![(s.h, s.h_out)],
        ..Default::default()
    };
    let e = host
        .attach(&s.g, &upd, &Attach::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("carry"), "{e}");
    // Setting a shared parameter through the attached plan.
    let id = attach(&mut host, hp, &s);
    let mut step = host.attached(id).unwrap();
    let e = step.set(s.p[0], &Tensor::f32([V, E], vec![0.0; V * E]).unwrap());
    assert!(e.unwrap_err().to_string().contains("shared with the host"));
}
