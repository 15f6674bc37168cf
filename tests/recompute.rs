//! Recomputation (`autodiff::grad_recomputing`) gives the same loss and gradients as storing
//! every step, to the bit: in the interpreter (f64 and f32) and in compiled plans, for LSTM
//! and GRU stacks of two layers, masked and not, forward and reversed, with and without an
//! initial state, at several checkpoint intervals. (The plain gradients are checked against
//! central differences in `crates/autodiff/tests`; equal bits carry that over.)
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis::autodiff::{grad, grad_recomputing, Checkpoints};
use trellis::ir::gru::{gru, GruSpec, GruWeights};
use trellis::ir::lstm::{lstm, Direction, LstmSpec, LstmWeights, SeqLayout};
use trellis::ir::{run, DType, Feeds, Graph, NodeId, Precision, Tensor, TensorType};
use trellis::jit::{compile, CompileOptions, Plan};
use trellis::nn::budget::compile_within;

#[derive(Clone, Copy, Debug)]
struct Case {
    gru: bool,
    masked: bool,
    direction: Direction,
    initial: bool,
}

const T: usize = 10;
const B: usize = 3;
const IN: usize = 4;
const H: usize = 5;

/// The forward graph of `case` (two layers, every step and the final states in the loss),
/// its loss, the parameters and the values to feed.
fn model(case: Case, dtype: DType) -> (Graph, NodeId, Vec<NodeId>, Feeds) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut g = Graph::new();
    let mut feeds = Feeds::new();
    let mut leaf = |g: &mut Graph, name: &str, shape: &[usize], param: bool| {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| rng.gen_range(-0.8..0.8)).collect();
        let ty = TensorType::new(shape, dtype);
        let id = if param {
            g.param(name, ty)
        } else {
            g.input(name, ty)
        };
        let t = Tensor::f64(shape, v).unwrap().cast(dtype);
        feeds.insert(id, t);
        id
    };
    let x = leaf(&mut g, "x", &[B, T, IN], false);
    let gates = if case.gru { 3 } else { 4 };
    let mut params = Vec::new();
    let mut layers = Vec::new();
    for l in 0..2 {
        let inp = if l == 0 { IN } else { H };
        let w_ih = leaf(&mut g, &format!("w_ih{l}"), &[gates * H, inp], true);
        let w_hh = leaf(&mut g, &format!("w_hh{l}"), &[gates * H, H], true);
        let b = leaf(&mut g, &format!("b{l}"), &[gates * H], true);
        params.extend([w_ih, w_hh, b]);
        layers.push((w_ih, w_hh, b));
    }
    let states = if case.gru { 1 } else { 2 };
    let initial: Option<Vec<Vec<NodeId>>> = case.initial.then(|| {
        (0..2)
            .map(|l| {
                (0..states)
                    .map(|s| leaf(&mut g, &format!("s{l}.{s}"), &[B, H], true))
                    .collect()
            })
            .collect()
    });
    if let Some(init) = &initial {
        params.extend(init.iter().flatten());
    }
    let mask = case.masked.then(|| {
        // Row b has its last b steps padded.
        let v: Vec<f64> = (0..B)
            .flat_map(|b| (0..T).map(move |t| if t + b < T { 1.0 } else { 0.0 }))
            .collect();
        g.constant(Tensor::f64([B, T], v).unwrap().cast(dtype))
    });
    let (out, finals): (NodeId, Vec<NodeId>) = if case.gru {
        let o = gru(
            &mut g,
            x,
            &GruSpec {
                layers: layers
                    .iter()
                    .map(|&(w_ih, w_hh, b)| GruWeights {
                        w_ih,
                        w_hh,
                        b_ih: Some(b),
                        b_hh: Some(b),
                    })
                    .collect(),
                layout: SeqLayout::BatchMajor,
                return_sequences: true,
                initial_state: initial.map(|s| s.iter().map(|l| l[0]).collect()),
                direction: case.direction,
                mask,
                recurrent_dropout: None,
            },
        )
        .unwrap();
        (o.output, o.h)
    } else {
        let o = lstm(
            &mut g,
            x,
            &LstmSpec {
                layers: layers
                    .iter()
                    .map(|&(w_ih, w_hh, b)| LstmWeights {
                        w_ih,
                        w_hh,
                        bias: Some(b),
                    })
                    .collect(),
                layout: SeqLayout::BatchMajor,
                return_sequences: true,
                initial_state: initial.map(|s| s.iter().map(|l| (l[0], l[1])).collect()),
                direction: case.direction,
                mask,
                recurrent_dropout: None,
            },
        )
        .unwrap();
        (o.output, o.h.into_iter().chain(o.c).collect())
    };
    // Every output element and final state weighted differently, through a nonlinearity.
    let r = leaf(&mut g, "r", &[B, T, H], false);
    let w = g.mul(out, r).unwrap();
    let w = g.tanh(w).unwrap();
    let mut loss = g.sum_all(w).unwrap();
    for f in finals {
        let sq = g.mul(f, f).unwrap();
        let s = g.sum_all(sq).unwrap();
        loss = g.add(loss, s).unwrap();
    }
    (g, loss, params, feeds)
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for gru in [false, true] {
        for masked in [false, true] {
            for (direction, initial) in [
                (Direction::Forward, false),
                (Direction::Reverse, false),
                (Direction::Forward, true),
            ] {
                v.push(Case {
                    gru,
                    masked,
                    direction,
                    initial,
                });
            }
        }
    }
    v
}

