//! Decoding for encoder-decoder models: greedy and beam search.
//!
//! A model is described once, as graph builders ([`EncoderDecoder`]): the encoder over a
//! source, and the decoder over target tokens from the encoder's state. The same `decode`
//! builds the teacher-forced training graph (all target steps unrolled, [`forward_graph`])
//! and the one-step decoder plan, so the step plan computes exactly what training computed.
//! (Keras's inference recipe for seq2seq is this split too: an encoder model and a decoder
//! model taking and returning the states.)
//!
//! [`Decoder::attach`] compiles both onto the plan that holds the trained weights (the
//! training plan, say) with [`trellis_jit::Plan::attach`]: the encoder at batch 1, the
//! decoder step at batch `rows` (the beam width). They read the host's weight buffers in
//! place, so nothing is recompiled per step or per source, no weight is copied, and a
//! training step of the host is seen by the next decode. Per source the encoder runs once;
//! then each token is one run of the step plan, which carries the decoder state from its
//! outputs to its inputs (`Attach::carry`); beam search only reorders the state rows when the
//! surviving hypotheses change parents.
use trellis_ir::softmax::log_softmax;
use trellis_ir::{Graph, NodeId, TensorType};
use trellis_jit::{Attach, AttachedId, CompileOptions, Plan};

use crate::layers::ParamSpec;
use crate::{NnError, Result};

mod heatmap;
mod luong;
mod search;

pub use heatmap::{plot_attention, AttentionMap};
pub use luong::LuongSeq2Seq;
pub use search::{BeamOptions, Hypothesis};

/// An encoder-decoder as graph builders. Every tensor has the batch on its first axis.
pub trait EncoderDecoder {
    /// The parameters, in the order `encode` and `decode` take their nodes.
    fn param_specs(&self) -> Vec<ParamSpec>;
    /// Source ids must be below this (the encoder's embedding).
    fn source_vocab(&self) -> usize;
    /// The encoder over `source` (i64 ids `[B, Ts]`).
    fn encode(&self, g: &mut Graph, params: &[NodeId], source: NodeId) -> Result<Encoded>;
    /// The decoder over `tokens` (i64 ids `[B, T]`: the previous token at each step, teacher
    /// tokens in training) from `enc`'s state, reading `enc`'s memory.
    fn decode(
        &self,
        g: &mut Graph,
        params: &[NodeId],
        tokens: NodeId,
        enc: &Encoded,
    ) -> Result<Decoded>;
}

/// What the encoder hands the decoder.
#[derive(Clone, Debug, Default)]
pub struct Encoded {
    /// The decoder's initial state (e.g. an LSTM's `h`, `c`: `[B, H]` each); `decode` returns
    /// its final state in the same order and types.
    pub state: Vec<NodeId>,
    /// What every decoder step reads unchanged: the encoder's outputs for attention, a key
    /// mask, ...
    pub memory: Vec<NodeId>,
}

/// What the decoder gives.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// `[B, T, V]`, before the softmax.
    pub logits: NodeId,
    /// The state after the last step, as [`Encoded::state`].
    pub state: Vec<NodeId>,
    /// Attention weights `[B, T, Ts]`, when the model attends.
    pub attention: Option<NodeId>,
}

/// The teacher-forced forward pass of an [`EncoderDecoder`] (outputs: `log_probs`, then
/// `attention` when there is one).
#[derive(Clone, Debug)]
pub struct Seq2SeqGraph {
    pub graph: Graph,
    /// i64 `[B, Ts]`.
    pub source: NodeId,
    /// i64 `[B, T]`: the decoder's input tokens (start token, then the target shifted).
    pub tokens: NodeId,
    /// In [`EncoderDecoder::param_specs`] order.
    pub params: Vec<NodeId>,
    /// `[B, T, V]`.
    pub logits: NodeId,
    /// `[B, T, V]`, log-softmax of `logits`.
    pub log_probs: NodeId,
    pub attention: Option<NodeId>,
}

/// Declares `specs` as parameters of `g`.
fn declare(g: &mut Graph, specs: &[ParamSpec]) -> Vec<NodeId> {
    specs
        .iter()
        .map(|s| g.param(&s.name, TensorType::f32(s.shape.as_slice())))
        .collect()
}

/// The logits' `[B, T, V]`, or an error naming what `decode` returned.
fn logits_dims(g: &Graph, logits: NodeId, batch: usize, steps: usize) -> Result<usize> {
    let d = g.ty(logits).dims();
    if d.len() != 3 || d[0] != batch || d[1] != steps || d[2] == 0 {
        return Err(NnError::Shape(format!(
            "decode: the logits must be [{batch}, {steps}, V], got {}",
            g.ty(logits)
        )));
    }
    Ok(d[2])
}

