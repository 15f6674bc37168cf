//! Parity with PyTorch for the recurrent cells beyond the plain LSTM stack: a 2-layer GRU and
//! simple RNN, the bidirectional LSTM, GRU and RNN (tanh and relu), and them over packed
//! (masked) post-padded sequences. Loss and
//! every gradient, in the f64 interpreter (1e-5) and in the compiled f32 plan (1e-4 relative).
//! Fixtures from `scripts/golden/rnn_golden.py`, and from `scripts/golden/state_golden.py` for
//! stacks started from a given state (`h0`, `c0`: their gradients are compared too).
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::*;
use std::collections::HashMap;
use trellis_autodiff::grad;
use trellis_ir::gru::{gru, GruSpec, GruWeights};
use trellis_ir::lstm::{lstm, Direction, LstmSpec, LstmWeights};
use trellis_ir::rnn::{simple_rnn, RnnActivation, RnnSpec, RnnWeights};
use trellis_ir::{run, Graph, NodeId, Precision, Tensor, TensorType};
use trellis_jit::{compile, CompileOptions};

#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Lstm,
    Gru,
    Rnn(RnnActivation),
}

impl Cell {
    /// Whether trellis keeps one bias, torch's `bias_ih + bias_hh` (LSTM, simple RNN).
    fn one_bias(self) -> bool {
        self != Cell::Gru
    }
}

struct Case {
    g: Graph,
    feeds: Vec<(NodeId, Golden)>,
    loss: NodeId,
    /// (graph leaf, torch gradient name)
    wrt: Vec<(NodeId, String)>,
}

fn leaf(g: &mut Graph, feeds: &mut Vec<(NodeId, Golden)>, name: &str, t: Golden) -> NodeId {
    let id = g.param(name, TensorType::f32(t.shape.clone()));
    feeds.push((id, t));
    id
}

