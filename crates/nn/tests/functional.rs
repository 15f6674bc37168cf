//! The functional API: a chain written with it is the Sequential model (bit for bit), shared
//! layers have one set of weights whose gradient is the sum over their uses, several inputs
//! and outputs train with a loss weight each, and functional models save, load and summarise.
use std::collections::HashMap;

use trellis_autodiff::{grad, gradcheck, Tolerance};
use trellis_ir::{run, Precision, Tensor};
use trellis_nn::data::SplitMix64;
use trellis_nn::prelude::*;
#[path = "common/feeds.rs"]
mod feeds;
use feeds::feeds;

fn ids(n: usize, t: usize, vocab: i64, seed: u64) -> Array2<i64> {
    let mut r = SplitMix64::new(seed);
    Array2::from_shape_fn((n, t), |_| (r.next_f64() * vocab as f64) as i64)
}

fn floats(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut r = SplitMix64::new(seed);
    ArrayD::from_shape_fn(shape, |_| (r.next_f64() * 2.0 - 1.0) as f32)
}

#[test]
fn the_seed_model_written_functionally_trains_bit_identically() {
    let (n, t, vocab) = (40, 12, 50);
    let x = ids(n, t, vocab, 1);
    let y = Array1::from_shape_fn(n, |i| (x[[i, 0]] % 2) as f32);
    let opts = FitOptions::new(2, 16).quiet();

    let mut seq = Sequential::new()
        .add(Embedding::new(vocab as usize, 8))
        .add(LstmConfig::new(8).with_return_sequences(true))
        .add(Lstm::new(8))
        .add(Dense::new(1, Activation::Sigmoid));
    seq.compile(
        Adam::default(),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let hs = seq.fit(&x, &y, &opts).unwrap();

    let input = Input::new(&[t]);
    let h = Embedding::new(vocab as usize, 8).call(&input).unwrap();
    let h = LstmConfig::new(8)
        .with_return_sequences(true)
        .call(&h)
        .unwrap();
    let h = Lstm::new(8).call(&h).unwrap();
    let p = Dense::new(1, Activation::Sigmoid).call(&h).unwrap();
    let mut fm = Model::new(&[&input], &[&p]).unwrap();
    assert!(fm.is_sequential(), "a chain of single calls is a stack");
    fm.compile(
        Adam::default(),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let names =
        |m: &Model| -> Vec<String> { m.param_specs().iter().map(|s| s.name.clone()).collect() };
    assert_eq!(names(&fm), names(&seq));
    assert!(names(&fm).contains(&"lstm.weight_ih_l1".to_string()));
    let hf = fm.fit(&x, &y, &opts).unwrap();
    assert_eq!(hf.loss(), hs.loss());
    assert_eq!(hf.accuracy(), hs.accuracy());
    assert_eq!(fm.weights(), seq.weights());
    assert!(hs.loss()[1] < hs.loss()[0], "{:?}", hs.loss());
}

/// The loss gradient of every parameter, in f64, by name.
fn param_grads(
    m: &mut Model,
    xs: &[Tensor],
    ys: &[Tensor],
    rows: &[&[usize]],
) -> HashMap<String, Vec<f64>> {
    let b = xs[0].shape().dims()[0];
    let sg = m.step_graph(b, rows, false).unwrap();
    let f = feeds(&sg, m, xs, ys);
    let mut g = sg.graph.clone();
    let grads = grad(&mut g, sg.loss, &sg.params).unwrap();
    let v = run(&g, &f, &grads, Precision::F64).unwrap();
    m.param_specs()
        .iter()
        .zip(v)
        .map(|(s, t)| (s.name.clone(), t.to_f64_vec()))
        .collect()
}

fn tensor(a: &ArrayD<f32>) -> Tensor {
    Tensor::f64(a.shape(), a.iter().map(|&v| v as f64).collect()).unwrap()
}

#[test]
fn a_shared_layer_has_one_set_of_weights_and_the_sum_of_both_gradients() {
    let (b, t, f) = (2, 3, 2);
    let (a_in, b_in) = (Input::new(&[t, f]), Input::new(&[t, f]));
    let encode = Lstm::new(3).shared();
    let head = Dense::new(1, Activation::Tanh).shared();
    let pa = head.call(&encode.call(&a_in).unwrap()).unwrap();
    let pb = head.call(&encode.call(&b_in).unwrap()).unwrap();
    let compile = |m: &mut Model| {
        m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
            .unwrap();
        m.build().unwrap();
    };
    let mut both = Model::new(&[&a_in, &b_in], &[&pa, &pb]).unwrap();
    compile(&mut both);
    let names: Vec<&str> = both.param_specs().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "lstm.weight_ih_l0",
            "lstm.weight_hh_l0",
            "lstm.bias_ih_l0",
            "dense.weight",
            "dense.bias"
        ]
    );
    let (xa, xb) = (floats(&[b, t, f], 3), floats(&[b, t, f], 4));
    let (ya, yb) = (floats(&[b, 1], 5), floats(&[b, 1], 6));
    let rows: [&[usize]; 2] = [&[t, f], &[t, f]];
    let g2 = param_grads(
        &mut both,
        &[tensor(&xa), tensor(&xb)],
        &[tensor(&ya), tensor(&yb)],
        &rows,
    );
    // Each use alone, at the same weights.
    let one = |x: &SymTensor, p: &SymTensor, xv: &ArrayD<f32>, yv: &ArrayD<f32>| {
        let mut m = Model::new(&[x], &[p]).unwrap();
        compile(&mut m);
        for (s, w) in both.param_specs().iter().zip(both.weights()) {
            m.set_weight(&s.name, w).unwrap();
        }
        param_grads(&mut m, &[tensor(xv)], &[tensor(yv)], &rows[..1])
    };
    let ga = one(&a_in, &pa, &xa, &ya);
    let gb = one(&b_in, &pb, &xb, &yb);
    for (name, g) in &g2 {
        let sum: Vec<f64> = ga[name].iter().zip(&gb[name]).map(|(a, b)| a + b).collect();
        assert!(g.iter().any(|v| v.abs() > 1e-4), "{name}: a real gradient");
        for (u, v) in g.iter().zip(&sum) {
            assert!((u - v).abs() < 1e-12, "{name}: {u} vs {v}");
        }
    }
    // And the two-use gradient against central differences.
    let sg = both.step_graph(b, &rows, false).unwrap();
    let fd = feeds(
        &sg,
        &both,
        &[tensor(&xa), tensor(&xb)],
        &[tensor(&ya), tensor(&yb)],
    );
    let c = gradcheck(&sg.graph, sg.loss, &sg.params, &fd, Tolerance::default()).unwrap();
    c.check().unwrap();
    assert!(c.elements > 50);
}