/// The unrolled, teacher-forced forward pass for `batch` sources of `source_len` ids and
/// `steps` decoder tokens: what training appends its loss to.
pub fn forward_graph(
    model: &dyn EncoderDecoder,
    batch: usize,
    source_len: usize,
    steps: usize,
) -> Result<Seq2SeqGraph> {
    let mut g = Graph::new();
    let params = declare(&mut g, &model.param_specs());
    let source = g.input("source", TensorType::i64([batch, source_len]));
    let tokens = g.input("tokens", TensorType::i64([batch, steps]));
    let enc = model.encode(&mut g, &params, source)?;
    let dec = model.decode(&mut g, &params, tokens, &enc)?;
    logits_dims(&g, dec.logits, batch, steps)?;
    let log_probs = log_softmax(&mut g, dec.logits)?;
    let mut outputs = vec![log_probs];
    outputs.extend(dec.attention);
    g.set_outputs(outputs);
    Ok(Seq2SeqGraph {
        graph: g,
        source,
        tokens,
        params,
        logits: dec.logits,
        log_probs,
        attention: dec.attention,
    })
}

/// An encoder plan and a one-step decoder plan attached to a host plan (see the module doc).
/// Every method takes the host it was attached to.
#[derive(Clone, Debug)]
pub struct Decoder {
    encoder: AttachedId,
    source: NodeId,
    /// The encoder's outputs: state, then memory (each `[1, ...]`).
    enc_state: Vec<NodeId>,
    enc_memory: Vec<NodeId>,
    step: AttachedId,
    token: NodeId,
    /// The step's state inputs (carried from its outputs after each run) and memory inputs,
    /// `[rows, ...]` each.
    state: Vec<NodeId>,
    memory: Vec<NodeId>,
    /// `[rows, V]`.
    log_probs: NodeId,
    /// `[rows, 1, Ts']`.
    attention: Option<NodeId>,
    rows: usize,
    source_len: usize,
    source_vocab: usize,
    vocab: usize,
}

impl Decoder {
    /// Compiles `model`'s encoder (batch 1, sources of `source_len` ids) and its decoder step
    /// (`rows` hypotheses at once: the widest beam to run) onto `host`, whose parameters
    /// `host_params` (in [`EncoderDecoder::param_specs`] order) they read in place.
    pub fn attach(
        host: &mut Plan,
        host_params: &[NodeId],
        model: &dyn EncoderDecoder,
        source_len: usize,
        rows: usize,
    ) -> Result<Decoder> {
        let specs = model.param_specs();
        if host_params.len() != specs.len() {
            return Err(NnError::Model(format!(
                "decoder: the model has {} parameters, {} host nodes were given",
                specs.len(),
                host_params.len()
            )));
        }
        for (what, v) in [("source_len", source_len), ("rows", rows)] {
            if v == 0 {
                return Err(NnError::InvalidArgument {
                    name: what,
                    value: "0".into(),
                    message: "must be positive".into(),
                });
            }
        }
        let opts = CompileOptions::default();
        // The encoder, once per source.
        let mut g = Graph::new();
        let params = declare(&mut g, &specs);
        let source = g.input("source", TensorType::i64([1, source_len]));
        let enc = model.encode(&mut g, &params, source)?;
        for &n in enc.state.iter().chain(&enc.memory) {
            if g.ty(n).dims().first() != Some(&1) {
                return Err(NnError::Shape(format!(
                    "encode: every state and memory tensor must have the batch first, got {} \
                     at batch 1",
                    g.ty(n)
                )));
            }
        }
        g.set_outputs(enc.state.iter().chain(&enc.memory).copied().collect());
        let share: Vec<(NodeId, NodeId)> =
            params.iter().copied().zip(host_params.to_vec()).collect();
        let encoder = host.attach(
            &g,
            &opts,
            &Attach {
                share,
                carry: Vec::new(),
            },
        )?;
        // The decoder step, once per token: the encoder's outputs at batch `rows`.
        let mut sg = Graph::new();
        let sparams = declare(&mut sg, &specs);
        let token = sg.input("token", TensorType::i64([rows, 1]));
        let at_rows = |sg: &mut Graph, name: String, n: NodeId| {
            let mut ty = g.ty(n).clone();
            let mut dims = ty.dims().to_vec();
            dims[0] = rows;
            ty = TensorType::new(dims.as_slice(), ty.dtype);
            sg.input(&name, ty)
        };
        let state: Vec<NodeId> = (enc.state.iter().enumerate())
            .map(|(i, &n)| at_rows(&mut sg, format!("state{i}"), n))
            .collect();
        let memory: Vec<NodeId> = (enc.memory.iter().enumerate())
            .map(|(i, &n)| at_rows(&mut sg, format!("memory{i}"), n))
            .collect();
        let step_in = Encoded {
            state: state.clone(),
            memory: memory.clone(),
        };
        let dec = model.decode(&mut sg, &sparams, token, &step_in)?;
        let vocab = logits_dims(&sg, dec.logits, rows, 1)?;
        if dec.state.len() != state.len()
            || dec
                .state
                .iter()
                .zip(&state)
                .any(|(&a, &b)| sg.ty(a) != sg.ty(b))
        {
            let tys =
                |v: &[NodeId]| -> Vec<String> { v.iter().map(|&n| sg.ty(n).to_string()).collect() };
            return Err(NnError::Shape(format!(
                "decode: the final state must match the initial state, got {:?} for {:?}",
                tys(&dec.state),
                tys(&state)
            )));
        }
        let lp = log_softmax(&mut sg, dec.logits)?;
        let log_probs = sg.reshape(lp, [rows, vocab])?;
        let mut outputs = vec![log_probs];
        outputs.extend(dec.attention);
        sg.set_outputs(outputs);
        let spec = Attach {
            share: sparams.iter().copied().zip(host_params.to_vec()).collect(),
            carry: state
                .iter()
                .copied()
                .zip(dec.state.iter().copied())
                .collect(),
        };
        let step = host.attach(&sg, &opts, &spec)?;
        Ok(Decoder {
            encoder,
            source,
            enc_state: enc.state,
            enc_memory: enc.memory,
            step,
            token,
            state,
            memory,
            log_probs,
            attention: dec.attention,
            rows,
            source_len,
            source_vocab: model.source_vocab(),
            vocab,
        })
    }