/// The fixture's module as a trellis graph: `layers` stacked layers of one direction, or one
/// bidirectional layer (outputs concatenated on features, forward first); the torch loss.
fn build(fx: &Fixture, cell: Cell, layers: usize, bidirectional: bool, masked: bool) -> Case {
    let mut g = Graph::new();
    let mut feeds = Vec::new();
    let mut wrt = Vec::new();
    let x = leaf(&mut g, &mut feeds, "x", fx.get("x").clone());
    wrt.push((x, "grad_x".to_string()));
    let mask = masked.then(|| {
        let m = fx.get("mask").clone();
        let id = g.input("mask", TensorType::f32(m.shape.clone()));
        feeds.push((id, m));
        id
    });
    // A given initial state: one `[layers, B, H]` leaf (its gradient is torch's `grad_h0`),
    // each layer's `[B, H]` a slice of it.
    let mut state = |g: &mut Graph, name: &str| -> Option<Vec<NodeId>> {
        let t = fx.tensors.get(name)?.clone();
        let (b, h) = (t.shape[1], t.shape[2]);
        let id = leaf(g, &mut feeds, name, t);
        wrt.push((id, format!("grad_{name}")));
        let layer = |g: &mut Graph, l: usize| {
            let s = g.slice(id, 0, l, l + 1).unwrap();
            g.reshape(s, [b, h]).unwrap()
        };
        Some((0..layers).map(|l| layer(g, l)).collect())
    };
    let h0 = state(&mut g, "h0");
    let c0 = if cell == Cell::Lstm {
        state(&mut g, "c0")
    } else {
        None
    };
    assert!(
        h0.is_none() || !bidirectional,
        "states are for one direction"
    );
    let dirs: &[(&str, Direction)] = if bidirectional {
        &[("", Direction::Forward), ("_reverse", Direction::Reverse)]
    } else {
        &[("", Direction::Forward)]
    };
    let mut outs = Vec::new();
    let mut finals = Vec::new();
    let mut finals_c = Vec::new();
    let mut bias_grads = Vec::new();
    for &(suffix, direction) in dirs {
        // A torch parameter as a graph leaf, its gradient compared with torch's.
        let mut param = |g: &mut Graph, name: String, feeds: &mut Vec<(NodeId, Golden)>| {
            let id = leaf(g, feeds, &name, fx.get(&name).clone());
            wrt.push((id, format!("grad_{name}")));
            id
        };
        // trellis' one bias is b_ih + b_hh: its gradient is bias_ih's.
        let mut one_bias = |g: &mut Graph, l: usize, feeds: &mut Vec<(NodeId, Golden)>| {
            let (bi, bh) = (
                fx.get(&format!("bias_ih_l{l}{suffix}")),
                fx.get(&format!("bias_hh_l{l}{suffix}")),
            );
            let sum = Golden {
                shape: bi.shape.clone(),
                data: bi.data.iter().zip(&bh.data).map(|(a, b)| a + b).collect(),
            };
            let b = leaf(g, feeds, &format!("bias_l{l}{suffix}"), sum);
            bias_grads.push((b, format!("grad_bias_ih_l{l}{suffix}")));
            b
        };
        match cell {
            Cell::Lstm => {
                let mut ws = Vec::new();
                for l in 0..layers {
                    let w_ih = param(&mut g, format!("weight_ih_l{l}{suffix}"), &mut feeds);
                    let w_hh = param(&mut g, format!("weight_hh_l{l}{suffix}"), &mut feeds);
                    let b = one_bias(&mut g, l, &mut feeds);
                    ws.push(LstmWeights {
                        w_ih,
                        w_hh,
                        bias: Some(b),
                    });
                }
                let o = lstm(
                    &mut g,
                    x,
                    &LstmSpec {
                        layers: ws,
                        return_sequences: true,
                        initial_state: h0
                            .clone()
                            .zip(c0.clone())
                            .map(|(h, c)| h.into_iter().zip(c).collect()),
                        direction,
                        mask,
                        ..Default::default()
                    },
                )
                .unwrap();
                outs.push(o.output);
                finals.extend(o.h);
                finals_c.extend(o.c);
            }
            Cell::Gru => {
                let mut ws = Vec::new();
                for l in 0..layers {
                    ws.push(GruWeights {
                        w_ih: param(&mut g, format!("weight_ih_l{l}{suffix}"), &mut feeds),
                        w_hh: param(&mut g, format!("weight_hh_l{l}{suffix}"), &mut feeds),
                        b_ih: Some(param(&mut g, format!("bias_ih_l{l}{suffix}"), &mut feeds)),
                        b_hh: Some(param(&mut g, format!("bias_hh_l{l}{suffix}"), &mut feeds)),
                    });
                }
                let o = gru(
                    &mut g,
                    x,
                    &GruSpec {
                        layers: ws,
                        return_sequences: true,
                        initial_state: h0.clone(),
                        direction,
                        mask,
                        ..Default::default()
                    },
                )
                .unwrap();
                outs.push(o.output);
                finals.extend(o.h);
            }
            Cell::Rnn(activation) => {
                let mut ws = Vec::new();
                for l in 0..layers {
                    let w_ih = param(&mut g, format!("weight_ih_l{l}{suffix}"), &mut feeds);
                    let w_hh = param(&mut g, format!("weight_hh_l{l}{suffix}"), &mut feeds);
                    let b = one_bias(&mut g, l, &mut feeds);
                    ws.push(RnnWeights {
                        w_ih,
                        w_hh,
                        bias: Some(b),
                    });
                }
                let o = simple_rnn(
                    &mut g,
                    x,
                    &RnnSpec {
                        layers: ws,
                        activation,
                        return_sequences: true,
                        initial_state: h0.clone(),
                        direction,
                        mask,
                        ..Default::default()
                    },
                )
                .unwrap();
                outs.push(o.output);
                finals.extend(o.h);
            }
        }
    }
    wrt.extend(bias_grads);
    let output = if outs.len() == 1 {
        outs[0]
    } else {
        g.concat(&outs, 2).unwrap()
    };
    let r = fx.get("R").clone();
    let r = {
        let id = g.input("R", TensorType::f32(r.shape.clone()));
        feeds.push((id, r));
        id
    };
    let or = g.mul(output, r).unwrap();
    let mut loss = g.sum_all(or).unwrap();
    // h_n is [layers * directions, B, H], PyTorch's order: layer-major, then direction.
    let order: Vec<usize> = if bidirectional {
        (0..layers).flat_map(|l| [l, layers + l]).collect()
    } else {
        (0..layers).collect()
    };
    for (k, &i) in order.iter().enumerate() {
        let r2 = fx.layer("R2", k);
        let id = g.input(&format!("R2_{k}"), TensorType::f32(r2.shape.clone()));
        feeds.push((id, r2));
        let hr = g.mul(finals[i], id).unwrap();
        let s = g.sum_all(hr).unwrap();
        loss = g.add(loss, s).unwrap();
        // The final cell states, when the torch loss reads them (`sum(c_n * R3)`).
        if fx.tensors.contains_key("R3") {
            let r3 = fx.layer("R3", k);
            let id = g.input(&format!("R3_{k}"), TensorType::f32(r3.shape.clone()));
            feeds.push((id, r3));
            let cr = g.mul(finals_c[i], id).unwrap();
            let s = g.sum_all(cr).unwrap();
            loss = g.add(loss, s).unwrap();
        }
    }
    Case {
        g,
        feeds,
        loss,
        wrt,
    }
}

