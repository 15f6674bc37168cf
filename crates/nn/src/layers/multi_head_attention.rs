//! Keras's `MultiHeadAttention`: the query, key and value projected into `num_heads` heads,
//! scaled dot-product attention in each (the ir's, as batched products on column windows of
//! the projections: no per-head copies), the heads' contexts concatenated and projected out.
//!
//! ```text
//! q = (query Wq^T + bq) / sqrt(key_dim)   [B, Tq, h·key_dim]      (k, v alike, unscaled)
//! head i: softmax(q_i k_i^T) v_i           the value's mask masks the keys, causal if asked
//! out = concat(heads) Wo^T + bo           [B, Tq, output_shape or the query's width]
//! ```
//!
//! Called on `[query, value]`, `[query, value, key]` (the key is the value when not given), or
//! one input, which attends to itself (Keras's `mha(x, x)`). A key is real where both the
//! value's and the key's masks say so (Keras ANDs them). A padding query's context is zero
//! before the output projection (Keras computes some average there; either way the output
//! keeps the query's mask, so later layers skip those steps).
use std::any::Any;

use trellis_ir::attention::{attention, AttentionSpec, Score};
use trellis_ir::{Graph, NodeId};

use super::attention::{attention_setters, query_value_key};
use super::dense::linear;
use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::init::Init;
use crate::Result;

/// Keras's `MultiHeadAttention(num_heads, key_dim)` and its options (Keras's defaults: value
/// width `key_dim`, biases, the query's width out, Glorot-uniform kernels, zero biases; a size
/// of 0 is refused by the projection's parameter it empties). Keras's `dropout` on the
/// attention weights is not offered.
/// Parameters, PyTorch-style: `{module}.query.weight [h·key_dim, Dq]`, `{module}.key.weight
/// [h·key_dim, Dk]`, `{module}.value.weight [h·value_dim, Dv]`, `{module}.output.weight
/// [out, h·value_dim]`, each followed by its `.bias` when `use_bias`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MultiHeadAttention {
    pub num_heads: usize,
    pub key_dim: usize,
    /// Each head's value width (`key_dim` when `None`).
    pub value_dim: Option<usize>,
    pub use_bias: bool,
    /// The output's width (the query's when `None`).
    pub output_shape: Option<usize>,
    pub kernel_init: Init,
    pub bias_init: Init,
    /// A second output: the weights `[B, num_heads, Tq, Tk]`.
    pub return_attention_scores: bool,
    /// Keras's `use_causal_mask`: query `i` reads keys `0..=i` only.
    pub use_causal_mask: bool,
}

impl MultiHeadAttention {
    pub fn new(num_heads: usize, key_dim: usize) -> Self {
        MultiHeadAttention {
            num_heads,
            key_dim,
            value_dim: None,
            use_bias: true,
            output_shape: None,
            kernel_init: Init::GlorotUniform,
            bias_init: Init::Zeros,
            return_attention_scores: false,
            use_causal_mask: false,
        }
    }
    pub fn with_value_dim(mut self, d: usize) -> Self {
        self.value_dim = Some(d);
        self
    }
    pub fn with_bias(mut self, yes: bool) -> Self {
        self.use_bias = yes;
        self
    }
    pub fn with_output_shape(mut self, width: usize) -> Self {
        self.output_shape = Some(width);
        self
    }
    pub fn with_kernel_init(mut self, init: Init) -> Self {
        self.kernel_init = init;
        self
    }
    pub fn with_bias_init(mut self, init: Init) -> Self {
        self.bias_init = init;
        self
    }

    fn value_width(&self) -> usize {
        self.value_dim.unwrap_or(self.key_dim)
    }
}

attention_setters!(MultiHeadAttention);

