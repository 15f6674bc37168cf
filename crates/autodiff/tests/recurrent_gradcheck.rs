//! The recurrent cells beyond the plain LSTM: masked, reversed, GRU and simple RNN layers against f64
//! central differences, and the invariance masking promises (pre- and post-padding of the same
//! sequences give the same loss and gradients).
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis_autodiff::{grad, gradcheck, Tolerance};
use trellis_ir::gru::{gru, GruSpec, GruWeights};
use trellis_ir::lstm::{lstm, Direction, LstmSpec, LstmWeights, SeqLayout};
use trellis_ir::rnn::{simple_rnn, RnnSpec, RnnWeights};
use trellis_ir::{run, Feeds, Graph, NodeId, Precision, Tensor, TensorType};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cell {
    Lstm,
    Gru,
    Rnn,
}

fn rand_tensor(rng: &mut StdRng, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::f64(shape, (0..n).map(|_| rng.gen_range(lo..hi)).collect()).unwrap()
}

/// A parameter (or a data input) of `shape`, fed values uniform in `[-0.8, 0.8)`.
fn leaf_of(
    g: &mut Graph,
    feeds: &mut Feeds,
    rng: &mut StdRng,
    name: &str,
    shape: &[usize],
    param: bool,
) -> NodeId {
    let ty = TensorType::f64(shape);
    let id = if param {
        g.param(name, ty)
    } else {
        g.input(name, ty)
    };
    feeds.insert(id, rand_tensor(rng, shape, -0.8, 0.8));
    id
}

/// A bidirectional layer of `cell` (input `[B, T, in]`, mask `[B, T]`), summed into a loss
/// that reads every output step and both final states. Returns `(loss, params)`; the params
/// are fed from `rng`.
fn bidirectional(
    g: &mut Graph,
    feeds: &mut Feeds,
    rng: &mut StdRng,
    cell: Cell,
    x: NodeId,
    mask: Option<NodeId>,
    h: usize,
) -> (NodeId, Vec<NodeId>) {
    let inp = g.ty(x).dims()[2];
    let batch = g.ty(x).dims()[0];
    let gates = match cell {
        Cell::Lstm => 4,
        Cell::Gru => 3,
        Cell::Rnn => 1,
    };
    let mut params = Vec::new();
    let mut loss = None;
    for (d, direction) in [Direction::Forward, Direction::Reverse]
        .into_iter()
        .enumerate()
    {
        let mut p = |g: &mut Graph, name: String, shape: &[usize]| {
            let id = g.param(&name, TensorType::f64(shape));
            feeds.insert(id, rand_tensor(rng, shape, -0.7, 0.7));
            params.push(id);
            id
        };
        let w_ih = p(g, format!("w_ih{d}"), &[gates * h, inp]);
        let w_hh = p(g, format!("w_hh{d}"), &[gates * h, h]);
        let b_ih = p(g, format!("b_ih{d}"), &[gates * h]);
        let (out, finals) = match cell {
            Cell::Lstm => {
                let o = lstm(
                    g,
                    x,
                    &LstmSpec {
                        layers: vec![LstmWeights {
                            w_ih,
                            w_hh,
                            bias: Some(b_ih),
                        }],
                        layout: SeqLayout::BatchMajor,
                        return_sequences: true,
                        direction,
                        mask,
                        ..Default::default()
                    },
                )
                .unwrap();
                (o.output, vec![o.h[0], o.c[0]])
            }
            Cell::Gru => {
                let b_hh = p(g, format!("b_hh{d}"), &[gates * h]);
                let o = gru(
                    g,
                    x,
                    &GruSpec {
                        layers: vec![GruWeights {
                            w_ih,
                            w_hh,
                            b_ih: Some(b_ih),
                            b_hh: Some(b_hh),
                        }],
                        layout: SeqLayout::BatchMajor,
                        return_sequences: true,
                        direction,
                        mask,
                        ..Default::default()
                    },
                )
                .unwrap();
                (o.output, vec![o.h[0]])
            }
            Cell::Rnn => {
                let o = simple_rnn(
                    g,
                    x,
                    &RnnSpec {
                        layers: vec![RnnWeights {
                            w_ih,
                            w_hh,
                            bias: Some(b_ih),
                        }],
                        layout: SeqLayout::BatchMajor,
                        return_sequences: true,
                        direction,
                        mask,
                        ..Default::default()
                    },
                )
                .unwrap();
                (o.output, vec![o.h[0]])
            }
        };
        // Every output step (summed over time: zero at masked steps) and the final states,
        // each weighted by a fixed random [B, H].
        let over_time = g.sum(out, &[1], false).unwrap();
        for v in std::iter::once(over_time).chain(finals) {
            let r = g.constant(rand_tensor(rng, &[batch, h], -1.0, 1.0));
            let w = g.mul(v, r).unwrap();
            let s = g.sum_all(w).unwrap();
            loss = Some(match loss {
                None => s,
                Some(l) => g.add(l, s).unwrap(),
            });
        }
    }
    (loss.unwrap(), params)
}

