//! Callbacks and learning-rate schedules: early stopping restores the best epoch's weights bit
//! for bit, the learning rate changes without recompiling (and a constant rate fed through a
//! scheduler gives the same bits as none), checkpoints, plateaus, CSV logs.
use std::cell::RefCell;
use std::rc::Rc;

use trellis_nn::callbacks::{BatchLog, Run};
use trellis_nn::prelude::*;
use trellis_nn::{EpochLog, History, NnError};

/// 64 samples of 4 features; the label is whether the first two sum above zero.
fn data() -> (Vec<f32>, Vec<f32>) {
    let mut rng = data::SplitMix64::new(7);
    let x: Vec<f32> = (0..64 * 4)
        .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
        .collect();
    let y = x.chunks(4).map(|r| f32::from(r[0] + r[1] > 0.0)).collect();
    (x, y)
}

fn model(lr: f64) -> Sequential {
    let mut m = Sequential::new()
        .with_seed(3)
        .with_input_shape(&[4])
        .add(Dense::new(8, Activation::Tanh))
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(Sgd::new(lr), Loss::BinaryCrossentropy, &[Metric::Accuracy])
        .unwrap();
    m
}

/// Fits `m` on [`data`] validating against the same samples with their labels flipped, so the
/// validation loss rises as the model learns (the best epoch is an early one).
fn fit_flipped(
    m: &mut Sequential,
    epochs: usize,
    batch: usize,
    cbs: &mut [&mut dyn Callback],
) -> History {
    let (x, y) = data();
    let flipped: Vec<f32> = y.iter().map(|v| 1.0 - v).collect();
    let opts = FitOptions::new(epochs, batch)
        .quiet()
        .with_validation_data((&x, [64, 4]), (&flipped, [64, 1]));
    m.fit_with_callbacks((&x, [64, 4]), (&y, [64, 1]), &opts, cbs)
        .unwrap()
}

/// Records every epoch's weights and log.
#[derive(Default)]
struct Recorder {
    epochs: Vec<(EpochLog, Vec<Vec<f32>>)>,
    lrs: Vec<f64>,
}

impl Callback for Recorder {
    fn on_batch_end(&mut self, log: &BatchLog, _run: &mut Run) -> trellis_nn::Result<()> {
        self.lrs.push(log.learning_rate);
        Ok(())
    }
    fn on_epoch_end(&mut self, log: &EpochLog, run: &mut Run) -> trellis_nn::Result<()> {
        self.epochs.push((log.clone(), run.weights()?.to_vec()));
        Ok(())
    }
}

