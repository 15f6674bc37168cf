//! Compiled plans against the reference interpreter.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis_autodiff::grad;
use trellis_ir::models::{seed_model, SeedCell, SeedConfig};
use trellis_ir::ops::UnaryOp;
use trellis_ir::{run, DType, Feeds, Graph, NodeId, Precision, Tensor, TensorType, Unary};
use trellis_jit::{compile, Backend, CompileOptions};

fn rand_f32(rng: &mut StdRng, shape: &[usize], scale: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(
        shape,
        (0..n).map(|_| rng.gen_range(-scale..scale)).collect(),
    )
    .unwrap()
}

/// Largest `|a - b| / (atol + |b|)` over two tensors of one shape.
fn worst(a: &Tensor, b: &Tensor, atol: f64) -> f64 {
    assert_eq!(a.dims(), b.dims());
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x - y).abs() / (atol + y.abs()))
        .fold(0.0, f64::max)
}

/// Every step of a plan, described (`Plan::describe_step`).
fn step_names(plan: &trellis_jit::Plan) -> Vec<String> {
    (0..plan.step_count())
        .map(|k| plan.describe_step(k))
        .collect()
}

/// The seed model at a small size with its gradients: (graph, feeds, outputs = [loss, grads..]).
fn seed_training_graph(c: &SeedConfig, seed: u64) -> (Graph, Feeds, Vec<NodeId>) {
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

#[test]
fn seed_model_loss_and_every_gradient_match_the_interpreter() {
    // A tiny size; one whose batch-sized constants are too long to print in a CSE key; one
    // large enough that gathers and scatters run as two halves (>= 512 rows).
    for (vocab, seq, batch, hidden, cell) in [
        (50, 6, 4, 8, SeedCell::Lstm),
        (50, 6, 20, 12, SeedCell::Lstm),
        (600, 10, 60, 8, SeedCell::Lstm),
        (50, 6, 20, 12, SeedCell::Gru),
        (50, 6, 20, 12, SeedCell::BiLstm),
    ] {
        let c = SeedConfig {
            vocab,
            embed: 8,
            hidden,
            layers: 2,
            seq,
            batch,
            dtype: DType::F32,
            cell,
        };
        let (g, feeds, outs) = seed_training_graph(&c, 5);
        let want = run(&g, &feeds, &outs, Precision::F64).unwrap();
        for (fuse, threads) in [(true, 2), (false, 2), (true, 1)] {
            let mut plan = compile(
                &g,
                &CompileOptions {
                    fuse,
                    threads,
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(
                plan.stats().split_steps > 0,
                threads > 1,
                "the recurrences run on both cores"
            );
            assert_eq!(
                plan.stats().run_shared_buffers > 0,
                threads > 1,
                "the steps' temporaries share memory inside the split runs"
            );
            for (n, t) in &feeds {
                plan.set(*n, t).unwrap();
            }
            plan.run().unwrap();
            for (k, &o) in outs.iter().enumerate() {
                let got = plan.get(o).unwrap();
                let w = worst(&got, &want[k], 1e-3);
                assert!(w < 1e-5, "{cell:?} B={batch} output {k} ({}), fuse {fuse}, threads {threads}: relative error {w:e}", g.describe(o));
            }
            let s = plan.stats();
            assert!(
                s.fallbacks.keys().all(|k| k == "transpose"),
                "only the ids transpose falls back: {:?}",
                s.fallbacks
            );
            if fuse {
                assert!(s.kernel_steps < 200, "{s:?}");
            }
        }
    }
}

#[test]
fn out_of_range_ids_are_an_error_before_anything_runs() {
    let c = SeedConfig {
        vocab: 50,
        embed: 8,
        hidden: 8,
        layers: 1,
        seq: 3,
        batch: 2,
        dtype: DType::F32,
        ..Default::default()
    };
    let (g, feeds, _) = seed_training_graph(&c, 1);
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    for (n, t) in &feeds {
        plan.set(*n, t).unwrap();
    }
    let ids = g.find_input("ids").unwrap();
    plan.set(ids, &Tensor::i64([2, 3], vec![1, 2, 3, 4, 77, 5]).unwrap())
        .unwrap();
    let e = plan.run().unwrap_err().to_string();
    assert!(
        e.ends_with("gather: id 77 at position 4 is outside the vocabulary of 50"),
        "{e}"
    );
    let bad = plan
        .set(ids, &Tensor::i64([3, 2], vec![0; 6]).unwrap())
        .unwrap_err()
        .to_string();
    assert_eq!(bad, "plan: input 'ids' expects i64[2,3], got i64[3,2]");
}

/// The first layer's lookup of a whole sequence becomes one lookup a step (the vocabulary is
/// smaller than the lookups, so the projected table is what is looked up), each run just
/// before its step on both cores, in memory the next step's lookup reuses; the logits match
/// the interpreter.
#[test]
fn a_sequence_lookup_runs_a_step_at_a_time_where_it_is_read() {
    let c = SeedConfig {
        vocab: 20,
        embed: 8,
        hidden: 8,
        layers: 1,
        seq: 12,
        batch: 6,
        dtype: DType::F32,
        ..Default::default()
    };
    let (mut g, feeds, outs) = seed_training_graph(&c, 9);
    let logits = outs[1];
    g.set_outputs(vec![logits]);
    let want = run(&g, &feeds, &[logits], Precision::F64).unwrap();
    let mut plan = compile(
        &g,
        &CompileOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let steps = step_names(&plan);
    let lookups: Vec<usize> = (0..steps.len())
        .filter(|&k| steps[k].starts_with("gather"))
        .collect();
    assert_eq!(lookups.len(), c.seq, "one lookup a step: {steps:#?}");
    assert!(
        lookups.windows(2).all(|w| w[1] - w[0] >= 2),
        "each runs with its step, not all first: {lookups:?}"
    );
    // Every step's lookup writes one [B, 4H] block, reused from step to step: the whole arena
    // is smaller than the sequence's projected rows alone (it held them all).
    let (b, h4) = (c.batch, 4 * c.hidden);
    assert!(plan.stats().run_shared_buffers > 0, "{:?}", plan.stats());
    assert!(
        plan.stats().arena_bytes < c.seq * b * h4 * 4,
        "arena {} bytes",
        plan.stats().arena_bytes
    );
    for (n, t) in &feeds {
        plan.set(*n, t).unwrap();
    }
    plan.run().unwrap();
    let w = worst(&plan.get(logits).unwrap(), &want[0], 1e-3);
    assert!(w < 1e-5, "relative error {w:e}");
}

/// On AVX-512 hosts each recurrent weight is packed into column panels once a run (`W_hh^T`
/// for the forward steps, `W_hh` for the backward ones, per layer) and every per-step product
/// reads the panels; loss and gradients match the interpreter, on both cores and on one.
#[test]
fn recurrent_weights_are_packed_once_and_every_step_reads_the_panels() {
    let c = SeedConfig {
        vocab: 30,
        embed: 8,
        hidden: 8,
        layers: 2,
        seq: 12,
        batch: 10,
        dtype: DType::F32,
        ..Default::default()
    };
    let (g, feeds, outs) = seed_training_graph(&c, 4);
    let want = run(&g, &feeds, &outs, Precision::F64).unwrap();
    let avx512 = Backend::all_available().contains(&Backend::Avx512);
    for threads in [2, 1] {
        let mut plan = compile(
            &g,
            &CompileOptions {
                threads,
                ..Default::default()
            },
        )
        .unwrap();
        let steps = step_names(&plan);
        let packs = steps
            .iter()
            .filter(|d| d.starts_with("pack panels"))
            .count();
        let packed = steps.iter().filter(|d| d.ends_with("(panels)")).count();
        if avx512 {
            assert_eq!(packs, 4, "two weights a layer, two layers: {steps:#?}");
            // Per layer, T - 1 steps multiply by W_hh^T going forward and by W_hh going back.
            assert_eq!(packed, 2 * 2 * (c.seq - 1), "{steps:#?}");
        } else {
            assert_eq!((packs, packed), (0, 0));
        }
        for (n, t) in &feeds {
            plan.set(*n, t).unwrap();
        }
        plan.run().unwrap();
        for (k, &o) in outs.iter().enumerate() {
            let w = worst(&plan.get(o).unwrap(), &want[k], 1e-3);
            assert!(
                w < 1e-5,
                "threads {threads}, output {k}: relative error {w:e}"
            );
        }
    }
}

/// A reshape and a row slice of ids are windows on the ids' own memory: a gather through
/// them reads the right ids, with no fallback step, and follows new ids.
#[test]
fn reshaped_and_sliced_ids_are_views() {
    let mut g = Graph::new();
    let table = g.input("table", TensorType::f32([10, 3]));
    let ids = g.input("ids", TensorType::i64([4, 6]));
    let flat = g.reshape(ids, [24]).unwrap();
    let part = g.slice(flat, 0, 6, 18).unwrap();
    let rows = g.reshape(part, [2, 6]).unwrap();
    let second = g.slice(rows, 0, 1, 2).unwrap();
    let y = g.gather(table, part).unwrap();
    let z = g.gather(table, second).unwrap();
    g.set_outputs(vec![y, z]);
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    let steps = step_names(&plan);
    assert!(
        !steps.iter().any(|d| d.starts_with("fallback")),
        "{steps:?}"
    );
    let mut rng = StdRng::seed_from_u64(5);
    let t = rand_f32(&mut rng, &[10, 3], 1.0);
    plan.set(table, &t).unwrap();
    for round in 0..2 {
        let v: Vec<i64> = (0..24).map(|i| (i * 7 + round * 3) % 10).collect();
        let feeds: Feeds = [
            (table, t.clone()),
            (ids, Tensor::i64([4, 6], v.clone()).unwrap()),
        ]
        .into_iter()
        .collect();
        plan.set(ids, &feeds[&ids]).unwrap();
        plan.run().unwrap();
        let want = run(&g, &feeds, &[y, z], Precision::F64).unwrap();
        for (k, &out) in [y, z].iter().enumerate() {
            let got = plan.get(out).unwrap();
            assert_eq!(got.shape(), want[k].shape());
            assert_eq!(worst(&got, &want[k], 0.0), 0.0, "round {round}, output {k}");
        }
        // Output z is row 1 of the middle twelve ids: ids 12..18 of the table's rows.
        let t_rows = t.to_f64_vec();
        let z_got = plan.get(z).unwrap().to_f64_vec();
        assert_eq!(
            z_got[..3],
            t_rows[v[12] as usize * 3..v[12] as usize * 3 + 3]
        );
    }
}

/// A cheap derivative (`s (1 - s)` of a sigmoid) is computed where the backward pass reads
/// it, from `s`, instead of beside `s` in the forward kernel and stored: the forward kernel
/// writes `s` alone, and the gradient matches the interpreter.
#[test]
fn cheap_derivatives_are_recomputed_in_the_backward_kernel() {
    let (b, h) = (4, 6);
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([b, h]));
    let w = g.input("w", TensorType::f32([h, h]));
    let s = g.sigmoid(x).unwrap();
    let z = g.matmul(s, w).unwrap();
    let zz = g.mul(z, z).unwrap();
    let loss = g.sum_all(zz).unwrap();
    let dx = grad(&mut g, loss, &[x]).unwrap()[0];
    g.set_outputs(vec![loss, dx]);
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    let text = plan.explain();
    let forward: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("formula:") && l.contains("sigmoid("))
        .collect();
    assert_eq!(forward.len(), 1, "{text}");
    assert!(
        forward[0].contains("y0 = sigmoid(") && !forward[0].contains("y1"),
        "the forward kernel writes s alone: {text}"
    );
    let mut rng = StdRng::seed_from_u64(9);
    let feeds: Feeds = [
        (x, rand_f32(&mut rng, &[b, h], 2.0)),
        (w, rand_f32(&mut rng, &[h, h], 1.0)),
    ]
    .into_iter()
    .collect();
    for (n, t) in &feeds {
        plan.set(*n, t).unwrap();
    }
    plan.run().unwrap();
    let want = run(&g, &feeds, &[dx], Precision::F64).unwrap();
    assert!(worst(&plan.get(dx).unwrap(), &want[0], 1e-4) < 1e-5);
}

/// A value that a kernel far later reads (an LSTM's `tanh(c)`, read by its step's backward
/// kernel) is recomputed there from the cell state, which is kept until about then anyway:
/// the backward kernels compute `tanh`, the plan keeps less memory than with `remat` off, and
/// its results are the same bit for bit (and the interpreter's).
#[test]
fn far_read_values_are_recomputed_where_they_are_read() {
    if Backend::host().splits_transcendental_chains() {
        return; // not made where each polynomial is a kernel of its own
    }
    let c = SeedConfig {
        vocab: 50,
        embed: 8,
        hidden: 8,
        layers: 2,
        seq: 40,
        batch: 4,
        dtype: DType::F32,
        cell: SeedCell::Lstm,
    };
    let (g, feeds, outs) = seed_training_graph(&c, 3);
    let plan_of = |remat| {
        let opts = CompileOptions {
            remat,
            ..Default::default()
        };
        let mut plan = compile(&g, &opts).unwrap();
        for (n, t) in &feeds {
            plan.set(*n, t).unwrap();
        }
        plan.run().unwrap();
        plan
    };
    let (on, off) = (plan_of(true), plan_of(false));
    // Backward kernels read dh: they are the ones with the most inputs; count those that take
    // a tanh of an input (`tanh(x3)`, not of a sum), which only the recomputed ones do.
    let recomputed = |plan: &trellis_jit::Plan| {
        plan.explain()
            .lines()
            .filter(|l| l.contains("formula:"))
            .filter(|l| (0..16).any(|i| l.contains(&format!("tanh(x{i})"))) && l.contains(" - "))
            .count()
    };
    assert!(recomputed(&on) >= c.seq, "{}", on.explain());
    assert_eq!(recomputed(&off), 0, "{}", off.explain());
    assert!(
        on.arena_bytes() < off.arena_bytes(),
        "{} vs {}",
        on.arena_bytes(),
        off.arena_bytes()
    );
    let want = run(&g, &feeds, &outs, Precision::F64).unwrap();
    for (k, &o) in outs.iter().enumerate() {
        let (a, b) = (on.get(o).unwrap(), off.get(o).unwrap());
        assert_eq!(
            a.to_f64_vec(),
            b.to_f64_vec(),
            "output {k} ({})",
            g.describe(o)
        );
        assert!(worst(&a, &want[k], 1e-3) < 1e-5, "output {k}");
    }
}

/// Only a value that changes with the data is recomputed where it is read far later: one of
/// the parameters alone is computed once by a plan that caches parameter-only steps.
#[test]
fn values_of_parameters_alone_are_not_recomputed() {
    if Backend::host().splits_transcendental_chains() {
        return;
    }
    for data in [true, false] {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32([4, 4]));
        let w = if data {
            g.input("w", TensorType::f32([4, 4]))
        } else {
            g.param("w", TensorType::f32([4, 4]))
        };
        let t = g.tanh(w).unwrap();
        // Read at once, then again after a hundred products (units of their own).
        let mut a = g.mul(t, x).unwrap();
        for _ in 0..100 {
            a = g.matmul(a, x).unwrap();
        }
        let far = g.mul(a, t).unwrap();
        g.set_outputs(vec![far]);
        let plan = compile(&g, &CompileOptions::default()).unwrap();
        let with_tanh = plan
            .explain()
            .lines()
            .filter(|l| l.contains("formula:") && l.contains("tanh("))
            .count();
        assert_eq!(with_tanh, if data { 2 } else { 1 }, "{}", plan.explain());
    }
}

#[test]
fn f64_graphs_are_rejected_with_the_node_named() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f64([2]));
    let y = g.exp(x).unwrap();
    g.set_outputs(vec![y]);
    let e = compile(&g, &CompileOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("f64[2]: the JIT compiles f32 graphs"), "{e}");
}

