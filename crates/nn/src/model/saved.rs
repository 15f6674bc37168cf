//! A saved model that stands alone: one safetensors file holding the checkpoint (weights,
//! optimiser state; see [`crate::checkpoint`]) and, in its metadata, everything needed to
//! rebuild the model without code:
//!
//! - `model_format_version`: [`FORMAT_VERSION`]; a file from a newer trellis is refused;
//! - `architecture`: JSON `{"input_shape": [200], "layers": [{"class": "LSTM", "config":
//!   {...}}, ...]}` (each layer's [`LayerConfig`]) for a stack of layers (format version 1);
//!   a functional model adds `"graph": {"inputs": [{"shape", "name"}], "calls": [{"layer",
//!   "args", "outputs"}], "outputs": [...]}`, arguments and outputs as `{"input": i}` or
//!   `{"call": [c, o]}` (format version 2);
//! - `compile` (when compiled): JSON `{"optimizer": ..., "loss": ..., "metrics": [...]}`,
//!   or `"losses": {"losses": [...], "weights": [...]}` for several outputs;
//! - `text` (when the model has a [`TextEncoder`]): JSON `{"num_words", "words" (by rank),
//!   "maxlen", "padding", "truncating"}`.
use std::collections::HashMap;
use std::path::Path;

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use super::topology::{CallSpec, InputSpec, Ref, Topology};
use super::{Losses, Model};
use crate::checkpoint::{self, LoadOptions};
use crate::data::{Side, TextEncoder, Tokenizer};
use crate::functional::LayerRef;
use crate::layers::LayerConfig;
use crate::losses::LossConfig;
use crate::metrics::Metric;
use crate::optim::Optimizer;
use crate::{NnError, Result};

/// The newest saved-model format this build reads (and writes, for a functional model; a
/// stack of layers is written as version 1, which older builds read).
pub const FORMAT_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Architecture {
    input_shape: Option<Vec<usize>>,
    layers: Vec<LayerConfig>,
    /// A functional model's calls (format version 2); none for a stack of layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    graph: Option<CallGraph>,
    /// Layers that do not train (Keras's `trainable: false`); older builds ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    frozen: Vec<usize>,
}

#[derive(Serialize, Deserialize)]
struct CallGraph {
    inputs: Vec<InputSpec>,
    calls: Vec<CallSpec>,
    outputs: Vec<Ref>,
}

#[derive(Serialize, Deserialize)]
struct CompileConfig {
    optimizer: Optimizer,
    /// One loss, weight 1, for every output (format version 1); a bare loss name (what files
    /// from before loss options hold) reads as that loss with Keras's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loss: Option<LossConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    losses: Option<Losses>,
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

impl Model {
    /// Attaches the text encoding the model was trained with, so that a saved model takes
    /// raw text ([`Model::predict_text`]).
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

    /// Writes the model as one file that [`Model::load_model`] rebuilds without code:
    /// the checkpoint of [`Model::save`] plus the architecture, the compile settings and
    /// the text encoder (if any) in its metadata. Builds the model first if needed.
    pub fn save_model(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.build()?;
        let layers = self
            .topo
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
        if let (Some(t), Some(shape)) = (&self.text, self.input_shape()) {
            if shape != [t.maxlen] {
                return Err(NnError::Model(format!(
                    "the text encoder makes rows of {} ids, the model's input shape is {shape:?}",
                    t.maxlen
                )));
            }
        }
        if let (Some(t), Some(e)) = (&self.text, self.embeddings_of(0).first()) {
            if t.tokenizer.num_words() > e.vocab() {
                return Err(NnError::Model(format!(
                    "the text encoder's tokenizer gives ids up to {}, the embedding has a \
                     vocabulary of {}",
                    t.tokenizer.num_words() - 1,
                    e.vocab()
                )));
            }
        }
        let chain = self.topo.is_chain();
        let mut meta = HashMap::new();
        meta.insert(
            "model_format_version".to_string(),
            if chain { 1 } else { FORMAT_VERSION }.to_string(),
        );
        let arch = Architecture {
            input_shape: self.input_shape().map(<[usize]>::to_vec),
            layers,
            frozen: self.frozen.iter().copied().collect(),
            graph: (!chain).then(|| CallGraph {
                inputs: self.topo.inputs.clone(),
                calls: self.topo.calls.clone(),
                outputs: self.topo.outputs.clone(),
            }),
        };
        meta.insert("architecture".to_string(), to_json("architecture", &arch)?);
        if let Some(c) = &self.compiled {
            let one = c.losses.losses.len() == 1 && c.losses.weights == [1.0];
            let c = CompileConfig {
                optimizer: c.optimizer.clone(),
                loss: one.then(|| c.losses.losses[0]),
                losses: (!one).then(|| c.losses.clone()),
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

    /// Rebuilds a model written by [`Model::save_model`]: layers, weights, optimiser
    /// state, compile settings and text encoder; it predicts (and trains on) at once. A file
    /// from a newer trellis, a weights-only checkpoint, another library's safetensors file or
    /// a truncated file is an error saying which.
    pub fn load_model(path: impl AsRef<Path>) -> Result<Model> {
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
        let layers = arch
            .layers
            .iter()
            .map(|l| Ok(LayerRef::new(l.build()?)))
            .collect::<Result<Vec<_>>>()?;
        let topo = match arch.graph {
            None => Topology::chain(layers, arch.input_shape),
            Some(g) => Topology {
                inputs: g.inputs,
                layers,
                calls: g.calls,
                outputs: g.outputs,
            },
        };
        topo.check()
            .map_err(|e| bad_file(path, format!("metadata architecture: {e}")))?;
        let mut model = Model::with_topology(topo);
        for l in arch.frozen {
            model
                .set_trainable(l, false)
                .map_err(|e| bad_file(path, format!("metadata architecture: {e}")))?;
        }
        if let Some(c) = meta.get("compile") {
            let c: CompileConfig = from_json(path, "compile", c)?;
            let losses = match (c.loss, c.losses) {
                (_, Some(l)) => l,
                (Some(l), None) => Losses::from(l),
                (None, None) => {
                    return Err(bad_file(path, "metadata compile has no loss".into()));
                }
            };
            model.compile(c.optimizer, losses, &c.metrics)?;
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
    /// (`[texts, T, units]` for a per-step output), as [`Model::predict`].
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
            let out = self.output_shapes(1, &[vec![ids.ncols()]])?.remove(0);
            return Ok(ArrayD::zeros([&[0][..], &out].concat()));
        }
        self.predict(&ids)
    }
}
