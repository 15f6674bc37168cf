//! Recurrent cells written outside trellis (`ir::recurrent::Cell`) in `Rnn` layers: an LSTM
//! written as a user would matches PyTorch's `nn.LSTM` and the built-in layer (values,
//! gradients, training); a minimal gated unit (Zhou et al. 2016, two gate blocks) runs
//! bidirectional and masked, its gradient checks against central differences, the compiled
//! plan against the interpreter with nothing left to it; and the errors a cell can cause are
//! named.
#[path = "common/feeds.rs"]
mod feeds;
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
#[path = "../../../examples/cells/mgu.rs"]
mod mgu;
use feeds::feeds;
use golden_lstm::Fixture;
use mgu::Mgu;
use trellis_autodiff::{gradcheck, Tolerance};
use trellis_ir::recurrent::{Cell, LayerWeights};
use trellis_ir::{run, Graph, IrError, NodeId, Precision, Tensor};
use trellis_nn::data::SplitMix64;
use trellis_nn::prelude::*;
use trellis_nn::{Rnn, RnnConfig};

/// An LSTM cell, gates i, f, g, o as PyTorch stacks them.
#[derive(Clone, Debug, PartialEq)]
struct MyLstm;

impl Cell for MyLstm {
    fn name(&self) -> &'static str {
        "my_lstm"
    }
    fn gates(&self) -> usize {
        4
    }
    fn states(&self) -> usize {
        2
    }
    fn step(
        &self,
        g: &mut Graph,
        zx: NodeId,
        prev: Option<&[NodeId]>,
        w: &LayerWeights,
        h: usize,
    ) -> Result<Vec<NodeId>, IrError> {
        let z = w.pre_activation(g, zx, prev.map(|p| p[0]))?;
        let mut gate = |k: usize| g.slice(z, 1, k * h, (k + 1) * h);
        let (i, f, c_in, o) = (gate(0)?, gate(1)?, gate(2)?, gate(3)?);
        let (i, f, c_in, o) = (g.sigmoid(i)?, g.sigmoid(f)?, g.tanh(c_in)?, g.sigmoid(o)?);
        let ic = g.mul(i, c_in)?;
        let c = match prev {
            Some(p) => {
                let fc = g.mul(f, p[1])?;
                g.add(fc, ic)?
            }
            None => ic,
        };
        let tc = g.tanh(c)?;
        Ok(vec![g.mul(o, tc)?, c])
    }
}

fn floats(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut r = SplitMix64::new(seed);
    ArrayD::from_shape_fn(shape, |_| (r.next_f64() * 2.0 - 1.0) as f32)
}

#[test]
fn an_lstm_written_as_a_cell_matches_torch_and_the_builtin_layer() {
    // PyTorch's nn.LSTM(3, 2) over T = 3, B = 2 (time-major in the fixture).
    let fx = Fixture::load("lstm_t3.json");
    let mut m = Sequential::new()
        .with_input_shape(&[3, 3])
        .add(RnnConfig::new(2).with_return_sequences(true).init(MyLstm));
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let names: Vec<&str> = m.param_specs().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "my_lstm.weight_ih_l0",
            "my_lstm.weight_hh_l0",
            "my_lstm.bias_ih_l0"
        ]
    );
    m.set_weight("my_lstm.weight_ih_l0", &fx.f32s("weight_ih_l0"))
        .unwrap();
    m.set_weight("my_lstm.weight_hh_l0", &fx.f32s("weight_hh_l0"))
        .unwrap();
    let bias: Vec<f32> = fx
        .f32s("bias_ih_l0")
        .iter()
        .zip(fx.f32s("bias_hh_l0"))
        .map(|(a, b)| a + b)
        .collect();
    m.set_weight("my_lstm.bias_ih_l0", &bias).unwrap();
    let xt = fx.f32s("x"); // [T, B, 3]
    let x = ArrayD::from_shape_fn(vec![2, 3, 3], |d| xt[(d[1] * 2 + d[0]) * 3 + d[2]]);
    let got: ArrayD<f32> = m.predict(&x).unwrap();
    let want = fx.f32s("output"); // [T, B, 2]
    for b in 0..2 {
        for t in 0..3 {
            for k in 0..2 {
                let (a, w) = (got[[b, t, k]], want[(t * 2 + b) * 2 + k]);
                assert!((a - w).abs() < 1e-6, "[{b},{t},{k}] {a} vs torch {w}");
            }
        }
    }

    // The same weights in the built-in LSTM: the same gradients, the same training.
    let model = |custom: bool| {
        let m = Sequential::new().with_seed(4).with_input_shape(&[5, 3]);
        let mut m = if custom {
            m.add(Rnn::new(MyLstm, 4))
        } else {
            m.add(Lstm::new(4))
        };
        let mut m = std::mem::take(&mut m).add(Dense::new(1, Activation::Sigmoid));
        m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[])
            .unwrap();
        m
    };
    let (mut mine, mut builtin) = (model(true), model(false));
    for (s, w) in builtin.param_specs().to_vec().iter().zip(builtin.weights()) {
        let name = s.name.replace("lstm.", "my_lstm.");
        mine.set_weight(&name, w).unwrap();
    }
    let x = floats(&[16, 5, 3], 1);
    let y = Array1::from_shape_fn(16, |i| (i % 2) as f32);
    let (ga, gb) = (
        mine.gradients(&x, &y).unwrap(),
        builtin.gradients(&x, &y).unwrap(),
    );
    for ((na, a), (nb, b)) in ga.iter().zip(&gb) {
        assert_eq!(na.replace("my_lstm.", "lstm."), *nb);
        assert!(b.iter().any(|v| v.abs() > 1e-4), "{nb}: a real gradient");
        for (u, v) in a.iter().zip(b) {
            assert!((u - v).abs() <= 1e-6 + 1e-5 * v.abs(), "{na}: {u} vs {v}");
        }
    }
    let opts = FitOptions::new(3, 4).quiet();
    let (la, lb) = (
        mine.fit(&x, &y, &opts).unwrap().loss(),
        builtin.fit(&x, &y, &opts).unwrap().loss(),
    );
    for (a, b) in la.iter().zip(&lb) {
        assert!((a - b).abs() < 1e-5, "{la:?} vs {lb:?}");
    }
}