#[test]
fn updates_apply_after_each_run() {
    // p' = p - 0.1 * d(sum(p * x))/dp = p - 0.1 x, three times; also read p' as an output.
    let mut g = Graph::new();
    let p = g.param("p", TensorType::f32([2, 3]));
    let x = g.input("x", TensorType::f32([2, 3]));
    let px = g.mul(p, x).unwrap();
    let loss = g.sum_all(px).unwrap();
    let d = grad(&mut g, loss, &[p]).unwrap()[0];
    let lr = g.scalar(0.1, DType::F32);
    let step = g.mul(lr, d).unwrap();
    let np = g.sub(p, step).unwrap();
    g.set_outputs(vec![loss]);
    let mut plan = compile(
        &g,
        &CompileOptions {
            updates: vec![(p, np)],
            ..Default::default()
        },
    )
    .unwrap();
    plan.set(p, &Tensor::f32([2, 3], vec![1.0; 6]).unwrap())
        .unwrap();
    plan.set(
        x,
        &Tensor::f32([2, 3], vec![1.0, 2.0, 3.0, -1.0, 0.0, 10.0]).unwrap(),
    )
    .unwrap();
    let mut losses = Vec::new();
    for _ in 0..3 {
        plan.run().unwrap();
        losses.push(plan.get(loss).unwrap().to_f64_vec()[0]);
    }
    let got = plan.get(p).unwrap().to_f32_vec();
    let want: Vec<f32> = [1.0f32, 2.0, 3.0, -1.0, 0.0, 10.0]
        .iter()
        .map(|x| 1.0 - 0.3 * x)
        .collect();
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "{got:?} vs {want:?}");
    }
    // loss_k = sum(p_k x) with p_k = 1 - 0.1 k x: 15, 15 - 0.1*115, 15 - 0.2*115.
    for (k, l) in losses.iter().enumerate() {
        assert!(
            (l - (15.0 - 0.1 * k as f64 * 115.0)).abs() < 1e-4,
            "{losses:?}"
        );
    }
}