#[test]
fn an_encoder_state_starts_a_decoder_gradcheck() {
    let (b, te, td, f) = (2, 3, 2, 2);
    let (src, tgt) = (Input::new(&[te, f]), Input::new(&[td, f]));
    let enc = LstmConfig::new(3)
        .with_return_state(true)
        .call_outputs(&src)
        .unwrap();
    assert_eq!(enc.len(), 3, "[output, h, c]");
    let dec = LstmConfig::new(3)
        .with_return_sequences(true)
        .call([&tgt, &enc[1], &enc[2]])
        .unwrap();
    let out = Dense::new(2, Activation::Linear).call(&dec).unwrap();
    let mut m = Model::new(&[&src, &tgt], &[&out]).unwrap();
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    m.build().unwrap();
    let rows: [&[usize]; 2] = [&[te, f], &[td, f]];
    let sg = m.step_graph(b, &rows, false).unwrap();
    assert_eq!(sg.graph.ty(sg.outputs[0].pred).dims(), &[b, td, 2]);
    let (xs, xt, y) = (
        floats(&[b, te, f], 7),
        floats(&[b, td, f], 8),
        floats(&[b, td, 2], 9),
    );
    let fd = feeds(&sg, &m, &[tensor(&xs), tensor(&xt)], &[tensor(&y)]);
    let c = gradcheck(&sg.graph, sg.loss, &sg.params, &fd, Tolerance::default()).unwrap();
    c.check().unwrap();
    // The encoder's weights get a gradient only through the state it passes on.
    let g = param_grads(&mut m, &[tensor(&xs), tensor(&xt)], &[tensor(&y)], &rows);
    assert!(g["lstm.weight_ih_l0"].iter().any(|v| v.abs() > 1e-4));
    // A state of the wrong count is refused when the call is made.
    let e = LstmConfig::new(3)
        .call([&tgt, &enc[1]])
        .map(|_| ())
        .and_then(|_| {
            let o = LstmConfig::new(3).call([&tgt, &enc[1]])?;
            Model::new(&[&src, &tgt], &[&o])?.build()
        })
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("initial_state needs 2 tensors (h, c), got 1"),
        "{e}"
    );
    let e = Lstm::new(3)
        .call_outputs([&tgt, &enc[1], &enc[2], &enc[0]])
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("lstm: takes 1 to 3 inputs, called on 4"),
        "{e}"
    );
    let e = LstmConfig::new(3)
        .with_return_state(true)
        .call(&src)
        .unwrap_err();
    assert!(e.to_string().contains("use call_outputs"), "{e}");
}

