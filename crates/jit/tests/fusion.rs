//! Which kernels the compiler forms and what they keep in memory: the LSTM cell's kernels,
//! cheap derivatives recomputed where the backward pass reads them, far-read values
//! rematerialised (`remat`), each checked against the interpreter.
#[allow(dead_code)]
mod common;
use common::{
    assert_plan_matches, compile_threads, rand_f32, seed_training_graph, step_names, worst,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use trellis_autodiff::grad;
use trellis_ir::models::{SeedCell, SeedConfig};
use trellis_ir::{run, DType, Feeds, Graph, Precision, TensorType};
use trellis_jit::{compile, Backend, CompileOptions};

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
    assert_plan_matches(&mut plan, &feeds, &[hh, c], &want, "lstm cell");
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

/// A kernel over a narrow grid (a `[768, 1]` column, `[64, 12]` tag scores) runs regrouped
/// into wider rows when every operand is contiguous or a scalar (`768x1` as `12x64`, `64x12` as
/// `16x48`); a strided column or a per-row broadcast keeps the grid (a strided column
/// broadcast along the row is a window too: it had fallen back to the interpreter). All match
/// the interpreter, at one thread and two.
#[test]
fn narrow_kernels_run_regrouped_when_their_operands_allow() {
    let mut g = Graph::new();
    let col = g.input("col", TensorType::f32([768, 1]));
    let tags = g.input("tags", TensorType::f32([64, 12]));
    let three = g.input("three", TensorType::f32([768, 3]));
    let e = g.exp(col).unwrap();
    let half = g.scalar(0.5, DType::F32);
    let a = g.mul(e, half).unwrap(); // contiguous and a scalar: regrouped
    let t = g.tanh(tags).unwrap();
    let b = g.mul(t, t).unwrap(); // contiguous: regrouped
    let strided = g.slice(three, 1, 1, 2).unwrap();
    let c = g.sigmoid(strided).unwrap(); // a strided column: kept
    let per_row = g.slice(tags, 1, 0, 1).unwrap();
    let d = g.sub(tags, per_row).unwrap(); // a per-row broadcast: kept
    let outs = vec![a, b, c, d];
    g.set_outputs(outs.clone());
    let mut rng = StdRng::seed_from_u64(21);
    let feeds: Feeds = [
        (col, rand_f32(&mut rng, &[768, 1], 2.0)),
        (tags, rand_f32(&mut rng, &[64, 12], 2.0)),
        (three, rand_f32(&mut rng, &[768, 3], 2.0)),
    ]
    .into();
    let want = run(&g, &feeds, &outs, Precision::F64).unwrap();
    for threads in [1, 2] {
        let mut plan = compile_threads(&g, threads);
        let names = step_names(&plan);
        assert!(plan.stats().fallbacks.is_empty(), "{names:#?}");
        for grid in [
            "kernel 12x64 ",
            "kernel 16x48 ",
            "kernel 768x1 ",
            "kernel 64x12 ",
        ] {
            assert_eq!(
                names.iter().filter(|n| n.starts_with(grid)).count(),
                1,
                "{grid}: {names:#?}"
            );
        }
        assert_plan_matches(
            &mut plan,
            &feeds,
            &outs,
            &want,
            &format!("{threads} threads"),
        );
    }
}