/// The LSTM cell fuses into one group. On the backends that cut chained transcendentals it is
/// emitted as two kernels: gates and `c` (with `o` handed over), then `h = o tanh(c)`; on the
/// AVX-512 code, as one kernel. Both match the interpreter.
#[test]
fn lstm_cell_is_one_kernel_or_two_cut_at_tanh_c() {
    let (b, h) = (6, 5);
    let mut g = Graph::new();
    let z = g.input("z", TensorType::f32([b, 4 * h]));
    let c0 = g.input("c0", TensorType::f32([b, h]));
    let s = |g: &mut Graph, k: usize| g.slice(z, 1, k * h, (k + 1) * h).unwrap();
    let (zi, zf, zg, zo) = (s(&mut g, 0), s(&mut g, 1), s(&mut g, 2), s(&mut g, 3));
    let i = g.sigmoid(zi).unwrap();
    let f = g.sigmoid(zf).unwrap();
    let gg = g.tanh(zg).unwrap();
    let o = g.sigmoid(zo).unwrap();
    let fc = g.mul(f, c0).unwrap();
    let ig = g.mul(i, gg).unwrap();
    let c = g.add(fc, ig).unwrap();
    let tc = g.tanh(c).unwrap();
    let hh = g.mul(o, tc).unwrap();
    g.set_outputs(vec![hh, c]);
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    let kernels: Vec<String> = step_names(&plan)
        .into_iter()
        .filter(|d| d.starts_with("kernel"))
        .collect();
    if Backend::host().splits_transcendental_chains() {
        assert_eq!(kernels.len(), 2, "{kernels:?}");
        assert!(
            kernels[0].contains("ins 5 outs 2"),
            "gates: four slices of z and c0 -> c, o: {kernels:?}"
        );
        assert!(
            kernels[1].contains("ins 2 outs 1"),
            "h from c and o: {kernels:?}"
        );
    } else {
        assert_eq!(kernels.len(), 1, "{kernels:?}");
        assert!(
            kernels[0].contains("ins 5 outs 2"),
            "four slices of z and c0 -> h, c: {kernels:?}"
        );
    }
    // explain() shows each kernel's formula and the nodes it holds.
    let kept = compile(
        &g,
        &CompileOptions {
            keep_graph: true,
            ..Default::default()
        },
    )
    .unwrap();
    let text = kept.explain();
    assert_eq!(text.matches("formula:").count(), kernels.len(), "{text}");
    if kernels.len() == 2 {
        assert!(text.contains("y0 = sigmoid(x"), "o, a gate output: {text}");
    }
    assert!(text.contains("tanh(x"), "{text}");
    assert!(
        text.contains("(sigmoid)") && text.contains("(tanh)"),
        "{text}"
    );
    assert!(kept.graph().is_some() && plan.graph().is_none());

    let mut rng = StdRng::seed_from_u64(3);
    let feeds: Feeds = [
        (z, rand_f32(&mut rng, &[b, 4 * h], 3.0)),
        (c0, rand_f32(&mut rng, &[b, h], 1.0)),
    ]
    .into_iter()
    .collect();
    let want = run(&g, &feeds, &[hh, c], Precision::F64).unwrap();
    for (n, t) in &feeds {
        plan.set(*n, t).unwrap();
    }
    plan.run().unwrap();
    for (k, &out) in [hh, c].iter().enumerate() {
        let w = worst(&plan.get(out).unwrap(), &want[k], 1e-3);
        assert!(w < 1e-5, "output {k}: relative error {w:e}");
    }
}

