//! Attention as graph builders, with Keras's semantics: dot-product (Luong; Keras
//! `Attention`) and additive (Bahdanau; Keras `AdditiveAttention`) scores, a key mask, a query
//! mask, the context and the weights.
//!
//! ```text
//! query q [B, Tq, D], key k [B, Tk, D], value v [B, Tk, Dv]
//! dot:       s[b,i,j] = scale · sum_d q[b,i,d] k[b,j,d]             (scale: none, or a scalar)
//! additive:  s[b,i,j] = sum_d scale[d] · tanh(q[b,i,d] + k[b,j,d])   (scale: none, or [D])
//! masked:    s[b,i,j] -= 1e9 where key j of sample b is padding       (Keras's penalty)
//! causal:    s[b,i,j] -= 1e9 where j > i      (Keras's use_causal_mask: tril(ones(Tq, Tk)))
//! weights    w[b,i,:] = softmax(s[b,i,:]) · key_mask[b,:]
//! context    c[b,i,:] = sum_j w[b,i,j] v[b,j,:]  (· query_mask[b,i], as Keras)
//! ```
//!
//! Keras's `AdditiveAttention` has no projections inside it; Bahdanau's `v · tanh(W q + U k)`
//! is this score on projected queries and keys (`W q`, `U k`), with `v` the scale.
//!
//! **A query whose keys are all padding** gets zero weights and a zero context. (Keras's
//! penalty shifts every score of such a row alike, so its softmax there is uniform over the
//! padding; multiplying by the key mask makes the rule "masked keys get zero weight" hold for
//! every row, with no division by zero and no NaN, in value or gradient.) Elsewhere the
//! weights are Keras's exactly: `exp(-1e9)` is 0 in f32 and f64.
//!
//! Dot scores are one batched product `q k^T` (`[B, Tq, D] x [B, Tk, D]^T`) and the context
//! another (`w v`): `B·Tq·Tk` memory for the weights, a GEMM per sample. Additive scores are
//! computed over rows `(b, i, j)`: each query and key row is gathered to its `B·Tq·Tk` pairs
//! (constant ids), so the graph has the same few nodes for any batch size, and the context is
//! a scatter-add of `w v` rows back to the queries. That costs `B·Tq·Tk·D` memory, as Keras's
//! additive attention does.
use crate::softmax::softmax;
use crate::{DType, Graph, IrError, NodeId, Result, Shape, Tensor};

/// The penalty Keras subtracts from the scores of padding keys (its float32 value).
const MASK_PENALTY: f64 = 1e9;

/// How queries and keys are scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    /// Keras `Attention` (`score_mode="dot"`): `q · k`, times `scale` when given (a scalar
    /// node, shape `[]` or `[1]`: a learned weight, Keras's `use_scale=True`, or a constant
    /// such as `1/sqrt(D)`).
    Dot { scale: Option<NodeId> },
    /// Keras `AdditiveAttention`: `sum_d scale[d] tanh(q[d] + k[d])`; `scale` is `[D]`
    /// (Keras's `use_scale=True`), or all ones when `None`.
    Additive { scale: Option<NodeId> },
}

/// What to attend with, besides the query, key and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionSpec {
    pub score: Score,
    /// `[B, Tk]`, nonzero for a real key, 0 for padding (float or integer).
    pub key_mask: Option<NodeId>,
    /// `[B, Tq]`, nonzero for a real query: the context of a padding query is zero (Keras).
    pub query_mask: Option<NodeId>,
    /// Query `i` attends to keys `j <= i` only (Keras's `use_causal_mask`: a decoder's
    /// self-attention cannot read later steps), on top of the key mask.
    pub causal: bool,
}

impl AttentionSpec {
    /// `score`, without masks.
    pub fn new(score: Score) -> Self {
        AttentionSpec {
            score,
            key_mask: None,
            query_mask: None,
            causal: false,
        }
    }
}

/// The attention's results.
#[derive(Clone, Copy, Debug)]
pub struct AttentionOutput {
    /// `[B, Tq, Dv]`.
    pub context: NodeId,
    /// `[B, Tq, Tk]`, each row summing to 1 (0 for a row with every key masked).
    pub weights: NodeId,
}

fn invalid(msg: String) -> IrError {
    IrError::Invalid(format!("attention: {msg}"))
}

/// A constant i64 id vector.
fn ids(g: &mut Graph, v: Vec<i64>) -> Result<NodeId> {
    Ok(g.constant(Tensor::i64([v.len()], v)?))
}

/// The constant ids of the `(b, i, j)` pairs: row `(b, i, j)` reads query row `b·Tq + i` and
/// key row `b·Tk + j`.
fn pair_ids(g: &mut Graph, b: usize, tq: usize, tk: usize) -> Result<(NodeId, NodeId)> {
    let n = b * tq * tk;
    let (mut iq, mut ik) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for s in 0..b {
        for i in 0..tq {
            for j in 0..tk {
                iq.push((s * tq + i) as i64);
                ik.push((s * tk + j) as i64);
            }
        }
    }
    Ok((ids(g, iq)?, ids(g, ik)?))
}

/// A mask (`[B, T]`, any dtype) as floats of `dtype`: 1 where nonzero, else 0.
fn mask01(g: &mut Graph, what: &str, m: NodeId, want: [usize; 2], dtype: DType) -> Result<NodeId> {
    if g.ty(m).dims() != want {
        return Err(invalid(format!(
            "the {what} mask must be {}, got {}",
            Shape::new(&want),
            g.ty(m)
        )));
    }
    let f = g.cast(m, dtype)?;
    let zero = g.scalar(0.0, dtype);
    g.not_equal(f, zero)
}

