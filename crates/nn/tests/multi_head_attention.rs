//! `MultiHeadAttention` against Keras's formula in PyTorch (checked there against
//! `torch.nn.MultiheadAttention`): outputs, per-head weights and every parameter's gradient,
//! cross-attention with a key of its own width and masked causal self-attention; the causal
//! mask in the `Attention` layer; the summary, saving, training, and bad sizes named.
#[path = "common/feeds.rs"]
mod feeds;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use feeds::feeds;
use golden_lstm::{assert_f32_close, Fixture};

/// f32 against torch's f64.
const TOL: (f32, f32) = (2e-6, 2e-5);
use trellis_autodiff::{gradcheck, Tolerance};
use trellis_ir::{run, Precision, Tensor};
use trellis_nn::ndarray::ArrayD;
use trellis_nn::prelude::*;
use trellis_nn::Inputs;

fn array(fx: &Fixture, name: &str) -> ArrayD<f32> {
    ArrayD::from_shape_vec(fx.get(name).shape.clone(), fx.f32s(name)).unwrap()
}

/// Sets the fixture's parameters (`<case>.query_weight` -> `multi_head_attention.query.weight`).
fn set_params(m: &mut Model, fx: &Fixture, case: &str) {
    for s in m.param_specs().to_vec() {
        let leaf = s.name.strip_prefix("multi_head_attention.").unwrap();
        let key = format!("{case}.{}", leaf.replace('.', "_"));
        m.set_weight(&s.name, &fx.f32s(&key)).unwrap();
    }
}

/// The layer's outputs with the weights `[B, h, Tq, Tk]` as `[B, h·Tq, Tk]` (a model output
/// takes a loss, which wants rank 2 or 3; the values keep their order).
fn flat_scores(mut outs: Vec<SymTensor>) -> Vec<SymTensor> {
    if outs.len() == 2 {
        outs[1] = Reshape::new(&[-1, 4]).call(&outs[1]).unwrap();
    }
    outs
}

/// Checks predictions (output and weights) and gradients of `model(scores)` against the case.
fn check_case(fx: &Fixture, case: &str, model: impl Fn(bool) -> Model, x: &[ArrayD<f32>]) {
    let inputs = || -> Vec<Inputs> { x.iter().map(Inputs::from).collect() };
    let mut m = model(true);
    set_params(&mut m, fx, case);
    let out = m.predict_outputs(inputs()).unwrap();
    assert_f32_close(
        out[0].as_slice().unwrap(),
        &fx.f32s(&format!("{case}.output")),
        TOL,
        &format!("{case} output"),
    );
    assert_f32_close(
        out[1].as_slice().unwrap(),
        &fx.f32s(&format!("{case}.weights")),
        TOL,
        &format!("{case} weights"),
    );
    let mut m = model(false);
    set_params(&mut m, fx, case);
    let y = array(fx, &format!("{case}.target"));
    let loss = m.evaluate(inputs(), &y).unwrap().loss as f32;
    assert_f32_close(&[loss], &fx.f32s(&format!("{case}.loss")), TOL, "loss");
    let grads = m.gradients(inputs(), &y).unwrap();
    assert_eq!(grads.len(), 8);
    for (name, g) in &grads {
        let leaf = name.strip_prefix("multi_head_attention.").unwrap();
        let key = format!("{case}.grad_{}", leaf.replace('.', "_"));
        // The key's bias adds q_i . b to every score of row i, which the softmax ignores:
        // its gradient is zero (in torch too); every other one is real.
        let real = g.iter().any(|v| v.abs() > 1e-5);
        assert_eq!(real, !name.ends_with("key.bias"), "{name}: {g:?}");
        assert_f32_close(g, &fx.f32s(&key), TOL, name);
    }
}

#[test]
fn cross_attention_with_a_key_of_its_own_width_matches_torch() {
    let fx = Fixture::load("mha.json");
    let model = |scores: bool| {
        let (q, v, k) = (
            Input::new(&[3, 5]),
            Input::new(&[4, 4]),
            Input::new(&[4, 3]),
        );
        let mha = MultiHeadAttention::new(2, 3)
            .with_value_dim(2)
            .with_output_shape(6)
            .with_return_attention_scores(scores);
        let outs = flat_scores(mha.call_outputs([&q, &v, &k]).unwrap());
        let refs: Vec<&SymTensor> = outs.iter().collect();
        let mut m = Model::new(&[&q, &v, &k], &refs).unwrap();
        let losses = Losses::new(&vec![Loss::MeanSquaredError; outs.len()]);
        m.compile(Sgd::new(0.1), losses, &[]).unwrap();
        let shapes: Vec<(String, Vec<usize>)> = m
            .param_specs()
            .iter()
            .map(|s| (s.name.clone(), s.shape.clone()))
            .collect();
        assert_eq!(
            shapes[0],
            ("multi_head_attention.query.weight".into(), vec![6, 5])
        );
        assert_eq!(
            shapes[2],
            ("multi_head_attention.key.weight".into(), vec![6, 3])
        );
        assert_eq!(
            shapes[4],
            ("multi_head_attention.value.weight".into(), vec![4, 4])
        );
        assert_eq!(
            shapes[6],
            ("multi_head_attention.output.weight".into(), vec![6, 4])
        );
        m
    };
    let x = ["cross.query", "cross.value", "cross.key"].map(|n| array(&fx, n));
    check_case(&fx, "cross", model, &x);
}