/// An inference plan skips its parameter-only steps (the embedding table times the first
/// layer's input weights) while no parameter is set, and runs them again after one is: new
/// ids alone, then a new embedding, both match the interpreter.
#[test]
fn parameter_only_steps_rerun_after_a_parameter_changes() {
    let c = SeedConfig {
        vocab: 12,
        embed: 6,
        hidden: 8,
        layers: 2,
        seq: 10,
        batch: 4,
        dtype: DType::F32,
        ..Default::default()
    };
    let mut g = Graph::new();
    let m = seed_model(&mut g, &c).unwrap();
    g.set_outputs(vec![m.logits]);
    let mut rng = StdRng::seed_from_u64(11);
    let mut feeds: Feeds = m
        .params
        .iter()
        .map(|&p| (p, rand_f32(&mut rng, g.ty(p).dims(), 0.5)))
        .collect();
    let ids = |rng: &mut StdRng| {
        let v = (0..c.batch * c.seq)
            .map(|_| rng.gen_range(0..c.vocab as i64))
            .collect();
        Tensor::i64([c.batch, c.seq], v).unwrap()
    };
    feeds.insert(m.ids, ids(&mut rng));
    feeds.insert(
        m.labels,
        Tensor::f32([c.batch, 1], vec![0.0; c.batch]).unwrap(),
    );
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    assert!(plan.stats().invariant_steps > 0, "{:?}", plan.stats());
    // The ids are transposed to time-major by a step of their own, which reruns with the ids.
    let steps = step_names(&plan);
    assert!(
        steps.iter().any(|d| d.starts_with("transpose ids"))
            && !steps.iter().any(|d| d.starts_with("fallback")),
        "{steps:?}"
    );
    let check = |plan: &mut trellis_jit::Plan, feeds: &Feeds, what: &str| {
        for (n, t) in feeds {
            plan.set(*n, t).unwrap();
        }
        plan.run().unwrap();
        let want = run(&g, feeds, &[m.logits], Precision::F64).unwrap();
        let w = worst(&plan.get(m.logits).unwrap(), &want[0], 1e-3);
        assert!(w < 1e-5, "{what}: relative error {w:e}");
    };
    check(&mut plan, &feeds, "first run");
    // Only the ids change: the cached table stays valid.
    let new_ids = ids(&mut rng);
    plan.set(m.ids, &new_ids).unwrap();
    plan.run().unwrap();
    feeds.insert(m.ids, new_ids);
    let want = run(&g, &feeds, &[m.logits], Precision::F64).unwrap();
    let w = worst(&plan.get(m.logits).unwrap(), &want[0], 1e-3);
    assert!(w < 1e-5, "new ids: relative error {w:e}");
    // A new embedding: the table is recomputed.
    let emb = m.params[0];
    feeds.insert(emb, rand_f32(&mut rng, g.ty(emb).dims(), 0.5));
    check(&mut plan, &feeds, "new embedding");
}

