//! A linear-chain conditional random field over per-step tag scores, as graph builders: the
//! negative log-likelihood of a tag sequence (the forward algorithm, for training) and the
//! best tag sequence (Viterbi, for prediction), both masked. The semantics of pytorch-crf's
//! `CRF` (the BiLSTM-CRF tagger of Lample et al. 2016):
//!
//! ```text
//! emissions e [B, T, K]; transitions A [K, K] (A[i, j]: tag i followed by tag j);
//! start s [K], end f [K]. Over a row's real steps t_1 < ... < t_n with tags y_1 .. y_n:
//! score(y) = s[y_1] + sum_k e[t_k, y_k] + sum_{k>1} A[y_{k-1}, y_k] + f[y_n]
//! nll(y)   = log sum_{y'} exp(score(y')) - score(y)      (forward algorithm, log space)
//! decode   = argmax_{y'} score(y')                        (Viterbi; ties: the lowest tag)
//! ```
//!
//! Padding steps (mask 0) are skipped wherever they are: a real step follows the previous
//! *real* step, so pre- and post-padding give the same answer. A row with no real step has
//! nll 0 and decodes to zeros.
//!
//! Both are unrolled over `T` from elementwise functions, row maxima, sums and a row gather, so
//! they fuse and differentiate like any other graph: the gradient of the nll is the tags'
//! one-hot minus the marginals, by autodiff. The decode's back-pointers are tag ids held as
//! values `[B, K]` (the first maximum), and following one back is a comparison, a product and
//! a row sum, so the whole decode stays in the graph: `predict` returns the best path, and
//! accuracy counts it.
use crate::softmax::{logsumexp_last, max_last};
use crate::{DType, Graph, IrError, NodeId, Result, Shape, Tensor, TensorType};

/// The CRF's parameters as graph nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrfWeights {
    /// `[K, K]`: the score of tag `i` followed by tag `j` at `[i, j]`.
    pub transitions: NodeId,
    /// `[K]`: the score of starting with each tag.
    pub start: NodeId,
    /// `[K]`: the score of ending with each tag.
    pub end: NodeId,
}

/// What both builders read, checked: the sizes, the per-step emissions and mask flags, and
/// the transitions laid out for the sum (or maximum) over the previous tag along the last axis
/// of `[B·K(to), K(from)]` rows. Every value is a plain grid: a `[B, K, K]` broadcast of a
/// `[B, 1, K]` or `[K, K]` value would be copied block by block (one small step per sample),
/// so rows are repeated by one row gather instead.
struct Chain {
    b: usize,
    k: usize,
    dtype: DType,
    /// `[B, K]` per step.
    emissions: Vec<NodeId>,
    /// `[B, 1]` per step: 1 on a real step, 0 on padding.
    real: Vec<NodeId>,
    /// `[B·K]` ids: the sample of each row.
    sample_of_row: NodeId,
    /// `[B·K, K]`: row `(b, j)` holds `A[:, j]`.
    to_from: NodeId,
    /// `[K]`: the start scores.
    start: NodeId,
}

fn invalid(what: &str, message: String) -> IrError {
    IrError::Invalid(format!("{what}: {message}"))
}

fn ids(g: &mut Graph, v: Vec<i64>) -> Result<NodeId> {
    let n = v.len();
    Ok(g.constant(Tensor::i64([n], v)?))
}

impl Chain {
    fn new(
        g: &mut Graph,
        what: &str,
        emissions: NodeId,
        mask: Option<NodeId>,
        w: &CrfWeights,
    ) -> Result<Chain> {
        let ty = g.ty(emissions).clone();
        let (b, t, k) = match *ty.dims() {
            [b, t, k] if ty.dtype.is_float() && t > 0 && k > 0 => (b, t, k),
            _ => {
                return Err(invalid(
                    what,
                    format!("the emissions must be float [batch, steps, tags] with at least one step and one tag, got {ty}"),
                ))
            }
        };
        let dtype = ty.dtype;
        for (name, node, dims) in [
            ("transitions", w.transitions, vec![k, k]),
            ("start", w.start, vec![k]),
            ("end", w.end, vec![k]),
        ] {
            let got = g.ty(node);
            if got.dims() != dims || got.dtype != dtype {
                return Err(invalid(
                    what,
                    format!(
                        "the {name} scores must be {dtype}{} for {k} tags, got {got}",
                        Shape::new(&dims)
                    ),
                ));
            }
        }
        let real = match mask {
            Some(m) => {
                if g.ty(m).dims() != [b, t] {
                    return Err(invalid(
                        what,
                        format!("the mask must be [{b},{t}] (batch, steps), got {}", g.ty(m)),
                    ));
                }
                let f = g.cast(m, dtype)?;
                let zero = g.scalar(0.0, dtype);
                let flags = g.not_equal(f, zero)?;
                (0..t)
                    .map(|s| step(g, flags, s, [b, 1]))
                    .collect::<Result<Vec<_>>>()?
            }
            None => vec![g.fill(TensorType::new([b, 1], dtype), 1.0)?; t],
        };
        let emissions = (0..t)
            .map(|s| step(g, emissions, s, [b, k]))
            .collect::<Result<Vec<_>>>()?;
        let rows = b * k;
        let sample_of_row = ids(g, (0..rows).map(|r| (r / k) as i64).collect())?;
        let tag_of_row = ids(g, (0..rows).map(|r| (r % k) as i64).collect())?;
        let tt = g.transpose(w.transitions, &[1, 0])?;
        let to_from = g.gather(tt, tag_of_row)?;
        Ok(Chain {
            b,
            k,
            dtype,
            emissions,
            real,
            sample_of_row,
            to_from,
            start: w.start,
        })
    }