#[test]
fn masked_causal_self_attention_matches_torch() {
    let fx = Fixture::load("mha.json");
    let model = |scores: bool| {
        let x = Input::new(&[4, 4]);
        let masked = Masking::new(0.0).call(&x).unwrap();
        let mha = MultiHeadAttention::new(2, 2)
            .with_use_causal_mask(true)
            .with_return_attention_scores(scores);
        let outs = flat_scores(mha.call_outputs(&masked).unwrap());
        let refs: Vec<&SymTensor> = outs.iter().collect();
        let mut m = Model::new(&[&x], &refs).unwrap();
        let losses = Losses::new(&vec![Loss::MeanSquaredError; outs.len()]);
        m.compile(Sgd::new(0.1), losses, &[]).unwrap();
        m
    };
    let x = [array(&fx, "self_masked_causal.x")];
    let mut m = model(true);
    set_params(&mut m, &fx, "self_masked_causal");
    let out = m
        .predict_outputs(x.iter().map(Inputs::from).collect::<Vec<_>>())
        .unwrap();
    assert_f32_close(
        out[0].as_slice().unwrap(),
        &fx.f32s("self_masked_causal.output"),
        TOL,
        "output",
    );
    assert_f32_close(
        out[1].as_slice().unwrap(),
        &fx.f32s("self_masked_causal.weights"),
        TOL,
        "weights",
    );
    // Causal: no weight on a later key, and a padded key gets none either (both heads).
    let w = &out[1]; // [B, h·Tq, Tk]
    for b in 0..3 {
        for r in 0..8 {
            for j in 0..4 {
                if j > r % 4 || j >= [4, 2, 3][b] {
                    assert_eq!(w[[b, r, j]], 0.0, "[{b}, {r}, {j}]");
                }
            }
        }
    }
}

/// Masked causal self-attention's every parameter gradient against central differences, and
/// the compiled plan against the f64 interpreter with nothing left to it.
#[test]
fn masked_causal_self_attention_gradchecks_and_compiles_without_fallbacks() {
    let fx = Fixture::load("mha.json");
    let x = Input::new(&[4, 4]);
    let masked = Masking::new(0.0).call(&x).unwrap();
    let y = MultiHeadAttention::new(2, 2)
        .with_value_dim(3)
        .with_use_causal_mask(true)
        .call(&masked)
        .unwrap();
    let mut m = Model::new(&[&x], &[&y]).unwrap();
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let sg = m.step_graph(3, &[&[4, 4]], false).unwrap();
    let xv = fx.get("self_masked_causal.x");
    let xt = Tensor::f64([3, 4, 4], xv.data.clone()).unwrap();
    let yt = Tensor::f64([3, 4, 4], (0..48).map(|i| (i % 7) as f64 * 0.1).collect()).unwrap();
    let fd = feeds(&sg, &m, &[xt], &[yt]);
    let c = gradcheck(&sg.graph, sg.loss, &sg.params, &fd, Tolerance::default()).unwrap();
    c.check().unwrap();
    assert_eq!(
        c.elements,
        2 * (16 + 4) + (24 + 6) + (24 + 4),
        "every parameter"
    );
    let plan = trellis_jit::compile(&sg.graph, &Default::default()).unwrap();
    assert!(
        plan.stats().fallbacks.is_empty(),
        "left to the interpreter: {:?}",
        plan.stats().fallbacks
    );
    let reference = run(&sg.graph, &fd, &[sg.outputs[0].pred], Precision::F64).unwrap();
    let x = array(&fx, "self_masked_causal.x");
    let got: ArrayD<f32> = m.predict(&x).unwrap();
    for (u, v) in got.iter().zip(reference[0].to_f64_vec()) {
        assert!(
            (f64::from(*u) - v).abs() < 1e-5,
            "plan {u} vs interpreter {v}"
        );
    }
}