/// Lengths 4, 2, 3 of T = 4 steps, padded after (`pre = false`) or before the real steps.
fn mask_of(lengths: &[usize], t: usize, pre: bool) -> Vec<f64> {
    lengths
        .iter()
        .flat_map(|&n| (0..t).map(move |s| if pre { s >= t - n } else { s < n }))
        .map(|real| real as u8 as f64)
        .collect()
}

#[test]
fn masked_bidirectional_lstm_gru_and_rnn_gradcheck() {
    let (b, t, inp, h) = (3, 4, 2, 3);
    for cell in [Cell::Lstm, Cell::Gru, Cell::Rnn] {
        for pre in [false, true] {
            let mut rng = StdRng::seed_from_u64(7 + pre as u64);
            let mut g = Graph::new();
            let mut feeds = Feeds::new();
            let x = g.input("x", TensorType::f64([b, t, inp]));
            feeds.insert(x, rand_tensor(&mut rng, &[b, t, inp], -1.0, 1.0));
            let m = g.input("mask", TensorType::f64([b, t]));
            feeds.insert(m, Tensor::f64([b, t], mask_of(&[4, 2, 3], t, pre)).unwrap());
            let (loss, mut wrt) = bidirectional(&mut g, &mut feeds, &mut rng, cell, x, Some(m), h);
            wrt.push(x);
            let report = gradcheck(&g, loss, &wrt, &feeds, Tolerance::default()).unwrap();
            let expected: usize = wrt.iter().map(|&p| g.ty(p).numel()).sum();
            assert_eq!(report.elements, expected);
            if let Err(e) = report.check() {
                panic!("{cell:?}, pre-padded {pre}: {e}");
            }
        }
    }
}

#[test]
fn stacked_gru_with_initial_state_gradcheck() {
    let (t, b, inp, h) = (3, 2, 3, 2);
    let mut rng = StdRng::seed_from_u64(3);
    let mut g = Graph::new();
    let mut feeds = Feeds::new();
    let mut leaf = |g: &mut Graph, name: &str, shape: &[usize], param: bool| {
        leaf_of(g, &mut feeds, &mut rng, name, shape, param)
    };
    let x = leaf(&mut g, "x", &[t, b, inp], false);
    let mut layers = Vec::new();
    let mut h0 = Vec::new();
    let mut wrt = vec![x];
    for l in 0..2 {
        let w = GruWeights {
            w_ih: leaf(
                &mut g,
                &format!("w_ih{l}"),
                &[3 * h, if l == 0 { inp } else { h }],
                true,
            ),
            w_hh: leaf(&mut g, &format!("w_hh{l}"), &[3 * h, h], true),
            b_ih: Some(leaf(&mut g, &format!("b_ih{l}"), &[3 * h], true)),
            b_hh: Some(leaf(&mut g, &format!("b_hh{l}"), &[3 * h], true)),
        };
        wrt.extend([w.w_ih, w.w_hh, w.b_ih.unwrap(), w.b_hh.unwrap()]);
        layers.push(w);
        let s = leaf(&mut g, &format!("h0_{l}"), &[b, h], false);
        wrt.push(s);
        h0.push(s);
    }
    let o = gru(
        &mut g,
        x,
        &GruSpec {
            layers,
            return_sequences: true,
            initial_state: Some(h0),
            direction: Direction::Reverse,
            ..Default::default()
        },
    )
    .unwrap();
    let r = g.constant(rand_tensor(&mut rng, &[t, b, h], -1.0, 1.0));
    let w = g.mul(o.output, r).unwrap();
    let loss = g.sum_all(w).unwrap();
    let report = gradcheck(&g, loss, &wrt, &feeds, Tolerance::default()).unwrap();
    report.check().unwrap();
    assert_eq!(
        report.elements,
        wrt.iter().map(|&p| g.ty(p).numel()).sum::<usize>()
    );
}