    /// One step `s` of the recursion both builders run, from the previous variables `prev`
    /// (`[B, K]`, none before step 0) of rows that have `started` (`[B, 1]`): at a row's first
    /// real step `e + start`, after it `reduce(prev + A) + e` (`reduce` takes the
    /// `[B·K(to), K(from)]` scores to `[B·K, 1]`: the log-sum-exp or the maximum over the
    /// previous tag); a padding step keeps `prev`.
    fn advance(
        &self,
        g: &mut Graph,
        s: usize,
        prev: Option<NodeId>,
        started: NodeId,
        reduce: &mut dyn FnMut(&mut Graph, NodeId) -> Result<NodeId>,
    ) -> Result<NodeId> {
        let (e, real) = (self.emissions[s], self.real[s]);
        let first = g.add(e, self.start)?;
        let Some(prev) = prev else {
            return Ok(first);
        };
        let p = g.gather(prev, self.sample_of_row)?;
        let scores = g.add(p, self.to_from)?;
        let r = reduce(g, scores)?;
        let r = g.reshape(r, [self.b, self.k])?;
        let cont = g.add(r, e)?;
        let new = g.select(started, cont, first)?;
        g.select(real, new, prev)
    }

    /// `[K]`: `0, 1, .., K-1` (tag ids as values).
    fn tag_ids(&self, g: &mut Graph) -> NodeId {
        let v = (0..self.k).map(|i| i as f64).collect();
        g.constant(Tensor::from_f64(self.dtype, [self.k].into(), v))
    }
}

/// Step `s` of `x [B, T, ..]` as `dims`.
fn step(g: &mut Graph, x: NodeId, s: usize, dims: [usize; 2]) -> Result<NodeId> {
    let v = g.slice(x, 1, s, s + 1)?;
    g.reshape(v, dims)
}

/// The values `v` where the one-hot (or all-zero) `pick` is 1, summed over the last axis and
/// kept (`[.., 1]`): a selection, not a product, so a forbidden (`-inf`) score beside the
/// picked one stays out instead of making `0 · -inf = NaN`.
fn pick(g: &mut Graph, pick: NodeId, v: NodeId) -> Result<NodeId> {
    let zero = g.scalar(0.0, g.ty(v).dtype);
    let p = g.select(pick, v, zero)?;
    let axis = g.ty(p).rank() - 1;
    g.sum(p, &[axis], true)
}