/// Two inputs (ids and floats), two outputs (a class and a value), one weight per loss.
fn two_heads(weights: [f32; 2]) -> Model {
    let (a, b) = (Input::new(&[6]), Input::new(&[3]));
    let h = Embedding::new(20, 4).call(&a).unwrap();
    let h = Lstm::new(4).call(&h).unwrap();
    let p = Dense::new(1, Activation::Sigmoid).call(&h).unwrap();
    let u = Dense::new(4, Activation::Tanh).call(&b).unwrap();
    let v = Dense::new(1, Activation::Linear).call(&u).unwrap();
    let mut m = Model::new(&[&a, &b], &[&p, &v]).unwrap().with_seed(3);
    let losses =
        Losses::new(&[Loss::BinaryCrossentropy, Loss::MeanSquaredError]).with_weights(&weights);
    m.compile(Adam::new(0.01), losses, &[Metric::Accuracy])
        .unwrap();
    m
}

#[test]
fn several_inputs_and_outputs_train_with_a_weight_per_loss() {
    let n = 48;
    let xa = ids(n, 6, 20, 11);
    let xb = floats(&[n, 3], 12);
    let ya = Array1::from_shape_fn(n, |i| f32::from(xa[[i, 5]] < 10));
    let yb = Array1::from_shape_fn(n, |i| xb[[i, 0]] - xb[[i, 2]]);
    let eval = |m: &mut Model| {
        m.evaluate([Inputs::from(&xa), Inputs::from(&xb)], [&ya, &yb])
            .unwrap()
            .loss
    };
    // The weighted sum of the two losses, each as a model weighting only it reports.
    let (l1, l2) = (
        eval(&mut two_heads([1.0, 0.0])),
        eval(&mut two_heads([0.0, 1.0])),
    );
    let l = eval(&mut two_heads([1.0, 0.5]));
    assert!(
        (l - (l1 + 0.5 * l2)).abs() < 1e-6,
        "{l} vs {l1} + 0.5 * {l2}"
    );
    assert!(l1 > 0.3 && l2 > 0.01, "{l1} {l2}");

    // Weight 0: the second head gets no gradient, so Adam leaves its weights exactly.
    let mut m = two_heads([1.0, 0.0]);
    let before: Vec<Vec<f32>> = m.weights().to_vec();
    let opts = FitOptions::new(8, 16).quiet();
    let h = m
        .fit([Inputs::from(&xa), Inputs::from(&xb)], [&ya, &yb], &opts)
        .unwrap();
    for (s, (w0, w1)) in m.param_specs().iter().zip(before.iter().zip(m.weights())) {
        let moved = w0 != w1;
        assert_eq!(
            moved,
            !s.name.starts_with("dense_1") && !s.name.starts_with("dense_2"),
            "{}",
            s.name
        );
    }
    assert!(h.loss()[7] < h.loss()[0], "{:?}", h.loss());
    // Each output's own loss is logged (Keras's `output0_loss`, ...), in training and in
    // validation, and the total is their weighted sum.
    let mut m = two_heads([1.0, 0.5]);
    let h = m
        .fit(
            [Inputs::from(&xa), Inputs::from(&xb)],
            [&ya, &yb],
            &FitOptions::new(2, 16).with_validation_split(0.25).quiet(),
        )
        .unwrap();
    for e in &h.epochs {
        let (l0, l1) = (
            e.get("output0_loss").unwrap(),
            e.get("output1_loss").unwrap(),
        );
        assert!((e.loss - (l0 + 0.5 * l1)).abs() < 1e-5 * e.loss, "{e:?}");
        let (v0, v1) = (
            e.get("val_output0_loss").unwrap(),
            e.get("val_output1_loss").unwrap(),
        );
        let v = e.val_loss.unwrap();
        assert!((v - (v0 + 0.5 * v1)).abs() < 1e-5 * v, "{e:?}");
        assert!(e.names().contains(&"output1_loss".to_string()));
    }
    let ev = m
        .evaluate([Inputs::from(&xa), Inputs::from(&xb)], [&ya, &yb])
        .unwrap();
    let (e0, e1) = (
        ev.get("output0_loss").unwrap(),
        ev.get("output1_loss").unwrap(),
    );
    assert!((ev.loss - (e0 + 0.5 * e1)).abs() < 1e-5 * ev.loss, "{ev:?}");
    let out = m
        .predict_outputs([Inputs::from(&xa), Inputs::from(&xb)])
        .unwrap();
    assert_eq!(
        out.iter().map(|o| o.shape().to_vec()).collect::<Vec<_>>(),
        [vec![n, 1], vec![n, 1]]
    );
    let e = m
        .predict([Inputs::from(&xa), Inputs::from(&xb)])
        .unwrap_err();
    assert!(e.to_string().contains("use predict_outputs"), "{e}");
    // Data that does not fit the model's inputs and outputs, named.
    let e = m.fit(&xa, [&ya, &yb], &opts).unwrap_err().to_string();
    assert!(
        e.contains("the model has 2 inputs (input, input_1), x has 1 arrays"),
        "{e}"
    );
    let e = m
        .fit([Inputs::from(&xa), Inputs::from(&xb)], &ya, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("the model has 2 outputs, y has 1 arrays"), "{e}");
    let e = m
        .fit(
            [Inputs::from(&xa), Inputs::from(&xb.slice(s![..10, ..]))],
            [&ya, &yb],
            &opts,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("x[0] has 48 samples") && e.contains("has 10"),
        "{e}"
    );
    let mut bad = two_heads([1.0, 1.0]);
    let e = bad
        .compile(
            Adam::default(),
            Losses::new(&[Loss::MeanSquaredError; 3]),
            &[],
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("3 losses for a model with 2 outputs"),
        "{e}"
    );
}

