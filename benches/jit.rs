//! Criterion benches of the compiled pieces: the LSTM step kernels (forward and backward), the
//! GEMM shapes of the seed step, compiling the seed training step, and running it at T = 50.
use criterion::{criterion_group, criterion_main, Criterion};
use trellis::autodiff::grad;
use trellis::ir::models::{seed_model, SeedConfig};
use trellis::ir::{Binary, Scalar, ScalarFn, Unary};
use trellis::ir::{Graph, NodeId, Tensor, TensorType};
use trellis::jit::{
    compile, Backend, CompileOptions, KernelCache, KernelSpec, Plan, View, ViewMut,
};

const B: usize = 128;
const H: usize = 128;

/// Sets every input of a plan to small deterministic values.
fn fill(plan: &mut Plan, g: &Graph, inputs: &[NodeId]) {
    for &n in inputs {
        let ty = g.ty(n);
        let t = match ty.dtype {
            trellis::ir::DType::I64 => Tensor::i64(ty.shape.clone(), vec![1; ty.numel()]).unwrap(),
            _ => Tensor::f32(
                ty.shape.clone(),
                (0..ty.numel())
                    .map(|i| ((i % 97) as f32 - 48.0) / 100.0)
                    .collect(),
            )
            .unwrap(),
        };
        plan.set(n, &t).unwrap();
    }
}

/// One LSTM cell step from the pre-activation `z [B, 4H]` and `c_{t-1}`: returns (h, c).
fn cell(g: &mut Graph, z: NodeId, c0: NodeId) -> (NodeId, NodeId) {
    let s = |g: &mut Graph, k: usize| g.slice(z, 1, k * H, (k + 1) * H).unwrap();
    let (zi, zf, zg, zo) = (s(g, 0), s(g, 1), s(g, 2), s(g, 3));
    let (i, f, gg, o) = (
        g.sigmoid(zi).unwrap(),
        g.sigmoid(zf).unwrap(),
        g.tanh(zg).unwrap(),
        g.sigmoid(zo).unwrap(),
    );
    let fc = g.mul(f, c0).unwrap();
    let ig = g.mul(i, gg).unwrap();
    let c = g.add(fc, ig).unwrap();
    let tc = g.tanh(c).unwrap();
    (g.mul(o, tc).unwrap(), c)
}

fn plan_of(g: &Graph) -> Plan {
    let mut p = compile(g, &CompileOptions::default()).unwrap();
    let inputs: Vec<NodeId> = g.inputs().iter().chain(g.params()).copied().collect();
    fill(&mut p, g, &inputs);
    p
}

fn bench(c: &mut Criterion) {
    // Step kernels.
    let mut g = Graph::new();
    let z = g.input("z", TensorType::f32([B, 4 * H]));
    let c0 = g.input("c0", TensorType::f32([B, H]));
    let (h, cc) = cell(&mut g, z, c0);
    g.set_outputs(vec![h, cc]);
    let mut fwd = plan_of(&g);
    c.bench_function("lstm step forward kernel B=128 H=128", |b| {
        b.iter(|| fwd.run().unwrap())
    });
    let sh = g.sum_all(h).unwrap();
    let sc = g.sum_all(cc).unwrap();
    let loss = g.add(sh, sc).unwrap();
    let d = grad(&mut g, loss, &[z, c0]).unwrap();
    g.set_outputs(d);
    let mut bwd = plan_of(&g);
    c.bench_function("lstm step backward kernels B=128 H=128", |b| {
        b.iter(|| bwd.run().unwrap())
    });

    // The fused LSTM cell (gates read from a [B, 4H] row, as the plan lays them out) on each
    // kernel backend, one thread: what the kernel code itself costs.
    let mut e = ScalarFn::new(5);
    let [zi, zf, zg, zo, cprev] = [0, 1, 2, 3, 4].map(|k| e.input(k));
    let [si, sf, so] = [zi, zf, zo].map(|z| e.push(Scalar::Unary(Unary::Sigmoid, z)));
    let tg = e.push(Scalar::Unary(Unary::Tanh, zg));
    let fc = e.push(Scalar::Binary(Binary::Mul, sf, cprev));
    let ig = e.push(Scalar::Binary(Binary::Mul, si, tg));
    let cnew = e.push(Scalar::Binary(Binary::Add, fc, ig));
    let tc = e.push(Scalar::Unary(Unary::Tanh, cnew));
    let hnew = e.push(Scalar::Binary(Binary::Mul, so, tc));
    e.output(cnew);
    e.output(hnew);
    let spec = KernelSpec::new(e);
    let zs: Vec<f32> = (0..B * 4 * H)
        .map(|i| ((i % 97) as f32 - 48.0) / 20.0)
        .collect();
    let cs: Vec<f32> = (0..B * H)
        .map(|i| ((i % 89) as f32 - 44.0) / 30.0)
        .collect();
    for backend in Backend::all_available() {
        let kernel = KernelCache::with_backend(backend)
            .unwrap()
            .get(&spec)
            .unwrap();
        let (mut c_out, mut h_out) = (vec![0.0f32; B * H], vec![0.0f32; B * H]);
        c.bench_function(&format!("lstm cell kernel {backend:?} B=128 H=128"), |b| {
            b.iter(|| {
                let gate = |k: usize| View {
                    data: &zs,
                    offset: k * H,
                    row_stride: 4 * H,
                };
                let ins = [gate(0), gate(1), gate(2), gate(3), View::new(&cs, H)];
                let mut outs = [ViewMut::new(&mut c_out, H), ViewMut::new(&mut h_out, H)];
                kernel.run(B, H, &ins, &mut outs).unwrap()
            })
        });
    }

    // GEMM shapes of the seed step at T = 200 (rows = T*B for the hoisted and batched ones).
    for (name, m, k, n, ta, tb) in [
        (
            "recurrent h W_hh^T 128x128 . 128x512",
            B,
            H,
            4 * H,
            false,
            true,
        ),
        (
            "recurrent dz W_hh 128x512 . 512x128",
            B,
            4 * H,
            H,
            false,
            false,
        ),
        (
            "hoisted X W_ih^T 25600x128 . 128x512",
            200 * B,
            H,
            4 * H,
            false,
            true,
        ),
        (
            "batched dZ^T H 512x25600 . 25600x128",
            4 * H,
            200 * B,
            H,
            true,
            false,
        ),
    ] {
        let mut g = Graph::new();
        let a = g.input("a", TensorType::f32(if ta { [k, m] } else { [m, k] }));
        let bb = g.input("b", TensorType::f32(if tb { [n, k] } else { [k, n] }));
        let y = g.matmul_t(a, bb, ta, tb).unwrap();
        g.set_outputs(vec![y]);
        let mut p = plan_of(&g);
        c.bench_function(&format!("gemm {name}"), |b| b.iter(|| p.run().unwrap()));
    }

    crf_and_softmax(c);

    // Compiling and running the seed training step at T = 50.
    let cfg = SeedConfig {
        seq: 50,
        ..SeedConfig::default()
    };
    let mut g = Graph::new();
    let m = seed_model(&mut g, &cfg).unwrap();
    let grads = grad(&mut g, m.loss, &m.params).unwrap();
    let mut outs = vec![m.loss];
    outs.extend(grads);
    g.set_outputs(outs);
    c.bench_function("compile seed training step T=50", |b| {
        b.iter(|| compile(&g, &CompileOptions::default()).unwrap())
    });
    let mut step = plan_of(&g);
    c.bench_function("seed training step (forward + backward) T=50 B=128", |b| {
        b.iter(|| step.run().unwrap())
    });
}