/// The negative log-likelihood `[B, 1]` of the tags `tags` (one-hot `[B, T, K]`, the
/// emissions' dtype) under the CRF with emissions `[B, T, K]`, optional `mask [B, T]`
/// (nonzero on real steps) and weights `w`.
pub fn crf_nll(
    g: &mut Graph,
    emissions: NodeId,
    tags: NodeId,
    mask: Option<NodeId>,
    w: &CrfWeights,
) -> Result<NodeId> {
    let c = Chain::new(g, "crf_nll", emissions, mask, w)?;
    if g.ty(tags) != g.ty(emissions) {
        return Err(invalid(
            "crf_nll",
            format!(
                "the tags must be one-hot like the emissions ({}), got {}",
                g.ty(emissions),
                g.ty(tags)
            ),
        ));
    }
    let (b, k) = (c.b, c.k);
    let zero = g.fill(TensorType::new([b, 1], c.dtype), 0.0)?;
    let floor = g.scalar(-1e30, c.dtype);
    let floored = g.maximum(w.transitions, floor)?;
    // The forward variables (log-sums of every path ending in each tag), the gold path's
    // score, its last real tag (one-hot) and whether the row has had a real step.
    let (mut alpha, mut score, mut last, mut started) = (None, zero, None, zero);
    for (s, (&e, &real)) in c.emissions.iter().zip(&c.real).enumerate() {
        let y = step(g, tags, s, [b, k])?;
        alpha = Some(c.advance(g, s, alpha, started, &mut logsumexp_last)?);
        let emitted = pick(g, y, e)?;
        let opening = pick(g, y, w.start)?;
        let link = match last {
            None => opening,
            Some(l) => {
                // A[last tag, j] for every j, then the tag's own (a forbidden transition
                // floored to -1e30 in the product, where 0 · -inf would be NaN).
                let from = g.matmul(l, floored)?;
                let tr = pick(g, y, from)?;
                g.select(started, tr, opening)?
            }
        };
        let inc = g.add(emitted, link)?;
        let inc = g.select(real, inc, zero)?;
        score = g.add(score, inc)?;
        last = Some(match last {
            None => g.mul(y, real)?,
            Some(l) => g.select(real, y, l)?,
        });
        started = g.maximum(started, real)?;
    }
    let (alpha, last) = (alpha.expect("T > 0"), last.expect("T > 0"));
    let closing = pick(g, last, w.end)?;
    score = g.add(score, closing)?;
    let fin = g.add(alpha, w.end)?;
    let logz = logsumexp_last(g, fin)?;
    let logz = g.select(started, logz, zero)?;
    g.sub(logz, score)
}

/// The best tag sequence under the CRF (Viterbi), one-hot `[B, T, K]`, zero on padding steps.
pub fn crf_decode(
    g: &mut Graph,
    emissions: NodeId,
    mask: Option<NodeId>,
    w: &CrfWeights,
) -> Result<NodeId> {
    let c = Chain::new(g, "crf_decode", emissions, mask, w)?;
    let (b, k) = (c.b, c.k);
    let tag_ids = c.tag_ids(g);
    // delta: the best score of a path ending in each tag; back[s] `[B, K]`: the previous tag
    // (as a value) of the best path through each tag at step s + 1 — the tag itself where that
    // step is padding or the row's first real step, so following it keeps the tag.
    let mut delta = None;
    let mut started = g.fill(TensorType::new([b, 1], c.dtype), 0.0)?;
    let mut back = Vec::with_capacity(c.emissions.len());
    for (s, &real) in c.real.iter().enumerate() {
        let follows = g.mul(real, started)?;
        let mut best_with_back = |g: &mut Graph, scores: NodeId| {
            let best = max_last(g, scores)?;
            let from = first_max(g, scores, best, tag_ids)?;
            let from = g.reshape(from, [b, k])?;
            back.push(g.select(follows, from, tag_ids)?);
            Ok(best)
        };
        delta = Some(c.advance(g, s, delta, started, &mut best_with_back)?);
        started = g.maximum(started, real)?;
    }
    let fin = g.add(delta.expect("T > 0"), w.end)?;
    let best = max_last(g, fin)?;
    let mut tag = first_max(g, fin, best, tag_ids)?; // [B, 1]
    let mut tags = vec![tag; c.emissions.len()];
    for (s, from) in back.iter().enumerate().rev() {
        // back[s] belongs to step s + 1: the tag at step s is where step s + 1's came from.
        let at = g.equal(tag_ids, tag)?;
        let p = g.mul(at, *from)?;
        tag = g.sum(p, &[1], true)?;
        tags[s] = tag;
    }
    let steps = tags
        .iter()
        .zip(&c.real)
        .map(|(&y, &real)| {
            let y = g.equal(tag_ids, y)?;
            let y = g.mul(y, real)?;
            g.reshape(y, [b, 1, k])
        })
        .collect::<Result<Vec<_>>>()?;
    g.concat(&steps, 1)
}

/// The first position (as a value) of the row maximum `best [R, 1]` in each row of `x [R, K]`
/// (`best` is one of the row's values, so the comparison is exact): the smallest tag id where
/// `x` equals it, as `-max(-id)` over the candidates (`tag_ids [K]`; others count as `-K`).
fn first_max(g: &mut Graph, x: NodeId, best: NodeId, tag_ids: NodeId) -> Result<NodeId> {
    let k = *g.ty(x).dims().last().expect("rank 2");
    let dtype = g.ty(x).dtype;
    let is_max = g.equal(x, best)?;
    let neg_ids = g.neg(tag_ids)?;
    let none = g.scalar(-(k as f64), dtype);
    let cand = g.select(is_max, neg_ids, none)?;
    let m = max_last(g, cand)?;
    g.neg(m)
}
