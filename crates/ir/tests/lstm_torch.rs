//! The LSTM unroller against PyTorch's `torch.nn.LSTM` (golden values in `tests/fixtures/`,
//! made by `scripts/golden/lstm_golden.py`), plus a single step checked by hand.
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::*;
use std::collections::HashMap;
use trellis_ir::lstm::{lstm, LstmSpec, LstmWeights, SeqLayout};
use trellis_ir::{run, DType, Graph, Precision, Tensor, TensorType};

/// One-layer fixture (`lstm_t3*.json`): sequence, final h and final c, for both initial states,
/// both `return_sequences`, both precisions.
fn check_one_layer(file: &str, layout: SeqLayout) {
    let fx = Fixture::load(file);
    // (initial state, expected output / h_n / c_n)
    type Case<'a> = (Option<(&'a str, &'a str)>, [&'a str; 3]);
    let cases: [Case; 2] = [
        (None, ["output", "h_n", "c_n"]),
        (Some(("h0", "c0")), ["output_h0", "h_n_h0", "c_n_h0"]),
    ];
    for (init, [out_k, h_k, c_k]) in cases {
        for return_sequences in [true, false] {
            let b = build(&fx, 1, layout, return_sequences, init);
            for p in PRECISIONS {
                let (rtol, atol) = tol(p);
                let what = |v: &str| {
                    format!(
                        "{file} {v} (init {init:?}, return_sequences {return_sequences}, {p:?})"
                    )
                };
                let r = b.run(&[b.out.output, b.out.h[0], b.out.c[0]], p);
                let want_out = if return_sequences {
                    fx.get(out_k).clone()
                } else {
                    fx.layer(h_k, 0)
                };
                assert_close(&what("output"), &r[0], &want_out, rtol, atol);
                assert_close(&what("h"), &r[1], &fx.layer(h_k, 0), rtol, atol);
                assert_close(&what("c"), &r[2], &fx.layer(c_k, 0), rtol, atol);
            }
        }
    }
}

// ---------------------------------------------------------------- tests against PyTorch

#[test]
fn one_layer_time_major_matches_torch() {
    // Values from scripts/golden/lstm_golden.py (torch 2.x, float64):
    //
    // ```python
    // torch.manual_seed(20240611)
    // m = torch.nn.LSTM(input_size=3, hidden_size=2).double()
    // with torch.no_grad():
    //     for p in m.parameters(): p.uniform_(-1.0, 1.0)
    // x = torch.randn(3, 2, 3, dtype=torch.float64)          # [T, B, in]
    // h0 = 0.5 * torch.randn(1, 2, 2, dtype=torch.float64)
    // c0 = 0.5 * torch.randn(1, 2, 2, dtype=torch.float64)
    // output, (h_n, c_n) = m(x)                              # zero initial state
    // output_h0, (h_n_h0, c_n_h0) = m(x, (h0, c0))
    // ```
    //
    // e.g. h_n = [[[-0.16450067427818155, 0.003733762312341758],
    //              [0.3059394170943799, -0.39385897133163655]]]
    // trellis bias = bias_ih_l0 + bias_hh_l0; the output without return_sequences is h_n[0].
    check_one_layer("lstm_t3.json", SeqLayout::TimeMajor);
}

#[test]
fn one_layer_batch_major_matches_torch() {
    // The same module and data as above, batch_first:
    //
    // ```python
    // mb = torch.nn.LSTM(input_size=3, hidden_size=2, batch_first=True).double()
    // mb.load_state_dict(m.state_dict())
    // xb = x.transpose(0, 1).contiguous()                    # [B, T, in]
    // output, (h_n, c_n) = mb(xb)                            # output [B, T, H]
    // output_h0, (h_n_h0, c_n_h0) = mb(xb, (h0, c0))         # h0/c0/h_n/c_n stay [1, B, H]
    // ```
    check_one_layer("lstm_t3_batch_first.json", SeqLayout::BatchMajor);
}

#[test]
fn two_layer_forward_and_loss_match_torch() {
    // ```python
    // torch.manual_seed(20240611 + 2)
    // m = torch.nn.LSTM(input_size=4, hidden_size=3, num_layers=2).double()
    // with torch.no_grad():
    //     for p in m.parameters(): p.uniform_(-0.8, 0.8)
    // x = torch.randn(5, 3, 4, dtype=torch.float64, requires_grad=True)   # [T, B, in]
    // R = torch.randn(5, 3, 3, dtype=torch.float64)
    // R2 = torch.randn(3, 3, dtype=torch.float64)
    // output, (h_n, c_n) = m(x)
    // loss = (output * R).sum() + (h_n[-1] * R2).sum()       # 0.5680559217382707
    // ```
    //
    // Forward only here; the fixture's gradients are for the autodiff tests.
    let fx = Fixture::load("lstm2_t5_grad.json");
    let mut b = build(&fx, 2, SeqLayout::TimeMajor, true, None);
    let r_id = b.g.input("R", TensorType::f32(fx.get("R").shape.clone()));
    let r2_id = b.g.input("R2", TensorType::f32(fx.get("R2").shape.clone()));
    b.feeds_of.push((r_id, fx.get("R").clone()));
    b.feeds_of.push((r2_id, fx.get("R2").clone()));
    let (out, h1) = (b.out.output, b.out.h[1]);
    let or = b.g.mul(out, r_id).unwrap();
    let s1 = b.g.sum_all(or).unwrap();
    let hr = b.g.mul(h1, r2_id).unwrap();
    let s2 = b.g.sum_all(hr).unwrap();
    let loss = b.g.add(s1, s2).unwrap();
    let last = build(&fx, 2, SeqLayout::TimeMajor, false, None);
    for p in PRECISIONS {
        let (rtol, atol) = tol(p);
        let mut outs = vec![out, loss];
        outs.extend(&b.out.h);
        outs.extend(&b.out.c);
        let r = b.run(&outs, p);
        assert_close(
            &format!("output ({p:?})"),
            &r[0],
            fx.get("output"),
            rtol,
            atol,
        );
        assert_close(&format!("loss ({p:?})"), &r[1], fx.get("loss"), rtol, atol);
        for l in 0..2 {
            let (h, c) = (fx.layer("h_n", l), fx.layer("c_n", l));
            assert_close(&format!("h_n[{l}] ({p:?})"), &r[2 + l], &h, rtol, atol);
            assert_close(&format!("c_n[{l}] ({p:?})"), &r[4 + l], &c, rtol, atol);
        }
        // Without return_sequences: the last layer's last h.
        let r = last.run(&[last.out.output], p);
        let want = fx.layer("h_n", 1);
        assert_close(&format!("last output ({p:?})"), &r[0], &want, rtol, atol);
    }
}