/// Embedding(mask_zero) -> Bidirectional(MGU, sequences) -> MGU -> Dense(sigmoid).
fn mgu_model() -> Sequential {
    let mut m = Sequential::new()
        .with_seed(9)
        .add(EmbeddingConfig::new(12, 4).with_mask_zero(true))
        .add(Bidirectional::new(
            RnnConfig::new(3).with_return_sequences(true).init(Mgu),
        ))
        .add(Rnn::new(Mgu, 3))
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(
        Adam::new(0.02),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

#[test]
fn a_minimal_gated_unit_runs_bidirectional_and_masked_and_its_gradient_checks() {
    let mut m = mgu_model();
    let shapes: Vec<(String, Vec<usize>)> = m
        .param_specs()
        .iter()
        .map(|s| (s.name.clone(), s.shape.clone()))
        .collect();
    assert_eq!(shapes[2], ("mgu.weight_hh_l0".to_string(), vec![6, 3]));
    assert_eq!(
        shapes[4],
        ("mgu.weight_ih_l0_reverse".to_string(), vec![6, 4])
    );
    assert_eq!(shapes[7], ("mgu_1.weight_ih_l0".to_string(), vec![6, 6]));
    // The summary names the cell and counts its parameters (2 gate blocks of 3 units).
    let summary = m.summary().unwrap();
    assert_eq!(summary.rows[2].class, "mgu");
    assert_eq!(summary.rows[2].params, 6 * 6 + 6 * 3 + 6);
    // Post- and pre-padded ids give the same predictions (masked steps carry the state).
    let post =
        Array2::from_shape_vec((3, 5), vec![3, 5, 7, 0, 0, 2, 9, 4, 11, 1, 6, 0, 0, 0, 0]).unwrap();
    let pre =
        Array2::from_shape_vec((3, 5), vec![0, 0, 3, 5, 7, 2, 9, 4, 11, 1, 0, 0, 0, 0, 6]).unwrap();
    let (a, b): (ArrayD<f32>, ArrayD<f32>) = (m.predict(&post).unwrap(), m.predict(&pre).unwrap());
    for (u, v) in a.iter().zip(&b) {
        assert!((u - v).abs() < 1e-6, "{a} vs {b}");
    }
    // The compiled prediction is the f64 interpreter's, with no step left to it.
    let sg = m.step_graph(3, &[&[5]], false).unwrap();
    let x = Tensor::i64([3, 5], post.iter().copied().collect()).unwrap();
    let y = Tensor::f64([3, 1], vec![1.0, 0.0, 1.0]).unwrap();
    let fd = feeds(&sg, &m, &[x], &[y]);
    let reference = run(&sg.graph, &fd, &[sg.outputs[0].pred], Precision::F64).unwrap();
    for (u, v) in a.iter().zip(reference[0].to_f64_vec()) {
        assert!(
            (f64::from(*u) - v).abs() < 1e-6,
            "plan {u} vs interpreter {v}"
        );
    }
    let plan = trellis_jit::compile(&sg.graph, &Default::default()).unwrap();
    assert!(
        plan.stats().fallbacks.is_empty(),
        "left to the interpreter: {:?}",
        plan.stats().fallbacks
    );
    // Every weight's gradient against central differences, through the padding.
    let c = gradcheck(&sg.graph, sg.loss, &sg.params, &fd, Tolerance::default()).unwrap();
    c.check().unwrap();
    assert!(c.elements > 100, "{} elements", c.elements);
}

/// The backward half of a bidirectional custom layer is the forward layer, with the reverse
/// direction's weights, over the sequence reversed in time.
#[test]
fn the_backward_direction_of_a_custom_cell_walks_the_steps_in_reverse() {
    let (b, t, f) = (2, 4, 3);
    let mut bi = Sequential::new()
        .with_seed(2)
        .with_input_shape(&[t, f])
        .add(Bidirectional::new(
            RnnConfig::new(3).with_return_sequences(true).init(Mgu),
        ));
    bi.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let mut fw = Sequential::new()
        .with_input_shape(&[t, f])
        .add(RnnConfig::new(3).with_return_sequences(true).init(Mgu));
    fw.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    for s in fw.param_specs().to_vec() {
        let w = bi.weight(&format!("{}_reverse", s.name)).unwrap().to_vec();
        fw.set_weight(&s.name, &w).unwrap();
    }
    let x = floats(&[b, t, f], 5);
    let rev = ArrayD::from_shape_fn(vec![b, t, f], |d| x[[d[0], t - 1 - d[1], d[2]]]);
    let (both, back): (ArrayD<f32>, ArrayD<f32>) =
        (bi.predict(&x).unwrap(), fw.predict(&rev).unwrap());
    for i in 0..b {
        for s in 0..t {
            for k in 0..3 {
                let (u, v) = (both[[i, s, 3 + k]], back[[i, t - 1 - s, k]]);
                assert!((u - v).abs() < 1e-6, "[{i},{s},{k}] {u} vs {v}");
            }
        }
    }
}

/// The MGU learns whether token 1 appears anywhere in a padded sequence, with dropout and
/// recurrent dropout in training.
#[test]
fn a_minimal_gated_unit_learns_with_dropout() {
    let mut r = SplitMix64::new(3);
    let (n, t) = (256, 8);
    let x = Array2::from_shape_fn((n, t), |_| 2 + (r.next_f64() * 10.0) as i64);
    let mut x = x;
    let mut y = Array1::zeros(n);
    for i in 0..n {
        let len = 3 + i % (t - 2);
        for s in len..t {
            x[[i, s]] = 0;
        }
        if i % 2 == 0 {
            x[[i, (i / 2) % len]] = 1;
            y[i] = 1.0;
        }
    }
    let mut m = Sequential::new()
        .with_seed(5)
        .add(EmbeddingConfig::new(12, 8).with_mask_zero(true))
        .add(
            RnnConfig::new(8)
                .with_dropout(0.1)
                .with_recurrent_dropout(0.1)
                .init(Mgu),
        )
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(
        Adam::new(0.02),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let h = m.fit(&x, &y, &FitOptions::new(25, 32).quiet()).unwrap();
    let acc = *h.accuracy().last().unwrap();
    assert!(acc > 0.95, "accuracy {acc}, losses {:?}", h.loss());
}

/// A cell returning the wrong number of states.
#[derive(Clone, Debug, PartialEq)]
struct Forgetful;

impl Cell for Forgetful {
    fn name(&self) -> &'static str {
        "forgetful"
    }
    fn gates(&self) -> usize {
        1
    }
    fn states(&self) -> usize {
        2
    }
    fn step(
        &self,
        g: &mut Graph,
        zx: NodeId,
        _: Option<&[NodeId]>,
        _: &LayerWeights,
        _: usize,
    ) -> Result<Vec<NodeId>, IrError> {
        Ok(vec![g.tanh(zx)?])
    }
}

#[test]
fn what_a_cell_gets_wrong_is_named_and_weights_save_but_the_model_does_not() {
    let mut bad = Sequential::new()
        .with_input_shape(&[4, 2])
        .add(Rnn::new(Forgetful, 3));
    let e = bad
        .compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("forgetful") && e.contains("1 state tensors") && e.contains("declares 2"),
        "{e}"
    );
    // A saved model cannot rebuild code: save_model names the layer; save / load keep the
    // weights.
    let mut m = mgu_model();
    let dir = tempfile::tempdir().unwrap();
    let e = m
        .save_model(dir.path().join("m.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 1") && e.contains("save()"), "{e}");
    let ids = Array2::from_shape_vec((2, 3), vec![1, 4, 0, 7, 2, 9]).unwrap();
    let path = dir.path().join("w.safetensors");
    m.save(&path).unwrap();
    let mut again = mgu_model();
    again.load(&path).unwrap();
    let (a, b): (ArrayD<f32>, ArrayD<f32>) =
        (m.predict(&ids).unwrap(), again.predict(&ids).unwrap());
    assert_eq!(a, b);
    // A state of the wrong count passed to the layer in the functional API.
    let (x, h0) = (Input::new(&[4, 2]), Input::new(&[3]));
    let e = Rnn::new(MyLstm, 3)
        .call([&x, &h0])
        .and_then(|o| Model::new(&[&x, &h0], &[&o])?.build())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("my_lstm: initial_state needs 2 tensors (h, state 1), got 1"),
        "{e}"
    );
}
