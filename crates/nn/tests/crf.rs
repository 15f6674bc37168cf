//! The `Crf` layer and `Loss::Crf`: PyTorch's loss, decoded tags and every gradient of a
//! masked `Dense -> CRF` (pytorch-crf's semantics, every path enumerated); a BiLSTM-CRF that
//! learns a tagging rule only the transitions can enforce; pre- and post-padding alike; the
//! summary, saving, and the mistakes a user can make, each named.
#[path = "../../../tests/common/golden_lstm.rs"]
mod golden_lstm;
use golden_lstm::{assert_f32_close, Fixture};
use trellis_nn::prelude::*;

const TOL: (f32, f32) = (2e-6, 2e-5);

fn array(fx: &Fixture, name: &str) -> ArrayD<f32> {
    ArrayD::from_shape_vec(fx.get(name).shape.clone(), fx.f32s(name)).unwrap()
}

/// `Masking(0) -> Dense(4) -> CRF(4)` on `[4, 5]` steps, the fixture's weights set.
fn golden_model(fx: &Fixture) -> Sequential {
    let mut m = Sequential::new()
        .with_input_shape(&[4, 5])
        .add(Masking::new(0.0))
        .add(Dense::new(4, Activation::Linear))
        .add(Crf::new(4));
    m.compile(Sgd::new(0.1), Loss::Crf, &[Metric::Accuracy])
        .unwrap();
    for s in m.param_specs().to_vec() {
        let leaf = s.name.rsplit('.').next().unwrap();
        m.set_weight(&s.name, &fx.f32s(&format!("layer.{leaf}")))
            .unwrap();
    }
    m
}

#[test]
fn dense_crf_matches_pytorch() {
    let fx = Fixture::load("crf.json");
    let mut m = golden_model(&fx);
    let names: Vec<String> = m.param_specs().iter().map(|s| s.name.clone()).collect();
    assert_eq!(
        names,
        [
            "dense.weight",
            "dense.bias",
            "crf.transitions",
            "crf.start_transitions",
            "crf.end_transitions"
        ]
    );
    let (x, y) = (array(&fx, "layer.x"), array(&fx, "layer.labels"));
    let ev = m.evaluate(&x, &y).unwrap();
    assert_f32_close(&[ev.loss as f32], &fx.f32s("layer.loss"), TOL, "mean nll");
    let grads = m.gradients(&x, &y).unwrap();
    assert_eq!(grads.len(), 5);
    for (name, g) in &grads {
        let leaf = name.rsplit('.').next().unwrap();
        assert!(g.iter().any(|v| v.abs() > 1e-4), "{name}: {g:?}");
        assert_f32_close(g, &fx.f32s(&format!("layer.grad_{leaf}")), TOL, name);
    }
    // predict gives the Viterbi path one-hot (zero on padding): exactly torch's.
    let p = m.predict(&x).unwrap();
    assert_eq!(p.shape(), [3, 4, 4]);
    assert_eq!(p.as_slice().unwrap(), fx.f32s("layer.decoded").as_slice());
    // accuracy counts the decoded tags on the real steps (9 of them).
    let decoded = fx.f32s("layer.decoded");
    let labels = fx.f32s("layer.labels");
    let (mut hits, mut real) = (0, 0);
    for (s, &label) in labels.iter().enumerate() {
        let row = &decoded[s * 4..(s + 1) * 4];
        if row.contains(&1.0) {
            real += 1;
            hits += usize::from(row[label as usize] == 1.0);
        }
    }
    assert_eq!(real, 9);
    assert_eq!(ev.accuracy, Some(hits as f64 / real as f64));
}

/// Word ids 1..=8: ids 1-4 are "entity" words, 5-8 other words. Tags: 0 = O, 1 = B (an
/// entity's first word), 2 = I (the entity's later words): BIO, where I never follows O.
/// Padded with id 0 after a length of 6..=12.
fn bio(n: usize, seed: u64, pre: bool) -> (Array2<i64>, Array2<f32>) {
    let t = 12;
    let (mut x, mut y) = (Array2::zeros((n, t)), Array2::zeros((n, t)));
    let mut r = seed;
    let mut next = |m: u64| {
        r = r
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (r >> 33) % m
    };
    for i in 0..n {
        let len = 6 + next(7) as usize;
        let start = if pre { t - len } else { 0 };
        let mut prev_entity = false;
        for j in 0..len {
            let entity = next(2) == 0;
            let id = if entity { 1 + next(4) } else { 5 + next(4) };
            x[[i, start + j]] = id as i64;
            y[[i, start + j]] = match (entity, prev_entity) {
                (false, _) => 0.0,
                (true, false) => 1.0,
                (true, true) => 2.0,
            };
            prev_entity = entity;
        }
    }
    (x, y)
}