fn bits(w: &[Vec<f32>]) -> Vec<Vec<u32>> {
    w.iter()
        .map(|t| t.iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn early_stopping_restores_the_best_epoch_bit_for_bit() {
    let (x, y) = data();
    let flipped: Vec<f32> = y.iter().map(|v| 1.0 - v).collect();
    let mut m = model(0.5);
    let mut stop = EarlyStopping::new("val_loss")
        .with_patience(2)
        .with_restore_best_weights(true);
    let mut rec = Recorder::default();
    let h = fit_flipped(&mut m, 8, 16, &mut [&mut rec, &mut stop]);
    let val = h.val_loss();
    let best = (0..val.len())
        .min_by(|&a, &b| val[a].total_cmp(&val[b]))
        .unwrap();
    // Patience 2 stops two epochs after the best one.
    assert_eq!(h.epochs.len(), best + 3, "{val:?}");
    assert_eq!(stop.stopped_epoch(), Some(best + 3));
    assert_eq!(stop.best(), Some((best + 1, val[best])));
    assert_ne!(
        bits(&rec.epochs[best].1),
        bits(&rec.epochs.last().unwrap().1)
    );
    assert_eq!(bits(m.weights()), bits(&rec.epochs[best].1));
    // The restored weights are what the model predicts with.
    let ev = m.evaluate((&x, [64, 4]), (&flipped, [64, 1])).unwrap();
    assert_eq!(ev.loss.to_bits(), val[best].to_bits());
}

#[test]
fn a_schedule_changes_the_rate_without_recompiling() {
    let (x, y) = data();
    let mut m = model(0.1);
    let mut sched = LearningRateScheduler::new(LrSchedule::step_decay(0.4, 0.5, 4));
    let mut rec = Recorder::default();
    let opts = FitOptions::new(3, 16).quiet();
    m.fit_with_callbacks(
        (&x, [64, 4]),
        (&y, [64, 1]),
        &opts,
        &mut [&mut sched, &mut rec],
    )
    .unwrap();
    assert_eq!(m.plans_compiled(), 1, "one training plan for every rate");
    let want: Vec<f64> = (0..12).map(|s| 0.4 * 0.5f64.powi(s / 4)).collect();
    assert_eq!(rec.lrs, want);
    assert_eq!(m.learning_rate(), Some(0.4 * 0.25));
    assert_eq!(rec.epochs[2].0.learning_rate, Some(0.1));
    // The same rates by hand (set between epochs through the model) give the same bits.
    let mut hand = model(0.4);
    for e in 0..3 {
        hand.set_learning_rate(0.4 * 0.5f64.powi(e)).unwrap();
        hand.fit(
            (&x, [64, 4]),
            (&y, [64, 1]),
            &FitOptions::new(1, 16).quiet(),
        )
        .unwrap();
    }
    assert_eq!(hand.plans_compiled(), 1);
    assert_eq!(bits(hand.weights()), bits(m.weights()));
}

#[test]
fn a_constant_rate_through_a_scheduler_gives_the_same_bits_as_none() {
    let (x, y) = data();
    let run = |sched: bool| {
        let mut m = Sequential::new()
            .with_seed(3)
            .with_input_shape(&[4])
            .add(Dense::new(8, Activation::Tanh))
            .add(Dense::new(1, Activation::Sigmoid));
        m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[])
            .unwrap();
        let mut s = LearningRateScheduler::per_epoch(|_, lr| lr);
        let mut cbs: Vec<&mut dyn Callback> = Vec::new();
        if sched {
            cbs.push(&mut s);
        }
        let opts = FitOptions::new(2, 16).quiet();
        let h = m
            .fit_with_callbacks((&x, [64, 4]), (&y, [64, 1]), &opts, &mut cbs)
            .unwrap();
        (bits(m.weights()), h.loss())
    };
    assert_eq!(run(true), run(false));
}

#[test]
fn reduce_lr_on_plateau_follows_keras() {
    let mut m = model(0.5);
    let mut plateau = ReduceLROnPlateau::new("val_loss")
        .with_patience(1)
        .with_factor(0.5)
        .with_min_lr(0.1);
    let mut rec = Recorder::default();
    let h = fit_flipped(&mut m, 5, 32, &mut [&mut plateau, &mut rec]);
    let val = h.val_loss();
    assert!(val.windows(2).all(|w| w[1] > w[0]), "{val:?}");
    // Epoch 1 sets the best; each later epoch is worse: halve, down to the floor of 0.1.
    let lrs: Vec<f64> = h.epochs.iter().map(|e| e.learning_rate.unwrap()).collect();
    // The log holds the rate the epoch trained with (Keras logs it before reducing).
    assert_eq!(lrs, [0.5, 0.5, 0.25, 0.125, 0.1]);
    assert_eq!(m.learning_rate(), Some(0.1));
    assert_eq!(rec.lrs[..4], [0.5, 0.5, 0.5, 0.5]);
    assert_eq!(rec.lrs[4..6], [0.25, 0.25]);
    assert_eq!(
        m.plans_compiled(),
        2,
        "one training and one validation plan"
    );
}

#[test]
fn checkpoints_keep_the_best_and_csv_logs_every_epoch() {
    let (x, _) = data();
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("m{epoch}.safetensors");
    let csv = dir.path().join("log.csv");
    let mut m = model(0.5);
    let mut ckpt = ModelCheckpoint::new(&pattern).with_save_best_only(true);
    let mut every =
        ModelCheckpoint::new(dir.path().join("last.safetensors")).with_save_weights_only(true);
    let mut log = CsvLogger::new(&csv);
    let h = fit_flipped(&mut m, 3, 32, &mut [&mut ckpt, &mut every, &mut log]);
    // The validation loss only rises: only epoch 1 is saved, as a model that stands alone.
    let exists = |e: usize| dir.path().join(format!("m{e}.safetensors")).exists();
    assert_eq!([exists(1), exists(2), exists(3)], [true, false, false]);
    let mut first = Sequential::load_model(dir.path().join("m1.safetensors")).unwrap();
    assert_eq!(first.epochs_done(), 1);
    assert!(first.predict((&x, [64, 4])).is_ok());
    let mut last = model(0.5);
    last.load(dir.path().join("last.safetensors")).unwrap();
    assert_eq!(bits(last.weights()), bits(m.weights()));
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss"
    );
    assert_eq!(lines.len(), 4);
    let row: Vec<f64> = lines[3].split(',').map(|v| v.parse().unwrap()).collect();
    let e = &h.epochs[2];
    let want = [
        2.0,
        e.accuracy.unwrap(),
        0.5,
        e.loss,
        e.val_accuracy.unwrap(),
        e.val_loss.unwrap(),
    ];
    assert_eq!(row, want);
}

