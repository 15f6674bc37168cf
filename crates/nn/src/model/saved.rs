//! A saved model that stands alone: one safetensors file holding the checkpoint (weights,
//! optimiser state; see [`crate::checkpoint`]) and, in its metadata, everything needed to
//! rebuild the model without code:
//!
//! - `model_format_version`: [`FORMAT_VERSION`]; a file from a newer trellis is refused;
//! - `architecture`: JSON `{"input_shape": [200], "layers": [{"class": "LSTM", "config":
//!   {...}}, ...]}` (each layer's [`LayerConfig`]);
//! - `compile` (when compiled): JSON `{"optimizer": ..., "loss": ..., "metrics": [...]}`;
//! - `text` (when the model has a [`TextEncoder`]): JSON `{"num_words", "words" (by rank),
//!   "maxlen", "padding", "truncating"}`.
use std::collections::HashMap;
use std::path::Path;

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use super::Sequential;
use crate::checkpoint::{self, LoadOptions};
use crate::data::{Side, TextEncoder, Tokenizer};
use crate::layers::LayerConfig;
use crate::losses::{Loss, LossConfig};
use crate::metrics::Metric;
use crate::optim::Optimizer;
use crate::{NnError, Result};

/// The saved-model format this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Architecture {
    input_shape: Option<Vec<usize>>,
    layers: Vec<LayerConfig>,
}

#[derive(Serialize, Deserialize)]
struct CompileConfig {
    optimizer: Optimizer,
    /// The kind (what format 1 wrote); `loss_config` holds it with its options.
    loss: Loss,
    #[serde(default)]
    loss_config: Option<LossConfig>,
    metrics: Vec<Metric>,
}

#[derive(Serialize, Deserialize)]
struct TextConfig {
    num_words: usize,
    words: Vec<String>,
    maxlen: usize,
    padding: Side,
    truncating: Side,
}

fn bad_file(path: &Path, message: String) -> NnError {
    NnError::Checkpoint {
        path: path.into(),
        message,
    }
}

fn to_json(what: &str, v: &impl Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| NnError::Model(format!("cannot save the {what}: {e}")))
}

fn from_json<T: for<'de> Deserialize<'de>>(path: &Path, key: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| bad_file(path, format!("metadata {key} is malformed: {e}")))
}

impl Sequential {
    /// Attaches the text encoding the model was trained with, so that a saved model takes
    /// raw text ([`Sequential::predict_text`]).
    pub fn with_text_encoder(mut self, text: TextEncoder) -> Self {
        self.text = Some(text);
        self
    }
    pub fn set_text_encoder(&mut self, text: Option<TextEncoder>) {
        self.text = text;
    }
    pub fn text_encoder(&self) -> Option<&TextEncoder> {
        self.text.as_ref()
    }