/// A tagger's CRF head at B = 64, T = 48, K = 12 (its loss with every gradient, and its
/// decode) and a softmax cross-entropy over a 1,000-way output for 2,048 rows: the row maxima
/// these take are the reductions the plans spend their small steps on.
fn crf_and_softmax(c: &mut Criterion) {
    use trellis::ir::crf::{crf_decode, crf_nll, CrfWeights};
    let (b, t, k) = (64, 48, 12);
    let mut g = Graph::new();
    let e = g.param("emissions", TensorType::f32([b, t, k]));
    let w = CrfWeights {
        transitions: g.param("transitions", TensorType::f32([k, k])),
        start: g.param("start", TensorType::f32([k])),
        end: g.param("end", TensorType::f32([k])),
    };
    let tags = g.input("tags", TensorType::f32([b, t, k]));
    let mask = g.input("mask", TensorType::f32([b, t]));
    let nll = crf_nll(&mut g, e, tags, Some(mask), &w).unwrap();
    let loss = g.sum_all(nll).unwrap();
    let grads = grad(&mut g, loss, &[e, w.transitions, w.start, w.end]).unwrap();
    let mut outs = vec![loss];
    outs.extend(grads);
    g.set_outputs(outs);
    let onehot: Vec<f32> = (0..b * t * k)
        .map(|i| f32::from((i / k) % k == i % k))
        .collect();
    let mut train = plan_of(&g);
    train
        .set(tags, &Tensor::f32([b, t, k], onehot).unwrap())
        .unwrap();
    train
        .set(mask, &Tensor::f32([b, t], vec![1.0; b * t]).unwrap())
        .unwrap();
    c.bench_function("crf nll and gradients B=64 T=48 K=12", |bn| {
        bn.iter(|| train.run().unwrap())
    });
    let mut g = Graph::new();
    let e = g.input("emissions", TensorType::f32([b, t, k]));
    let w = CrfWeights {
        transitions: g.param("transitions", TensorType::f32([k, k])),
        start: g.param("start", TensorType::f32([k])),
        end: g.param("end", TensorType::f32([k])),
    };
    let path = crf_decode(&mut g, e, None, &w).unwrap();
    g.set_outputs(vec![path]);
    let mut decode = plan_of(&g);
    c.bench_function("crf decode B=64 T=48 K=12", |bn| {
        bn.iter(|| decode.run().unwrap())
    });

    let (rows, classes) = (2048, 1000);
    let mut g = Graph::new();
    let z = g.param("logits", TensorType::f32([rows, classes]));
    let y = g.input("onehot", TensorType::f32([rows, classes]));
    let lp = trellis::ir::softmax::log_softmax(&mut g, z).unwrap();
    let picked = g.mul(lp, y).unwrap();
    let loss = g.sum_all(picked).unwrap();
    let dz = grad(&mut g, loss, &[z]).unwrap();
    g.set_outputs(vec![loss, dz[0]]);
    let mut sm = plan_of(&g);
    c.bench_function("log-softmax loss and gradient 2048x1000", |bn| {
        bn.iter(|| sm.run().unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
