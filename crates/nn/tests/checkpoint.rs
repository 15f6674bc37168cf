//! Checkpoints: round trip, resume, PyTorch bias convention, and clear errors for truncated and
//! mismatched files.
use trellis_nn::checkpoint::LoadOptions;
use trellis_nn::prelude::*;
use trellis_nn::NnError;

fn model(seed: u64, hidden: usize) -> Sequential {
    model_with(seed, hidden, Adam::new(0.01).into())
}

fn model_with(seed: u64, hidden: usize, optimizer: trellis_nn::Optimizer) -> Sequential {
    let mut m = Sequential::new()
        .with_seed(seed)
        .add(Embedding::new(30, 8))
        .add(LstmConfig::new(hidden).with_return_sequences(true))
        .add(Lstm::new(hidden))
        .add(Dense::new(1, Activation::Sigmoid));
    m.compile(optimizer, Loss::BinaryCrossentropy, &[Metric::Accuracy])
        .unwrap();
    m
}

fn task(n: usize) -> (Array2<i64>, Array1<f32>) {
    let x = Array2::from_shape_fn((n, 5), |(r, c)| {
        let i = r * 5 + c;
        ((i * 7 + i / 5) % 29 + 1) as i64
    });
    let y = (0..n).map(|i| (i % 2) as f32).collect();
    (x, y)
}

#[test]
fn save_load_gives_bit_identical_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let (x, y) = task(12);
    let mut a = model(1, 6);
    a.fit(&x, &y, &FitOptions::new(2, 4).quiet()).unwrap();
    a.save(&path).unwrap();
    assert!(!dir.path().join("m.safetensors.tmp").exists());
    let mut b = model(99, 6).with_input_shape(&[5]);
    assert_ne!(a.predict(&x).unwrap(), b.predict(&x).unwrap());
    b.load(&path).unwrap();
    assert_eq!(a.predict(&x).unwrap(), b.predict(&x).unwrap());
    assert_eq!(a.weights(), b.weights());
    assert_eq!(b.step(), a.step());
    assert_eq!(b.epochs_done(), 2);
}

/// Every optimiser's state (Adagrad's accumulator starts at 0.1, not zero) survives a
/// checkpoint: resuming equals training straight through.
#[test]
fn resume_continues_exactly() {
    let optimizers: Vec<trellis_nn::Optimizer> = vec![
        Adam::new(0.01).into(),
        AdamW::new(0.01).into(),
        RmsProp::new(0.01)
            .with_momentum(0.5)
            .with_centered(true)
            .into(),
        Adagrad::new(0.05).into(),
        Sgd::new(0.1).with_momentum(0.9).into(),
    ];
    for opt in optimizers {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.safetensors");
        let (x, y) = task(10);
        // Two epochs in one go ...
        let mut a = model_with(3, 6, opt.clone());
        let ha = a
            .fit(&x, &y, &FitOptions::new(2, 4).with_seed(7).quiet())
            .unwrap();
        // ... or one epoch with a checkpoint, then a new process loads it and trains one more.
        let mut b = model_with(3, 6, opt.clone());
        b.fit(
            &x,
            &y,
            &FitOptions::new(1, 4)
                .with_seed(7)
                .with_checkpoint(&path)
                .quiet(),
        )
        .unwrap();
        let mut c = model_with(123, 6, opt.clone());
        c.load(&path).unwrap();
        assert_eq!(c.step(), 3);
        let hc = c
            .fit(&x, &y, &FitOptions::new(1, 4).with_seed(7).quiet())
            .unwrap();
        assert_eq!(hc.epochs[0].epoch, 2);
        assert_eq!(hc.epochs[0].loss, ha.epochs[1].loss, "{opt:?}");
        assert_eq!(c.step(), a.step());
        assert_eq!(c.weights(), a.weights(), "{opt:?}");
        assert_eq!(c.predict(&x).unwrap(), a.predict(&x).unwrap());
    }
}