/// `after(x, d)` lowers as a view of `x`: no step of its own, no fallback, and the value of
/// the interpreter (read through by a kernel, and as an output).
#[test]
fn after_is_a_view_of_its_value() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([4, 6]));
    let d = g.input("d", TensorType::f32([4, 6]));
    let dep = g.exp(d).unwrap();
    let a = g.after(x, &[dep]).unwrap();
    let y = g.tanh(a).unwrap();
    let z = g.mul(y, dep).unwrap();
    g.set_outputs(vec![a, z]);
    let mut rng = StdRng::seed_from_u64(3);
    let feeds: Feeds = [x, d]
        .into_iter()
        .map(|n| (n, rand_f32(&mut rng, &[4, 6], 1.0)))
        .collect();
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    assert!(plan.stats().fallbacks.is_empty(), "{:?}", plan.stats());
    for (n, t) in &feeds {
        plan.set(*n, t).unwrap();
    }
    plan.run().unwrap();
    let want = run(&g, &feeds, &[a, z], Precision::F64).unwrap();
    assert_eq!(plan.get(a).unwrap().to_f64_vec(), want[0].to_f64_vec());
    let w = worst(&plan.get(z).unwrap(), &want[1], 1e-3);
    assert!(w < 1e-5, "relative error {w:e}");
}