fn bits(ts: &[Tensor]) -> Vec<Vec<u64>> {
    ts.iter()
        .map(|t| t.to_f64_vec().iter().map(|x| x.to_bits()).collect())
        .collect()
}

/// Loss and gradients, as bits, from the interpreter.
fn interpreted(case: Case, dtype: DType, ck: Option<usize>) -> Vec<Vec<u64>> {
    let (mut g, loss, params, feeds) = model(case, dtype);
    let grads = match ck {
        None => grad(&mut g, loss, &params).unwrap(),
        Some(k) => {
            let (grads, r) =
                grad_recomputing(&mut g, loss, &params, Checkpoints::Every(k)).unwrap();
            assert_eq!(r.every, k);
            // Per layer, segments but the last get a copy (without an initial state, the
            // first step is kept and a segment of it alone has nothing to copy).
            let copied = if k >= T { 0 } else { T.div_ceil(k) - 1 };
            let copied = if !case.initial && k == 1 {
                copied - 1
            } else {
                copied
            };
            assert_eq!(r.segments, 2 * copied, "{case:?} k={k}: {r:?}");
            grads
        }
    };
    let mut outs = vec![loss];
    outs.extend(grads);
    let precision = if dtype == DType::F64 {
        Precision::F64
    } else {
        Precision::F32
    };
    bits(&run(&g, &feeds, &outs, precision).unwrap())
}

#[test]
fn interpreter_gives_the_same_bits() {
    for case in cases() {
        for dtype in [DType::F64, DType::F32] {
            let full = interpreted(case, dtype, None);
            for k in [1, 3, 4, T] {
                assert_eq!(
                    interpreted(case, dtype, Some(k)),
                    full,
                    "{case:?} {dtype:?} every {k}"
                );
            }
        }
    }
}

/// Loss and gradients, as bits, from a plan compiled for `threads`, and its arena bytes.
fn compiled(case: Case, ck: Option<usize>, threads: usize) -> (Vec<Vec<u64>>, usize) {
    let (mut g, loss, params, feeds) = model(case, DType::F32);
    let grads = match ck {
        None => grad(&mut g, loss, &params).unwrap(),
        Some(k) => {
            grad_recomputing(&mut g, loss, &params, Checkpoints::Every(k))
                .unwrap()
                .0
        }
    };
    let mut outs = vec![loss];
    outs.extend(&grads);
    g.set_outputs(outs.clone());
    let opts = CompileOptions {
        threads,
        ..Default::default()
    };
    let mut plan = compile(&g, &opts).unwrap();
    for (&n, t) in &feeds {
        if plan.set(n, t).is_err() {
            // Inputs the optimised graph no longer reads.
            continue;
        }
    }
    plan.run().unwrap();
    let vals: Vec<Tensor> = outs.iter().map(|&o| plan.get(o).unwrap()).collect();
    (bits(&vals), plan.arena_bytes())
}

/// How far output `b` is from `a` (both as bits), normwise: `||a - b|| / ||a||`.
fn normwise(a: &[u64], b: &[u64]) -> f64 {
    let (mut d, mut n) = (0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from_bits(x), f64::from_bits(y));
        d += (x - y) * (x - y);
        n += x * x;
    }
    (d / n.max(f64::MIN_POSITIVE)).sqrt()
}

/// On one thread a plan computes in graph order: the recomputing plan's values have the bits
/// of the plan storing every step.
#[test]
fn plans_give_the_same_bits() {
    for case in cases() {
        let (full, _) = compiled(case, None, 1);
        for k in [3, 4] {
            let (rc, _) = compiled(case, Some(k), 1);
            let differ: Vec<usize> = (0..full.len()).filter(|&i| rc[i] != full[i]).collect();
            assert!(
                differ.is_empty(),
                "{case:?} every {k}: outputs {differ:?} differ"
            );
        }
    }
}

