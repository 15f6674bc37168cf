//! Checkpoints: weights and optimiser state in one safetensors file.
//!
//! Tensors (all f32, PyTorch state-dict names and layouts):
//! - every parameter under its name (`embedding.weight`, `lstm.weight_ih_l0`, ...);
//! - for each LSTM layer, `*.bias_hh_l{k}` as zeros beside trellis's one bias stored as
//!   `*.bias_ih_l{k}` (PyTorch adds the two; loading sums them back, so a PyTorch state dict
//!   loads too); a GRU's two biases are parameters of their own, saved as they are;
//! - optimiser state as `optimizer.{m,v,momentum}.{param}`.
//!
//! Metadata: `format = trellis`, `optimizer`, `step` (updates done, for Adam's bias
//! correction), `epoch` (epochs done, for the shuffle seed of the next epoch) and
//! `input_shape` (per sample, comma-separated; restored when the model has none).
//!
//! Files are written atomically: to a temp file of a name unique to the write
//! (`{path}.{pid}.{n}.tmp`, same directory, so two writers never collide), synced, then renamed
//! over `path`; the temp file is removed on every error path.
//!
//! Loading refuses a file holding a NaN or infinite value (weights or optimiser state: it
//! would make every later result NaN) unless [`LoadOptions::allow_non_finite`] is set.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::{Model, NnError, Result};

/// The name of the zero `bias_hh` companion of an LSTM `bias_ih` parameter: a layer whose
/// `bias_hh` is a parameter of its own (a GRU's) has none.
fn bias_hh_of(model: &Model, name: &str) -> Option<String> {
    let (module, leaf) = name.rsplit_once('.')?;
    let k = leaf.strip_prefix("bias_ih_l")?;
    let hh = format!("{module}.bias_hh_l{k}");
    (!model.param_specs().iter().any(|s| s.name == hh)).then_some(hh)
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> NnError + '_ {
    move |source| NnError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `model`'s weights, optimiser state and step count to `path`.
pub fn save(model: &Model, path: &Path) -> Result<()> {
    save_with_metadata(model, path, HashMap::new())
}

/// [`save`] with more metadata entries (a saved model's architecture, ...).
pub(crate) fn save_with_metadata(
    model: &Model,
    path: &Path,
    mut meta: HashMap<String, String>,
) -> Result<()> {
    if model.param_specs().is_empty() {
        return Err(NnError::Model(
            "nothing to save: the model is not built".into(),
        ));
    }
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (s, w) in model.param_specs().iter().zip(model.weights()) {
        tensors.push((s.name.clone(), s.shape.clone(), bytes(w)));
        if let Some(hh) = bias_hh_of(model, &s.name) {
            tensors.push((hh, s.shape.clone(), bytes(&vec![0.0; w.len()])));
        }
    }
    let shapes: HashMap<&str, &Vec<usize>> = model
        .param_specs()
        .iter()
        .map(|s| (s.name.as_str(), &s.shape))
        .collect();
    let mut state: Vec<_> = model.optimizer_state().iter().collect();
    state.sort_by(|a, b| a.0.cmp(b.0));
    for (name, v) in state {
        let param = name.splitn(3, '.').nth(2).unwrap_or("");
        let shape = shapes
            .get(param)
            .map(|s| (*s).clone())
            .unwrap_or_else(|| vec![v.len()]);
        tensors.push((name.clone(), shape, bytes(v)));
    }
    let views = tensors
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| NnError::Checkpoint {
            path: path.into(),
            message: e.to_string(),
        })?;
    meta.insert("format".to_string(), "trellis".to_string());
    meta.insert("step".to_string(), model.step().to_string());
    meta.insert("epoch".to_string(), model.epochs_done().to_string());
    if let Some(shape) = model.input_shape() {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        meta.insert("input_shape".to_string(), dims.join(","));
    }
    if let Some(o) = model.optimizer_state_kind() {
        meta.insert("optimizer".to_string(), o.to_string());
    }
    let buf = safetensors::serialize(views, &Some(meta)).map_err(|e| NnError::Checkpoint {
        path: path.into(),
        message: e.to_string(),
    })?;
    write_atomic(path, &buf)
}