#[test]
fn bad_monitors_and_paths_fail_before_training() {
    let (x, y) = data();
    let mut m = model(0.5);
    let opts = FitOptions::new(2, 32).quiet();
    let e = m
        .fit_with_callbacks(
            (&x, [64, 4]),
            (&y, [64, 1]),
            &opts,
            &mut [&mut EarlyStopping::default()],
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("val_loss") && e.contains("validation_data") && e.contains("loss, accuracy"),
        "{e}"
    );
    assert_eq!(m.epochs_done(), 0, "refused before the first epoch");
    let mut bad = ModelCheckpoint::new("/nonexistent-dir/m.safetensors");
    let e = m
        .fit_with_callbacks((&x, [64, 4]), (&y, [64, 1]), &opts, &mut [&mut bad])
        .unwrap_err();
    assert!(matches!(e, NnError::Checkpoint { .. }), "{e}");
    assert_eq!(m.epochs_done(), 0);
    let mut sched = LearningRateScheduler::per_epoch(|_, _| f64::NAN);
    let e = m
        .fit_with_callbacks((&x, [64, 4]), (&y, [64, 1]), &opts, &mut [&mut sched])
        .unwrap_err()
        .to_string();
    assert!(e.contains("learning_rate") && e.contains("NaN"), "{e}");
    assert_eq!(m.epochs_done(), 0);
}

/// A callback that stops after a set number of batches, to see `stop_training` end the epoch.
struct StopAt(Rc<RefCell<usize>>, usize);

impl Callback for StopAt {
    fn on_batch_end(&mut self, _log: &BatchLog, run: &mut Run) -> trellis_nn::Result<()> {
        *self.0.borrow_mut() += 1;
        if *self.0.borrow() == self.1 {
            run.stop_training();
        }
        Ok(())
    }
}

#[test]
fn stopping_mid_epoch_ends_it_after_that_batch() {
    let (x, y) = data();
    let mut m = model(0.5);
    let seen = Rc::new(RefCell::new(0));
    let mut stop = StopAt(seen.clone(), 2);
    let h: History = m
        .fit_with_callbacks(
            (&x, [64, 4]),
            (&y, [64, 1]),
            &FitOptions::new(5, 16).quiet(),
            &mut [&mut stop],
        )
        .unwrap();
    assert_eq!(*seen.borrow(), 2);
    assert_eq!(h.epochs.len(), 1);
    assert_eq!((h.epochs[0].steps, m.step()), (2, 2));
}

/// Two inputs (ids and floats), two binary heads: the functional case of every callback.
fn two_heads() -> Model {
    let (a, b) = (Input::new(&[5]), Input::new(&[4]));
    let h = Embedding::new(10, 4).call(&a).unwrap();
    let h = Lstm::new(4).call(&h).unwrap();
    let p = Dense::new(1, Activation::Sigmoid).call(&h).unwrap();
    let u = Dense::new(6, Activation::Tanh).call(&b).unwrap();
    let q = Dense::new(1, Activation::Sigmoid).call(&u).unwrap();
    let mut m = Model::new(&[&a, &b], &[&p, &q]).unwrap().with_seed(5);
    m.compile(
        Sgd::new(0.5),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy, Metric::Auc],
    )
    .unwrap();
    m
}

