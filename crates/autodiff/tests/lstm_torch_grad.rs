//! Gradient parity with PyTorch: a 2-layer LSTM (T = 5, B = 3) whose loss and every parameter
//! gradient were recorded from `torch.nn.LSTM` by `scripts/golden/lstm_golden.py`.
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::*;
use trellis_autodiff::grad;
use trellis_ir::lstm::SeqLayout;
use trellis_ir::{Precision, TensorType};

#[test]
fn two_layer_lstm_gradients_match_torch() {
    // ```python
    // torch.manual_seed(20240611 + 2)
    // m = torch.nn.LSTM(input_size=4, hidden_size=3, num_layers=2).double()
    // with torch.no_grad():
    //     for p in m.parameters(): p.uniform_(-0.8, 0.8)
    // x = torch.randn(5, 3, 4, dtype=torch.float64, requires_grad=True)
    // R, R2 = torch.randn(5, 3, 3), torch.randn(3, 3)          # float64
    // output, (h_n, c_n) = m(x)
    // loss = (output * R).sum() + (h_n[-1] * R2).sum()
    // loss.backward()          # grad_<param> = p.grad, grad_x = x.grad
    // ```
    let fx = Fixture::load("lstm2_t5_grad.json");
    let mut b = build(&fx, 2, SeqLayout::TimeMajor, true, None);
    let r = b.g.input("R", TensorType::f32(fx.get("R").shape.clone()));
    let r2 = b.g.input("R2", TensorType::f32(fx.get("R2").shape.clone()));
    b.feeds_of.push((r, fx.get("R").clone()));
    b.feeds_of.push((r2, fx.get("R2").clone()));
    let or = b.g.mul(b.out.output, r).unwrap();
    let s1 = b.g.sum_all(or).unwrap();
    let hr = b.g.mul(b.out.h[1], r2).unwrap();
    let s2 = b.g.sum_all(hr).unwrap();
    let loss = b.g.add(s1, s2).unwrap();
    // (trellis name, torch gradient); trellis' single bias gets the gradient of bias_ih (= bias_hh's).
    let names = ["x", "w_ih0", "w_hh0", "bias0", "w_ih1", "w_hh1", "bias1"];
    let torch = [
        "grad_x",
        "grad_weight_ih_l0",
        "grad_weight_hh_l0",
        "grad_bias_ih_l0",
        "grad_weight_ih_l1",
        "grad_weight_hh_l1",
        "grad_bias_ih_l1",
    ];
    let wrt: Vec<_> = names.iter().map(|n| b.g.find_input(n).unwrap()).collect();
    let grads = grad(&mut b.g, loss, &wrt).unwrap();
    for (p, (rtol, atol)) in [
        (Precision::F64, (1e-5, 1e-12)),
        (Precision::F32, (1e-4, 1e-6)),
    ] {
        let mut outs = vec![loss];
        outs.extend(&grads);
        let v = b.run(&outs, p);
        assert_close(&format!("loss ({p:?})"), &v[0], fx.get("loss"), rtol, atol);
        for (k, t) in torch.iter().enumerate() {
            assert_close(&format!("{t} ({p:?})"), &v[k + 1], fx.get(t), rtol, atol);
        }
    }
}
