//! Compiled plans against the reference interpreter.
mod common;
use common::{
    assert_plan_matches, compile_threads, rand_f32, seed_training_graph, step_names, worst,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis_autodiff::grad;
use trellis_ir::models::{seed_model, SeedCell, SeedConfig};
use trellis_ir::ops::UnaryOp;
use trellis_ir::{run, DType, Feeds, Graph, NodeId, Precision, Tensor, TensorType, Unary};
use trellis_jit::{compile, Backend, CompileOptions};

#[test]
fn seed_model_loss_and_every_gradient_match_the_interpreter() {
    // A tiny size; one whose batch-sized constants are too long to print in a CSE key; one
    // large enough that gathers and scatters run as two halves (>= 512 rows).
    for (vocab, seq, batch, hidden, cell) in [
        (50, 6, 4, 8, SeedCell::Lstm),
        (50, 6, 20, 12, SeedCell::Lstm),
        (600, 10, 60, 8, SeedCell::Lstm),
        (50, 6, 20, 12, SeedCell::Gru),
        (50, 6, 20, 12, SeedCell::Rnn),
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
        let mut plan = compile_threads(&g, threads);
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
        assert_plan_matches(
            &mut plan,
            &feeds,
            &outs,
            &want,
            &format!("threads {threads}"),
        );
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

/// A batch-major float sequence (`[B, T, F]`: a time series) reaches its LSTM through a
/// swap of the leading axes, the output sequence leaves through another, and its gradient
/// comes back through a third: all row copies of their own (the general transpose had fallen
/// back to the interpreter, half the step of a float-input model), the first from a strided
/// window (the input is a column slice).
#[test]
fn batch_major_float_sequences_are_transposed_by_row_copies() {
    use trellis_ir::lstm::{lstm, LstmSpec, LstmWeights, SeqLayout};
    let (b, t, f, h) = (5, 7, 3, 4);
    let mut g = Graph::new();
    let wide = g.input("x", TensorType::f32([b, t, f + 2]));
    let x = g.slice(wide, 2, 1, f + 1).unwrap();
    let w_ih = g.param("w_ih", TensorType::f32([4 * h, f]));
    let w_hh = g.param("w_hh", TensorType::f32([4 * h, h]));
    let spec = LstmSpec {
        layers: vec![LstmWeights {
            w_ih,
            w_hh,
            bias: None,
        }],
        layout: SeqLayout::BatchMajor,
        return_sequences: true,
        ..Default::default()
    };
    let out = lstm(&mut g, x, &spec).unwrap().output;
    let sq = g.mul(out, out).unwrap();
    let loss = g.mean_all(sq).unwrap();
    let grads = grad(&mut g, loss, &[w_ih, w_hh]).unwrap();
    let outs: Vec<NodeId> = [out, loss].into_iter().chain(grads).collect();
    g.set_outputs(outs.clone());
    let mut rng = StdRng::seed_from_u64(3);
    let feeds: Feeds = [
        (wide, rand_f32(&mut rng, &[b, t, f + 2], 1.0)),
        (w_ih, rand_f32(&mut rng, &[4 * h, f], 0.5)),
        (w_hh, rand_f32(&mut rng, &[4 * h, h], 0.5)),
    ]
    .into_iter()
    .collect();
    let want = run(&g, &feeds, &outs, Precision::F64).unwrap();
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    let steps = step_names(&plan);
    let swaps = steps
        .iter()
        .filter(|d| d.starts_with("transpose rows"))
        .count();
    assert!(
        swaps == 3 && plan.stats().fallbacks.is_empty(),
        "{swaps} row transposes, fallbacks {:?}: {steps:?}",
        plan.stats().fallbacks
    );
    assert_plan_matches(&mut plan, &feeds, &outs, &want, "batch-major sequence");
}

/// Recurrent dropout (a `[B, H]` keep-mask on `h` where `W_hh` reads it, per layer) in a
/// two-layer LSTM and GRU: loss and weight gradients match the interpreter, with no fallback,
/// and every per-step product still reads the packed panels (the mask is applied to `h`, not
/// folded into the weight).
#[test]
fn recurrent_dropout_matches_the_interpreter() {
    use trellis_ir::gru::{gru, GruSpec, GruWeights};
    use trellis_ir::lstm::{lstm, LstmSpec, LstmWeights, SeqLayout};
    // T - 1 per-step products per weight and direction: enough to pack panels.
    let (b, t, f, h) = (5, 10, 3, 8);
    for gates in [4, 3] {
        let mut g = Graph::new();
        let mut rng = StdRng::seed_from_u64(5);
        let mut feeds = Feeds::new();
        let x = g.input("x", TensorType::f32([t, b, f]));
        feeds.insert(x, rand_f32(&mut rng, &[t, b, f], 1.0));
        let (mut weights, mut masks) = (Vec::new(), Vec::new());
        for l in 0..2 {
            let mut param = |g: &mut Graph, name: String, shape: &[usize]| {
                let p = g.param(&name, TensorType::f32(shape));
                feeds.insert(p, rand_f32(&mut rng, shape, 0.5));
                p
            };
            let w_ih = param(&mut g, format!("w_ih{l}"), &[gates * h, [f, h][l]]);
            let w_hh = param(&mut g, format!("w_hh{l}"), &[gates * h, h]);
            let bias = param(&mut g, format!("b{l}"), &[gates * h]);
            weights.push((w_ih, w_hh, bias));
            let m = g.input(&format!("keep{l}"), TensorType::f32([b, h]));
            let keep = (0..b * h).map(|i| ((i * 7 + l) % 4 != 0) as u8 as f32 / 0.75);
            feeds.insert(m, Tensor::f32([b, h], keep.collect()).unwrap());
            masks.push(m);
        }
        let out = if gates == 4 {
            let spec = LstmSpec {
                layers: weights
                    .iter()
                    .map(|&(w_ih, w_hh, b)| LstmWeights {
                        w_ih,
                        w_hh,
                        bias: Some(b),
                    })
                    .collect(),
                layout: SeqLayout::TimeMajor,
                return_sequences: true,
                recurrent_dropout: Some(masks),
                ..Default::default()
            };
            lstm(&mut g, x, &spec).unwrap().output
        } else {
            let spec = GruSpec {
                layers: weights
                    .iter()
                    .map(|&(w_ih, w_hh, b)| GruWeights {
                        w_ih,
                        w_hh,
                        b_ih: Some(b),
                        b_hh: None,
                    })
                    .collect(),
                layout: SeqLayout::TimeMajor,
                return_sequences: true,
                recurrent_dropout: Some(masks),
                ..Default::default()
            };
            gru(&mut g, x, &spec).unwrap().output
        };
        let sq = g.mul(out, out).unwrap();
        let loss = g.mean_all(sq).unwrap();
        let wrt: Vec<NodeId> = weights.iter().flat_map(|&(a, b, c)| [a, b, c]).collect();
        let grads = grad(&mut g, loss, &wrt).unwrap();
        let outs: Vec<NodeId> = [out, loss].into_iter().chain(grads).collect();
        g.set_outputs(outs.clone());
        let want = run(&g, &feeds, &outs, Precision::F64).unwrap();
        let mut plan = compile(&g, &CompileOptions::default()).unwrap();
        let steps = step_names(&plan);
        assert!(
            plan.stats().fallbacks.is_empty(),
            "{gates} gates: fallbacks {:?}",
            plan.stats().fallbacks
        );
        if Backend::all_available().contains(&Backend::Avx512) {
            let packed = steps.iter().filter(|d| d.ends_with("(panels)")).count();
            assert_eq!(packed, 2 * 2 * (t - 1), "{gates} gates: {steps:#?}");
        }
        assert_plan_matches(&mut plan, &feeds, &outs, &want, &format!("{gates} gates"));
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

/// Views no window expresses are identity-kernel copies, not interpreter fallbacks: a reshape of
/// a column slice, RepeatVector's broadcasts (`[1, B, F] -> [T, B, F]` time-major, `[B, 1, F]
/// -> [B, T, F]` batch-major) and a `[T, F]` table added to every sample (positional
/// embeddings) as nodes and as operands of a fused product; their gradients (sums over the
/// repeated axis) too. A broadcast no window shows is one copy step, whatever the batch.
#[test]
fn strided_reshapes_and_middle_axis_broadcasts_are_copies() {
    let (b, t, f) = (5, 7, 6);
    let mut g = Graph::new();
    let x = g.param("x", TensorType::f32([b, f]));
    let pos = g.param("pos", TensorType::f32([t, f]));
    let wide = g.param("wide", TensorType::f32([b, t, f + 3]));
    let y = g.input("y", TensorType::f32([t, b, f]));
    // Time-major RepeatVector: an explicit broadcast node.
    let x1 = g.reshape(x, [1, b, f]).unwrap();
    let rep_t = g.broadcast_to(x1, &[t, b, f].into()).unwrap();
    // Batch-major: the broadcast implied by a product's operand.
    let xb = g.reshape(x, [b, 1, f]).unwrap();
    let yb = g.transpose(y, &[1, 0, 2]).unwrap();
    let rep_b = g.mul(xb, yb).unwrap();
    // A reshape of a column slice (strided rows).
    let cols = g.slice(wide, 2, 2, f + 2).unwrap();
    let flat = g.reshape(cols, [b * t * f]).unwrap();
    let s1 = g.mul(rep_t, y).unwrap();
    let s1 = g.sum_all(s1).unwrap();
    let s2 = g.mul(rep_b, rep_b).unwrap();
    let s2 = g.sum_all(s2).unwrap();
    let s3 = g.mul(flat, flat).unwrap();
    let s3 = g.sum_all(s3).unwrap();
    let placed = g.add(yb, pos).unwrap();
    let s4 = g.mul(placed, placed).unwrap();
    let s4 = g.sum_all(s4).unwrap();
    let l = g.add(s1, s2).unwrap();
    let l = g.add(l, s4).unwrap();
    let loss = g.add(l, s3).unwrap();
    let grads = grad(&mut g, loss, &[x, wide, pos]).unwrap();
    let outs: Vec<NodeId> = [rep_t, rep_b, flat, loss]
        .into_iter()
        .chain(grads)
        .collect();
    g.set_outputs(outs.clone());
    let mut rng = StdRng::seed_from_u64(11);
    let feeds: Feeds = [
        (x, rand_f32(&mut rng, &[b, f], 1.0)),
        (wide, rand_f32(&mut rng, &[b, t, f + 3], 1.0)),
        (y, rand_f32(&mut rng, &[t, b, f], 1.0)),
        (pos, rand_f32(&mut rng, &[t, f], 1.0)),
    ]
    .into_iter()
    .collect();
    let want = run(&g, &feeds, &outs, Precision::F64).unwrap();
    for threads in [1, 2] {
        let mut plan = compile_threads(&g, threads);
        let fallbacks = &plan.stats().fallbacks;
        assert!(
            fallbacks.is_empty(),
            "left to the interpreter: {fallbacks:?}"
        );
        let names = step_names(&plan);
        // RepeatVector both ways and the table: one step each (not one a block).
        let mut copies: Vec<&str> = names
            .iter()
            .filter(|n| n.starts_with("copies"))
            .map(|n| n.as_str())
            .collect();
        copies.sort();
        assert_eq!(
            copies,
            [
                "copies 5 blocks of 7x6",
                "copies 5 blocks of 7x6",
                "copies 7 blocks of 5x6"
            ]
        );
        assert_plan_matches(
            &mut plan,
            &feeds,
            &outs,
            &want,
            &format!("threads {threads}"),
        );
    }
}

/// Batched products (`[G, M, K] x [G, K, N]`, every transpose flag) run as one GEMM per entry
/// on row windows and match the interpreter forward and backward: on plain parameters, on a
/// reshaped view, on a transposed operand and on a broadcast one (copied first).
#[test]
fn batched_matmuls_match_the_interpreter() {
    let (e, m, k, n) = (3, 4, 5, 6);
    let mut g = Graph::new();
    let mut params = Vec::new();
    let mut outs = Vec::new();
    let mut loss: Option<NodeId> = None;
    let mut rng = StdRng::seed_from_u64(12);
    let mut feeds = Feeds::new();
    for (i, (ta, tb)) in [(false, false), (true, false), (false, true), (true, true)]
        .into_iter()
        .enumerate()
    {
        let ad = if ta { [e, k, m] } else { [e, m, k] };
        let bd = if tb { [e, n, k] } else { [e, k, n] };
        // A flat parameter seen as a batch (a reshape view) on the left.
        let a = g.param(&format!("a{i}"), TensorType::f32([ad[0] * ad[1], ad[2]]));
        feeds.insert(a, rand_f32(&mut rng, &[ad[0] * ad[1], ad[2]], 1.0));
        let a3 = g.reshape(a, ad).unwrap();
        let b = g.param(&format!("b{i}"), TensorType::f32(bd));
        feeds.insert(b, rand_f32(&mut rng, &bd, 1.0));
        let c = g.matmul_t(a3, b, ta, tb).unwrap();
        assert_eq!(g.ty(c).dims(), &[e, m, n]);
        outs.push(c);
        params.extend([a, b]);
        let s = g.mul(c, c).unwrap();
        let s = g.sum_all(s).unwrap();
        loss = Some(loss.map_or(s, |l| g.add(l, s).unwrap()));
    }
    // One matrix broadcast to every entry, and a transposed (materialised) left operand.
    let w = g.param("w", TensorType::f32([1, k, n]));
    feeds.insert(w, rand_f32(&mut rng, &[1, k, n], 1.0));
    let wb = g.broadcast_to(w, &[e, k, n].into()).unwrap();
    let x = g.param("x", TensorType::f32([m, e, k]));
    feeds.insert(x, rand_f32(&mut rng, &[m, e, k], 1.0));
    let xt = g.transpose(x, &[1, 0, 2]).unwrap();
    let c = g.matmul(xt, wb).unwrap();
    outs.push(c);
    params.extend([w, x]);
    let s = g.sum_all(c).unwrap();
    let loss = g.add(loss.unwrap(), s).unwrap();
    let grads = grad(&mut g, loss, &params).unwrap();
    outs.push(loss);
    outs.extend(grads);
    g.set_outputs(outs.clone());
    let want = run(&g, &feeds, &outs, Precision::F64).unwrap();
    for threads in [1, 2] {
        let mut plan = compile_threads(&g, threads);
        let stats = plan.stats().clone();
        assert!(
            stats.fallbacks.is_empty(),
            "left to the interpreter: {:?}",
            stats.fallbacks
        );
        // 5 forward products and 10 gradient products, each one GEMM per entry.
        assert_eq!(stats.gemms, 15 * e, "{stats:?}");
        for (p, t) in &feeds {
            plan.set(*p, t).unwrap();
        }
        plan.run().unwrap();
        for (i, &o) in outs.iter().enumerate() {
            let (got, want) = (plan.get(o).unwrap().to_f64_vec(), want[i].to_f64_vec());
            let scale = want.iter().fold(1.0f64, |s, v| s.max(v.abs()));
            for (u, v) in got.iter().zip(&want) {
                // f32 sums of up to 30 products of values in (-1, 1), against f64.
                assert!(
                    (u - v).abs() <= 1e-5 * scale,
                    "threads {threads}, output {i}: {u} vs {v}"
                );
            }
        }
    }
}

/// Concats and reshapes the windows cannot all show: a middle-axis concat (no windows) inside
/// a last-axis one (which places its operands), and a reshape of a broadcast, then broadcast
/// again. Both compile with nothing left to the interpreter but the inner concat, and match it.
#[test]
fn nested_concats_and_reshaped_broadcasts_match_the_interpreter() {
    let mut g = Graph::new();
    let a = g.param("a", TensorType::f32([3, 2, 4]));
    let c = g.param("c", TensorType::f32([3, 3, 4]));
    let d = g.param("d", TensorType::f32([3, 5, 2]));
    let (aa, cc) = (g.mul(a, a).unwrap(), g.mul(c, c).unwrap());
    let inner = g.concat(&[aa, cc], 1).unwrap();
    let outer = g.concat(&[inner, d], 2).unwrap();
    let p = g.param("p", TensorType::f32([4]));
    let pb = g.broadcast_to(p, &[3, 4].into()).unwrap();
    let p3 = g.reshape(pb, [3, 1, 4]).unwrap();
    let sum = g.add(p3, c).unwrap();
    let (s1, s2) = (g.sum_all(outer).unwrap(), g.sum_all(sum).unwrap());
    let loss = g.add(s1, s2).unwrap();
    let grads = grad(&mut g, loss, &[a, c, d, p]).unwrap();
    let outs: Vec<NodeId> = [outer, sum, loss].into_iter().chain(grads).collect();
    g.set_outputs(outs.clone());
    let mut rng = StdRng::seed_from_u64(5);
    let feeds: Feeds = [
        (a, rand_f32(&mut rng, &[3, 2, 4], 1.0)),
        (c, rand_f32(&mut rng, &[3, 3, 4], 1.0)),
        (d, rand_f32(&mut rng, &[3, 5, 2], 1.0)),
        (p, rand_f32(&mut rng, &[4], 1.0)),
    ]
    .into_iter()
    .collect();
    let want = run(&g, &feeds, &outs, Precision::F64).unwrap();
    for threads in [1, 2] {
        let mut plan = compile_threads(&g, threads);
        let fallbacks = &plan.stats().fallbacks;
        assert!(
            fallbacks.keys().all(|k| k == "concat"),
            "left to the interpreter: {fallbacks:?}"
        );
        assert_plan_matches(
            &mut plan,
            &feeds,
            &outs,
            &want,
            &format!("threads {threads}"),
        );
    }
}

/// A broadcast large enough that its copy step splits its blocks across the two threads (a
/// `[64, 32]` table added to 48 samples, 98,304 elements): the same values and gradients as
/// the interpreter at one thread and two.
#[test]
fn a_large_block_broadcast_copies_on_both_threads() {
    let (b, t, d) = (48, 64, 32);
    let mut g = Graph::new();
    let x = g.param("x", TensorType::f32([b, t, d]));
    let pos = g.param("pos", TensorType::f32([t, d]));
    let y = g.add(x, pos).unwrap();
    let y2 = g.mul(y, y).unwrap();
    let loss = g.sum_all(y2).unwrap();
    let grads = grad(&mut g, loss, &[x, pos]).unwrap();
    let outs: Vec<NodeId> = [y, loss].into_iter().chain(grads).collect();
    g.set_outputs(outs.clone());
    let mut rng = StdRng::seed_from_u64(8);
    let feeds: Feeds = [
        (x, rand_f32(&mut rng, &[b, t, d], 1.0)),
        (pos, rand_f32(&mut rng, &[t, d], 1.0)),
    ]
    .into_iter()
    .collect();
    let want = run(&g, &feeds, &outs, Precision::F64).unwrap();
    for threads in [1, 2] {
        let mut plan = compile_threads(&g, threads);
        let names = step_names(&plan);
        assert!(
            names.contains(&format!("copies {b} blocks of {t}x{d}")),
            "{names:?}"
        );
        assert_plan_matches(
            &mut plan,
            &feeds,
            &outs,
            &want,
            &format!("threads {threads}"),
        );
    }
}
