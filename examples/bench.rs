//! The seed model's training step (forward, backward, Adam) and inference, timed.
//!
//! `cargo run --release --example bench -- --seq 200 --batch 128 --steps 20` prints one JSON
//! line; `--profile` adds where the time goes (GEMM, kernels, the rest) on stderr. The line
//! names the kernel backend the host got (`"kernels":"Avx512"` with AVX-512, `"Cranelift"`'s
//! four lanes without: the seed model reaches about half the share of peak there), so figures
//! from different machines can be read side by side.
//!
//! `--cell lstm|gru|bilstm|rnn` picks the recurrent layers (`ir::models::SeedCell`).
//!
//! `--init keras` (the default) starts from the weights a Keras user gets (the layers'
//! default initialisers, as `nn` draws them); `--init small` from uniform(+-0.05) everywhere,
//! the regime where gradients decay through the steps into subnormal numbers (which plans
//! flush to zero: on Intel cores they would otherwise cost a microcode assist each).
//!
//! `--memory-budget-mb MB` compiles the training plan within MB (`nn::budget::compile_within`):
//! when storing every step does not fit, the recurrences are recomputed in the backward pass
//! from a state kept every K steps, K chosen from the budget; `--checkpoint-every K` asks for
//! K. The plan's memory and K are printed (stderr) before it runs. `--compare` also compiles
//! the plan storing every step and runs the two alternately: one JSON line with both step
//! times, their ratio and memory, and whether the losses had the same bits.
//!
//! `--compile-only` builds and compiles both plans without running them and prints the
//! times (graph building + `grad` included in `*_total_ms`, `compile` alone in `*_compile_ms`):
//! `cargo run --release --example bench -- --seq 20000 --batch 4 --hidden 16 --embed 16
//! --vocab 100 --compile-only`.
use std::time::Instant;
use trellis::autodiff::Checkpoints;
use trellis::ir::models::{seed_model, SeedCell, SeedConfig, SeedModel};
use trellis::ir::{Graph, NodeId, Tensor, TensorType};
use trellis::jit::{compile, CompileOptions, Plan};
use trellis::nn::budget::{compile_within, Budgeted};
use trellis::nn::data::batches::SplitMix64;
use trellis::nn::optim::OptimizerGraph;
use trellis::nn::{Adam, Init, Optimizer};

/// `--cell NAME` (default lstm).
fn cell_arg() -> SeedCell {
    match arg_word("--cell") {
        None => SeedCell::Lstm,
        Some(name) => SeedCell::parse(&name).unwrap_or_else(|| {
            eprintln!("--cell takes lstm, gru or bilstm, not {name}");
            std::process::exit(2)
        }),
    }
}

/// How the weights start.
#[derive(Clone, Copy, PartialEq)]
enum Start {
    /// Each layer's Keras default (what `nn` gives a new model).
    Keras,
    /// Uniform in +-0.05 everywhere.
    Small,
}