/// On two threads a plan may split runs of steps into half-batch chains, which sums a
/// weight's gradient over the batch in two halves: plans that split differently agree to
/// rounding (normwise 1e-6), not to the bit.
#[test]
fn plans_on_two_threads_agree_to_rounding() {
    for case in cases() {
        let (full, _) = compiled(case, None, 2);
        for k in [3, 4] {
            let (rc, _) = compiled(case, Some(k), 2);
            for (i, (a, b)) in full.iter().zip(&rc).enumerate() {
                let e = normwise(a, b);
                assert!(e <= 1e-6, "{case:?} every {k}: output {i} differs by {e:e}");
            }
        }
    }
}

#[test]
fn budgets_pick_the_interval_and_refuse_what_cannot_fit() {
    let case = cases()[0];
    let (mut g, loss, params, _) = model(case, DType::F32);
    let (_, full) = grad_recomputing(&mut g, loss, &params, Checkpoints::Every(T)).unwrap();
    assert_eq!(full.segments, 0);
    assert_eq!(full.estimate, full.stored_bytes);
    assert!(full.stored_bytes > 0);
    // A budget of half the stored bytes: some interval below T fits, and its estimate does.
    let (mut g, loss, params, _) = model(case, DType::F32);
    let half = full.stored_bytes / 2;
    let (_, r) = grad_recomputing(&mut g, loss, &params, Checkpoints::Budget(half)).unwrap();
    assert!(r.every < T && r.estimate <= half, "{r:?}");
    // Freeing bytes is the same question asked from the other side.
    let (mut g, loss, params, _) = model(case, DType::F32);
    let (_, f) = grad_recomputing(
        &mut g,
        loss,
        &params,
        Checkpoints::Free(full.stored_bytes - half),
    )
    .unwrap();
    assert_eq!(f.every, r.every);
    // More than can be freed: the interval freeing the most.
    let (mut g, loss, params, _) = model(case, DType::F32);
    let (_, most) = grad_recomputing(
        &mut g,
        loss,
        &params,
        Checkpoints::Free(2 * full.stored_bytes),
    )
    .unwrap();
    assert!(most.every < T && most.estimate <= r.estimate, "{most:?}");
    // Nothing fits in one byte; an interval of 0 is refused; both say why.
    let (mut g, loss, params, _) = model(case, DType::F32);
    let e = grad_recomputing(&mut g, loss, &params, Checkpoints::Budget(1)).unwrap_err();
    assert!(e.to_string().contains("budget of 1 bytes"), "{e}");
    let (mut g, loss, params, _) = model(case, DType::F32);
    let e = grad_recomputing(&mut g, loss, &params, Checkpoints::Every(0)).unwrap_err();
    assert!(e.to_string().contains("every 0 steps"), "{e}");
}

/// A plan memory budget (`nn::budget::compile_within`): none or a roomy one stores every step;
/// one the stored plan is over recomputes, and the plan fits; one nothing fits is an error
/// saying what the plan needs.
#[test]
fn plan_budgets_recompute_only_when_storing_does_not_fit() {
    let case = cases()[0];
    let (forward, loss, params, _) = model(case, DType::F32);
    let finish = |g: &mut Graph, grads: &[NodeId]| {
        let mut outs = vec![loss];
        outs.extend(grads);
        g.set_outputs(outs);
        Ok((CompileOptions::default(), ()))
    };
    let total = |p: &Plan| {
        let s = p.stats();
        s.arena_bytes + s.persistent_bytes
    };
    let all = compile_within(&forward, loss, &params, None, None, finish).unwrap();
    assert!(all.recompute.is_none());
    let stored = total(&all.plan);
    let roomy = compile_within(&forward, loss, &params, Some(stored), None, finish).unwrap();
    assert!(roomy.recompute.is_none());
    let fit = compile_within(&forward, loss, &params, Some(stored - 1), None, finish).unwrap();
    let r = fit.recompute.as_ref().expect("recomputation");
    assert!(r.every < T && total(&fit.plan) < stored, "{r:?}");
    let e = compile_within(&forward, loss, &params, Some(1000), None, finish)
        .err()
        .expect("1000 bytes are too few")
        .to_string();
    assert!(e.contains("1000 bytes"), "{e}");
    // Over by less than the parameters: recomputation is tried down to a checkpoint a step,
    // and the error names the smallest plan.
    let persistent = all.plan.stats().persistent_bytes;
    let e = compile_within(&forward, loss, &params, Some(persistent + 64), None, finish)
        .err()
        .expect("no room for intermediate values")
        .to_string();
    assert!(
        e.contains("the smallest plan tried (a checkpoint every"),
        "{e}"
    );
}