/// The same sequences padded after and before their real steps give the same loss and the
/// same gradients: masked steps count for nothing, in both directions.
#[test]
fn pre_and_post_padding_give_the_same_loss_and_gradients() {
    let (b, t, inp, h) = (3, 5, 2, 3);
    let lengths = [5, 2, 3];
    for cell in [Cell::Lstm, Cell::Gru, Cell::Rnn] {
        let mut results = Vec::new();
        let mut data_rng = StdRng::seed_from_u64(99);
        // Each sequence's real steps, shared by both paddings.
        let real: Vec<Vec<f64>> = lengths
            .iter()
            .map(|&n| {
                (0..n * inp)
                    .map(|_| data_rng.gen_range(-1.0..1.0))
                    .collect()
            })
            .collect();
        for pre in [false, true] {
            let mut x = vec![0.0; b * t * inp];
            for (s, &n) in lengths.iter().enumerate() {
                let start = if pre { t - n } else { 0 };
                let at = (s * t + start) * inp;
                x[at..at + n * inp].copy_from_slice(&real[s]);
                // Padding that is not zero must not leak either.
                for k in 0..t {
                    if k < start || k >= start + n {
                        x[(s * t + k) * inp] = 9.0;
                    }
                }
            }
            let mut rng = StdRng::seed_from_u64(5); // same weights and loss weights for both
            let mut g = Graph::new();
            let mut feeds = Feeds::new();
            let xi = g.input("x", TensorType::f64([b, t, inp]));
            feeds.insert(xi, Tensor::f64([b, t, inp], x).unwrap());
            let m = g.input("mask", TensorType::f64([b, t]));
            feeds.insert(m, Tensor::f64([b, t], mask_of(&lengths, t, pre)).unwrap());
            let (loss, params) = bidirectional(&mut g, &mut feeds, &mut rng, cell, xi, Some(m), h);
            let grads = grad(&mut g, loss, &params).unwrap();
            let mut outs = vec![loss];
            outs.extend(grads);
            results.push(run(&g, &feeds, &outs, Precision::F64).unwrap());
        }
        for (k, (a, p)) in results[0].iter().zip(&results[1]).enumerate() {
            for (u, v) in a.to_f64_vec().iter().zip(p.to_f64_vec()) {
                assert!(
                    (u - v).abs() <= 1e-12 * (1.0 + v.abs()),
                    "{cell:?} output {k}: post {u} vs pre {v}"
                );
            }
        }
    }
}