fn check(file: &str, cell: Cell, layers: usize, bidirectional: bool, masked: bool) {
    let fx = Fixture::load(file);
    let mut c = build(&fx, cell, layers, bidirectional, masked);
    let leaves: Vec<NodeId> = c.wrt.iter().map(|w| w.0).collect();
    let grads = grad(&mut c.g, c.loss, &leaves).unwrap();
    // Every gradient torch recorded is compared: LSTM's bias_hh has bias_ih's gradient (trellis
    // keeps their sum as one bias).
    let mut torch_grads: Vec<&String> = fx
        .tensors
        .keys()
        .filter(|k| k.starts_with("grad_"))
        .collect();
    torch_grads.retain(|k| match k.strip_prefix("grad_bias_hh") {
        Some(rest) if cell.one_bias() => {
            let ih = fx.get(&format!("grad_bias_ih{rest}"));
            let t = Tensor::f64(ih.shape.clone(), fx.get(k).data.clone()).unwrap();
            assert_close(k, &t, ih, 1e-12, 1e-15);
            false
        }
        _ => true,
    });
    torch_grads.sort();
    let mut compared: Vec<&String> = c.wrt.iter().map(|w| &w.1).collect();
    compared.sort();
    assert_eq!(compared, torch_grads);
    let mut outs = vec![c.loss];
    outs.extend(&grads);
    // The f64 interpreter.
    let feeds: HashMap<NodeId, Tensor> = c
        .feeds
        .iter()
        .map(|(id, t)| (*id, feed(t, Precision::F64)))
        .collect();
    let v = run(&c.g, &feeds, &outs, Precision::F64).unwrap();
    assert_close(
        &format!("{file}: loss (f64)"),
        &v[0],
        fx.get("loss"),
        1e-5,
        1e-12,
    );
    for (k, (_, name)) in c.wrt.iter().enumerate() {
        assert_close(
            &format!("{file}: {name} (f64)"),
            &v[k + 1],
            fx.get(name),
            1e-5,
            1e-12,
        );
    }
    // The compiled f32 plan, on both cores and on one.
    c.g.set_outputs(outs.clone());
    for threads in [2, 1] {
        let mut plan = compile(
            &c.g,
            &CompileOptions {
                threads,
                ..Default::default()
            },
        )
        .unwrap();
        for (id, t) in &c.feeds {
            plan.set(*id, &feed(t, Precision::F32)).unwrap();
        }
        plan.run().unwrap();
        let tag = format!("{file}: plan, {threads} threads");
        let fallbacks = &plan.stats().fallbacks;
        assert!(
            fallbacks.is_empty(),
            "{tag}: steps left to the interpreter: {fallbacks:?}"
        );
        assert_close(
            &format!("{tag}: loss"),
            &plan.get(c.loss).unwrap(),
            fx.get("loss"),
            1e-4,
            1e-5,
        );
        for (k, (_, name)) in c.wrt.iter().enumerate() {
            let got = plan.get(outs[k + 1]).unwrap();
            assert_close(&format!("{tag}: {name}"), &got, fx.get(name), 1e-4, 1e-5);
        }
    }
}

#[test]
fn two_layer_gru_matches_torch() {
    check("gru2_t5_grad.json", Cell::Gru, 2, false, false);
}

#[test]
fn bidirectional_lstm_matches_torch() {
    check("bilstm_t4_grad.json", Cell::Lstm, 1, true, false);
}

#[test]
fn bidirectional_gru_matches_torch() {
    check("bigru_t4_grad.json", Cell::Gru, 1, true, false);
}

#[test]
fn masked_bidirectional_lstm_matches_torch_packed_sequences() {
    check("bilstm_packed_grad.json", Cell::Lstm, 1, true, true);
}

#[test]
fn masked_bidirectional_gru_matches_torch_packed_sequences() {
    check("bigru_packed_grad.json", Cell::Gru, 1, true, true);
}

#[test]
fn stacked_lstm_from_a_given_state_matches_torch_packed_sequences() {
    check("lstm2_state_packed_grad.json", Cell::Lstm, 2, false, true);
}

#[test]
fn stacked_gru_from_a_given_state_matches_torch_packed_sequences() {
    check("gru2_state_packed_grad.json", Cell::Gru, 2, false, true);
}

#[test]
fn two_layer_simple_rnn_matches_torch() {
    check(
        "rnn2_t5_grad.json",
        Cell::Rnn(RnnActivation::Tanh),
        2,
        false,
        false,
    );
}

#[test]
fn bidirectional_relu_rnn_matches_torch() {
    check(
        "birnn_relu_t4_grad.json",
        Cell::Rnn(RnnActivation::Relu),
        1,
        true,
        false,
    );
}

#[test]
fn masked_bidirectional_rnn_matches_torch_packed_sequences() {
    check(
        "birnn_packed_grad.json",
        Cell::Rnn(RnnActivation::Tanh),
        1,
        true,
        true,
    );
}