#[test]
fn checkpoint_uses_torch_names_and_sums_bias_hh_on_load() {
    use safetensors::tensor::{Dtype, SafeTensors, TensorView};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let a = model(1, 4);
    a.save(&path).unwrap();
    let buf = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&buf).unwrap();
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    for n in [
        "embedding.weight",
        "lstm.weight_ih_l0",
        "lstm.weight_hh_l0",
        "lstm.bias_ih_l0",
        "lstm.bias_hh_l0",
        "lstm.weight_ih_l1",
        "lstm.bias_hh_l1",
        "dense.weight",
        "dense.bias",
        "optimizer.m.lstm.weight_ih_l0",
        "optimizer.v.dense.bias",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    let hh = st.tensor("lstm.bias_hh_l0").unwrap();
    assert_eq!(hh.shape(), &[16]);
    assert!(hh.data().iter().all(|&b| b == 0));
    // A PyTorch-style file with both biases non-zero loads as their sum.
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (s, w) in a.param_specs().iter().zip(a.weights()) {
        let mut w = w.clone();
        if s.name.contains("bias_ih") {
            w.iter_mut().for_each(|v| *v = 0.25);
            let hh = s.name.replace("bias_ih", "bias_hh");
            let b: Vec<u8> = vec![0.5f32; w.len()]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            tensors.push((hh, s.shape.clone(), b));
        }
        let b: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((s.name.clone(), s.shape.clone(), b));
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let torch = dir.path().join("torch.safetensors");
    safetensors::serialize_to_file(views, &None, &torch).unwrap();
    let mut b = model(5, 4);
    b.load(&torch).unwrap();
    assert!(b
        .weight("lstm.bias_ih_l1")
        .unwrap()
        .iter()
        .all(|&v| v == 0.75));
    assert_eq!(b.weight("dense.weight"), a.weight("dense.weight"));
    assert_eq!(b.step(), 0); // no optimiser state in the file
}

#[test]
fn truncated_checkpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let mut a = model(1, 4);
    a.save(&path).unwrap();
    let full = std::fs::read(&path).unwrap();
    for keep in [full.len() - 10, full.len() / 2, 100, 4, 0] {
        std::fs::write(&path, &full[..keep]).unwrap();
        let before = a.weights().to_vec();
        let e = a.load(&path).unwrap_err();
        assert!(matches!(e, NnError::Checkpoint { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("m.safetensors"), "{msg}");
        assert!(msg.contains("truncated or corrupt"), "{msg}");
        assert_eq!(
            a.weights(),
            before.as_slice(),
            "a failed load changes nothing"
        );
    }
    let e = a.load(dir.path().join("missing.safetensors")).unwrap_err();
    assert!(matches!(e, NnError::Io { .. }));
}

#[test]
fn mismatched_checkpoint_names_the_tensor_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    model(1, 8).save(&path).unwrap();
    let mut small = model(1, 4);
    let e = small.load(&path).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.ends_with("m.safetensors: lstm.weight_ih_l0: expected [16, 8], got [32, 8]"),
        "{msg}"
    );
    // A model with a tensor the file lacks.
    let mut other = Sequential::new()
        .add(Embedding::new(30, 8))
        .add(LstmConfig::new(8).with_return_sequences(true))
        .add(Lstm::new(8))
        .add(Dense::new(4, Activation::Relu))
        .add(Dense::new(1, Activation::Sigmoid));
    other
        .compile(Adam::default(), Loss::BinaryCrossentropy, &[])
        .unwrap();
    let msg = other.load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("dense.weight: expected [4, 8], got [1, 8]"),
        "{msg}"
    );
}

#[test]
fn load_before_compile_keeps_optimizer_state_and_a_new_optimizer_kind_resets_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let (x, y) = task(8);
    let mut a = model(1, 4);
    a.fit(&x, &y, &FitOptions::new(1, 4).quiet()).unwrap();
    a.save(&path).unwrap();
    let fresh = || {
        Sequential::new()
            .add(Embedding::new(30, 8))
            .add(LstmConfig::new(4).with_return_sequences(true))
            .add(Lstm::new(4))
            .add(Dense::new(1, Activation::Sigmoid))
    };
    // Load, then compile with Adam: state and step are kept; training continues like `a`.
    let mut b = fresh();
    b.build().unwrap();
    b.load(&path).unwrap();
    b.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[])
        .unwrap();
    assert_eq!(b.step(), 2);
    a.fit(&x, &y, &FitOptions::new(1, 4).quiet()).unwrap();
    b.fit(&x, &y, &FitOptions::new(1, 4).quiet()).unwrap();
    assert_eq!(a.weights(), b.weights());
    // AdamW keeps Adam's state (the same m and v), from the file or across compile.
    let mut w = fresh();
    w.build().unwrap();
    w.load(&path).unwrap();
    w.compile(AdamW::new(0.01), Loss::BinaryCrossentropy, &[])
        .unwrap();
    assert_eq!(w.step(), 2);
    b.compile(
        Adam::new(0.01).with_weight_decay(0.1),
        Loss::BinaryCrossentropy,
        &[],
    )
    .unwrap();
    assert_eq!(b.step(), 4);
    // Files written when Adam with weight decay was named "adamw" resume Adam too.
    let buf = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&buf).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    assert_eq!(meta["optimizer"], "adam");
    meta.insert("optimizer".into(), "adamw".into());
    let st = safetensors::SafeTensors::deserialize(&buf).unwrap();
    let old = dir.path().join("old.safetensors");
    std::fs::write(
        &old,
        safetensors::serialize(st.tensors(), &Some(meta)).unwrap(),
    )
    .unwrap();
    let mut o = fresh();
    o.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[])
        .unwrap();
    o.load(&old).unwrap();
    assert_eq!(o.step(), 2);
    // Compile with SGD: a different optimiser starts at step 0; its checkpoint has no m/v.
    let mut c = fresh();
    c.build().unwrap();
    c.load(&path).unwrap();
    c.compile(Sgd::new(0.1), Loss::BinaryCrossentropy, &[])
        .unwrap();
    assert_eq!(c.step(), 0);
    c.save(&path).unwrap();
    let buf = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&buf).unwrap();
    assert!(st.names().iter().all(|n| !n.starts_with("optimizer.")));
}