    /// Hypotheses the step plan runs at once (the widest beam).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// The target vocabulary (the logits' width).
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Checks a token the caller gives (start, end, a teacher token).
    fn check_token(&self, what: &'static str, t: i64) -> Result<()> {
        if t < 0 || t as usize >= self.vocab {
            return Err(NnError::InvalidArgument {
                name: what,
                value: t.to_string(),
                message: format!("the target vocabulary has {} tokens", self.vocab),
            });
        }
        Ok(())
    }

    /// Runs the encoder on `source` and sets every row of the step plan to its result: what
    /// [`Decoder::greedy`], [`Decoder::beam`] and a caller's own loop over [`Decoder::step`]
    /// (sampling, say) start from.
    pub fn start(&self, host: &mut Plan, source: &[i64]) -> Result<()> {
        if source.len() != self.source_len {
            return Err(NnError::Shape(format!(
                "decoder: the source has {} ids, the decoder was built for {}",
                source.len(),
                self.source_len
            )));
        }
        if let Some((position, &id)) =
            (source.iter().enumerate()).find(|(_, &id)| id < 0 || id as usize >= self.source_vocab)
        {
            return Err(NnError::TokenOutOfRange {
                id,
                sample: 0,
                position,
                vocab: self.source_vocab,
            });
        }
        let mut enc = host.attached(self.encoder)?;
        enc.set_i64(self.source, source)?;
        enc.run()?;
        let outs: Vec<Vec<f32>> = (self.enc_state.iter().chain(&self.enc_memory))
            .map(|&n| Ok(enc.get(n)?.to_f32_vec()))
            .collect::<Result<_>>()?;
        let mut step = host.attached(self.step)?;
        for (&input, one) in self.state.iter().chain(&self.memory).zip(&outs) {
            step.set_f32(input, &one.repeat(self.rows))?;
        }
        Ok(())
    }

    /// One decoder step after [`Decoder::start`]: sets each row's previous token (`rows`
    /// of them), runs the step plan (its state carried over from the last step) and returns
    /// the log-probabilities `[rows, V]` and attention rows `[rows, Ts']` (empty without
    /// attention).
    pub fn step(&self, host: &mut Plan, tokens: &[i64]) -> Result<(Vec<f32>, Vec<f32>)> {
        if tokens.len() != self.rows {
            return Err(NnError::Shape(format!(
                "decoder step: {} tokens given, the step plan has {} rows",
                tokens.len(),
                self.rows
            )));
        }
        for &t in tokens {
            self.check_token("token", t)?;
        }
        let mut step = host.attached(self.step)?;
        step.set_i64(self.token, tokens)?;
        step.run()?;
        let lp = step.get(self.log_probs)?.to_f32_vec();
        let att = match self.attention {
            Some(a) => step.get(a)?.to_f32_vec(),
            None => Vec::new(),
        };
        Ok((lp, att))
    }

    /// Replaces the state rows by rows `parents` of the current state (beam search keeps the
    /// state of each surviving hypothesis' parent).
    fn reorder(&self, host: &mut Plan, parents: &[usize]) -> Result<()> {
        if parents.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(());
        }
        let mut step = host.attached(self.step)?;
        for &s in &self.state {
            let v = step.get(s)?.to_f32_vec();
            let w = v.len() / self.rows;
            let mut out = v.clone();
            for (i, &p) in parents.iter().enumerate() {
                out[i * w..(i + 1) * w].copy_from_slice(&v[p * w..(p + 1) * w]);
            }
            step.set_f32(s, &out)?;
        }
        Ok(())
    }

    /// The log-probabilities `[V]` of each step when the decoder reads `tokens` (the start
    /// token, then the target): step by step, as decoding runs. Scoring a given target, and
    /// the check that the step plan computes the unrolled pass.
    pub fn force(&self, host: &mut Plan, source: &[i64], tokens: &[i64]) -> Result<Vec<Vec<f32>>> {
        for &t in tokens {
            self.check_token("token", t)?;
        }
        self.start(host, source)?;
        let mut out = Vec::with_capacity(tokens.len());
        for &t in tokens {
            let (lp, _) = self.step(host, &vec![t; self.rows])?;
            out.push(lp[..self.vocab].to_vec());
        }
        Ok(out)
    }
}