fn tagger(seed: u64) -> Sequential {
    let mut m = Sequential::new()
        .with_seed(seed)
        .add(EmbeddingConfig::new(9, 8).with_mask_zero(true))
        .add(Bidirectional::new(
            LstmConfig::new(8).with_return_sequences(true).init(),
        ))
        .add(Dense::new(3, Activation::Linear))
        .add(Crf::new(3));
    m.compile(Adam::new(0.02), Loss::Crf, &[Metric::Accuracy])
        .unwrap();
    m
}

#[test]
fn a_bilstm_crf_learns_bio_tags_and_decodes_valid_paths() {
    let (x, y) = bio(256, 1, false);
    let (xt, yt) = bio(128, 2, false);
    let mut m = tagger(4);
    let before = m.evaluate(&xt, &yt).unwrap();
    let h = m.fit(&x, &y, &FitOptions::new(15, 32).quiet()).unwrap();
    let after = m.evaluate(&xt, &yt).unwrap();
    assert!(
        after.loss < 0.2 * before.loss,
        "loss {} -> {} ({:?})",
        before.loss,
        after.loss,
        h.loss()
    );
    let acc = after.accuracy.unwrap();
    assert!(acc > 0.97, "held-out accuracy {acc}");
    // The learned transitions: O -> I is the least likely move out of O.
    let a = m.weight("crf.transitions").unwrap();
    assert!(a[2] < a[0] && a[2] < a[1], "transitions {a:?}");
    // No decoded I right after an O.
    let p = m.predict(&xt).unwrap();
    for i in 0..xt.nrows() {
        let tags: Vec<usize> = (0..12)
            .filter(|&t| xt[[i, t]] != 0)
            .map(|t| (0..3).find(|&k| p[[i, t, k]] == 1.0).unwrap())
            .collect();
        assert!(tags.windows(2).all(|w| w != [0, 2]), "row {i}: {tags:?}");
    }
}

/// Padding before or after the words gives the same loss, gradients and tags.
#[test]
fn pre_and_post_padding_agree() {
    let (xa, ya) = bio(16, 3, false);
    let (xb, yb) = bio(16, 3, true);
    let mut m = tagger(7);
    let (la, lb) = (
        m.evaluate(&xa, &ya).unwrap().loss,
        m.evaluate(&xb, &yb).unwrap().loss,
    );
    assert!((la - lb).abs() < 1e-5 * la.abs().max(1.0), "{la} vs {lb}");
    let (ga, gb) = (
        m.gradients(&xa, &ya).unwrap(),
        m.gradients(&xb, &yb).unwrap(),
    );
    for ((name, a), (_, b)) in ga.iter().zip(&gb) {
        assert_f32_close(a, b, (1e-4, 1e-5), name);
    }
    let (pa, pb) = (m.predict(&xa).unwrap(), m.predict(&xb).unwrap());
    for i in 0..16 {
        let real = |x: &Array2<i64>, p: &ArrayD<f32>| -> Vec<f32> {
            (0..12)
                .filter(|&t| x[[i, t]] != 0)
                .flat_map(|t| (0..3).map(move |k| (t, k)))
                .map(|(t, k)| p[[i, t, k]])
                .collect()
        };
        assert_eq!(real(&xa, &pa), real(&xb, &pb), "row {i}");
    }
}