#[test]
fn a_functional_model_saves_loads_and_summarises() {
    let n = 16;
    let (a, b) = (Input::new(&[5]), Input::new(&[5]));
    let embed = Embedding::new(12, 3).shared();
    let encode = Lstm::new(4).shared();
    let ha = encode.call(&embed.call(&a).unwrap()).unwrap();
    let hb = encode.call(&embed.call(&b).unwrap()).unwrap();
    let head = Dense::new(1, Activation::Sigmoid).shared();
    let (pa, pb) = (head.call(&ha).unwrap(), head.call(&hb).unwrap());
    let mut m = Model::new(&[&a, &b], &[&pa, &pb]).unwrap();
    assert!(!m.is_sequential());
    m.compile(Adam::default(), Loss::BinaryCrossentropy, &[])
        .unwrap();
    let (xa, xb) = (ids(n, 5, 12, 1), ids(n, 5, 12, 2));
    let y = Array1::from_shape_fn(n, |i| (i % 2) as f32);
    m.fit([&xa, &xb], [&y, &y], &FitOptions::new(1, 8).quiet())
        .unwrap();

    let s = m.summary().unwrap();
    let rows: Vec<(&str, &str, usize, Vec<&str>)> = s
        .rows
        .iter()
        .map(|r| {
            let c = r.connected_to.iter().map(String::as_str).collect();
            (r.name.as_str(), r.class.as_str(), r.params, c)
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("input", "InputLayer", 0, vec![]),
            ("input_1", "InputLayer", 0, vec![]),
            (
                "embedding",
                "Embedding",
                36,
                vec!["input[0][0]", "input_1[0][0]"]
            ),
            (
                "lstm",
                "LSTM",
                4 * 4 * (3 + 4 + 1),
                vec!["embedding[0][0]", "embedding[1][0]"]
            ),
            ("dense", "Dense", 5, vec!["lstm[0][0]", "lstm[1][0]"]),
        ]
    );
    assert_eq!(s.rows[3].output_shape, [None, Some(4)]);
    let text = s.to_string();
    assert!(text.starts_with("Model: \"functional\""), "{text}");
    assert!(
        text.contains("Connected to") && text.contains("embedding[1][0]"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siamese.safetensors");
    m.save_model(&path).unwrap();
    let mut back = Model::load_model(&path).unwrap();
    let x = [Inputs::from(&xa), Inputs::from(&xb)];
    assert_eq!(
        back.predict_outputs(x.clone()).unwrap(),
        m.predict_outputs(x).unwrap()
    );
    assert_eq!(back.summary().unwrap(), s);
    assert_eq!(back.step(), m.step());
    let e = Sequential::load_model(&path).unwrap_err().to_string();
    assert!(
        e.contains("functional model") && e.contains("Model::load_model"),
        "{e}"
    );
}

#[test]
fn a_model_over_inputs_it_was_not_given_is_refused() {
    let (a, b) = (Input::new(&[3]), Input::new(&[3]));
    let p = Dense::new(1, Activation::Linear).call(&b).unwrap();
    let e = Model::new(&[&a], &[&p]).unwrap_err().to_string();
    assert!(e.contains("not among the model's inputs"), "{e}");
    let e = Model::new(&[&p], &[&p]).unwrap_err().to_string();
    assert!(
        e.contains("inputs[0] is the output of a layer (dense)"),
        "{e}"
    );
    // A shared layer called on inputs of two widths.
    let (c, d) = (Input::new(&[3]), Input::new(&[4]));
    let dense = Dense::new(2, Activation::Linear).shared();
    let (pc, pd) = (dense.call(&c).unwrap(), dense.call(&d).unwrap());
    let mut m = Model::new(&[&c, &d], &[&pc, &pd]).unwrap();
    let e = m
        .compile(Adam::default(), Loss::MeanSquaredError, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer 0 (dense)") && e.contains("[2, 4]") && e.contains("[2, 3]"),
        "{e}"
    );
}

/// Gradcheck (f64) of the summed losses of `m` against every parameter, at the inputs `xs`
/// and targets `ys`.
fn gradcheck_model(m: &mut Model, xs: &[Tensor], ys: &[Tensor]) -> usize {
    m.build().unwrap();
    let rows: Vec<Vec<usize>> = xs.iter().map(|x| x.shape().dims()[1..].to_vec()).collect();
    let rows: Vec<&[usize]> = rows.iter().map(Vec::as_slice).collect();
    let b = xs[0].shape().dims()[0];
    let sg = m.step_graph(b, &rows, false).unwrap();
    let fd = feeds(&sg, m, xs, ys);
    let tol = Tolerance {
        abs: 1e-6,
        rel: 1e-5,
        eps: 1e-6,
    };
    let c = gradcheck(&sg.graph, sg.loss, &sg.params, &fd, tol).unwrap();
    c.check().unwrap();
    c.elements
}

/// A float sequence `[n, t, f]` whose step `s` of sample `i` is all zeros (masked by
/// `Masking(0)`) when `(i + s) % 3 == 2`.
fn masked_seq(n: usize, t: usize, f: usize, seed: u64) -> ArrayD<f32> {
    let mut x = floats(&[n, t, f], seed);
    for i in 0..n {
        for s in 0..t {
            if (i + s) % 3 == 2 {
                for k in 0..f {
                    x[[i, s, k]] = 0.0;
                }
            }
        }
    }
    x
}

#[test]
fn merge_shape_and_pooling_layers_gradcheck() {
    let (b, t, f) = (2, 4, 3);
    let (a, bb) = (Input::new(&[t, f]), Input::new(&[t, f]));
    let ma = Masking::new(0.0).call(&a).unwrap();
    let sum = Add::new().call([&ma, &bb]).unwrap();
    let prod = Multiply::new().call([&ma, &bb]).unwrap();
    let diff = Subtract::new().call([&bb, &ma]).unwrap();
    let c = Concatenate::new(-1).call([&sum, &prod, &diff]).unwrap();
    let over_time = Softmax::new(1)
        .call(&Dense::new(2, Activation::Linear).call(&c).unwrap())
        .unwrap();
    let avg = GlobalAveragePooling1D::new().call(&c).unwrap();
    let mx = GlobalMaxPooling1D::new()
        .call(&Dense::new(3, Activation::Tanh).call(&c).unwrap())
        .unwrap();
    let cos = Dot::new(-1)
        .with_normalize(true)
        .call([&Dense::new(3, Activation::Linear).call(&avg).unwrap(), &mx])
        .unwrap();
    let gram = Dot::with_axes(2, 2).call([&over_time, &over_time]).unwrap();
    let flat = Dense::new(1, Activation::Linear)
        .call(&Flatten::new().call(&gram).unwrap())
        .unwrap();
    let rep = Lstm::new(2)
        .call(&RepeatVector::new(2).call(&mx).unwrap())
        .unwrap();
    let mut m = Model::new(&[&a, &bb], &[&cos, &flat, &rep]).unwrap();
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let xs = [
        tensor(&masked_seq(b, t, f, 21)),
        tensor(&floats(&[b, t, f], 22)),
    ];
    let ys = [
        tensor(&floats(&[b, 1], 23)),
        tensor(&floats(&[b, 1], 24)),
        tensor(&floats(&[b, 2], 25)),
    ];
    assert!(gradcheck_model(&mut m, &xs, &ys) > 100);
    let s = m.summary().unwrap();
    let classes: Vec<&str> = s.rows.iter().map(|r| r.class.as_str()).collect();
    for c in [
        "Add",
        "Subtract",
        "Multiply",
        "Concatenate",
        "Softmax",
        "GlobalAveragePooling1D",
        "GlobalMaxPooling1D",
        "Dot",
        "Flatten",
        "RepeatVector",
    ] {
        assert!(classes.contains(&c), "{c} in {classes:?}");
    }
}

#[test]
fn pooling_dot_and_softmax_give_keras_values() {
    // Two samples of three steps; sample 0's middle step and all of sample 1 are padding.
    let x = ArrayD::from_shape_vec(
        vec![2, 3, 2],
        vec![1.0, 2.0, 0.0, 0.0, 3.0, -4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    )
    .unwrap();
    let a = Input::new(&[3, 2]);
    let ma = Masking::new(0.0).call(&a).unwrap();
    let avg = GlobalAveragePooling1D::new().call(&ma).unwrap();
    let mx = GlobalMaxPooling1D::new().call(&ma).unwrap();
    let cos = Dot::new(1).with_normalize(true).call([&avg, &mx]).unwrap();
    let dot = Dot::new(1).call([&avg, &mx]).unwrap();
    let sm = Softmax::new(1).call(&a).unwrap();
    let mut m = Model::new(&[&a], &[&avg, &mx, &cos, &dot, &sm]).unwrap();
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let out = m.predict_outputs(&x).unwrap();
    let v = |i: usize| out[i].iter().copied().collect::<Vec<f32>>();
    // Keras: the mean and maximum over the real steps (1, 2) and (3, -4).
    assert_eq!(v(0), [2.0, -1.0, 0.0, 0.0]);
    assert_eq!(v(1), [3.0, 2.0, 0.0, 0.0]);
    let cos0 = (2.0 * 3.0 - 2.0) / ((5.0f32).sqrt() * (13.0f32).sqrt());
    assert!(
        (v(2)[0] - cos0).abs() < 1e-6 && v(2)[1] == 0.0,
        "{:?}",
        v(2)
    );
    assert_eq!(v(3), [4.0, 0.0]);
    // Softmax over the steps of each feature: sample 0, feature 0 over (1, 0, 3).
    let e = [1f32.exp(), 1.0, 3f32.exp()];
    let z: f32 = e.iter().sum();
    let got = [out[4][[0, 0, 0]], out[4][[0, 1, 0]], out[4][[0, 2, 0]]];
    for (g, w) in got.iter().zip(e.iter().map(|v| v / z)) {
        assert!((g - w).abs() < 1e-6, "{got:?}");
    }
}

#[test]
fn attention_layers_gradcheck_with_masks_and_return_weights() {
    let (b, tq, tk, vocab) = (2, 3, 4, 9);
    let (q, v) = (Input::new(&[tq]), Input::new(&[tk]));
    let embed = EmbeddingConfig::new(vocab, 3).with_mask_zero(true).shared();
    let (qe, ve) = (embed.call(&q).unwrap(), embed.call(&v).unwrap());
    let dot = Attention::new()
        .with_use_scale(true)
        .with_return_attention_scores(true)
        .call_outputs([&qe, &ve])
        .unwrap();
    let key = Dense::new(3, Activation::Linear).call(&ve).unwrap();
    let add = AdditiveAttention::new().call([&qe, &ve, &key]).unwrap();
    let both = Concatenate::new(-1).call([&dot[0], &add]).unwrap();
    let p = Dense::new(1, Activation::Linear)
        .call(&GlobalAveragePooling1D::new().call(&both).unwrap())
        .unwrap();
    let mut m = Model::new(&[&q, &v], &[&p]).unwrap();
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let names: Vec<&str> = m.param_specs().iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"attention.scale") && names.contains(&"additive_attention.scale"),
        "{names:?}"
    );
    // Query 1 of sample 0 and keys 2, 3 of sample 1 are padding (id 0).
    let xq = Tensor::i64([b, tq], vec![1, 0, 3, 4, 5, 6]).unwrap();
    let xv = Tensor::i64([b, tk], vec![2, 3, 4, 5, 6, 7, 0, 0]).unwrap();
    let y = tensor(&floats(&[b, 1], 31));
    assert!(gradcheck_model(&mut m, &[xq, xv], &[y]) > 30);

    // The weights as a second model output: masked keys get none, each row sums to 1.
    let mut w = Model::new(&[&q, &v], &[&p, &dot[1]]).unwrap();
    w.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let xq = Array2::from_shape_vec((b, tq), vec![1i64, 0, 3, 4, 5, 6]).unwrap();
    let xv = Array2::from_shape_vec((b, tk), vec![2i64, 3, 4, 5, 6, 7, 0, 0]).unwrap();
    let out = w.predict_outputs([&xq, &xv]).unwrap();
    assert_eq!(out[1].shape(), [b, tq, tk]);
    for i in 0..tq {
        assert_eq!((out[1][[1, i, 2]], out[1][[1, i, 3]]), (0.0, 0.0));
        let row: f32 = (0..tk).map(|j| out[1][[1, i, j]]).sum();
        assert!((row - 1.0).abs() < 1e-6, "{row}");
    }
}

#[test]
fn merge_and_attention_shape_errors_name_the_layer_and_shapes() {
    let build = |outs: &[&SymTensor], ins: &[&SymTensor]| {
        let mut m = Model::new(ins, outs).unwrap();
        m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
            .unwrap_err()
            .to_string()
    };
    let (a, b) = (Input::new(&[3]), Input::new(&[4]));
    let e = build(&[&Add::new().call([&a, &b]).unwrap()], &[&a, &b]);
    assert_eq!(e, "add: inputs must have one shape, got [1, 3], [1, 4]");
    let (s, t) = (Input::new(&[5, 3]), Input::new(&[4, 3]));
    let e = build(&[&Concatenate::new(-1).call([&s, &t]).unwrap()], &[&s, &t]);
    assert_eq!(
        e,
        "concatenate: inputs must agree on every axis but 2, got [1, 5, 3], [1, 4, 3]"
    );
    let e = build(&[&Dot::new(-1).call([&a, &b]).unwrap()], &[&a, &b]);
    assert!(e.contains("dot:") && e.contains("[1, 3] and [1, 4]"), "{e}");
    let u = Input::new(&[4, 2]);
    let e = build(&[&Attention::new().call([&s, &u]).unwrap()], &[&s, &u]);
    assert!(
        e.contains("attention: query [B, Tq, D]") && e.contains("[1, 5, 3], [1, 4, 2]"),
        "{e}"
    );
    let e = Add::new().call(&a).unwrap_err().to_string();
    assert_eq!(e, "model: add: takes at least 2 inputs, called on 1");
    let e = build(&[&Concatenate::new(0).call([&a, &a]).unwrap()], &[&a]);
    assert!(e.contains("axis") && e.contains("non-batch"), "{e}");
}