/// A temp file beside `path` whose name no other write (in this process or another) uses;
/// removed when dropped unless it has been renamed into place.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn beside(path: &Path) -> Result<(TempFile, std::fs::File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp = PathBuf::from(path);
        tmp.as_mut_os_string()
            .push(format!(".{}.{n}.tmp", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        Ok((TempFile(Some(tmp)), f))
    }
    fn path(&self) -> &Path {
        self.0.as_deref().expect("not yet renamed")
    }
    fn rename_to(mut self, path: &Path) -> Result<()> {
        std::fs::rename(self.path(), path).map_err(io(path))?;
        self.0 = None;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes `bytes` to `path` atomically (temp file, sync, rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let (tmp, mut f) = TempFile::beside(path)?;
    f.write_all(bytes).map_err(io(tmp.path()))?;
    f.sync_all().map_err(io(tmp.path()))?;
    drop(f);
    tmp.rename_to(path)
}

/// Checks that a checkpoint can be written to `path` (called by `fit` before the first epoch):
/// it is not a directory, its directory exists, and a file can be created there.
pub fn check_writable(path: &Path) -> Result<()> {
    let fail = |message: &str| NnError::Checkpoint {
        path: path.into(),
        message: format!("cannot save a checkpoint here: {message}"),
    };
    if path.is_dir() {
        return Err(fail("it is a directory"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(fail(&format!("{} is not a directory", dir.display())));
    }
    // The one reliable test of writability is to create the temp file the save will use.
    TempFile::beside(path).map(drop).map_err(|e| match e {
        NnError::Io { source, .. } => fail(&source.to_string()),
        e => e,
    })
}

/// Options of [`load_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Accept NaN and infinite values in the file's tensors (refused by default).
    pub allow_non_finite: bool,
}

/// The first non-finite value of `v`, as an error naming the tensor and index.
fn check_finite(path: &Path, name: &str, v: &[f32], opts: LoadOptions) -> Result<()> {
    if opts.allow_non_finite {
        return Ok(());
    }
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(NnError::Checkpoint {
            path: path.into(),
            message: format!(
                "{name}[{i}] is {}: the checkpoint holds non-finite values (a diverged run?); \
                 load it with LoadOptions {{ allow_non_finite: true }} to accept them",
                v[i]
            ),
        }),
    }
}

/// A tensor's values as f32: f32 as stored, f64 (PyTorch's `.double()` state dicts) rounded.
fn f32s(path: &Path, name: &str, t: &TensorView) -> Result<Vec<f32>> {
    match t.dtype() {
        Dtype::F32 => Ok(t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        Dtype::F64 => Ok(t
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect()),
        other => Err(NnError::Checkpoint {
            path: path.into(),
            message: format!("{name}: expected dtype F32 or F64, got {other:?}"),
        }),
    }
}

/// Restores `model`'s weights (and, when present, optimiser state and step count) from `path`.
/// Nothing changes unless every tensor loads.
pub fn load(model: &mut Model, path: &Path, opts: LoadOptions) -> Result<()> {
    let buf = read(path)?;
    load_bytes(model, path, &buf, opts)
}

/// The file's bytes, read once by a caller that also needs its metadata.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io(path))
}

/// The metadata of the safetensors file `buf` (read from `path`).
pub(crate) fn metadata(path: &Path, buf: &[u8]) -> Result<HashMap<String, String>> {
    let (_, meta) = SafeTensors::read_metadata(buf).map_err(|e| NnError::Checkpoint {
        path: path.into(),
        message: format!(
            "not a readable safetensors file ({} bytes; truncated or corrupt?): {e}",
            buf.len()
        ),
    })?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// [`load`] from the file's bytes.
pub(crate) fn load_bytes(
    model: &mut Model,
    path: &Path,
    buf: &[u8],
    opts: LoadOptions,
) -> Result<()> {
    let err = |message: String| NnError::Checkpoint {
        path: path.into(),
        message,
    };
    let meta = metadata(path, buf)?;
    let st = SafeTensors::deserialize(buf)
        .map_err(|e| err(format!("not a readable safetensors file: {e}")))?;
    let mut weights = Vec::new();
    for s in model.param_specs() {
        let t = st
            .tensor(&s.name)
            .map_err(|_| err(format!("missing tensor {}", s.name)))?;
        if t.shape() != s.shape.as_slice() {
            return Err(NnError::CheckpointShape {
                path: path.into(),
                tensor: s.name.clone(),
                expected: s.shape.clone(),
                got: t.shape().to_vec(),
            });
        }
        let mut v = f32s(path, &s.name, &t)?;
        if let Some(hh) = bias_hh_of(model, &s.name) {
            if let Ok(t2) = st.tensor(&hh) {
                if t2.shape() != s.shape.as_slice() {
                    return Err(NnError::CheckpointShape {
                        path: path.into(),
                        tensor: hh,
                        expected: s.shape.clone(),
                        got: t2.shape().to_vec(),
                    });
                }
                for (a, b) in v.iter_mut().zip(f32s(path, &hh, &t2)?) {
                    *a += b;
                }
            }
        }
        check_finite(path, &s.name, &v, opts)?;
        weights.push(v);
    }
    // Optimiser state loads when the model's optimiser (if compiled yet) is of the same kind.
    // Files of 2026-12-03 named Adam with weight decay `adamw`; its state is Adam's.
    let file_opt = meta.get("optimizer").map(|o| {
        if o == "adamw" {
            "adam".into()
        } else {
            o.clone()
        }
    });
    let usable = match (&file_opt, model.optimizer_state_kind()) {
        (Some(f), Some(m)) => f == m,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let mut state = HashMap::new();
    let mut step = 0;
    if usable {
        for (name, t) in st.tensors() {
            if !name.starts_with("optimizer.") {
                continue;
            }
            let param = name.splitn(3, '.').nth(2).unwrap_or("");
            if let Some(s) = model.param_specs().iter().find(|s| s.name == param) {
                if t.shape() != s.shape.as_slice() {
                    return Err(NnError::CheckpointShape {
                        path: path.into(),
                        tensor: name,
                        expected: s.shape.clone(),
                        got: t.shape().to_vec(),
                    });
                }
            }
            let v = f32s(path, &name, &t)?;
            check_finite(path, &name, &v, opts)?;
            state.insert(name, v);
        }
        step = match meta.get("step") {
            Some(s) => s
                .parse()
                .map_err(|_| err(format!("metadata step is not a number: {s:?}")))?,
            None => 0,
        };
    }
    let epochs = match meta.get("epoch") {
        Some(s) => s
            .parse()
            .map_err(|_| err(format!("metadata epoch is not a number: {s:?}")))?,
        None => 0,
    };
    if let Some(s) = meta.get("input_shape") {
        let shape = s
            .split(',')
            .map(|d| d.parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| err(format!("metadata input_shape is malformed: {s:?}")))?;
        model.set_input_shape_if_unknown(shape);
    }
    let opt = match (usable, file_opt) {
        (true, Some(name)) => Some((name, state, step)),
        _ => None,
    };
    model.set_restored(weights, opt, epochs);
    Ok(())
}