#[test]
fn summary_and_saving_keep_the_crf() {
    let (x, y) = bio(32, 5, false);
    let mut m = tagger(2);
    m.fit(&x, &y, &FitOptions::new(1, 16).quiet()).unwrap();
    let s = m.summary().unwrap();
    let row = s.rows.last().unwrap();
    assert_eq!(row.class, "CRF");
    assert_eq!(row.params, 3 * 3 + 3 + 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crf.safetensors");
    m.save_model(&path).unwrap();
    let mut again = Sequential::load_model(&path).unwrap();
    assert_eq!(m.predict(&x).unwrap(), again.predict(&x).unwrap());
    let (a, b) = (
        m.evaluate(&x, &y).unwrap().loss,
        again.evaluate(&x, &y).unwrap().loss,
    );
    assert!((a - b).abs() < 1e-6 * a, "{a} vs {b}");
}

#[test]
fn mistakes_are_named() {
    let (x, y) = bio(8, 6, false);
    let fit = |m: &mut Sequential| {
        m.fit(&x, &y, &FitOptions::new(1, 8).quiet())
            .unwrap_err()
            .to_string()
    };
    // The CRF loss on an output that is not a CRF's.
    let mut m = Sequential::new()
        .add(EmbeddingConfig::new(9, 4).with_mask_zero(true))
        .add(Dense::new(3, Activation::Linear));
    m.compile(Sgd::new(0.1), Loss::Crf, &[]).unwrap();
    let e = fit(&mut m);
    assert!(
        e.contains("crf_loss is the loss of a Crf layer's output"),
        "{e}"
    );
    // Another loss on a CRF's decoded tags.
    let mut m = Sequential::new()
        .add(EmbeddingConfig::new(9, 4).with_mask_zero(true))
        .add(Dense::new(3, Activation::Linear))
        .add(Crf::new(3));
    m.compile(Sgd::new(0.1), Loss::SparseCategoricalCrossentropy, &[])
        .unwrap();
    let e = fit(&mut m);
    assert!(e.contains("trains with Loss::Crf"), "{e}");
    // A CRF whose tag count is not the scores'.
    let mut m = Sequential::new()
        .add(EmbeddingConfig::new(9, 4).with_mask_zero(true))
        .add(Dense::new(4, Activation::Linear))
        .add(Crf::new(3));
    let e = m
        .compile(Sgd::new(0.1), Loss::Crf, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("crf: takes the scores of its 3 tags"), "{e}");
    // A label outside the tags.
    let mut bad = y.clone();
    bad[[1, 2]] = 3.0;
    let mut m = tagger(1);
    let e = m
        .fit(&x, &bad, &FitOptions::new(1, 8).quiet())
        .unwrap_err()
        .to_string();
    assert!(e.contains("crf_loss takes class ids 0..3"), "{e}");
    // Top-k of a decoded path (one-hot) would count every step as a hit.
    let mut m = tagger(1);
    m.compile(
        Adam::new(0.02),
        Loss::Crf,
        &[Metric::TopKCategoricalAccuracy(2)],
    )
    .unwrap();
    let e = fit(&mut m);
    assert!(e.contains("no meaning on a Crf output"), "{e}");
    // A CRF on rows, not a sequence.
    let mut m = Sequential::new().with_input_shape(&[3]).add(Crf::new(3));
    let e = m
        .compile(Sgd::new(0.1), Loss::Crf, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("crf: input must be a sequence"), "{e}");
}

/// A functional multi-task model: one encoder, a CRF tagging the words and a sigmoid head
/// telling whether the sentence has an entity, trained together (`Losses` per output).
#[test]
fn a_crf_head_trains_beside_another_in_a_functional_model() {
    let (x, y) = bio(256, 8, false);
    let has = Array2::from_shape_fn((x.nrows(), 1), |(i, _)| {
        f32::from((0..12).any(|t| y[[i, t]] == 1.0))
    });
    let input = Input::new(&[12]);
    let h = EmbeddingConfig::new(9, 8)
        .with_mask_zero(true)
        .call(&input)
        .unwrap();
    let h = Bidirectional::new(LstmConfig::new(8).with_return_sequences(true).init())
        .call(&h)
        .unwrap();
    let scores = Dense::new(3, Activation::Linear).call(&h).unwrap();
    let tags = Crf::new(3).call(&scores).unwrap();
    let pooled = GlobalMaxPooling1D::new().call(&h).unwrap();
    let any = Dense::new(1, Activation::Sigmoid).call(&pooled).unwrap();
    let mut m = Model::new(&[&input], &[&tags, &any]).unwrap();
    m.compile(
        Adam::new(0.02),
        Losses::new(&[Loss::Crf, Loss::BinaryCrossentropy]),
        &[Metric::Accuracy],
    )
    .unwrap();
    let h = m
        .fit(&x, [&y, &has], &FitOptions::new(12, 32).quiet())
        .unwrap();
    // Accuracy is pooled over both outputs (as fit reports it); each output's own from
    // predict: the decoded tags on the real steps, the thresholded sigmoid.
    assert!(
        h.accuracy().last().unwrap() > &0.95,
        "{:?}",
        h.epochs.last()
    );
    let out = m.predict_outputs(&x).unwrap();
    assert_eq!(out[0].shape(), [256, 12, 3]);
    assert_eq!(out[1].shape(), [256, 1]);
    let (mut hits, mut real) = (0, 0);
    for ((i, t), &id) in x.indexed_iter() {
        if id != 0 {
            real += 1;
            hits += usize::from(out[0][[i, t, y[[i, t]] as usize]] == 1.0);
        }
    }
    let any_hits = (0..256)
        .filter(|&i| (out[1][[i, 0]] > 0.5) == (has[[i, 0]] == 1.0))
        .count();
    assert!(hits as f64 > 0.95 * real as f64, "{hits} of {real} tags");
    assert!(any_hits > 240, "{any_hits} of 256 sentences");
}
