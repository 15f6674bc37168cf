//! `Embedding(vocab, dim)`: rows of a `[vocab, dim]` table picked by integer ids.
use std::any::Any;

use trellis_ir::{Graph, NodeId, Tensor};

use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::init::Init;
use crate::regularizers::Regularizer;
use crate::{NnError, Result};

/// Configuration of an [`Embedding`]. Keras defaults: `RandomUniform(-0.05, 0.05)`,
/// `mask_zero=False`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmbeddingConfig {
    pub vocab: usize,
    pub dim: usize,
    pub init: Init,
    /// Id 0 is padding: the steps where it stands are masked for the layers after.
    pub mask_zero: bool,
    /// Keras's `embeddings_regularizer`: a penalty on the table in the training loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regularizer: Option<Regularizer>,
}

impl EmbeddingConfig {
    pub fn new(vocab: usize, dim: usize) -> Self {
        EmbeddingConfig {
            vocab,
            dim,
            init: Init::Uniform(0.05),
            mask_zero: false,
            regularizer: None,
        }
    }
    pub fn with_init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }
    pub fn with_mask_zero(mut self, yes: bool) -> Self {
        self.mask_zero = yes;
        self
    }
    /// Keras's `embeddings_regularizer`.
    pub fn with_regularizer(mut self, r: Regularizer) -> Self {
        self.regularizer = Some(r);
        self
    }
    pub fn init(self) -> Embedding {
        Embedding { config: self }
    }
}

/// Maps ids `[B, T]` to a time-major sequence `[T, B, dim]` (ids `[B]` to `[B, dim]`).
/// Parameter: `{module}.weight [vocab, dim]` (as `torch.nn.Embedding`).
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    pub config: EmbeddingConfig,
}

impl Embedding {
    pub fn new(vocab: usize, dim: usize) -> Self {
        EmbeddingConfig::new(vocab, dim).init()
    }
    pub fn vocab(&self) -> usize {
        self.config.vocab
    }
}

impl From<EmbeddingConfig> for Box<dyn Layer> {
    fn from(c: EmbeddingConfig) -> Self {
        Box::new(c.init())
    }
}

impl Layer for Embedding {
    fn kind(&self) -> &'static str {
        "embedding"
    }
    fn params(&self, scope: &Scope, _in_features: usize) -> Vec<ParamSpec> {
        vec![ParamSpec::new(
            format!("{}.weight", scope.module),
            &[self.config.vocab, self.config.dim],
            self.config.init.clone(),
        )
        .with_regularizer(self.config.regularizer)]
    }
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], _: &mut BuildCtx) -> Result<Act> {
        let ids = x.node;
        let ty = g.ty(ids).clone();
        if self.config.vocab == 0 || self.config.dim == 0 {
            return Err(NnError::InvalidArgument {
                name: "embedding",
                value: format!("Embedding({}, {})", self.config.vocab, self.config.dim),
                message: "the vocabulary and the dimension must be positive".into(),
            });
        }
        match ty.rank() {
            // Transposing the ids (not the embedded floats) gives the LSTM its time-major input.
            2 => {
                let ids_t = g.transpose(ids, &[1, 0])?;
                let mut act = Act::new(g.gather(params[0], ids_t)?, Layout::TimeMajor);
                if self.config.mask_zero {
                    // The mask as a lookup too: a [vocab, 1] column of ones with a 0 at id 0.
                    let mut real = vec![1.0f32; self.config.vocab];
                    real[0] = 0.0;
                    let table = g.constant(Tensor::f32([self.config.vocab, 1], real)?);
                    let m = g.gather(table, ids_t)?; // [T, B, 1]
                    let (t, b) = (g.ty(ids_t).dims()[0], g.ty(ids_t).dims()[1]);
                    act.mask = Some(g.reshape(m, [t, b])?);
                }
                Ok(act)
            }
            1 => Ok(Act::new(g.gather(params[0], ids)?, Layout::BatchMajor)),
            _ => Err(NnError::Shape(format!(
                "embedding: ids must be [batch] or [batch, time], got {ty}"
            ))),
        }
    }
    fn takes_ids(&self) -> bool {
        true
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Embedding(self.config.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