impl Layer for MultiHeadAttention {
    fn kind(&self) -> &'static str {
        "multi_head_attention"
    }
    /// Without the widths of every input: the query's for all three.
    fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
        self.params_for(scope, &[in_features])
    }
    /// `widths` are the query's, the value's and the key's (the value's, then the query's,
    /// when not given).
    fn params_for(&self, scope: &Scope, widths: &[usize]) -> Vec<ParamSpec> {
        let dq = widths.first().copied().unwrap_or(1);
        let dv = widths.get(1).copied().unwrap_or(dq);
        let dk = widths.get(2).copied().unwrap_or(dv);
        let (hk, hv) = (
            self.num_heads.saturating_mul(self.key_dim),
            self.num_heads.saturating_mul(self.value_width()),
        );
        let out = self.output_shape.unwrap_or(dq);
        let mut specs = Vec::new();
        for (name, rows, cols) in [
            ("query", hk, dq),
            ("key", hk, dk),
            ("value", hv, dv),
            ("output", out, hv),
        ] {
            let m = &scope.module;
            specs.push(ParamSpec::new(
                format!("{m}.{name}.weight"),
                &[rows, cols],
                self.kernel_init.clone(),
            ));
            if self.use_bias {
                specs.push(ParamSpec::new(
                    format!("{m}.{name}.bias"),
                    &[rows],
                    self.bias_init.clone(),
                ));
            }
        }
        specs
    }
    fn build(&self, g: &mut Graph, x: Act, p: &[NodeId], c: &mut BuildCtx) -> Result<Act> {
        Ok(self.build_many(g, &[x], p, c)?.remove(0))
    }
    fn num_inputs(&self) -> (usize, usize) {
        (1, 3)
    }
    fn num_outputs(&self) -> usize {
        1 + usize::from(self.return_attention_scores)
    }
    fn build_many(
        &self,
        g: &mut Graph,
        xs: &[Act],
        params: &[NodeId],
        _: &mut BuildCtx,
    ) -> Result<Vec<Act>> {
        let pair = [xs[0], xs[0]];
        let xs = if xs.len() == 1 { &pair[..] } else { xs };
        let (q, v, k) = query_value_key(g, self.kind(), xs, false)?;
        // (weight, bias) per projection, in `params_for`'s order.
        let per = if self.use_bias { 2 } else { 1 };
        let proj = |i: usize| (params[i * per], self.use_bias.then(|| params[i * per + 1]));
        let (kd, vd) = (self.key_dim, self.value_width());
        let (wq, bq) = proj(0);
        let qp = linear(g, q.node, wq, bq)?;
        let s = g.scalar_like(qp, 1.0 / (kd as f64).sqrt())?;
        let qp = g.mul(qp, s)?;
        let (wk, bk) = proj(1);
        let kp = linear(g, k.node, wk, bk)?;
        let (wv, bv) = proj(2);
        let vp = linear(g, v.node, wv, bv)?;
        // Keras ANDs the value's and the key's masks (the same one when no key is given).
        let key_mask = match (v.mask, k.mask) {
            (Some(a), Some(b)) if a != b => Some(g.mul(a, b)?),
            (a, b) => a.or(b),
        };
        let spec = AttentionSpec {
            key_mask,
            query_mask: q.mask,
            causal: self.use_causal_mask,
            ..AttentionSpec::new(Score::Dot { scale: None })
        };
        let (mut contexts, mut weights) = (Vec::new(), Vec::new());
        for h in 0..self.num_heads {
            let qh = g.slice(qp, 2, h * kd, (h + 1) * kd)?;
            let kh = g.slice(kp, 2, h * kd, (h + 1) * kd)?;
            let vh = g.slice(vp, 2, h * vd, (h + 1) * vd)?;
            let o = attention(g, qh, kh, vh, &spec)?;
            contexts.push(o.context);
            if self.return_attention_scores {
                let d = g.ty(o.weights).dims().to_vec();
                weights.push(g.reshape(o.weights, [d[0], 1, d[1], d[2]])?);
            }
        }
        let ctx = g.concat(&contexts, 2)?; // [B, Tq, h·value_dim]
        let (wo, bo) = proj(3);
        let y = linear(g, ctx, wo, bo)?;
        let mut outs = vec![Act {
            mask: q.mask,
            ..Act::new(y, Layout::BatchMajor)
        }];
        if self.return_attention_scores {
            let w = g.concat(&weights, 1)?;
            outs.push(Act::new(w, Layout::BatchMajor));
        }
        Ok(outs)
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::MultiHeadAttention(self.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
