//! Per-timestep outputs: Dense on [B, T, F] applies per step, losses and accuracy take [n, T]
//! labels, and the mask (Embedding mask_zero, Masking) keeps padding out of both: pre- and
//! post-padded data give the same loss, gradients and accuracy.
use trellis_nn::prelude::*;

/// Three sequences of 6, 3 and 4 real steps out of 6 with a class label per step (classes
/// 0..3), padded with id 0 (label 0) before or after.
fn tagged(pre: bool) -> (Array2<i64>, Array2<f32>) {
    let real: [&[(i64, f32)]; 3] = [
        &[(3, 0.), (5, 1.), (7, 2.), (2, 0.), (9, 1.), (4, 2.)],
        &[(8, 2.), (1, 1.), (6, 0.)],
        &[(2, 0.), (2, 0.), (7, 2.), (5, 1.)],
    ];
    let (mut x, mut y) = (Array2::zeros((3, 6)), Array2::zeros((3, 6)));
    for (i, r) in real.iter().enumerate() {
        let start = if pre { 6 - r.len() } else { 0 };
        for (j, &(id, label)) in r.iter().enumerate() {
            x[[i, start + j]] = id;
            y[[i, start + j]] = label;
        }
    }
    (x, y)
}

fn tagger(mask: bool) -> Sequential {
    let mut m = Sequential::new()
        .with_seed(5)
        .add(EmbeddingConfig::new(10, 4).with_mask_zero(mask))
        .add(Bidirectional::new(
            LstmConfig::new(4).with_return_sequences(true).init(),
        ))
        .add(Dense::new(3, Activation::Softmax));
    m.compile(
        Sgd::new(0.5),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

/// The mean of -log p(label) over the real steps (id != 0), and the accuracy there.
fn by_hand(p: &ArrayD<f32>, x: &Array2<i64>, y: &Array2<f32>) -> (f64, f64) {
    let (mut loss, mut correct, mut count) = (0f64, 0, 0);
    for ((i, t), &id) in x.indexed_iter() {
        if id == 0 {
            continue;
        }
        let probs: Vec<f32> = (0..3).map(|c| p[[i, t, c]]).collect();
        let label = y[[i, t]] as usize;
        loss -= (probs[label] as f64).ln();
        let best = (0..3)
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap();
        correct += usize::from(best == label);
        count += 1;
    }
    (loss / count as f64, correct as f64 / count as f64)
}

#[test]
fn masked_per_step_loss_and_gradients_ignore_the_padding() {
    let opts = FitOptions::new(3, 3).with_shuffle(false).quiet();
    let mut runs = Vec::new();
    for pre in [false, true] {
        let (x, y) = tagged(pre);
        let mut m = tagger(true);
        let ev0 = m.evaluate(&x, &y).unwrap();
        let h = m.fit(&x, &y, &opts).unwrap();
        let p = m.predict(&x).unwrap();
        assert_eq!(p.shape(), [3, 6, 3]);
        // evaluate's loss and accuracy are those of the real steps alone.
        let ev = m.evaluate(&x, &y).unwrap();
        let (loss, acc) = by_hand(&p, &x, &y);
        assert!((ev.loss - loss).abs() < 1e-5, "{} vs {loss}", ev.loss);
        assert_eq!(ev.accuracy, Some(acc));
        // The real steps' predictions, in order.
        let real: Vec<f32> = x
            .indexed_iter()
            .filter(|(_, &id)| id != 0)
            .flat_map(|((i, t), _)| (0..3).map(move |c| (i, t, c)))
            .map(|(i, t, c)| p[[i, t, c]])
            .collect();
        runs.push((ev0.loss, h.loss(), m.weights().to_vec(), real));
    }
    let (post, pre) = (&runs[0], &runs[1]);
    assert!((post.0 - pre.0).abs() < 1e-6, "{} vs {}", post.0, pre.0);
    for (a, b) in post.1.iter().zip(&pre.1) {
        assert!((a - b).abs() < 1e-6, "losses {:?} vs {:?}", post.1, pre.1);
    }
    // Three SGD steps: equal weights after them mean equal gradients at every step.
    for (wa, wb) in post.2.iter().zip(&pre.2) {
        for (a, b) in wa.iter().zip(wb) {
            assert!((a - b).abs() < 1e-5, "weights differ: {a} vs {b}");
        }
    }
    for (a, b) in post.3.iter().zip(&pre.3) {
        assert!((a - b).abs() < 1e-5, "predictions differ: {a} vs {b}");
    }
    // The loss fell, and without the mask the padding is data: the two runs differ.
    assert!(post.1[2] < post.1[0], "{:?}", post.1);
    let unmasked: Vec<f64> = [false, true]
        .iter()
        .map(|&pre| {
            let (x, y) = tagged(pre);
            tagger(false).evaluate(&x, &y).unwrap().loss
        })
        .collect();
    assert!((unmasked[0] - unmasked[1]).abs() > 1e-4, "{unmasked:?}");
}

#[test]
fn an_unmasked_per_step_loss_is_the_mean_over_every_step() {
    let (x, y) = tagged(false);
    let mut m = tagger(false);
    let p = m.predict(&x).unwrap();
    let mut total = 0f64;
    for ((i, t), &label) in y.indexed_iter() {
        total -= (p[[i, t, label as usize]] as f64).ln();
    }
    let ev = m.evaluate(&x, &y).unwrap();
    assert!(
        (ev.loss - total / 18.0).abs() < 1e-5,
        "{} vs {}",
        ev.loss,
        total / 18.0
    );
}

#[test]
fn binary_and_mse_per_step_with_a_masking_layer() {
    // Float sequences [4, 5, 2], padded with (-1, -1) steps; one 0/1 label per step.
    let lens = [5, 2, 4, 3];
    let x = Array3::from_shape_fn((4, 5, 2), |(i, t, f)| {
        if t < lens[i] {
            ((i * 5 + t * 3 + f) % 7) as f32 / 7.0
        } else {
            -1.0
        }
    });
    let y = Array2::from_shape_fn((4, 5), |(i, t)| ((i + t) % 2) as f32);
    for loss in [Loss::BinaryCrossentropy, Loss::MeanSquaredError] {
        let mut m = Sequential::new()
            .with_seed(2)
            .with_input_shape(&[5, 2])
            .add(Masking::new(-1.0))
            .add(GruConfig::new(3).with_return_sequences(true))
            .add(Dense::new(1, Activation::Sigmoid));
        m.compile(Adam::new(0.01), loss, &[Metric::Accuracy])
            .unwrap();
        // Labels [n, T] and [n, T, 1] are the same targets.
        let h = m.fit(&x, &y, &FitOptions::new(2, 4).quiet()).unwrap();
        let y3 = y.clone().into_shape_with_order((4, 5, 1)).unwrap();
        let ev = m.evaluate(&x, &y3).unwrap();
        let p = m.predict(&x).unwrap();
        assert_eq!(p.shape(), [4, 5, 1]);
        let (mut l, mut ok, mut count) = (0f64, 0, 0);
        for ((i, t), &target) in y.indexed_iter() {
            if t >= lens[i] {
                continue;
            }
            let q = p[[i, t, 0]] as f64;
            l += match loss {
                Loss::BinaryCrossentropy => {
                    -(target as f64 * q.ln() + (1.0 - target as f64) * (1.0 - q).ln())
                }
                _ => (q - target as f64).powi(2),
            };
            ok += usize::from((q > 0.5) == (target > 0.5));
            count += 1;
        }
        assert_eq!(count, 14);
        assert!(
            (ev.loss - l / 14.0).abs() < 1e-5,
            "{loss:?}: {} vs {}",
            ev.loss,
            l / 14.0
        );
        assert_eq!(ev.accuracy, Some(ok as f64 / 14.0));
        assert!(h.loss().iter().all(|v| v.is_finite()));
    }
}

/// The README's tagger snippet, as written there.
#[test]
fn the_readme_tagger_runs() {
    let x: Array2<i64> = array![[4, 9, 2, 0, 0], [7, 3, 5, 8, 1]];
    let y: Array2<f32> = array![[1., 0., 2., 0., 0.], [0., 0., 1., 2., 1.]];
    let mut model = Sequential::new()
        .add(EmbeddingConfig::new(10, 16).with_mask_zero(true))
        .add(Bidirectional::new(
            LstmConfig::new(32).with_return_sequences(true).init(),
        ))
        .add(Dense::new(3, Activation::Softmax));
    model
        .compile(
            Adam::default(),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    let h = model.fit(&x, &y, &FitOptions::new(10, 32).quiet()).unwrap();
    assert!(h.loss()[9] < h.loss()[0], "{:?}", h.loss());
    let p: ArrayD<f32> = model.predict(&x).unwrap();
    assert_eq!(p.shape(), [2, 5, 3]);
}