#[test]
fn callbacks_drive_a_functional_model_with_two_outputs() {
    let n = 64;
    let mut rng = data::SplitMix64::new(9);
    let xa = Array2::from_shape_fn((n, 5), |_| (rng.next_f64() * 10.0) as i64);
    let (xb, ya) = data();
    let xb = Array2::from_shape_vec((n, 4), xb).unwrap();
    let ya = Array1::from(ya);
    let yb = Array1::from_shape_fn(n, |i| f32::from(xa[[i, 4]] < 5));
    let fa = ya.mapv(|v| 1.0 - v);
    let x = || [Inputs::from(&xa), Inputs::from(&xb)];
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("log.csv");
    let best_auc = dir.path().join("best.safetensors");

    let mut m = two_heads();
    let mut stop = EarlyStopping::new("val_loss")
        .with_patience(2)
        .with_restore_best_weights(true);
    // A per-output metric by its Keras name, its direction read from the name (AUC: up).
    let mut ckpt = ModelCheckpoint::new(&best_auc)
        .with_monitor("val_output1_auc")
        .with_save_best_only(true);
    let mut plateau = ReduceLROnPlateau::new("val_output1_auc")
        .with_patience(1)
        .with_factor(0.5);
    let mut log = CsvLogger::new(&csv);
    let mut rec = Recorder::default();
    let opts = FitOptions::new(10, 16)
        .quiet()
        .with_validation_data(x(), [&fa, &yb]);
    let h = m
        .fit_with_callbacks(
            x(),
            [&ya, &yb],
            &opts,
            &mut [&mut rec, &mut stop, &mut ckpt, &mut plateau, &mut log],
        )
        .unwrap();

    // EarlyStopping: stopped two epochs after the best validation loss, best weights back.
    let val = h.val_loss();
    let best = (0..val.len())
        .min_by(|&a, &b| val[a].total_cmp(&val[b]))
        .unwrap();
    assert_eq!(h.epochs.len(), best + 3, "{val:?}");
    assert_eq!(bits(m.weights()), bits(&rec.epochs[best].1));
    let ev = m.evaluate(x(), [&fa, &yb]).unwrap();
    assert_eq!(ev.loss.to_bits(), val[best].to_bits());

    // ModelCheckpoint: the file holds the weights of the epoch with the best val_output1_auc,
    // and loads as the functional model it is.
    let auc: Vec<f64> = h
        .epochs
        .iter()
        .map(|e| e.get("val_output1_auc").unwrap())
        .collect();
    let top = (0..auc.len())
        .max_by(|&a, &b| auc[a].total_cmp(&auc[b]).then(b.cmp(&a)))
        .unwrap();
    let mut saved = Model::load_model(&best_auc).unwrap();
    assert_eq!(bits(saved.weights()), bits(&rec.epochs[top].1));
    assert_eq!(saved.predict_outputs(x()).unwrap().len(), 2);

    // ReduceLROnPlateau watched the same figure: the rate logged each epoch is
    // 0.5 halved once per epoch that ended a plateau of one.
    let lrs: Vec<f64> = h.epochs.iter().map(|e| e.learning_rate.unwrap()).collect();
    let (mut lr, mut best_seen) = (0.5, f64::NEG_INFINITY);
    for (e, &v) in auc.iter().enumerate() {
        assert_eq!(lrs[e], lr, "epoch {} of {lrs:?} ({auc:?})", e + 1);
        if v > best_seen + 1e-4 {
            best_seen = v;
        } else {
            lr *= 0.5;
        }
    }
    // The checks above compare distinct epochs, and the rate did fall.
    assert_eq!((best, top, lrs[4]), (2, 4, 0.125), "{lrs:?}");
    // CsvLogger: every figure of both heads, a row per epoch.
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,accuracy,learning_rate,loss,output0_auc,output0_loss,output1_auc,output1_loss,\
         val_accuracy,val_loss,val_output0_auc,val_output0_loss,val_output1_auc,val_output1_loss"
    );
    assert_eq!(lines.len(), h.epochs.len() + 1);
}
