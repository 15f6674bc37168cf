//! GRU, Bidirectional and masking in models: PyTorch parameter names, output widths, and the
//! masking promise at the model level (pre- and post-padded ids train alike).
mod common;
use trellis_nn::prelude::*;
use trellis_nn::Init;

fn names(m: &Sequential) -> Vec<String> {
    m.param_specs()
        .iter()
        .map(|s| format!("{}{:?}", s.name, s.shape))
        .collect()
}

fn compiled(m: Sequential) -> Sequential {
    let mut m = m.with_seed(3);
    m.compile(
        Adam::default(),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

#[test]
fn stacked_bidirectional_gru_has_torch_names() {
    // torch.nn.GRU(4, 3, num_layers=2, bidirectional=True) names its parameters so.
    let m = compiled(
        Sequential::new()
            .add(Embedding::new(10, 4))
            .add(Bidirectional::new(
                GruConfig::new(3).with_return_sequences(true).init(),
            ))
            .add(Bidirectional::new(Gru::new(3)))
            .add(Dense::new(1, Activation::Sigmoid)),
    );
    let mut want = vec!["embedding.weight[10, 4]".to_string()];
    for (l, inp) in [(0, 4), (1, 6)] {
        for suffix in ["", "_reverse"] {
            want.extend([
                format!("gru.weight_ih_l{l}{suffix}[9, {inp}]"),
                format!("gru.weight_hh_l{l}{suffix}[9, 3]"),
                format!("gru.bias_ih_l{l}{suffix}[9]"),
                format!("gru.bias_hh_l{l}{suffix}[9]"),
            ]);
        }
    }
    want.push("dense.weight[1, 6]".into());
    want.push("dense.bias[1]".into());
    assert_eq!(names(&m), want);
}

#[test]
fn merge_modes_set_the_output_width() {
    for (merge, width) in [
        (Merge::Concat, 10),
        (Merge::Sum, 5),
        (Merge::Ave, 5),
        (Merge::Mul, 5),
    ] {
        let m = compiled(
            Sequential::new()
                .add(Embedding::new(10, 4))
                .add(Bidirectional::new(Lstm::new(5)).with_merge(merge))
                .add(Dense::new(1, Activation::Sigmoid)),
        );
        assert_eq!(m.weight("dense.weight").unwrap().len(), width, "{merge:?}");
    }
}

/// Ids of three sequences with lengths 6, 3 and 4 out of 6 steps, padded with 0 before or after.
fn padded(pre: bool) -> Array2<i64> {
    let real: [&[i64]; 3] = [&[3, 5, 7, 2, 9, 4], &[8, 1, 6], &[2, 2, 7, 5]];
    let mut out = Vec::new();
    for r in real {
        let pad = vec![0; 6 - r.len()];
        if pre {
            out.extend(&pad);
            out.extend(r);
        } else {
            out.extend(r);
            out.extend(&pad);
        }
    }
    Array2::from_shape_vec((3, 6), out).unwrap()
}

#[test]
fn masked_models_train_the_same_on_pre_and_post_padding() {
    let build = || {
        compiled(
            Sequential::new()
                .add(EmbeddingConfig::new(10, 4).with_mask_zero(true))
                .add(Bidirectional::new(
                    LstmConfig::new(5).with_return_sequences(true).init(),
                ))
                .add(Gru::new(3))
                .add(Dense::new(1, Activation::Sigmoid)),
        )
    };
    let y = array![1.0f32, 0.0, 1.0];
    let opts = FitOptions::new(2, 3).with_shuffle(false).quiet();
    let mut runs = Vec::new();
    for pre in [false, true] {
        let mut m = build();
        let h = m.fit(padded(pre), &y, &opts).unwrap();
        runs.push((h.loss(), m.weights().to_vec()));
    }
    let (post, pre) = (&runs[0], &runs[1]);
    for (a, b) in post.0.iter().zip(&pre.0) {
        assert!((a - b).abs() < 1e-6, "losses {:?} vs {:?}", post.0, pre.0);
    }
    for (wa, wb) in post.1.iter().zip(&pre.1) {
        for (a, b) in wa.iter().zip(wb) {
            assert!((a - b).abs() < 1e-5, "weights differ: {a} vs {b}");
        }
    }
    // Without the mask the padding is data: the same two runs differ.
    let mut plain = Vec::new();
    for pre in [false, true] {
        let mut m = compiled(
            Sequential::new()
                .add(Embedding::new(10, 4))
                .add(Bidirectional::new(
                    LstmConfig::new(5).with_return_sequences(true).init(),
                ))
                .add(Gru::new(3))
                .add(Dense::new(1, Activation::Sigmoid)),
        );
        plain.push(m.fit(padded(pre), &y, &opts).unwrap().loss());
    }
    assert!((plain[0][1] - plain[1][1]).abs() > 1e-4, "{plain:?}");
}

#[test]
fn masking_layer_skips_steps_whose_features_all_equal_the_value() {
    // Float sequences [3 samples, 4 steps, 2 features]; the padded steps are (-1, -1).
    let real = [[0.5f32, 0.1], [0.2, -0.3], [0.9, 0.4], [0.3, 0.3]];
    let sample = |n: usize, pre: bool| -> Vec<f32> {
        let mut steps: Vec<[f32; 2]> = real[..n].to_vec();
        let pad = vec![[-1.0, -1.0]; 4 - n];
        if pre {
            steps.splice(0..0, pad);
        } else {
            steps.extend(pad);
        }
        steps.concat()
    };
    let mut losses = Vec::new();
    for pre in [false, true] {
        let x: Vec<f32> = [4, 2, 3].iter().flat_map(|&n| sample(n, pre)).collect();
        let x = Array3::from_shape_vec((3, 4, 2), x).unwrap();
        let mut m = Sequential::new()
            .add(Masking::new(-1.0))
            .add(Gru::new(4))
            .add(Dense::new(1, Activation::Sigmoid))
            .with_input_shape(&[4, 2])
            .with_seed(1);
        m.compile(Adam::default(), Loss::BinaryCrossentropy, &[])
            .unwrap();
        let h = m
            .fit(
                &x,
                &array![1.0f32, 0.0, 1.0],
                &FitOptions::new(2, 3).quiet(),
            )
            .unwrap();
        losses.push(h.loss());
    }
    for (a, b) in losses[0].iter().zip(&losses[1]) {
        assert!((a - b).abs() < 1e-6, "{losses:?}");
    }
}

#[test]
fn gru_and_bidirectional_checkpoints_round_trip_with_torch_names() {
    let build = || {
        compiled(
            Sequential::new()
                .add(Embedding::new(10, 4))
                .add(Bidirectional::new(
                    LstmConfig::new(3).with_return_sequences(true).init(),
                ))
                .add(GruConfig::new(3).with_bias_init(Init::Uniform(0.5)))
                .add(Dense::new(1, Activation::Sigmoid)),
        )
    };
    let mut m = build();
    let x = Array2::from_shape_fn((3, 4), |(r, c)| ((r * 4 + c) % 10) as i64);
    m.fit(
        &x,
        &array![1.0f32, 0.0, 1.0],
        &FitOptions::new(1, 3).quiet(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    m.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.retain(|n| !n.starts_with("optimizer."));
    names.sort();
    let mut want: Vec<String> = [
        "dense.bias",
        "dense.weight",
        "embedding.weight",
        "gru.bias_hh_l0",
        "gru.bias_ih_l0",
        "gru.weight_hh_l0",
        "gru.weight_ih_l0",
    ]
    .map(String::from)
    .to_vec();
    for suffix in ["", "_reverse"] {
        for t in ["bias_hh", "bias_ih", "weight_hh", "weight_ih"] {
            want.push(format!("lstm.{t}_l0{suffix}"));
        }
    }
    want.sort();
    assert_eq!(names, want);
    // The GRU's recurrent bias is its own parameter, saved as it is (not a zero companion).
    let hh = st.tensor("gru.bias_hh_l0").unwrap();
    assert!(hh.data().chunks(4).any(|c| c != [0, 0, 0, 0]));
    let mut fresh = build();
    fresh.load(&path).unwrap();
    assert_eq!(fresh.weights(), m.weights());
    assert_eq!(fresh.predict(&x).unwrap(), m.predict(&x).unwrap());
}

/// A PyTorch module's state dict (f64, two LSTM biases, its own module names) loads into a
/// model whose layers carry those names.
#[test]
fn a_torch_state_dict_with_its_own_names_loads() {
    use safetensors::tensor::{Dtype, TensorView};
    let mut m = compiled(
        Sequential::new()
            .add(Embedding::new(12, 4).named("emb"))
            .add(LstmConfig::new(3).with_return_sequences(true).named("rnn"))
            .add(Lstm::new(3).named("rnn"))
            .add(Dense::new(1, Activation::Sigmoid).named("fc")),
    );
    let names: Vec<String> = m.param_specs().iter().map(|s| s.name.clone()).collect();
    assert_eq!(
        names,
        [
            "emb.weight",
            "rnn.weight_ih_l0",
            "rnn.weight_hh_l0",
            "rnn.bias_ih_l0",
            "rnn.weight_ih_l1",
            "rnn.weight_hh_l1",
            "rnn.bias_ih_l1",
            "fc.weight",
            "fc.bias"
        ]
    );
    // torch.save-like values: tensor k holds k + i/1000 at index i, as f64.
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (k, s) in m.param_specs().iter().enumerate() {
        let n: usize = s.shape.iter().product();
        let v: Vec<u8> = (0..n)
            .flat_map(|i| (k as f64 + i as f64 / 1000.0).to_le_bytes())
            .collect();
        tensors.push((s.name.clone(), s.shape.clone(), v));
        if let Some(l) = s.name.strip_prefix("rnn.bias_ih_l") {
            let hh: Vec<u8> = (0..n).flat_map(|_| 0.5f64.to_le_bytes()).collect();
            tensors.push((format!("rnn.bias_hh_l{l}"), s.shape.clone(), hh));
        }
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F64, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torch.safetensors");
    safetensors::serialize_to_file(views, &None, &path).unwrap();
    m.load(&path).unwrap();
    for (k, s) in m.param_specs().iter().enumerate() {
        let w = m.weight(&s.name).unwrap();
        let extra = if s.name.starts_with("rnn.bias") {
            0.5
        } else {
            0.0
        };
        for (i, &v) in w.iter().enumerate() {
            let want = (k as f64 + i as f64 / 1000.0 + extra) as f32;
            assert_eq!(v, want, "{}[{i}]", s.name);
        }
    }
}

#[test]
fn two_layers_of_one_name_that_do_not_stack_are_an_error() {
    let mut m = Sequential::new()
        .add(Embedding::new(12, 4))
        .add(Dense::new(3, Activation::Relu).named("fc"))
        .add(Dense::new(1, Activation::Sigmoid).named("fc"));
    let e = m
        .compile(Adam::default(), Loss::BinaryCrossentropy, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a parameter named fc.weight exists already"),
        "{e}"
    );
    // An unnamed LSTM after a named one starts a module of its own.
    let m = compiled(
        Sequential::new()
            .add(Embedding::new(12, 4))
            .add(LstmConfig::new(3).with_return_sequences(true).named("enc"))
            .add(Lstm::new(3))
            .add(Dense::new(1, Activation::Sigmoid)),
    );
    assert!(m.weight("enc.weight_ih_l0").is_some());
    assert!(m.weight("lstm.weight_ih_l0").is_some());
}

/// `dropout` and `recurrent_dropout` (Keras's arguments) on an LSTM and a bidirectional GRU.
fn with_rates(dropout: f32, recurrent: f32) -> Sequential {
    compiled(
        Sequential::new()
            .add(Embedding::new(30, 8))
            .add(
                LstmConfig::new(6)
                    .with_return_sequences(true)
                    .with_dropout(dropout)
                    .with_recurrent_dropout(recurrent),
            )
            .add(Bidirectional::new(
                GruConfig::new(5)
                    .with_dropout(dropout)
                    .with_recurrent_dropout(recurrent)
                    .init(),
            ))
            .add(Dense::new(1, Activation::Sigmoid)),
    )
}

/// The dropout masks a step graph registers: each one's shape and rate.
fn mask_shapes(sg: &trellis_nn::StepGraph) -> Vec<(Vec<usize>, f32)> {
    sg.masks
        .iter()
        .map(|k| (sg.graph.ty(k.node).dims().to_vec(), k.rate))
        .collect()
}

/// Keras draws one dropout mask per sample for the whole sequence: the input's `[B, F]`
/// (applied to a time-major `[T, B·F]` grid) and `h`'s `[B, H]`, each direction its own.
/// Only training steps have them: inference and evaluation are exactly the model without
/// dropout.
#[test]
fn recurrent_dropout_masks_are_per_sequence_and_only_in_training() {
    let mut m = with_rates(0.2, 0.3);
    let sg = m.step_graph(4, &[&[7]], true).unwrap();
    let masks = mask_shapes(&sg);
    let want = [
        (vec![4 * 8], 0.2),
        (vec![4, 6], 0.3),
        (vec![4 * 6], 0.2),
        (vec![4, 5], 0.3),
        (vec![4 * 6], 0.2),
        (vec![4, 5], 0.3),
    ];
    assert_eq!(masks, want);
    assert!(m.step_graph(4, &[&[7]], false).unwrap().masks.is_empty());

    let mut plain = with_rates(0.0, 0.0);
    assert!(plain.step_graph(4, &[&[7]], true).unwrap().masks.is_empty());
    for s in m.param_specs() {
        let w = m.weight(&s.name).unwrap().to_vec();
        plain.set_weight(&s.name, &w).unwrap();
    }
    let x = Array2::from_shape_fn((6, 7), |(r, c)| ((r * 7 + c * 3) % 29 + 1) as i64);
    let y = array![1.0f32, 0.0, 1.0, 1.0, 0.0, 0.0];
    assert_eq!(m.predict(&x).unwrap(), plain.predict(&x).unwrap());
    assert_eq!(m.evaluate(&x, &y).unwrap(), plain.evaluate(&x, &y).unwrap());
}

/// Training with recurrent dropout is seeded (two runs give the same losses and weights),
/// differs from training without it, and still learns the task.
#[test]
fn recurrent_dropout_trains_and_is_seeded() {
    // Positive when token 1 occurs anywhere in the sequence.
    let x = Array2::from_shape_fn((32, 6), |(r, c)| {
        if r % 2 == 0 && c == r % 6 {
            1
        } else {
            2 + ((r * 5 + c * 7) % 27) as i64
        }
    });
    let y = Array1::from_shape_fn(32, |r| ((r % 2) == 0) as u8 as f32);
    let train = |dropout: f32, recurrent: f32| {
        let mut m = with_rates(dropout, recurrent);
        let opts = FitOptions::new(40, 8).with_seed(5).quiet();
        let h = m.fit(&x, &y, &opts).unwrap();
        (h.loss(), m.weights().to_vec())
    };
    let (l1, w1) = train(0.2, 0.3);
    let (l2, w2) = train(0.2, 0.3);
    assert_eq!(l1, l2);
    assert_eq!(w1, w2);
    let (l0, _) = train(0.0, 0.0);
    assert_ne!(l0, l1);
    assert!(l1[39] < 0.5 * l1[0], "{l1:?}");
}

#[test]
fn recurrent_dropout_rates_are_checked() {
    for (config, name) in [
        (LstmConfig::new(4).with_dropout(1.0), "dropout"),
        (
            LstmConfig::new(4).with_recurrent_dropout(-0.1),
            "recurrent_dropout",
        ),
        (
            LstmConfig::new(4).with_recurrent_dropout(f32::NAN),
            "recurrent_dropout",
        ),
    ] {
        let mut m = Sequential::new().add(Embedding::new(10, 4)).add(config);
        let e = m
            .compile(Adam::default(), Loss::MeanSquaredError, &[])
            .and_then(|_| {
                m.fit(
                    &array![[1i64, 2]],
                    &array![1.0f32],
                    &FitOptions::new(1, 1).quiet(),
                )
            })
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(name) && e.contains("dropout rate must be in [0, 1)"),
            "{e}"
        );
    }
}

/// A saved model keeps its layers' dropout rates.
#[test]
fn recurrent_dropout_rates_are_saved() {
    let mut m = with_rates(0.25, 0.5);
    let x = Array2::from_shape_fn((2, 3), |(r, c)| (r + c + 1) as i64);
    m.fit(&x, &array![1.0f32, 0.0], &FitOptions::new(1, 2).quiet())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    m.save_model(&path).unwrap();
    let mut back = Sequential::load_model(&path).unwrap();
    let rates = |m: &mut Sequential| {
        let sg = m.step_graph(2, &[&[3]], true).unwrap();
        sg.masks.iter().map(|k| k.rate).collect::<Vec<_>>()
    };
    assert_eq!(rates(&mut back), [0.25, 0.5, 0.25, 0.5, 0.25, 0.5]);
}

/// Keras's `SpatialDropout1D`: one keep-mask value per sample and feature, broadcast over the
/// steps (`[1, B, F]` on the time-major sequence), in training only; it learns, saves, and
/// refuses a bad rate and a non-sequence by name.
#[test]
fn spatial_dropout_drops_whole_features_in_training_only() {
    let build = |rate: f32| {
        compiled(
            Sequential::new()
                .with_seed(3)
                .add(Embedding::new(30, 8))
                .add(SpatialDropout1D::new(rate))
                .add(Lstm::new(6))
                .add(Dense::new(1, Activation::Sigmoid)),
        )
    };
    let mut m = build(0.25);
    let sg = m.step_graph(4, &[&[7]], true).unwrap();
    let masks = mask_shapes(&sg);
    assert_eq!(masks, [(vec![1, 4, 8], 0.25)]);
    assert!(m.step_graph(4, &[&[7]], false).unwrap().masks.is_empty());
    let x = Array2::from_shape_fn((32, 7), |(r, c)| ((r * 7 + c * 3 + r / 4) % 29 + 1) as i64);
    let y = Array1::from_shape_fn(32, |r| f32::from(x[[r, 0]] > 15));
    let mut plain = build(0.0);
    assert_eq!(m.predict(&x).unwrap(), plain.predict(&x).unwrap());
    let h = m
        .fit(&x, &y, &FitOptions::new(30, 8).with_seed(2).quiet())
        .unwrap();
    let hp = plain
        .fit(&x, &y, &FitOptions::new(30, 8).with_seed(2).quiet())
        .unwrap();
    assert_ne!(h.loss(), hp.loss(), "the dropout changed nothing");
    assert!(h.loss()[29] < 0.7 * h.loss()[0], "{:?}", h.loss());
    for (rate, input) in [(1.0f32, true), (0.2, false)] {
        let mut bad = Sequential::new().with_input_shape(&[3]);
        if input {
            bad = bad.with_input_shape(&[4, 3]);
        }
        let mut bad = bad
            .add(SpatialDropout1D::new(rate))
            .add(Dense::new(1, Activation::Sigmoid));
        let e = bad
            .compile(Adam::default(), Loss::BinaryCrossentropy, &[])
            .and_then(|_| {
                bad.step_graph(2, &[if input { &[4, 3] } else { &[3] }], true)
                    .map(|_| ())
            })
            .unwrap_err()
            .to_string();
        let want = if input { "rate" } else { "sequence" };
        assert!(e.contains(want), "{e}");
    }
}

/// `TimeDistributed(Dense)` is the per-step Dense: same parameters (under its own module name),
/// same predictions and masked loss, same training; it rebuilds from a saved model and refuses
/// a non-sequence by name.
#[test]
fn time_distributed_dense_is_the_per_step_dense() {
    let tagger = |wrapped: bool| {
        let head = DenseConfig::new(3).with_activation(Activation::Softmax);
        let m = Sequential::new()
            .with_seed(8)
            .add(EmbeddingConfig::new(12, 5).with_mask_zero(true))
            .add(GruConfig::new(4).with_return_sequences(true));
        let mut m = if wrapped {
            m.add(TimeDistributed::new(head))
        } else {
            m.add(head)
        };
        m.compile(
            Adam::new(0.02),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
        m
    };
    let x = Array2::from_shape_fn((8, 6), |(r, c)| {
        if c + r % 3 >= 6 {
            0
        } else {
            ((r * 5 + c * 3) % 11 + 1) as i64
        }
    });
    let y = Array2::from_shape_fn((8, 6), |(r, c)| ((x[[r, c]] % 3) as f32) * f32::from(c < 6));
    let mut a = tagger(true);
    let mut b = tagger(false);
    let pa: ArrayD<f32> = a.predict(&x).unwrap();
    let names: Vec<String> = a.param_specs().iter().map(|p| p.name.clone()).collect();
    assert!(
        names.contains(&"time_distributed.weight".to_string()),
        "{names:?}"
    );
    for (sa, sb) in a
        .param_specs()
        .to_vec()
        .iter()
        .zip(b.param_specs().to_vec())
    {
        let w = a.weight(&sa.name).unwrap().to_vec();
        b.set_weight(&sb.name, &w).unwrap();
    }
    assert_eq!(pa, b.predict(&x).unwrap());
    assert_eq!(a.evaluate(&x, &y).unwrap(), b.evaluate(&x, &y).unwrap());
    let opts = FitOptions::new(5, 4).with_seed(1).quiet();
    let (ha, hb) = (a.fit(&x, &y, &opts).unwrap(), b.fit(&x, &y, &opts).unwrap());
    assert_eq!(ha.loss(), hb.loss());
    assert_eq!(a.summary().unwrap().rows[2].class, "TimeDistributed");
    common::assert_reloads_the_same(&mut a, &x, 4);

    let mut flat = Sequential::new()
        .with_input_shape(&[3])
        .add(TimeDistributed::new(Dense::new(2, Activation::Linear)));
    let e = flat
        .compile(Adam::default(), Loss::MeanSquaredError, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("time_distributed") && e.contains("sequence"),
        "{e}"
    );
}

/// A series given as `[n, T]` rows becomes `[n, T, 1]` steps with `Reshape([-1, 1])` (Keras's
/// time-series idiom) and trains a recurrent model; the summary shows the shape.
#[test]
fn reshape_turns_rows_into_steps_for_a_recurrent_layer() {
    let x = Array2::from_shape_fn((64, 10), |(r, c)| ((r * 3 + c) as f32 * 0.4).sin());
    let y = Array1::from_shape_fn(64, |r| x[[r, 9]] * 0.5 + x[[r, 8]] * 0.5);
    let mut m = Sequential::new()
        .with_seed(4)
        .with_input_shape(&[10])
        .add(Reshape::new(&[-1, 1]))
        .add(Gru::new(8))
        .add(Dense::new(1, Activation::Linear));
    m.compile(Adam::new(0.02), Loss::MeanSquaredError, &[])
        .unwrap();
    let s = m.summary().unwrap();
    assert_eq!(s.rows[0].name, "reshape");
    assert_eq!(s.rows[0].output_shape, vec![None, Some(10), Some(1)]);
    let h = m.fit(&x, &y, &FitOptions::new(40, 16).quiet()).unwrap();
    assert!(h.loss()[39] < 0.2 * h.loss()[0], "{:?}", h.loss());
    common::assert_reloads_the_same(&mut m, &x, 16);
}
