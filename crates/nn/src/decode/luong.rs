//! [`LuongSeq2Seq`]: an LSTM encoder-decoder with Luong (dot-product) attention, built from
//! the library's layers: the model of the dates example and of the decoding tests.
//!
//! ```text
//! source ids [B, Ts] -> Embedding(mask_zero) -> LSTM encoder -> outputs K [B, Ts, H], (h, c)
//! tokens [B, T]      -> Embedding -> LSTM decoder from (h, c) -> outputs Q [B, T, H]
//! context = Attention(Q, K, K, key mask)          (Keras `Attention`, dot scores)
//! logits  = Dense(V)(Dense(H, tanh)([Q, context]))  (Luong's attentional hidden state)
//! ```
//!
//! Source id 0 is padding (the encoder skips it and attention gives it no weight).
use trellis_ir::attention::{attention, AttentionSpec, Score};
use trellis_ir::lstm::Direction;
use trellis_ir::{Graph, NodeId};

use super::{Decoded, Encoded, EncoderDecoder};
use crate::layers::{
    Act, Activation, BuildCtx, DenseConfig, EmbeddingConfig, Layer, Layout, LstmConfig, ParamSpec,
    Recurrent, Scope,
};
use crate::{NnError, Result};

/// The sizes of a [`LuongSeq2Seq`].
#[derive(Clone, Debug, PartialEq)]
pub struct LuongSeq2Seq {
    pub source_vocab: usize,
    pub target_vocab: usize,
    pub embed: usize,
    pub units: usize,
}

/// The model's layers in parameter order, with their module names and input widths.
struct Parts {
    src_embed: Box<dyn Layer>,
    encoder: crate::Lstm,
    tgt_embed: Box<dyn Layer>,
    decoder: crate::Lstm,
    combine: Box<dyn Layer>,
    out: Box<dyn Layer>,
}

impl LuongSeq2Seq {
    pub fn new(source_vocab: usize, target_vocab: usize, embed: usize, units: usize) -> Self {
        LuongSeq2Seq {
            source_vocab,
            target_vocab,
            embed,
            units,
        }
    }

    fn parts(&self) -> Parts {
        Parts {
            src_embed: EmbeddingConfig::new(self.source_vocab, self.embed)
                .with_mask_zero(true)
                .into(),
            encoder: LstmConfig::new(self.units).init(),
            tgt_embed: EmbeddingConfig::new(self.target_vocab, self.embed).into(),
            decoder: LstmConfig::new(self.units).init(),
            combine: DenseConfig::new(self.units)
                .with_activation(Activation::Tanh)
                .into(),
            out: DenseConfig::new(self.target_vocab).into(),
        }
    }

    /// `(module, layer, input width)` per layer, in parameter order.
    fn layers<'a>(&self, p: &'a Parts) -> [(&'static str, &'a dyn Layer, usize); 6] {
        let (e, h) = (self.embed, self.units);
        [
            ("source_embedding", &*p.src_embed, 0),
            ("encoder", &p.encoder, e),
            ("target_embedding", &*p.tgt_embed, 0),
            ("decoder", &p.decoder, e),
            ("attention_combine", &*p.combine, 2 * h),
            ("output", &*p.out, h),
        ]
    }

    /// Each layer's parameter nodes, in the order of [`Self::layers`].
    fn split<'p>(&self, parts: &Parts, params: &'p [NodeId]) -> Result<Vec<&'p [NodeId]>> {
        let mut out = Vec::new();
        let mut at = 0;
        for (module, l, width) in self.layers(parts) {
            let n = l.params(&scope(module), width).len();
            let Some(p) = params.get(at..at + n) else {
                return Err(NnError::Model(format!(
                    "luong seq2seq: {} parameter nodes given, {module} needs more",
                    params.len()
                )));
            };
            out.push(p);
            at += n;
        }
        Ok(out)
    }
}

fn scope(module: &str) -> Scope {
    Scope {
        module: module.to_string(),
        index: 0,
    }
}

impl EncoderDecoder for LuongSeq2Seq {
    fn param_specs(&self) -> Vec<ParamSpec> {
        let parts = self.parts();
        (self.layers(&parts).into_iter())
            .flat_map(|(module, l, width)| l.params(&scope(module), width))
            .collect()
    }
    fn source_vocab(&self) -> usize {
        self.source_vocab
    }
    fn encode(&self, g: &mut Graph, params: &[NodeId], source: NodeId) -> Result<Encoded> {
        let parts = self.parts();
        let p = self.split(&parts, params)?;
        let mut ctx = BuildCtx::default();
        let x = parts
            .src_embed
            .build(g, Act::new(source, Layout::BatchMajor), p[0], &mut ctx)?;
        let (seq, state) = parts
            .encoder
            .unroll(g, &x, p[1], Direction::Forward, None, &mut ctx)?;
        let keys = Act::new(seq, Layout::TimeMajor).batch_major(g)?.node;
        let mask = x.mask.expect("mask_zero gives a mask"); // [Ts, B]
        let mask = g.transpose(mask, &[1, 0])?;
        Ok(Encoded {
            state,
            memory: vec![keys, mask],
        })
    }
    fn decode(
        &self,
        g: &mut Graph,
        params: &[NodeId],
        tokens: NodeId,
        enc: &Encoded,
    ) -> Result<Decoded> {
        let parts = self.parts();
        let p = self.split(&parts, params)?;
        let [keys, mask] = enc.memory[..] else {
            return Err(NnError::Model(format!(
                "luong seq2seq: the memory is [keys, mask], got {} tensors",
                enc.memory.len()
            )));
        };
        let mut ctx = BuildCtx::default();
        let x = parts
            .tgt_embed
            .build(g, Act::new(tokens, Layout::BatchMajor), p[2], &mut ctx)?;
        let (seq, state) =
            parts
                .decoder
                .unroll(g, &x, p[3], Direction::Forward, Some(&enc.state), &mut ctx)?;
        let q = Act::new(seq, Layout::TimeMajor).batch_major(g)?.node;
        let spec = AttentionSpec {
            key_mask: Some(mask),
            ..AttentionSpec::new(Score::Dot { scale: None })
        };
        let att = attention(g, q, keys, keys, &spec)?;
        let both = g.concat(&[q, att.context], 2)?;
        let hid = parts
            .combine
            .build(g, Act::new(both, Layout::BatchMajor), p[4], &mut ctx)?;
        let logits = parts.out.build(g, hid, p[5], &mut ctx)?.node;
        Ok(Decoded {
            logits,
            state,
            attention: Some(att.weights),
        })
    }
}