/// A stacked LSTM started from a given `(h0, c0)` per layer, masked (one sequence has no real
/// step at all), in both directions: the gradient reaches the initial states, and a sequence
/// without real steps keeps its given state and outputs zeros.
#[test]
fn masked_lstm_from_a_given_state_gradcheck() {
    let (b, t, inp, h) = (3, 4, 2, 3);
    let lengths = [4, 0, 2];
    for direction in [Direction::Forward, Direction::Reverse] {
        let mut rng = StdRng::seed_from_u64(11);
        let mut g = Graph::new();
        let mut feeds = Feeds::new();
        let mut leaf = |g: &mut Graph, name: &str, shape: &[usize], param: bool| {
            leaf_of(g, &mut feeds, &mut rng, name, shape, param)
        };
        let x = leaf(&mut g, "x", &[b, t, inp], false);
        let mut layers = Vec::new();
        let mut init = Vec::new();
        let mut wrt = vec![x];
        let mut states = Vec::new();
        for l in 0..2 {
            let w = LstmWeights {
                w_ih: leaf(&mut g, &format!("w_ih{l}"), &[4 * h, [inp, h][l]], true),
                w_hh: leaf(&mut g, &format!("w_hh{l}"), &[4 * h, h], true),
                bias: Some(leaf(&mut g, &format!("b{l}"), &[4 * h], true)),
            };
            wrt.extend([w.w_ih, w.w_hh, w.bias.unwrap()]);
            layers.push(w);
            let (h0, c0) = (
                leaf(&mut g, &format!("h0_{l}"), &[b, h], false),
                leaf(&mut g, &format!("c0_{l}"), &[b, h], false),
            );
            states.extend([h0, c0]);
            init.push((h0, c0));
        }
        wrt.extend(&states);
        let m = g.input("mask", TensorType::f64([b, t]));
        feeds.insert(m, Tensor::f64([b, t], mask_of(&lengths, t, false)).unwrap());
        let o = lstm(
            &mut g,
            x,
            &LstmSpec {
                layers,
                layout: SeqLayout::BatchMajor,
                return_sequences: true,
                initial_state: Some(init),
                direction,
                mask: Some(m),
                recurrent_dropout: None,
            },
        )
        .unwrap();
        let over_time = g.sum(o.output, &[1], false).unwrap();
        let finals: Vec<NodeId> = o.h.iter().chain(&o.c).copied().collect();
        let mut loss = None;
        for &v in std::iter::once(&over_time).chain(&finals) {
            let r = g.constant(rand_tensor(&mut rng, &[b, h], -1.0, 1.0));
            let w = g.mul(v, r).unwrap();
            let s = g.sum_all(w).unwrap();
            loss = Some(match loss {
                None => s,
                Some(l) => g.add(l, s).unwrap(),
            });
        }
        let loss = loss.unwrap();
        let report = gradcheck(&g, loss, &wrt, &feeds, Tolerance::default()).unwrap();
        if let Err(e) = report.check() {
            panic!("{direction:?}: {e}");
        }
        assert_eq!(
            report.elements,
            wrt.iter().map(|&p| g.ty(p).numel()).sum::<usize>()
        );
        // The gradient reaches every initial state, of every sequence.
        let grads = grad(&mut g, loss, &states).unwrap();
        let mut outs = grads.clone();
        outs.extend([o.output, o.h[1], o.c[1]]);
        let v = run(&g, &feeds, &outs, Precision::F64).unwrap();
        for (k, gs) in v[..states.len()].iter().enumerate() {
            let gs = gs.to_f64_vec();
            for s in 0..b {
                let row = &gs[s * h..(s + 1) * h];
                assert!(
                    row.iter().any(|d| d.abs() > 1e-3),
                    "{direction:?}: no gradient reaches initial state {k} of sequence {s}"
                );
            }
        }
        // Sequence 1 has no real step: zero outputs, and the state it was given.
        let out = v[states.len()].to_f64_vec();
        assert!((0..t).all(|k| out[(t + k) * h..(t + k + 1) * h].iter().all(|&y| y == 0.0)));
        for (got, given) in [
            (&v[states.len() + 1], states[2]),
            (&v[states.len() + 2], states[3]),
        ] {
            let want = feeds[&given].to_f64_vec();
            assert_eq!(got.to_f64_vec()[h..2 * h], want[h..2 * h], "{direction:?}");
        }
    }
}
