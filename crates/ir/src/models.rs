//! The seed model as a raw graph: `Embedding -> LSTM(return_sequences) -> LSTM -> Dense(1)`
//! with binary cross-entropy on the logit. Benches and tests of every crate build it from here;
//! `nn`'s layers build the same graph for users.
use crate::lstm::{lstm, LstmSpec, LstmWeights, SeqLayout};
use crate::{DType, Graph, NodeId, Result, TensorType};

/// Sizes of the seed model (the Keras IMDB classifier is `vocab 10000, embed 128, hidden 128`).
#[derive(Clone, Copy, Debug)]
pub struct SeedConfig {
    pub vocab: usize,
    pub embed: usize,
    pub hidden: usize,
    pub layers: usize,
    pub seq: usize,
    pub batch: usize,
    pub dtype: DType,
}

impl Default for SeedConfig {
    fn default() -> Self {
        SeedConfig {
            vocab: 10_000,
            embed: 128,
            hidden: 128,
            layers: 2,
            seq: 200,
            batch: 128,
            dtype: DType::F32,
        }
    }
}

/// Nodes of the built seed model.
#[derive(Clone, Debug)]
pub struct SeedModel {
    /// Token ids `[B, T]` (i64).
    pub ids: NodeId,
    /// Labels `[B, 1]` in {0, 1}.
    pub labels: NodeId,
    /// Parameters in PyTorch state-dict order: embedding, per layer `w_ih, w_hh, bias`, dense `w, b`.
    pub params: Vec<NodeId>,
    /// `[B, 1]` logits (the sigmoid of which is the prediction).
    pub logits: NodeId,
    /// Mean binary cross-entropy, a scalar.
    pub loss: NodeId,
}

/// Binary cross-entropy from logits `z [B, K]`, per sample (`[B, 1]`), stable for large |z|:
/// `mean_k(max(z, 0) - z y + log(1 + exp(-|z|)))`.
pub fn bce_with_logits_per_sample(g: &mut Graph, z: NodeId, y: NodeId) -> Result<NodeId> {
    let zero = g.scalar_like(z, 0.0)?;
    let one = g.scalar_like(z, 1.0)?;
    let relu = g.maximum(z, zero)?;
    let zy = g.mul(z, y)?;
    let a = g.abs(z)?;
    let na = g.neg(a)?;
    let e = g.exp(na)?;
    let e1 = g.add(one, e)?;
    let l = g.log(e1)?;
    let t = g.sub(relu, zy)?;
    let t = g.add(t, l)?;
    g.mean(t, &[1], true)
}

/// Mean binary cross-entropy from logits over the batch, a scalar.
pub fn bce_with_logits(g: &mut Graph, z: NodeId, y: NodeId) -> Result<NodeId> {
    let per = bce_with_logits_per_sample(g, z, y)?;
    g.mean_all(per)
}

/// Builds the seed model forward graph with its loss; sets the graph outputs to `[loss, logits]`.
pub fn seed_model(g: &mut Graph, c: &SeedConfig) -> Result<SeedModel> {
    let dt = c.dtype;
    let ids = g.input("ids", TensorType::i64([c.batch, c.seq]));
    let labels = g.input("labels", TensorType::new([c.batch, 1], dt));
    let emb = g.param("embedding.weight", TensorType::new([c.vocab, c.embed], dt));
    let mut params = vec![emb];
    let mut layers = Vec::new();
    let mut width = c.embed;
    for l in 0..c.layers {
        let w_ih = g.param(
            &format!("lstm.weight_ih_l{l}"),
            TensorType::new([4 * c.hidden, width], dt),
        );
        let w_hh = g.param(
            &format!("lstm.weight_hh_l{l}"),
            TensorType::new([4 * c.hidden, c.hidden], dt),
        );
        let bias = g.param(
            &format!("lstm.bias_l{l}"),
            TensorType::new([4 * c.hidden], dt),
        );
        params.extend([w_ih, w_hh, bias]);
        layers.push(LstmWeights {
            w_ih,
            w_hh,
            bias: Some(bias),
        });
        width = c.hidden;
    }
    let w = g.param("dense.weight", TensorType::new([1, c.hidden], dt));
    let b = g.param("dense.bias", TensorType::new([1], dt));
    params.extend([w, b]);
    // Transposing the ids (not the embedded floats) gives the LSTM its time-major input.
    let ids_t = g.transpose(ids, &[1, 0])?; // [T, B]
    let x = g.gather(emb, ids_t)?; // [T, B, E]
    let spec = LstmSpec {
        layers,
        layout: SeqLayout::TimeMajor,
        return_sequences: false,
        ..Default::default()
    };
    let h = lstm(g, x, &spec)?.output; // [B, H]
    let z = g.matmul_t(h, w, false, true)?;
    let logits = g.add(z, b)?;
    let loss = bce_with_logits(g, logits, labels)?;
    g.set_name(loss, "loss");
    g.set_outputs(vec![loss, logits]);
    // The embedding lookup folded into the first projection (before any `grad`, so the
    // backward graph takes the cheaper form too).
    crate::passes::gather_before_matmul(g);
    Ok(SeedModel {
        ids,
        labels,
        params,
        logits,
        loss,
    })
}