#[test]
fn checkpoints_with_non_finite_values_are_refused_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = task(8);
    let mut a = model(1, 6);
    a.fit(&x, &y, &FitOptions::new(1, 4).quiet()).unwrap();
    // NaN weights (set by hand: fit never leaves them).
    let w = "lstm.weight_hh_l0";
    let mut bad = a.weight(w).unwrap().to_vec();
    bad[5] = f32::NAN;
    let mut b = model(1, 6);
    b.fit(&x, &y, &FitOptions::new(1, 4).quiet()).unwrap();
    b.set_weight(w, &bad).unwrap();
    let p = dir.path().join("nan.safetensors");
    b.save(&p).unwrap();
    let mut c = model(3, 6);
    let before = c.weights().to_vec();
    let e = c.load(&p).unwrap_err().to_string();
    assert!(
        e.contains("lstm.weight_hh_l0[5] is NaN") && e.contains("allow_non_finite"),
        "{e}"
    );
    assert_eq!(c.weights(), &before[..]);
    c.load_with(
        &p,
        LoadOptions {
            allow_non_finite: true,
        },
    )
    .unwrap();
    assert!(c.weight(w).unwrap()[5].is_nan());
}

#[test]
fn nan_optimizer_state_in_a_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = task(8);
    let mut a = model(1, 6);
    a.fit(&x, &y, &FitOptions::new(1, 4).quiet()).unwrap();
    let p = dir.path().join("m.safetensors");
    a.save(&p).unwrap();
    // Overwrite one f32 of the optimiser's `v` for the dense weight with NaN, in place.
    let mut bytes = std::fs::read(&p).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let off = header["optimizer.v.dense.weight"]["data_offsets"][0]
        .as_u64()
        .unwrap() as usize;
    let at = 8 + header_len + off;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let mut b = model(2, 6);
    let e = b.load(&p).unwrap_err().to_string();
    assert!(e.contains("optimizer.v.dense.weight[0] is NaN"), "{e}");
    assert_eq!(b.step(), 0);
}

#[test]
fn concurrent_saves_use_unique_temp_files_and_leave_none() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    let (x, y) = task(8);
    let mut a = model(1, 6);
    a.fit(&x, &y, &FitOptions::new(1, 4).quiet()).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    a.save(&p).unwrap();
                }
            });
        }
    });
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["m.safetensors"]);
    model(5, 6).load(&p).unwrap();
    // A save that fails (the path is a directory) removes its temp file too.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("keep"), b"x").unwrap();
    assert!(a.save(&sub).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn the_checkpoint_path_is_checked_before_the_first_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = task(8);
    for (path, want) in [
        (
            dir.path().join("no/such/dir/m.safetensors"),
            "is not a directory",
        ),
        (dir.path().to_path_buf(), "it is a directory"),
    ] {
        let mut m = model(1, 6);
        let before = m.weights().to_vec();
        let e = m
            .fit(
                &x,
                &y,
                &FitOptions::new(2, 4).with_checkpoint(&path).quiet(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot save a checkpoint here") && e.contains(want),
            "{e}"
        );
        assert_eq!(m.step(), 0);
        assert_eq!(m.weights(), &before[..]);
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