// ---------------------------------------------------------------- by hand

/// T = B = in = H = 1, every weight 0.5, no bias, x = 1; returns the final (h, c).
fn single_step(init: Option<(f64, f64)>, p: Precision) -> (f64, f64) {
    let dtype = match p {
        Precision::F32 => DType::F32,
        Precision::F64 => DType::F64,
    };
    let val = |shape: &[usize], v: f64| Tensor::f64(shape, vec![v; shape.iter().product()]);
    let mut g = Graph::new();
    let mut feeds = HashMap::new();
    let x = g.input("x", TensorType::f32([1, 1, 1]));
    let w_ih = g.param("w_ih", TensorType::f32([4, 1]));
    let w_hh = g.param("w_hh", TensorType::f32([4, 1]));
    feeds.insert(x, val(&[1, 1, 1], 1.0).unwrap().cast(dtype));
    feeds.insert(w_ih, val(&[4, 1], 0.5).unwrap().cast(dtype));
    feeds.insert(w_hh, val(&[4, 1], 0.5).unwrap().cast(dtype));
    let initial_state = init.map(|(h0, c0)| {
        let h = g.input("h0", TensorType::f32([1, 1]));
        let c = g.input("c0", TensorType::f32([1, 1]));
        feeds.insert(h, val(&[1, 1], h0).unwrap().cast(dtype));
        feeds.insert(c, val(&[1, 1], c0).unwrap().cast(dtype));
        vec![(h, c)]
    });
    let spec = LstmSpec {
        layers: vec![LstmWeights {
            w_ih,
            w_hh,
            bias: None,
        }],
        layout: SeqLayout::TimeMajor,
        return_sequences: false,
        initial_state,
        ..Default::default()
    };
    let o = lstm(&mut g, x, &spec).unwrap();
    let r = run(&g, &feeds, &[o.output, o.h[0], o.c[0]], p).unwrap();
    for t in &r {
        assert_eq!(t.dims(), &[1, 1]);
    }
    let (out, h, c) = (
        r[0].to_f64_vec()[0],
        r[1].to_f64_vec()[0],
        r[2].to_f64_vec()[0],
    );
    assert_eq!(out, h, "the output without return_sequences is the final h");
    (h, c)
}

#[test]
fn single_step_by_hand() {
    // Zero initial state: every gate's pre-activation is z = 0.5 * x = 0.5.
    //   i = o = σ(0.5) = 0.6224593312018546,  g = tanh(0.5) = 0.46211715726000974
    //   c = f * 0 + i * g = 0.28764913664496794
    //   h = o * tanh(c) = 0.6224593312018546 * 0.2799696460805275 = 0.17426971865610508
    //
    // h0 = c0 = 1: z = 0.5 * x + 0.5 * h0 = 1.
    //   i = f = o = σ(1) = 0.7310585786300049,  g = tanh(1) = 0.7615941559557649
    //   c = f * c0 + i * g = 1.2878285197759447
    //   h = o * tanh(c) = 0.7310585786300049 * 0.8585567620227391 = 0.6276552861175231
    let cases = [
        (None, 0.17426971865610508, 0.28764913664496794),
        (Some((1.0, 1.0)), 0.6276552861175231, 1.2878285197759447),
    ];
    for (init, h_want, c_want) in cases {
        for p in PRECISIONS {
            let (rtol, atol) = tol(p);
            let (h, c) = single_step(init, p);
            assert!(
                (h - h_want).abs() <= rtol * h_want + atol,
                "h (init {init:?}, {p:?}): got {h:e}, want {h_want:e}"
            );
            assert!(
                (c - c_want).abs() <= rtol * c_want + atol,
                "c (init {init:?}, {p:?}): got {c:e}, want {c_want:e}"
            );
        }
    }
}

#[test]
fn an_initial_state_of_the_wrong_shape_or_dtype_is_named() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([3, 2, 4]));
    let w_ih = g.param("w_ih", TensorType::f32([20, 4]));
    let w_hh = g.param("w_hh", TensorType::f32([20, 5]));
    let good = g.input("h0", TensorType::f32([2, 5]));
    let wide = g.input("c0", TensorType::f32([2, 6]));
    let f64s = g.input("c0_64", TensorType::f64([2, 5]));
    for (c0, got) in [(wide, "f32[2,6]"), (f64s, "f64[2,5]")] {
        let spec = LstmSpec {
            layers: vec![LstmWeights {
                w_ih,
                w_hh,
                bias: None,
            }],
            initial_state: Some(vec![(good, c0)]),
            ..Default::default()
        };
        let e = lstm(&mut g, x, &spec).unwrap_err().to_string();
        assert!(
            e.contains("lstm layer 0: initial state must be f32[2,5], got ") && e.ends_with(got),
            "{e}"
        );
    }
}