/// Every function of the table (`trellis_ir::functions`), forward and backward, compiled
/// (fused with a neighbour) against the f64 interpreter, on values on both sides of 0 (positive
/// only where the function is not defined below 0).
#[test]
fn every_function_forward_and_backward_matches_the_interpreter() {
    let mut rng = StdRng::seed_from_u64(15);
    for f in Unary::ALL {
        let positive = !f.eval(-1.0).is_finite();
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32([4, 9]));
        let half = g.scalar(0.5, DType::F32);
        let a = g.mul(x, half).unwrap();
        let y = g.apply(UnaryOp(f), &[a]).unwrap();
        let loss = g.sum_all(y).unwrap();
        let dx = grad(&mut g, loss, &[x]).unwrap()[0];
        g.set_outputs(vec![y, dx]);
        let mut plan = compile(&g, &CompileOptions::default()).unwrap();
        let mut v = rand_f32(&mut rng, &[4, 9], 6.0);
        if positive {
            v = Tensor::f32(
                [4, 9],
                v.to_f64_vec()
                    .iter()
                    .map(|x| x.abs() as f32 + 0.1)
                    .collect(),
            )
            .unwrap();
        }
        let feeds: Feeds = [(x, v.clone())].into_iter().collect();
        let want = run(&g, &feeds, &[y, dx], Precision::F64).unwrap();
        plan.set(x, &v).unwrap();
        plan.run().unwrap();
        for (k, &out) in [y, dx].iter().enumerate() {
            let w = worst(&plan.get(out).unwrap(), &want[k], 1e-4);
            assert!(w < 1e-5, "{f:?} output {k}: relative error {w:e}");
        }
    }
}