/// Self-attention in a Sequential text classifier: one input attends to itself; it trains on a
/// task a bag of words cannot solve (is token 2 anywhere before token 3?), summarises with
/// Keras's parameter count and saves and loads.
#[test]
fn self_attention_in_a_sequential_model_trains_saves_and_summarises() {
    let mut r = trellis_nn::data::SplitMix64::new(4);
    let (n, t) = (512, 8);
    let mut x = Array2::from_shape_fn((n, t), |_| 4 + (r.next_f64() * 8.0) as i64);
    let mut y = Array1::zeros(n);
    for i in 0..n {
        let (a, b) = (
            (r.next_f64() * t as f64) as usize,
            (r.next_f64() * t as f64) as usize,
        );
        if a != b {
            x[[i, a]] = 2;
            x[[i, b]] = 3;
            y[i] = if a < b { 1.0 } else { 0.0 };
        }
    }
    let mut m = Sequential::new()
        .with_seed(3)
        .add(Embedding::new(12, 16))
        .add(LstmConfig::new(16).with_return_sequences(true))
        .add(MultiHeadAttention::new(2, 8))
        .add(GlobalAveragePooling1D::new())
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(
        Adam::new(0.01),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let s = m.summary().unwrap();
    assert_eq!(s.rows[2].class, "MultiHeadAttention");
    // Query, key, value [16, 16] + [16] each, output [16, 16] + [16].
    assert_eq!(s.rows[2].params, 4 * (16 * 16 + 16));
    let h = m.fit(&x, &y, &FitOptions::new(12, 32).quiet()).unwrap();
    let acc = *h.accuracy().last().unwrap();
    assert!(acc > 0.9, "accuracy {acc}, losses {:?}", h.loss());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mha.safetensors");
    m.save_model(&path).unwrap();
    let mut again = Sequential::load_model(&path).unwrap();
    let (a, b): (ArrayD<f32>, ArrayD<f32>) = (m.predict(&x).unwrap(), again.predict(&x).unwrap());
    assert_eq!(a, b);
}

#[test]
fn the_attention_layer_masks_causally_and_bad_sizes_are_named() {
    let q = Input::new(&[3, 2]);
    let outs = Attention::new()
        .with_use_causal_mask(true)
        .with_return_attention_scores(true)
        .call_outputs([&q, &q])
        .unwrap();
    let mut m = Model::new(&[&q], &[&outs[0], &outs[1]]).unwrap();
    m.compile(
        Sgd::new(0.1),
        Losses::new(&[Loss::MeanSquaredError; 2]),
        &[],
    )
    .unwrap();
    let x = ArrayD::from_shape_fn(vec![2, 3, 2], |d| (d[0] + 2 * d[1] + d[2]) as f32 * 0.3);
    let w = &m.predict_outputs(&x).unwrap()[1];
    for b in 0..2 {
        for i in 0..3 {
            let row: f32 = (0..3).map(|j| w[[b, i, j]]).sum();
            assert!((row - 1.0).abs() < 1e-6, "{row}");
            for j in i + 1..3 {
                assert_eq!(w[[b, i, j]], 0.0);
            }
        }
    }
    assert_eq!(
        w[[0, 0, 0]],
        1.0,
        "the first query reads only the first key"
    );
    let mut bad = Sequential::new()
        .with_input_shape(&[3, 2])
        .add(MultiHeadAttention::new(0, 4));
    let e = bad
        .compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap_err()
        .to_string();
    // No heads: the projections' sizes are refused, named, before anything is built.
    assert!(
        e.contains("multi_head_attention.query.weight has shape [0, 2]"),
        "{e}"
    );
}

/// Keras ANDs the value's and the key's masks: a key padded in the key input gets no weight
/// even where the value is real.
#[test]
fn the_keys_own_mask_masks_too() {
    let (q, v, k) = (
        Input::new(&[3, 2]),
        Input::new(&[4, 2]),
        Input::new(&[4, 2]),
    );
    let km = Masking::new(0.0).call(&k).unwrap();
    let outs = MultiHeadAttention::new(1, 2)
        .with_return_attention_scores(true)
        .call_outputs([&q, &v, &km])
        .unwrap();
    let w = Reshape::new(&[-1, 4]).call(&outs[1]).unwrap();
    let mut m = Model::new(&[&q, &v, &k], &[&outs[0], &w]).unwrap();
    m.compile(
        Sgd::new(0.1),
        Losses::new(&[Loss::MeanSquaredError; 2]),
        &[],
    )
    .unwrap();
    let ones =
        |t: usize| ArrayD::from_shape_fn(vec![2, t, 2], |d| 0.3 + (d[1] + d[2]) as f32 * 0.1);
    // Sample 0's key is padding from step 2 on; sample 1's is whole.
    let kx = ArrayD::from_shape_fn(vec![2, 4, 2], |d| {
        if d[0] == 0 && d[1] >= 2 {
            0.0
        } else {
            0.5 - d[1] as f32 * 0.2
        }
    });
    let (qx, vx) = (ones(3), ones(4));
    let out = m
        .predict_outputs(vec![
            Inputs::from(&qx),
            Inputs::from(&vx),
            Inputs::from(&kx),
        ])
        .unwrap();
    let w = &out[1]; // [B, h·Tq, Tk]
    for r in 0..3 {
        assert_eq!((w[[0, r, 2]], w[[0, r, 3]]), (0.0, 0.0), "row {r}");
        assert!(w[[1, r, 3]] > 0.0, "row {r}");
    }
}
