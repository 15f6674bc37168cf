//! Keras's `Attention` (dot-product, Luong) and `AdditiveAttention` (Bahdanau) layers over
//! [`trellis_ir::attention`]: called on `[query, value]` or `[query, value, key]` (the key is
//! the value when not given), each `[B, T, D]`. The value's mask masks the keys, the query's
//! masks the context (Keras); the context keeps the query's mask. With
//! `return_attention_scores` a call also returns the weights `[B, Tq, Tk]`.
use std::any::Any;

use trellis_ir::attention::{attention, AttentionSpec, Score};
use trellis_ir::{Graph, NodeId};

use super::merge::shapes;
use super::{Act, BuildCtx, Layer, LayerConfig, Layout, ParamSpec, Scope};
use crate::init::Init;
use crate::{NnError, Result};

/// Keras's `Attention`: scores `q · k`, times a learned scalar `{module}.scale` (initially 1)
/// with `use_scale`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Attention {
    pub use_scale: bool,
    pub return_attention_scores: bool,
    /// Keras's `use_causal_mask` (a call argument there): query `i` reads keys `0..=i`.
    #[serde(default)]
    pub use_causal_mask: bool,
}

/// Keras's `AdditiveAttention`: scores `sum_d scale[d] tanh(q[d] + k[d])`, with a learned
/// `{module}.scale [D]` (Glorot-uniform, Keras's) when `use_scale` (Keras's default), else
/// ones.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdditiveAttention {
    pub use_scale: bool,
    pub return_attention_scores: bool,
    /// As [`Attention::use_causal_mask`].
    #[serde(default)]
    pub use_causal_mask: bool,
}

impl Attention {
    pub fn new() -> Self {
        Attention::default()
    }
}

impl AdditiveAttention {
    pub fn new() -> Self {
        AdditiveAttention {
            use_scale: true,
            return_attention_scores: false,
            use_causal_mask: false,
        }
    }
}

/// The setters every attention layer shares (`MultiHeadAttention` too): its weights as a second
/// output, and the causal mask.
macro_rules! attention_setters {
    ($ty:ident) => {
        impl $ty {
            pub fn with_return_attention_scores(mut self, yes: bool) -> Self {
                self.return_attention_scores = yes;
                self
            }
            /// Keras's `use_causal_mask`: query `i` reads keys `0..=i` only (a decoder's
            /// self-attention).
            pub fn with_use_causal_mask(mut self, yes: bool) -> Self {
                self.use_causal_mask = yes;
                self
            }
        }
    };
}

pub(crate) use attention_setters;

attention_setters!(Attention);
attention_setters!(AdditiveAttention);

impl Attention {
    pub fn with_use_scale(mut self, yes: bool) -> Self {
        self.use_scale = yes;
        self
    }
}

impl AdditiveAttention {
    pub fn with_use_scale(mut self, yes: bool) -> Self {
        self.use_scale = yes;
        self
    }
}

impl Default for AdditiveAttention {
    fn default() -> Self {
        AdditiveAttention::new()
    }
}

/// The batch-major query, value and key of a call on `[query, value]` or `[query, value,
/// key]` (the key is the value when not given), their shapes checked: query `[B, Tq, D]`,
/// value `[B, Tk, Dv]`, key `[B, Tk, Dk]`, with `Dk == D` when `same_width`.
pub(crate) fn query_value_key(
    g: &mut Graph,
    what: &str,
    xs: &[Act],
    same_width: bool,
) -> Result<(Act, Act, Act)> {
    if !(2..=3).contains(&xs.len()) {
        return Err(NnError::Model(format!(
            "{what}: takes [query, value] or [query, value, key], called on {} inputs",
            xs.len()
        )));
    }
    let xs = xs
        .iter()
        .map(|x| x.batch_major(g))
        .collect::<Result<Vec<_>>>()?;
    let (q, v) = (&xs[0], &xs[1]);
    let k = xs.get(2).unwrap_or(v);
    let (qd, kd, vd) = (
        g.ty(q.node).dims(),
        g.ty(k.node).dims(),
        g.ty(v.node).dims(),
    );
    let ok = qd.len() == 3
        && kd.len() == 3
        && vd.len() == 3
        && qd[0] == kd[0]
        && kd[..2] == vd[..2]
        && (qd[2] == kd[2] || !same_width);
    if !ok {
        return Err(NnError::Shape(format!(
            "{what}: query [B, Tq, D], value [B, Tk, Dv] and key [B, Tk, {}] must agree, got \
             {} (query, value{})",
            if same_width { "D" } else { "Dk" },
            shapes(g, &xs),
            if xs.len() == 3 { ", key" } else { "" }
        )));
    }
    Ok((*q, *v, *k))
}

/// Attends with `score` (its scale, when any, is `params[0]`) over the call's inputs.
fn attend(
    g: &mut Graph,
    what: &str,
    xs: &[Act],
    score: Score,
    (return_scores, causal): (bool, bool),
) -> Result<Vec<Act>> {
    let (q, v, k) = query_value_key(g, what, xs, true)?;
    let spec = AttentionSpec {
        score,
        key_mask: v.mask,
        query_mask: q.mask,
        causal,
    };
    let out = attention(g, q.node, k.node, v.node, &spec)?;
    let mut outs = vec![Act {
        mask: q.mask,
        ..Act::new(out.context, Layout::BatchMajor)
    }];
    if return_scores {
        outs.push(Act::new(out.weights, Layout::BatchMajor));
    }
    Ok(outs)
}

macro_rules! attention_layer {
    ($ty:ident, $kind:literal) => {
        impl Layer for $ty {
            fn kind(&self) -> &'static str {
                $kind
            }
            fn build(&self, g: &mut Graph, x: Act, p: &[NodeId], c: &mut BuildCtx) -> Result<Act> {
                Ok(self.build_many(g, &[x], p, c)?.remove(0))
            }
            fn num_inputs(&self) -> (usize, usize) {
                (2, 3)
            }
            fn num_outputs(&self) -> usize {
                1 + usize::from(self.return_attention_scores)
            }
            fn config(&self) -> Option<LayerConfig> {
                Some(LayerConfig::$ty(self.clone()))
            }
            fn as_any(&self) -> &dyn Any {
                self
            }
            fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec> {
                self.scale_spec(scope, in_features).into_iter().collect()
            }
            fn build_many(
                &self,
                g: &mut Graph,
                xs: &[Act],
                params: &[NodeId],
                _: &mut BuildCtx,
            ) -> Result<Vec<Act>> {
                let score = self.score(params.first().copied());
                let flags = (self.return_attention_scores, self.use_causal_mask);
                attend(g, $kind, xs, score, flags)
            }
        }
    };
}

attention_layer!(Attention, "attention");
attention_layer!(AdditiveAttention, "additive_attention");

impl Attention {
    fn scale_spec(&self, scope: &Scope, _: usize) -> Option<ParamSpec> {
        let name = format!("{}.scale", scope.module);
        self.use_scale
            .then(|| ParamSpec::new(name, &[1], Init::Constant(1.0)))
    }
    fn score(&self, scale: Option<NodeId>) -> Score {
        Score::Dot { scale }
    }
}

impl AdditiveAttention {
    /// `[D]`, the query's width.
    fn scale_spec(&self, scope: &Scope, d: usize) -> Option<ParamSpec> {
        let name = format!("{}.scale", scope.module);
        self.use_scale
            .then(|| ParamSpec::new(name, &[d], Init::GlorotUniform))
    }
    fn score(&self, scale: Option<NodeId>) -> Score {
        Score::Additive { scale }
    }
}