/// An outside op that claims a class: `class` says `kind`, the computation is its own.
#[derive(Debug)]
struct Claims {
    kind: trellis_ir::OpClass,
    ty: TensorType,
}

impl trellis_ir::Op for Claims {
    fn name(&self) -> &str {
        "claims"
    }
    fn class(&self) -> trellis_ir::OpClass {
        self.kind
    }
    fn infer(&self, _: &[&TensorType]) -> trellis_ir::Result<TensorType> {
        Ok(self.ty.clone())
    }
    /// `1 + 2 * sum(inputs)` per element: nothing a view, a reduction or a leaf computes.
    fn eval(&self, inputs: &[&Tensor]) -> trellis_ir::Result<Tensor> {
        let mut v = vec![1.0f32; self.ty.numel()];
        for t in inputs {
            for (a, b) in v.iter_mut().zip(t.to_f32_vec()) {
                *a += 2.0 * b;
            }
        }
        Tensor::f32(self.ty.dims(), v)
    }
    fn vjp(
        &self,
        _: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        _: NodeId,
    ) -> trellis_ir::Result<Vec<Option<NodeId>>> {
        Ok(vec![None; inputs.len()])
    }
}

#[test]
fn outside_ops_claiming_a_class_run_their_own_eval() {
    use trellis_ir::OpClass;
    let ty = TensorType::f32([2, 3]);
    for kind in [
        OpClass::Leaf,
        OpClass::View,
        OpClass::Contraction,
        OpClass::Reduction,
        OpClass::Index,
        OpClass::Other,
    ] {
        let mut g = Graph::new();
        let x = g.input("x", ty.clone());
        let none = g
            .apply(
                Claims {
                    kind,
                    ty: ty.clone(),
                },
                &[],
            )
            .unwrap();
        let one = g
            .apply(
                Claims {
                    kind,
                    ty: ty.clone(),
                },
                &[x],
            )
            .unwrap();
        let y = g.add(none, one).unwrap();
        g.set_outputs(vec![y]);
        let xv = Tensor::f32([2, 3], vec![0.5, -1.0, 2.0, 0.0, 3.0, -0.25]).unwrap();
        let mut plan = compile(&g, &CompileOptions::default()).unwrap();
        plan.set(x, &xv).unwrap();
        plan.run().unwrap();
        // 1 + (1 + 2x) per element.
        let want: Vec<f32> = xv.to_f32_vec().iter().map(|v| 2.0 + 2.0 * v).collect();
        assert_eq!(plan.get(y).unwrap().to_f32_vec(), want, "{kind:?}");
    }
}
