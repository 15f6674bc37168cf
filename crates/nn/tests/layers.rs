//! Layer output shapes, parameter names and shapes (PyTorch state-dict naming), initialisers.
use trellis_ir::{run, Precision, Tensor};
use trellis_nn::data::SplitMix64;
use trellis_nn::prelude::*;
use trellis_nn::{Init, ParamSpec};

fn names_shapes(m: &Sequential) -> Vec<(String, Vec<usize>)> {
    m.param_specs()
        .iter()
        .map(|s| (s.name.clone(), s.shape.clone()))
        .collect()
}

fn seed_model(vocab: usize, e: usize, h: usize) -> Sequential {
    let mut m = Sequential::new()
        .add(Embedding::new(vocab, e))
        .add(LstmConfig::new(h).with_return_sequences(true))
        .add(Lstm::new(h))
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(
        Adam::default(),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

#[test]
fn seed_model_params_match_torch_state_dict() {
    let m = seed_model(10_000, 128, 128);
    let v = |n: &str, s: &[usize]| (n.to_string(), s.to_vec());
    assert_eq!(
        names_shapes(&m),
        vec![
            v("embedding.weight", &[10_000, 128]),
            v("lstm.weight_ih_l0", &[512, 128]),
            v("lstm.weight_hh_l0", &[512, 128]),
            v("lstm.bias_ih_l0", &[512]),
            v("lstm.weight_ih_l1", &[512, 128]),
            v("lstm.weight_hh_l1", &[512, 128]),
            v("lstm.bias_ih_l1", &[512]),
            v("dense.weight", &[1, 128]),
            v("dense.bias", &[1]),
        ]
    );
}

#[test]
fn naming_rule_new_modules_after_a_break() {
    // LSTM, dropout, LSTM: the dropout breaks the stack, so the second LSTM is `lstm_1`;
    // two Dense layers are `dense` and `dense_1`.
    let mut m = Sequential::new()
        .add(Embedding::new(20, 4))
        .add(LstmConfig::new(6).with_return_sequences(true))
        .add(Dropout::new(0.5))
        .add(Lstm::new(5))
        .add(DenseConfig::new(3).with_activation(Activation::Relu))
        .add(Dense::new(2, Activation::Softmax));
    m.compile(
        Adam::default(),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let got: Vec<String> = names_shapes(&m)
        .into_iter()
        .map(|(n, s)| format!("{n}{s:?}"))
        .collect();
    assert_eq!(
        got,
        [
            "embedding.weight[20, 4]",
            "lstm.weight_ih_l0[24, 4]",
            "lstm.weight_hh_l0[24, 6]",
            "lstm.bias_ih_l0[24]",
            "lstm_1.weight_ih_l0[20, 6]",
            "lstm_1.weight_hh_l0[20, 5]",
            "lstm_1.bias_ih_l0[20]",
            "dense.weight[3, 5]",
            "dense.bias[3]",
            "dense_1.weight[2, 3]",
            "dense_1.bias[2]",
        ]
    );
}

#[test]
fn output_shapes() {
    // return_sequences gives [B, T, H] at the model output (batch-major), else [B, H].
    for (seq, want) in [(true, vec![3, 5, 7]), (false, vec![3, 7])] {
        let mut m = Sequential::new()
            .add(Embedding::new(10, 4))
            .add(LstmConfig::new(7).with_return_sequences(seq));
        m.compile(Adam::default(), Loss::MeanSquaredError, &[])
            .unwrap();
        let sg = m.step_graph(3, &[&[5]], false).unwrap();
        assert_eq!(sg.graph.ty(sg.outputs[0].pred).dims(), want.as_slice());
        // A per-step output has per-step targets and weights.
        assert_eq!(sg.outputs[0].steps, if seq { 5 } else { 1 });
        let w = if seq { vec![3, 5, 1] } else { vec![3, 1] };
        assert_eq!(sg.graph.ty(sg.outputs[0].w).dims(), w.as_slice());
    }
    // Dense on a sequence applies per step: [B, T, H] -> Dense(2) then LSTM -> [B, 2].
    let mut m = Sequential::new()
        .add(Embedding::new(10, 4))
        .add(LstmConfig::new(7).with_return_sequences(true))
        .add(Dense::new(3, Activation::Tanh))
        .add(Lstm::new(2));
    m.compile(Adam::default(), Loss::MeanSquaredError, &[])
        .unwrap();
    let sg = m.step_graph(3, &[&[5]], true).unwrap();
    assert_eq!(sg.graph.ty(sg.outputs[0].pred).dims(), &[3, 2]);
    assert_eq!(m.param_specs()[4].shape, vec![3, 7]); // dense.weight [units, in]
    assert_eq!(m.param_specs()[6].name, "lstm_1.weight_ih_l0");
    assert_eq!(m.param_specs()[6].shape, vec![8, 3]);
    // Float input [B, F] -> Dense.
    let mut m = Sequential::new()
        .with_input_shape(&[6])
        .add(Dense::new(4, Activation::Relu))
        .add(Dense::new(1, Activation::Linear));
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let sg = m.step_graph(5, &[&[6]], false).unwrap();
    assert_eq!(sg.graph.ty(sg.outputs[0].pred).dims(), &[5, 1]);
}

#[test]
fn dropout_mask_in_training_identity_in_inference() {
    let mut m = Sequential::new()
        .with_input_shape(&[4])
        .add(Dropout::new(0.25))
        .add(Dense::new(1, Activation::Linear));
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let train = m.step_graph(2, &[&[4]], true).unwrap();
    assert_eq!(train.masks.len(), 1);
    assert_eq!(train.masks[0].rate, 0.25);
    assert_eq!(train.graph.ty(train.masks[0].node).dims(), &[2, 4]);
    let infer = m.step_graph(2, &[&[4]], false).unwrap();
    assert!(infer.masks.is_empty());
    // Inference is the identity: pred = x W^T + b exactly.
    m.set_weight("dense.weight", &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let pred = m.predict(&array![[1.0f32, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]]);
    assert_eq!(pred.unwrap(), array![[10.0], [4.0]].into_dyn());
}

#[test]
fn glorot_and_uniform_bounds() {
    let mut rng = SplitMix64::new(1);
    let w = Init::GlorotUniform.sample(&[512, 128], &mut rng);
    let limit = (6.0f32 / (512.0 + 128.0)).sqrt();
    assert!(w.iter().all(|x| x.abs() <= limit));
    // The samples fill the range (max close to the limit) and are centred.
    let max = w.iter().fold(0f32, |a, x| a.max(x.abs()));
    assert!(max > 0.99 * limit, "{max} vs {limit}");
    let mean = w.iter().sum::<f32>() / w.len() as f32;
    assert!(mean.abs() < 0.01 * limit, "{mean}");
    let e = Init::Uniform(0.05).sample(&[1000, 8], &mut rng);
    assert!(e.iter().all(|x| x.abs() <= 0.05));
    assert!(e.iter().fold(0f32, |a, x| a.max(x.abs())) > 0.049);
}

#[test]
fn orthogonal_recurrent_kernel_and_forget_bias() {
    let m = seed_model(50, 8, 16);
    let spec: &ParamSpec = &m.param_specs()[2];
    assert_eq!(spec.name, "lstm.weight_hh_l0");
    assert_eq!(spec.init, Init::Orthogonal);
    let w = m.weight("lstm.weight_hh_l0").unwrap(); // [4H, H] = [64, 16]
    let (r, c) = (64, 16);
    for i in 0..c {
        for j in 0..c {
            let d: f64 = (0..r)
                .map(|k| w[k * c + i] as f64 * w[k * c + j] as f64)
                .sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((d - want).abs() < 1e-5, "W^T W [{i},{j}] = {d}");
        }
    }
    // Wide matrices get orthonormal rows.
    let mut rng = SplitMix64::new(5);
    let q = Init::Orthogonal.sample(&[3, 7], &mut rng);
    for i in 0..3 {
        for j in 0..3 {
            let d: f32 = (0..7).map(|k| q[i * 7 + k] * q[j * 7 + k]).sum();
            assert!((d - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5);
        }
    }
    // Forget-gate bias 1, the others 0 (gate order i, f, g, o).
    let b = m.weight("lstm.bias_ih_l0").unwrap();
    assert!(b[..16].iter().all(|&x| x == 0.0));
    assert!(b[16..32].iter().all(|&x| x == 1.0));
    assert!(b[32..].iter().all(|&x| x == 0.0));
    // Glorot kernel of the LSTM input weights, zero Dense bias.
    let wi = m.weight("lstm.weight_ih_l0").unwrap();
    let limit = (6.0f32 / (8.0 + 64.0)).sqrt();
    assert!(wi.iter().all(|x| x.abs() <= limit));
    assert_eq!(m.weight("dense.bias").unwrap(), &[0.0]);
}

#[test]
fn same_seed_same_weights() {
    let a = seed_model(50, 8, 8);
    let b = seed_model(50, 8, 8);
    assert_eq!(a.weights(), b.weights());
    let mut c = Sequential::new()
        .with_seed(9)
        .add(Embedding::new(50, 8))
        .add(LstmConfig::new(8).with_return_sequences(true))
        .add(Lstm::new(8))
        .add(Dense::new(1, Activation::Sigmoid));
    c.compile(Adam::default(), Loss::BinaryCrossentropy, &[])
        .unwrap();
    assert_ne!(a.weights(), c.weights());
}

#[test]
fn embedding_lstm_dense_forward_matches_the_ir_seed_model() {
    // The nn graph and trellis_ir::models::seed_model compute the same logits from the same
    // weights (the bias names differ: ir calls it lstm.bias_l{k}).
    use trellis_ir::models::{seed_model as ir_seed, SeedConfig};
    let (b, t) = (3, 5);
    let mut m = seed_model(20, 4, 6);
    let sg = m.step_graph(b, &[&[t]], false).unwrap();
    let mut g = trellis_ir::Graph::new();
    let cfg = SeedConfig {
        vocab: 20,
        embed: 4,
        hidden: 6,
        layers: 2,
        seq: t,
        batch: b,
        dtype: trellis_ir::DType::F32,
        ..Default::default()
    };
    let ir = ir_seed(&mut g, &cfg).unwrap();
    let ids: Vec<i64> = (0..(b * t) as i64).map(|i| (i * 7) % 20).collect();
    let mut f1 = std::collections::HashMap::new();
    let mut f2 = std::collections::HashMap::new();
    f1.insert(sg.inputs[0], Tensor::i64([b, t], ids.clone()).unwrap());
    f2.insert(ir.ids, Tensor::i64([b, t], ids).unwrap());
    f1.insert(sg.outputs[0].y, Tensor::f32([b, 1], vec![0.0; b]).unwrap());
    f1.insert(sg.outputs[0].w, Tensor::f32([b, 1], vec![0.0; b]).unwrap());
    f2.insert(ir.labels, Tensor::f32([b, 1], vec![0.0; b]).unwrap());
    for ((p, q), (s, w)) in sg
        .params
        .iter()
        .zip(&ir.params)
        .zip(m.param_specs().iter().zip(m.weights()))
    {
        let t = Tensor::f32(s.shape.as_slice(), w.clone()).unwrap();
        f1.insert(*p, t.clone());
        f2.insert(*q, t);
    }
    let a = run(&sg.graph, &f1, &[sg.outputs[0].pred], Precision::F64).unwrap();
    let z = run(&g, &f2, &[ir.logits], Precision::F64).unwrap();
    let pa = a[0].to_f64_vec();
    let pz: Vec<f64> = z[0]
        .to_f64_vec()
        .iter()
        .map(|z| 1.0 / (1.0 + (-z).exp()))
        .collect();
    for (x, y) in pa.iter().zip(&pz) {
        assert!((x - y).abs() < 1e-12, "{x} vs {y}");
    }
}

#[test]
fn lstm_return_state_through_forward_and_rejected_in_sequential() {
    use trellis_nn::layers::{Layer, Layout, Scope};
    let l = LstmConfig::new(5).with_return_state(true).init();
    let mut g = trellis_ir::Graph::new();
    let x = g.input("x", trellis_ir::TensorType::f32([4, 3, 2])); // [T, B, in]
    let scope = Scope {
        module: "lstm".into(),
        index: 0,
    };
    let params: Vec<_> = l
        .params(&scope, 2)
        .iter()
        .map(|s| g.param(&s.name, trellis_ir::TensorType::f32(s.shape.as_slice())))
        .collect();
    let out = l.forward(&mut g, x, Layout::TimeMajor, &params).unwrap();
    assert_eq!(g.ty(out.output).dims(), &[3, 5]);
    assert_eq!(g.ty(out.h[0]).dims(), &[3, 5]);
    assert_eq!(g.ty(out.c[0]).dims(), &[3, 5]);
    let mut m = Sequential::new()
        .add(Embedding::new(10, 2))
        .add(LstmConfig::new(5).with_return_state(true));
    // Building (at compile: an embedding model's parameters are known) refuses it.
    let e = m
        .compile(Adam::default(), Loss::MeanSquaredError, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("return_state"), "{e}");
}

/// An LSTM and a GRU over the first steps of a sequence, then started from their final state
/// (`Recurrent::unroll` with an initial state, Keras's `initial_state`) over the rest, give
/// what one pass over the whole sequence gives: the state an encoder returns starts a decoder
/// exactly. A wrong number of state tensors is refused, and so is a GRU with `return_state`
/// inside a Sequential, as the LSTM is.
#[test]
fn recurrent_layers_continue_from_a_returned_state() {
    use trellis_ir::lstm::Direction;
    use trellis_ir::{Feeds, Graph, TensorType};
    use trellis_nn::layers::{Act, BuildCtx, Layout, Recurrent, Scope};
    let (t, b, inp, h) = (5, 2, 3, 4);
    let split = 2;
    let cells: [Box<dyn Recurrent>; 2] = [
        Box::new(LstmConfig::new(h).init()),
        Box::new(GruConfig::new(h).init()),
    ];
    for layer in cells {
        let kind = layer.kind();
        let mut g = Graph::new();
        let mut feeds = Feeds::new();
        let x = g.input("x", TensorType::f64([t, b, inp]));
        let xs = (0..t * b * inp).map(|i| ((i * 37 % 23) as f64 - 11.0) / 9.0);
        feeds.insert(x, Tensor::f64([t, b, inp], xs.collect()).unwrap());
        let scope = Scope {
            module: "rnn".into(),
            index: 0,
        };
        let mut params = Vec::new();
        for (k, s) in layer.params(&scope, inp).iter().enumerate() {
            let id = g.param(&s.name, TensorType::f64(s.shape.as_slice()));
            let n: usize = s.shape.iter().product();
            let v = (0..n).map(|i| (((i + k) * 53 % 31) as f64 - 15.0) / 40.0);
            feeds.insert(id, Tensor::f64(s.shape.as_slice(), v.collect()).unwrap());
            params.push(id);
        }
        let tm = Layout::TimeMajor;
        let fwd = Direction::Forward;
        let unroll = |g: &mut Graph, x, init: Option<&[_]>| {
            let ctx = &mut BuildCtx::default();
            layer.unroll(g, &Act::new(x, tm), &params, fwd, init, ctx)
        };
        let (whole, whole_states) = unroll(&mut g, x, None).unwrap();
        let head = g.slice(x, 0, 0, split).unwrap();
        let tail = g.slice(x, 0, split, t).unwrap();
        let (first, states) = unroll(&mut g, head, None).unwrap();
        let (rest, rest_states) = unroll(&mut g, tail, Some(&states)).unwrap();
        let e = unroll(&mut g, tail, Some(&states[..1])).err();
        if kind == "lstm" {
            let e = e.unwrap().to_string();
            assert!(
                e.contains("lstm: initial_state needs 2 tensors (h, c), got 1"),
                "{e}"
            );
        }
        let joined = g.concat(&[first, rest], 0).unwrap();
        let mut outs = vec![whole, joined];
        outs.extend(whole_states.iter().chain(&rest_states));
        let r = run(&g, &feeds, &outs, Precision::F64).unwrap();
        let n = whole_states.len();
        let pairs = [(0, 1)]
            .into_iter()
            .chain((0..n).map(|k| (2 + k, 2 + n + k)));
        for (w, p) in pairs {
            let (want, got) = (r[w].to_f64_vec(), r[p].to_f64_vec());
            assert!(want.iter().any(|v| v.abs() > 0.05), "{kind}: a real signal");
            for (u, v) in got.iter().zip(&want) {
                assert!((u - v).abs() < 1e-12, "{kind} output {p}: {u} vs {v}");
            }
        }
    }
    let mut m = Sequential::new()
        .add(Embedding::new(10, 2))
        .add(GruConfig::new(5).with_return_state(true));
    let e = m
        .compile(Adam::default(), Loss::MeanSquaredError, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("gru: return_state gives two outputs"), "{e}");
}

/// Keras's `Activation` layer: `Dense(k)` then `Activation::Softmax` trains exactly as
/// `Dense(k, softmax)` (the loss reads the logit either way), saves, and exports to ONNX; a
/// linear `Activation` after the softmax is the identity, logit kept.
#[test]
fn an_activation_layer_is_the_dense_activation() {
    let x = Array2::from_shape_fn((24, 4), |(r, c)| ((r * 5 + c * 3) % 7) as f32 / 7.0 - 0.4);
    let y = Array1::from_shape_fn(24, |r| (r % 3) as f32);
    let model = |split: bool| {
        let m = Sequential::new().with_seed(2).with_input_shape(&[4]);
        let mut m = if split {
            m.add(Dense::new(3, Activation::Linear))
                .add(Activation::Softmax)
        } else {
            m.add(Dense::new(3, Activation::Softmax))
        };
        m.compile(Sgd::new(0.5), Loss::SparseCategoricalCrossentropy, &[])
            .unwrap();
        m
    };
    let mut linear_after = Sequential::new()
        .with_seed(2)
        .with_input_shape(&[4])
        .add(Dense::new(3, Activation::Softmax))
        .add(Activation::Linear);
    linear_after
        .compile(Sgd::new(0.5), Loss::SparseCategoricalCrossentropy, &[])
        .unwrap();
    let opts = FitOptions::new(5, 8).quiet();
    assert_eq!(
        linear_after.fit(&x, &y, &opts).unwrap().loss(),
        model(false).fit(&x, &y, &opts).unwrap().loss()
    );
    let (mut a, mut b) = (model(true), model(false));
    assert_eq!(
        a.fit(&x, &y, &opts).unwrap().loss(),
        b.fit(&x, &y, &opts).unwrap().loss()
    );
    assert_eq!(a.summary().unwrap().rows[1].class, "Activation");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("act.safetensors");
    a.save_model(&path).unwrap();
    let mut again = Sequential::load_model(&path).unwrap();
    let (pa, pb): (ArrayD<f32>, ArrayD<f32>) = (a.predict(&x).unwrap(), again.predict(&x).unwrap());
    assert_eq!(pa, pb);
    assert!(trellis_nn::onnx::to_bytes(&a).is_ok());
}
