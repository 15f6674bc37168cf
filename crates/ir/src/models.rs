//! The seed model as a raw graph: `Embedding -> LSTM(return_sequences) -> LSTM -> Dense(1)`
//! with binary cross-entropy on the logit, and its GRU, bidirectional-LSTM and simple-RNN
//! variants.
//! Benches and tests of every crate build it from here; `nn`'s layers build the same graph for
//! users.
use crate::gru::{gru, GruSpec, GruWeights};
use crate::lstm::{lstm, Direction, LstmSpec, LstmWeights, SeqLayout};
use crate::rnn::{simple_rnn, RnnSpec, RnnWeights};
use crate::{DType, Graph, NodeId, Result, TensorType};

/// The recurrent layers of the seed model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeedCell {
    /// `LSTM(H, return_sequences) -> LSTM(H)` (the Keras IMDB model).
    #[default]
    Lstm,
    /// The same with GRUs (`torch.nn.GRU`, Keras `reset_after=True`).
    Gru,
    /// `Bidirectional(LSTM(H, return_sequences)) -> Bidirectional(LSTM(H))`, outputs
    /// concatenated (the dense layer reads `2H`).
    BiLstm,
    /// The same with simple tanh RNNs (`torch.nn.RNN`, Keras `SimpleRNN`).
    Rnn,
}

impl SeedCell {
    pub fn name(self) -> &'static str {
        match self {
            SeedCell::Lstm => "lstm",
            SeedCell::Gru => "gru",
            SeedCell::BiLstm => "bilstm",
            SeedCell::Rnn => "rnn",
        }
    }
    pub fn parse(s: &str) -> Option<SeedCell> {
        [
            SeedCell::Lstm,
            SeedCell::Gru,
            SeedCell::BiLstm,
            SeedCell::Rnn,
        ]
        .into_iter()
        .find(|c| c.name() == s)
    }
}

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
    pub cell: SeedCell,
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
            cell: SeedCell::Lstm,
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
    /// Parameters in PyTorch state-dict order: embedding, per layer `w_ih, w_hh, bias` (GRU:
    /// `w_ih, w_hh, b_ih, b_hh`; bidirectional: the forward layer's, then the `_reverse`
    /// ones), dense `w, b`.
    pub params: Vec<NodeId>,
    /// `[B, 1]` logits (the sigmoid of which is the prediction).
    pub logits: NodeId,
    /// Mean binary cross-entropy, a scalar.
    pub loss: NodeId,
}

/// Binary cross-entropy from logits `z [.., K]` over the last axis (`[.., 1]`: per sample, or
/// per step), stable for large |z|: `mean_k(max(z, 0) - z y + log(1 + exp(-|z|)))`.
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
    let axis = g.ty(t).rank() - 1;
    g.mean(t, &[axis], true)
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
    let h = c.hidden;
    let gates = match c.cell {
        SeedCell::Gru => 3,
        SeedCell::Rnn => 1,
        SeedCell::Lstm | SeedCell::BiLstm => 4,
    };
    let directions: &[&str] = if c.cell == SeedCell::BiLstm {
        &["", "_reverse"]
    } else {
        &[""]
    };
    let module = match c.cell {
        SeedCell::Gru => "gru",
        SeedCell::Rnn => "rnn",
        SeedCell::Lstm | SeedCell::BiLstm => "lstm",
    };
    // Per layer and direction: w_ih, w_hh and the bias (GRU: b_ih, b_hh).
    let mut layers: Vec<Vec<Vec<NodeId>>> = Vec::new();
    let mut width = c.embed;
    for l in 0..c.layers {
        let mut dirs = Vec::new();
        for suffix in directions {
            let mut p = |name: &str, dims: &[usize]| {
                let id = g.param(
                    &format!("{module}.{name}_l{l}{suffix}"),
                    TensorType::new(dims, dt),
                );
                params.push(id);
                id
            };
            let mut w = vec![
                p("weight_ih", &[gates * h, width]),
                p("weight_hh", &[gates * h, h]),
            ];
            if c.cell == SeedCell::Gru {
                w.push(p("bias_ih", &[gates * h]));
                w.push(p("bias_hh", &[gates * h]));
            } else {
                w.push(p("bias", &[gates * h]));
            }
            dirs.push(w);
        }
        layers.push(dirs);
        width = h * directions.len();
    }
    let w = g.param("dense.weight", TensorType::new([1, width], dt));
    let b = g.param("dense.bias", TensorType::new([1], dt));
    params.extend([w, b]);
    // Transposing the ids (not the embedded floats) gives the LSTM its time-major input.
    let ids_t = g.transpose(ids, &[1, 0])?; // [T, B]
    let x = g.gather(emb, ids_t)?; // [T, B, E]
    let h = match c.cell {
        SeedCell::Lstm => {
            let spec = LstmSpec {
                layers: layers
                    .iter()
                    .map(|d| LstmWeights {
                        w_ih: d[0][0],
                        w_hh: d[0][1],
                        bias: Some(d[0][2]),
                    })
                    .collect(),
                layout: SeqLayout::TimeMajor,
                return_sequences: false,
                ..Default::default()
            };
            lstm(g, x, &spec)?.output // [B, H]
        }
        SeedCell::Gru => {
            let spec = GruSpec {
                layers: layers
                    .iter()
                    .map(|d| GruWeights {
                        w_ih: d[0][0],
                        w_hh: d[0][1],
                        b_ih: Some(d[0][2]),
                        b_hh: Some(d[0][3]),
                    })
                    .collect(),
                return_sequences: false,
                ..Default::default()
            };
            gru(g, x, &spec)?.output
        }
        SeedCell::Rnn => {
            let spec = RnnSpec {
                layers: layers
                    .iter()
                    .map(|d| RnnWeights {
                        w_ih: d[0][0],
                        w_hh: d[0][1],
                        bias: Some(d[0][2]),
                    })
                    .collect(),
                return_sequences: false,
                ..Default::default()
            };
            simple_rnn(g, x, &spec)?.output
        }
        SeedCell::BiLstm => {
            let mut x = x;
            let mut last = None;
            for (l, dirs) in layers.iter().enumerate() {
                let seq = l + 1 < layers.len();
                let mut outs = Vec::new();
                for (d, direction) in [Direction::Forward, Direction::Reverse]
                    .into_iter()
                    .enumerate()
                {
                    let spec = LstmSpec {
                        layers: vec![LstmWeights {
                            w_ih: dirs[d][0],
                            w_hh: dirs[d][1],
                            bias: Some(dirs[d][2]),
                        }],
                        return_sequences: seq,
                        direction,
                        ..Default::default()
                    };
                    outs.push(lstm(g, x, &spec)?.output);
                }
                let merged = g.concat(&outs, if seq { 2 } else { 1 })?;
                if seq {
                    x = merged; // [T, B, 2H]
                } else {
                    last = Some(merged); // [B, 2H]
                }
            }
            last.ok_or_else(|| crate::IrError::Invalid("seed model: no layers".into()))?
        }
    };
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