impl Start {
    fn from_args() -> Start {
        match arg_word("--init").as_deref() {
            None | Some("keras") => Start::Keras,
            Some("small") => Start::Small,
            Some(other) => {
                eprintln!("--init takes keras or small, not {other}");
                std::process::exit(2)
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Start::Keras => "keras",
            Start::Small => "small",
        }
    }

    /// The initialiser of a seed-model parameter, by its (PyTorch-style) name.
    fn init(self, param: &str) -> Init {
        if self == Start::Small {
            return Init::Uniform(0.05);
        }
        if param.starts_with("embedding.") {
            Init::Uniform(0.05)
        } else if param.contains("weight_hh") {
            Init::Orthogonal
        } else if param.starts_with("lstm.bias") {
            Init::LstmBias
        } else if param.contains("bias") {
            Init::Zeros
        } else {
            Init::GlorotUniform
        }
    }
}

/// The training step (forward, backward, Keras's Adam as nn builds it) compiled within
/// `budget` bytes, recomputing the recurrences when storing every step does not fit.
fn train_plan(
    forward: &Graph,
    m: &SeedModel,
    adam: &Optimizer,
    budget: Option<usize>,
    first: Option<Checkpoints>,
) -> Budgeted<OptimizerGraph> {
    compile_within(forward, m.loss, &m.params, budget, first, |g, grads| {
        let named: Vec<(String, NodeId)> = m
            .params
            .iter()
            .map(|&p| (g.node(p).name.clone().unwrap_or_default(), p))
            .collect();
        let opt = adam.build(g, &named, grads)?;
        g.set_outputs(vec![m.loss]);
        let opts = CompileOptions {
            updates: opt.updates.clone(),
            ..Default::default()
        };
        Ok((opts, opt))
    })
    .unwrap_or_else(|e| exit(&e.to_string()))
}

/// A plan's persistent and arena memory, in MB.
fn plan_mb(plan: &Plan) -> f64 {
    let st = plan.stats();
    (st.arena_bytes + st.persistent_bytes) as f64 / 1048576.0
}

/// `--compare`: `stored` (every step stored) and `rc` (the plan within the budget), run
/// alternately from the same start for `steps` steps each, so that a loaded machine slows
/// both alike; one JSON line with both step times, their ratio, both plans' memory and
/// whether every step's loss had the same bits.
fn compare(
    m: &SeedModel,
    adam: &Optimizer,
    c: &SeedConfig,
    start: Start,
    steps: usize,
    stored: Budgeted<OptimizerGraph>,
    rc: Budgeted<OptimizerGraph>,
) {
    let every = rc.recompute.as_ref().map(|r| r.every);
    let (g_s, mut p_s, opt_s) = (stored.graph, stored.plan, stored.extra);
    let (g_r, mut p_r, opt_r) = (rc.graph, rc.plan, rc.extra);
    let lr = Tensor::scalar_f32(adam.lr_for_step(0));
    fill(&mut p_s, &g_s, m.ids, m.labels, &m.params, c, start);
    fill(&mut p_r, &g_r, m.ids, m.labels, &m.params, c, start);
    p_s.set(opt_s.lr, &lr).unwrap();
    p_r.set(opt_r.lr, &lr).unwrap();
    let loss_bits = |p: &Plan| p.get(m.loss).unwrap().to_f64_vec()[0].to_bits();
    let (mut t_s, mut t_r, mut same) = (0.0, 0.0, true);
    for i in 0..=steps {
        let t = Instant::now();
        p_s.run().unwrap();
        let a = t.elapsed().as_secs_f64();
        let t = Instant::now();
        p_r.run().unwrap();
        let b = t.elapsed().as_secs_f64();
        same &= loss_bits(&p_s) == loss_bits(&p_r);
        if i > 0 {
            // Step 0 warms up.
            t_s += a;
            t_r += b;
        }
    }
    let n = steps.max(1) as f64;
    println!(
        "{{\"seq\":{},\"batch\":{},\"hidden\":{},\"steps\":{steps},\"stored_mb\":{:.1},\"recompute_mb\":{:.1},\"checkpoint_every\":{},\"stored_step_ms\":{:.1},\"recompute_step_ms\":{:.1},\"ratio\":{:.3},\"losses_bit_identical\":{same}}}",
        c.seq,
        c.batch,
        c.hidden,
        plan_mb(&p_s),
        plan_mb(&p_r),
        every.unwrap_or(0),
        t_s / n * 1e3,
        t_r / n * 1e3,
        t_r / t_s,
    );
}

/// Stops with a message (exit status 2).
fn exit(msg: &str) -> ! {
    eprintln!("bench: {msg}");
    std::process::exit(2)
}

/// The word after `name` on the command line.
fn arg_word(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn arg(name: &str, default: usize) -> usize {
    arg_word(name)
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// Deterministic weights (as `start` says), random token ids, alternating labels.
fn fill(
    plan: &mut Plan,
    g: &Graph,
    ids: NodeId,
    labels: NodeId,
    params: &[NodeId],
    c: &SeedConfig,
    start: Start,
) {
    let mut rng = SplitMix64::new(12345);
    for &p in params {
        let name = g.node(p).name.clone().unwrap_or_default();
        let v = start.init(&name).sample(g.ty(p).dims(), &mut rng);
        plan.set_f32(p, &v).unwrap();
    }
    let idv: Vec<i64> = (0..c.batch * c.seq)
        .map(|_| rng.below(c.vocab as u64) as i64)
        .collect();
    plan.set_i64(ids, &idv).unwrap();
    let y: Vec<f32> = (0..c.batch).map(|i| (i % 2) as f32).collect();
    plan.set_f32(labels, &y).unwrap();
}

fn main() {
    let c = SeedConfig {
        seq: arg("--seq", 200),
        batch: arg("--batch", 128),
        hidden: arg("--hidden", 128),
        embed: arg("--embed", 128),
        vocab: arg("--vocab", 10_000),
        cell: cell_arg(),
        ..SeedConfig::default()
    };
    let steps = arg("--steps", 20);
    // The machine's fp32 peak on the plan's threads, measured in this run (shares of peak in
    // benches/peers/table.py divide by it).
    let threads = std::env::var("TRELLIS_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CompileOptions::default().threads);
    let peak_now = || trellis::jit::peak::fp32_peak_gflops(threads, 0.5).unwrap_or(f64::NAN);
    // Sampled before training, between the phases and after inference: on a shared host a
    // sample taken while a neighbour holds the cores reads low (146-211 GFLOP/s in one run of
    // three rounds on a 2-core EPYC), and a share of peak against it reads high. The peak
    // reported is the largest sample: what the cores did in this run when they were free.
    let mut peak_samples = vec![peak_now()];
    eprintln!(
        "bench: fp32 peak {:.1} GFLOP/s on {threads} threads (FMA throughput, measured)",
        peak_samples[0]
    );
    let profile = std::env::args().any(|a| a == "--profile");
    let start = Start::from_args();

    // Training step: forward, backward, Adam.
    let t0 = Instant::now();
    let mut forward = Graph::new();
    let m = seed_model(&mut forward, &c).unwrap();
    let adam = Optimizer::from(Adam::default());
    let budget = arg_word("--memory-budget-mb").map(|v| v.parse::<usize>().expect("MB") << 20);
    let first = arg_word("--checkpoint-every").map(|v| Checkpoints::Every(v.parse().expect("K")));
    let trained = train_plan(&forward, &m, &adam, budget, first);
    let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    let every = trained.recompute.as_ref().map(|r| r.every);
    // The plan's memory is known before it runs.
    eprintln!(
        "bench: training plan {:.1} MB (arena {:.1} MB), {}",
        plan_mb(&trained.plan),
        trained.plan.arena_bytes() as f64 / 1048576.0,
        match &trained.recompute {
            None => "every step stored".to_string(),
            Some(r) => format!(
                "a checkpoint every {} steps ({} segments, {} nodes recomputed)",
                r.every, r.segments, r.nodes
            ),
        }
    );
    if std::env::args().any(|a| a == "--compile-only") {
        compile_only(&c, compile_ms, &trained.plan, every);
        return;
    }
    if std::env::args().any(|a| a == "--compare") {
        let stored = train_plan(&forward, &m, &adam, None, None);
        compare(&m, &adam, &c, start, steps, stored, trained);
        return;
    }
    let Budgeted {
        graph: g,
        plan: mut train,
        extra: opt,
        ..
    } = trained;
    fill(&mut train, &g, m.ids, m.labels, &m.params, &c, start);
    // The plan needs neither graph to run: their memory goes before the arena is touched.
    drop((g, forward));
    trellis::jit::release_freed_heap();
    train
        .set(opt.lr, &Tensor::scalar_f32(adam.lr_for_step(0)))
        .unwrap();
    train.run().unwrap(); // warm-up
    train.reset_profile();
    let t = Instant::now();
    for _ in 0..steps {
        train.run().unwrap();
        if std::env::var_os("TRELLIS_BENCH_LOSS").is_some() {
            eprintln!("loss {:.5}", train.get(m.loss).unwrap().to_f64_vec()[0]);
        }
    }
    let train_sps = (steps * c.batch) as f64 / t.elapsed().as_secs_f64();
    let loss = train.get(m.loss).unwrap().to_f64_vec()[0];
    peak_samples.push(peak_now());
    if profile {
        report("train", &train, loss, max_of(&peak_samples));
    }
    // The training plan's memory goes before the inference plan takes its own, so that the
    // process's peak is the larger of the two plans, not their sum.
    let train_arena_mb = train.arena_bytes() as f64 / 1048576.0;
    let train_explain = if arg_word("--explain").is_some() {
        train.explain()
    } else {
        String::new()
    };
    drop(train);

    // Inference: the forward graph alone.
    let mut gi = Graph::new();
    let mi = seed_model(&mut gi, &c).unwrap();
    gi.set_outputs(vec![mi.logits]);
    let mut infer = compile(
        &gi,
        &CompileOptions {
            threads,
            ..Default::default()
        },
    )
    .unwrap();
    fill(&mut infer, &gi, mi.ids, mi.labels, &mi.params, &c, start);
    eprintln!(
        "bench: inference plan {:.1} MB (arena {:.1} MB)",
        plan_mb(&infer),
        infer.arena_bytes() as f64 / 1048576.0
    );
    if let Some(path) = arg_word("--explain") {
        // Every step of both plans, to see how the cell was fused and scheduled.
        let text = format!(
            "# training step\n{train_explain}\n# inference\n{}",
            infer.explain()
        );
        std::fs::write(&path, text).expect("--explain: writable path");
        eprintln!("bench: both plans written to {path}");
    }
    infer.run().unwrap();
    infer.reset_profile();
    let t = Instant::now();
    for _ in 0..steps {
        infer.run().unwrap();
    }
    let infer_sps = (steps * c.batch) as f64 / t.elapsed().as_secs_f64();
    peak_samples.push(peak_now());
    let peak = max_of(&peak_samples);
    let samples: Vec<String> = peak_samples.iter().map(|p| format!("{p:.1}")).collect();
    eprintln!(
        "bench: fp32 peak samples {} GFLOP/s: {peak:.1} reported",
        samples.join(", ")
    );

    if profile {
        report("infer", &infer, f64::NAN, peak);
        for g in trellis_jit::gemm_choices() {
            eprintln!(
                "gemm choice {}x{}x{} ta={} tb={}: {} (crate {:.0} us, panels {:.0} us{})",
                g.m,
                g.n,
                g.k,
                g.ta,
                g.tb,
                if g.panels { "panels" } else { "crate" },
                g.crate_us,
                g.panels_us,
                if g.same_bits { "" } else { "; bits differ" },
            );
        }
    }
    println!(
        "{{\"framework\":\"trellis\",\"seq\":{},\"batch\":{},\"hidden\":{},\"cell\":\"{}\",\"init\":\"{}\",\"train_samples_per_s\":{:.1},\"infer_samples_per_s\":{:.1},\"compile_ms\":{:.1},\"arena_mb\":{:.1},\"checkpoint_every\":{},\"ftz\":{},\"kernels\":\"{:?}\",\"peak_gflops\":{:.1},\"peak_samples\":[{}]}}",
        c.seq,
        c.batch,
        c.hidden,
        c.cell.name(),
        start.name(),
        train_sps,
        infer_sps,
        compile_ms,
        train_arena_mb,
        every.unwrap_or(0),
        plans_flush_subnormals(),
        trellis::jit::Backend::host(),
        peak,
        samples.join(",")
    );
}

/// Whether plans flush subnormals, measured as the peer scripts measure their frameworks: a
/// 256 x 256 product of subnormal operands run by a plan comes out exactly zero.
fn plans_flush_subnormals() -> bool {
    let n = 256;
    let mut g = Graph::new();
    let a = g.input("a", TensorType::f32([n, n]));
    let b = g.input("b", TensorType::f32([n, n]));
    let p = g.matmul(a, b).unwrap();
    g.set_outputs(vec![p]);
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    plan.set_f32(a, &vec![1e-39; n * n]).unwrap();
    plan.set_f32(b, &vec![1.0; n * n]).unwrap();
    plan.run().unwrap();
    plan.get(p).unwrap().to_f32_vec().iter().all(|&v| v == 0.0)
}

/// The inference plan compiled too, and both plans' compile times as one JSON line.
fn compile_only(c: &SeedConfig, train_total_ms: f64, train: &Plan, every: Option<usize>) {
    let t = Instant::now();
    let mut gi = Graph::new();
    let mi = seed_model(&mut gi, c).unwrap();
    gi.set_outputs(vec![mi.logits]);
    let infer = compile(&gi, &CompileOptions::default()).unwrap();
    let infer_total_ms = t.elapsed().as_secs_f64() * 1e3;
    let (st, si) = (train.stats(), infer.stats());
    println!(
        "{{\"seq\":{},\"batch\":{},\"hidden\":{},\"train_nodes\":{},\"train_compile_ms\":{:.0},\"train_total_ms\":{:.0},\"infer_compile_ms\":{:.0},\"infer_total_ms\":{:.0},\"train_mb\":{:.1},\"checkpoint_every\":{}}}",
        c.seq,
        c.batch,
        c.hidden,
        st.nodes,
        st.compile_ms,
        train_total_ms,
        si.compile_ms,
        infer_total_ms,
        (st.arena_bytes + st.persistent_bytes) as f64 / 1048576.0,
        every.unwrap_or(0)
    );
}

/// The largest of the peak samples (NaN when there are none or none was measured).
fn max_of(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::NAN, f64::max)
}

/// The GFLOP/s of `calls` GEMMs described as `gemm MxNxK ...` taking `ms` in all.
fn gemm_gflops(desc: &str, calls: usize, ms: f64) -> Option<f64> {
    let dims: Vec<f64> = desc
        .strip_prefix("gemm ")?
        .split(' ')
        .next()?
        .split('x')
        .map(|d| d.parse().ok())
        .collect::<Option<_>>()?;
    let [m, n, k] = dims[..] else { return None };
    Some(2.0 * m * n * k * calls as f64 / (ms * 1e6))
}

/// Where a plan's time goes: by kind, the slowest steps, and totals by shape of work (GEMMs
/// with their GFLOP/s and share of `peak`).
fn report(what: &str, train: &Plan, loss: f64, peak: f64) {
    let p = train.profile();
    let s = train.stats();
    let per = |x: f64| x / p.runs as f64 * 1e3;
    eprintln!(
            "{what} step: {:.1} ms = gemm {:.1} + kernels {:.1} + split runs {:.1} (gemm {:.1} + kernels {:.1} + wait {:.1}) + other {:.1} | {} gemms, {} kernel steps ({} kernels), {} steps in split runs, {} other, fallbacks {:?}, loss {loss:.4}",
            per(p.gemm_s + p.kernel_s + p.split_s + p.other_s),
            per(p.gemm_s),
            per(p.kernel_s),
            per(p.split_s),
            per(p.split_gemm_s),
            per(p.split_kernel_s),
            per(p.split_s - p.split_gemm_s - p.split_kernel_s),
            per(p.other_s),
            s.gemms,
            s.kernel_steps,
            s.kernels,
            s.split_steps,
            s.other_steps,
            s.fallbacks
        );
    let mut idx: Vec<usize> = (0..p.per_step.len()).collect();
    idx.sort_by(|a, b| p.per_step[*b].total_cmp(&p.per_step[*a]));
    for &i in idx.iter().take(12) {
        eprintln!(
            "  {:8.3} ms  step {i}: {}",
            p.per_step[i] / p.runs as f64 * 1e3,
            train.describe_step(i)
        );
    }
    // Totals by kind of step (same description = same shape of work).
    let mut by: std::collections::HashMap<String, (f64, usize)> = Default::default();
    for (i, t) in p.per_step.iter().enumerate() {
        // Kernels of one shape at different addresses are one kind of work.
        let d = train.describe_step(i);
        let key = d.split(" [").next().unwrap_or(&d).to_string();
        let e = by.entry(key).or_default();
        e.0 += t / p.runs as f64 * 1e3;
        e.1 += 1;
    }
    let mut by: Vec<_> = by.into_iter().collect();
    by.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    for (d, (ms, n)) in by.iter().take(12) {
        let rate = gemm_gflops(d, *n, *ms).map_or(String::new(), |gf| {
            format!(" ({gf:.0} GFLOP/s, {:.0}% of peak)", 100.0 * gf / peak)
        });
        eprintln!(
            "  {ms:8.2} ms total, {n:4} x {:.1} us: {d}{rate}",
            ms / *n as f64 * 1e3
        );
    }
}