    /// Writes the model as one file that [`Sequential::load_model`] rebuilds without code:
    /// the checkpoint of [`Sequential::save`] plus the architecture, the compile settings and
    /// the text encoder (if any) in its metadata. Builds the model first if needed.
    pub fn save_model(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.build()?;
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                l.config().ok_or_else(|| {
                    NnError::Model(format!(
                        "layer {i} ({}) is not a trellis layer: a saved model cannot describe \
                         it (save the weights with save() and rebuild the model in code)",
                        l.kind()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if let (Some(t), Some(shape)) = (&self.text, &self.input_shape) {
            if shape.as_slice() != [t.maxlen] {
                return Err(NnError::Model(format!(
                    "the text encoder makes rows of {} ids, the model's input shape is {shape:?}",
                    t.maxlen
                )));
            }
        }
        if let (Some(t), Some(e)) = (&self.text, self.embedding()) {
            if t.tokenizer.num_words() > e.vocab() {
                return Err(NnError::Model(format!(
                    "the text encoder's tokenizer gives ids up to {}, the embedding has a \
                     vocabulary of {}",
                    t.tokenizer.num_words() - 1,
                    e.vocab()
                )));
            }
        }
        let mut meta = HashMap::new();
        meta.insert(
            "model_format_version".to_string(),
            FORMAT_VERSION.to_string(),
        );
        let arch = Architecture {
            input_shape: self.input_shape.clone(),
            layers,
        };
        meta.insert("architecture".to_string(), to_json("architecture", &arch)?);
        if let Some(c) = &self.compiled {
            let c = CompileConfig {
                optimizer: c.optimizer.clone(),
                loss: c.loss.kind,
                loss_config: Some(c.loss),
                metrics: c.metrics.clone(),
            };
            meta.insert("compile".to_string(), to_json("compile settings", &c)?);
        }
        if let Some(t) = &self.text {
            let t = TextConfig {
                num_words: t.tokenizer.num_words(),
                words: t.tokenizer.words().to_vec(),
                maxlen: t.maxlen,
                padding: t.padding,
                truncating: t.truncating,
            };
            meta.insert("text".to_string(), to_json("text encoder", &t)?);
        }
        checkpoint::save_with_metadata(self, path.as_ref(), meta)
    }

    /// Rebuilds a model written by [`Sequential::save_model`]: layers, weights, optimiser
    /// state, compile settings and text encoder; it predicts (and trains on) at once. A file
    /// from a newer trellis, a weights-only checkpoint, another library's safetensors file or
    /// a truncated file is an error saying which.
    pub fn load_model(path: impl AsRef<Path>) -> Result<Sequential> {
        let path = path.as_ref();
        let buf = checkpoint::read(path)?;
        let meta = checkpoint::metadata(path, &buf)?;
        if meta.get("format").map(String::as_str) != Some("trellis") {
            return Err(bad_file(
                path,
                "not a trellis model: a safetensors file without trellis metadata (written by \
                 another library?)"
                    .into(),
            ));
        }
        let version = meta.get("model_format_version").ok_or_else(|| {
            bad_file(
                path,
                "a trellis checkpoint (weights only), not a saved model: build the model in \
                 code and call load(), or write the file with save_model()"
                    .into(),
            )
        })?;
        let version: u32 = version.parse().map_err(|_| {
            bad_file(
                path,
                format!("metadata model_format_version is not a number: {version:?}"),
            )
        })?;
        if version > FORMAT_VERSION {
            return Err(bad_file(
                path,
                format!(
                    "saved by a newer trellis (model format version {version}; this build \
                     reads up to {FORMAT_VERSION}): upgrade trellis to load it"
                ),
            ));
        }
        let arch_json = meta
            .get("architecture")
            .ok_or_else(|| bad_file(path, "metadata has no architecture".into()))?;
        let arch: Architecture = from_json(path, "architecture", arch_json)?;
        let mut model = Sequential::new();
        for l in &arch.layers {
            model.push(l.build()?);
        }
        model.input_shape = arch.input_shape;
        if let Some(c) = meta.get("compile") {
            let c: CompileConfig = from_json(path, "compile", c)?;
            let loss = c.loss_config.unwrap_or_else(|| c.loss.into());
            model.compile(c.optimizer, loss, &c.metrics)?;
        }
        model.build()?;
        checkpoint::load_bytes(&mut model, path, &buf, LoadOptions::default())?;
        if let Some(t) = meta.get("text") {
            let t: TextConfig = from_json(path, "text", t)?;
            let tokenizer = Tokenizer::from_words(t.words, t.num_words)
                .map_err(|e| bad_file(path, format!("metadata text: {e}")))?;
            model.text = Some(TextEncoder {
                tokenizer,
                maxlen: t.maxlen,
                padding: t.padding,
                truncating: t.truncating,
            });
        }
        Ok(model)
    }

    /// The model's outputs for raw texts, encoded with its [`TextEncoder`]: `[texts, units]`
    /// (`[texts, T, units]` for a per-step output), as [`Sequential::predict`].
    pub fn predict_text(&mut self, texts: &[&str]) -> Result<ArrayD<f32>> {
        let text = self.text.as_ref().ok_or_else(|| {
            NnError::Model(
                "predict_text needs a text encoder: attach one with with_text_encoder (saved \
                 models keep it)"
                    .into(),
            )
        })?;
        let ids = text.encode(texts.iter().copied());
        if texts.is_empty() {
            // predict refuses empty data; no texts have no outputs, of the usual shape.
            self.build()?;
            let out = self.output_shape(1, &[ids.ncols()])?;
            return Ok(ArrayD::zeros([&[0][..], &out].concat()));
        }
        self.predict(&ids)
    }
}