/// Checks that `scale` has one of the shapes in `allowed` and the inputs' dtype.
fn check_scale(g: &Graph, s: NodeId, allowed: &[&[usize]], dtype: DType) -> Result<()> {
    let ty = g.ty(s);
    if ty.dtype != dtype || !allowed.contains(&ty.dims()) {
        let shapes: Vec<String> = allowed.iter().map(|d| Shape::new(d).to_string()).collect();
        return Err(invalid(format!(
            "the scale must be {dtype} of shape {}, got {ty}",
            shapes.join(" or ")
        )));
    }
    Ok(())
}

/// Attends from `query` over `key` / `value` (see the module doc for the formulas).
pub fn attention(
    g: &mut Graph,
    query: NodeId,
    key: NodeId,
    value: NodeId,
    spec: &AttentionSpec,
) -> Result<AttentionOutput> {
    let (qt, kt, vt) = (g.ty(query).clone(), g.ty(key).clone(), g.ty(value).clone());
    let dtype = qt.dtype;
    if qt.rank() != 3 || kt.rank() != 3 || vt.rank() != 3 || !dtype.is_float() {
        return Err(invalid(format!(
            "query, key and value must be float [B, T, D], got {qt}, {kt} and {vt}"
        )));
    }
    let (b, tq, d) = (qt.dims()[0], qt.dims()[1], qt.dims()[2]);
    let (tk, dv) = (kt.dims()[1], vt.dims()[2]);
    if kt.dims() != [b, tk, d]
        || vt.dims()[..2] != [b, tk]
        || kt.dtype != dtype
        || vt.dtype != dtype
    {
        return Err(invalid(format!(
            "the key must be [B, Tk, D] like the query [B, Tq, D] = {qt}, and the value \
             [B, Tk, Dv] like the key; got key {kt}, value {vt}"
        )));
    }
    if b * tq * tk == 0 || d == 0 {
        return Err(invalid(format!("empty query or key: query {qt}, key {kt}")));
    }
    let (mut scores, pairs) = match spec.score {
        Score::Dot { scale } => {
            let s = g.matmul_t(query, key, false, true)?; // [B, Tq, Tk]
            let s = match scale {
                Some(c) => {
                    check_scale(g, c, &[&[], &[1]], dtype)?;
                    g.mul(s, c)?
                }
                None => s,
            };
            (g.reshape(s, [b * tq, tk])?, None)
        }
        Score::Additive { scale } => {
            let (iq, ik) = pair_ids(g, b, tq, tk)?;
            let qr = g.reshape(query, [b * tq, d])?;
            let kr = g.reshape(key, [b * tk, d])?;
            let qp = g.gather(qr, iq)?; // [B·Tq·Tk, D]
            let kp = g.gather(kr, ik)?;
            let a = g.add(qp, kp)?;
            let t = g.tanh(a)?;
            let t = match scale {
                Some(c) => {
                    check_scale(g, c, &[&[d]], dtype)?;
                    g.mul(t, c)?
                }
                None => t,
            };
            let s = g.sum(t, &[1], true)?;
            (g.reshape(s, [b * tq, tk])?, Some((iq, ik)))
        }
    };
    // The key mask per query row: [B·Tq, Tk], the causal mask folded in.
    let key_mask = match spec.key_mask {
        Some(m) => {
            let m = mask01(g, "key", m, [b, tk], dtype)?;
            Some(if tq == 1 {
                m
            } else {
                let ib = ids(g, (0..b * tq).map(|r| (r / tq) as i64).collect())?;
                g.gather(m, ib)?
            })
        }
        None => None,
    };
    let key_mask = if spec.causal {
        // Row b·Tq + i keeps keys 0..=i.
        let tril: Vec<f64> = (0..b * tq)
            .flat_map(|r| (0..tk).map(move |j| if j <= r % tq { 1.0 } else { 0.0 }))
            .collect();
        let c = g.constant(Tensor::from_f64(dtype, [b * tq, tk].into(), tril));
        Some(match key_mask {
            Some(m) => g.mul(m, c)?,
            None => c,
        })
    } else {
        key_mask
    };
    if let Some(m) = key_mask {
        let one = g.scalar(1.0, dtype);
        let pad = g.sub(m, one)?; // -1 on padding, 0 on real keys
        let big = g.scalar(MASK_PENALTY, dtype);
        let pen = g.mul(pad, big)?;
        scores = g.add(scores, pen)?;
    }
    let mut w = softmax(g, scores)?;
    if let Some(m) = key_mask {
        w = g.mul(w, m)?;
    }
    let mut c = match pairs {
        None => {
            let w3 = g.reshape(w, [b, tq, tk])?;
            let c = g.matmul(w3, value)?; // [B, Tq, Dv]
            g.reshape(c, [b * tq, dv])?
        }
        Some((iq, ik)) => {
            let wp = g.reshape(w, [b * tq * tk, 1])?;
            let vr = g.reshape(value, [b * tk, dv])?;
            let vp = g.gather(vr, ik)?; // [B·Tq·Tk, Dv]
            let wv = g.mul(vp, wp)?;
            g.scatter_add(iq, wv, b * tq)? // [B·Tq, Dv]
        }
    };
    if let Some(qm) = spec.query_mask {
        let qm = mask01(g, "query", qm, [b, tq], dtype)?;
        let qm = g.reshape(qm, [b * tq, 1])?;
        c = g.mul(c, qm)?;
    }
    Ok(AttentionOutput {
        context: g.reshape(c, [b, tq, dv])?,
        weights: g.reshape(w, [b, tq, tk])?,
    })
}
