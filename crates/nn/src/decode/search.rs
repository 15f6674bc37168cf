//! Greedy and beam search over a [`Decoder`]'s step plan.
//!
//! Scores are sums of log-probabilities. Beam search keeps `width` live hypotheses; one that
//! emits the end token is finished and leaves the beam, and the search stops when no live
//! hypothesis is left (or after `max_len` tokens, when the live ones count as finished, cut
//! short). Finished hypotheses are ranked by `log p / len^length_penalty`.
//!
//! **Beam never does worse than greedy.** Plain beam search can drop the greedy path (`width`
//! other extensions may score higher at some step and all end badly later), so it can return
//! a sequence less likely than greedy's. Here the greedy extension (the best token after the
//! hypothesis that followed the best token at every step) always survives, taking the last
//! place if it is not among the best `width`; so the greedy sequence is always among the
//! finished, and at width 1 beam search is greedy search.
use super::Decoder;
use crate::{NnError, Result};
use trellis_jit::Plan;

/// What a search stops at.
#[derive(Clone, Debug, PartialEq)]
pub struct BeamOptions {
    /// Hypotheses kept (1: greedy). At most the decoder's `rows`.
    pub width: usize,
    /// The decoder's first input token.
    pub start: i64,
    /// The token that ends a hypothesis (`None`: every hypothesis runs `max_len` tokens).
    pub end: Option<i64>,
    /// Tokens generated at most (the end token included).
    pub max_len: usize,
    /// Finished hypotheses rank by `log p / len^length_penalty` (0: by `log p`; 1: by the
    /// mean log-probability per token).
    pub length_penalty: f64,
}

impl BeamOptions {
    /// Width `width`, no end token, `max_len` tokens, no length penalty.
    pub fn new(width: usize, start: i64, max_len: usize) -> Self {
        BeamOptions {
            width,
            start,
            end: None,
            max_len,
            length_penalty: 0.0,
        }
    }
    pub fn with_end(mut self, end: i64) -> Self {
        self.end = Some(end);
        self
    }
    pub fn with_length_penalty(mut self, alpha: f64) -> Self {
        self.length_penalty = alpha;
        self
    }
}

/// A decoded sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// The generated tokens (the end token last when it was reached; no start token).
    pub tokens: Vec<i64>,
    /// Sum of the tokens' log-probabilities.
    pub log_prob: f64,
    /// What the ranking uses: `log_prob / len^length_penalty`.
    pub score: f64,
    /// Whether it emitted the end token (else it was cut at `max_len`).
    pub finished: bool,
    /// Per generated token, the attention weights over the source (empty without attention).
    pub attention: Vec<Vec<f32>>,
    /// Whether this is the greedy sequence.
    greedy: bool,
}

impl Hypothesis {
    /// The empty hypothesis every search starts from (on the greedy path by definition).
    fn root() -> Self {
        Hypothesis {
            tokens: Vec::new(),
            log_prob: 0.0,
            score: 0.0,
            finished: false,
            attention: Vec::new(),
            greedy: true,
        }
    }
    fn rescore(&mut self, alpha: f64) {
        let len = self.tokens.len().max(1) as f64;
        self.score = if alpha == 0.0 {
            self.log_prob
        } else {
            self.log_prob / len.powf(alpha)
        };
    }
}

/// The first index of the largest value (ties: the lowest token, the same in greedy and beam).
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

impl Decoder {
    /// Checks `opts` against this decoder.
    fn check_options(&self, opts: &BeamOptions) -> Result<()> {
        if opts.width == 0 || opts.width > self.rows {
            return Err(NnError::InvalidArgument {
                name: "width",
                value: opts.width.to_string(),
                message: format!(
                    "must be 1 to the decoder's rows ({}; attach a wider decoder)",
                    self.rows
                ),
            });
        }
        if opts.max_len == 0 {
            return Err(NnError::InvalidArgument {
                name: "max_len",
                value: "0".into(),
                message: "must be positive".into(),
            });
        }
        if !opts.length_penalty.is_finite() {
            return Err(NnError::InvalidArgument {
                name: "length_penalty",
                value: opts.length_penalty.to_string(),
                message: "must be finite".into(),
            });
        }
        self.check_token("start", opts.start)?;
        if let Some(e) = opts.end {
            self.check_token("end", e)?;
        }
        Ok(())
    }

    /// The most likely token at every step (`opts.width` is ignored).
    pub fn greedy(
        &self,
        host: &mut Plan,
        source: &[i64],
        opts: &BeamOptions,
    ) -> Result<Hypothesis> {
        self.check_options(&BeamOptions {
            width: 1,
            ..opts.clone()
        })?;
        self.start(host, source)?;
        let mut h = Hypothesis::root();
        let mut prev = opts.start;
        while h.tokens.len() < opts.max_len {
            // The state is carried from the step's outputs to its inputs by the plan itself.
            let (lp, att) = self.step(host, &vec![prev; self.rows])?;
            let row = &lp[..self.vocab];
            let t = argmax(row);
            h.log_prob += row[t] as f64;
            h.tokens.push(t as i64);
            if !att.is_empty() {
                h.attention.push(att[..att.len() / self.rows].to_vec());
            }
            prev = t as i64;
            if opts.end == Some(prev) {
                h.finished = true;
                break;
            }
        }
        h.rescore(opts.length_penalty);
        Ok(h)
    }

    /// Beam search: the finished hypotheses, best first (see the module doc).
    pub fn beam(
        &self,
        host: &mut Plan,
        source: &[i64],
        opts: &BeamOptions,
    ) -> Result<Vec<Hypothesis>> {
        self.check_options(opts)?;
        self.start(host, source)?;
        let v = self.vocab;
        let mut live = vec![Hypothesis::root()];
        let mut done: Vec<Hypothesis> = Vec::new();
        // Every live hypothesis' state is in the step plan's row of the same index.
        for _ in 0..opts.max_len {
            if live.is_empty() {
                break;
            }
            let last = |h: &Hypothesis| h.tokens.last().copied().unwrap_or(opts.start);
            let mut tokens: Vec<i64> = live.iter().map(last).collect();
            tokens.resize(self.rows, tokens[0]);
            let (lp, att) = self.step(host, &tokens)?;
            let ta = att.len() / self.rows;
            // (score, parent, token), best first.
            let mut cand: Vec<(f64, usize, usize)> = Vec::with_capacity(live.len() * v);
            for (i, h) in live.iter().enumerate() {
                for (t, &l) in lp[i * v..(i + 1) * v].iter().enumerate() {
                    cand.push((h.log_prob + l as f64, i, t));
                }
            }
            let keep = opts.width - done.len().min(opts.width - 1);
            let by_score = |a: &(f64, usize, usize), b: &(f64, usize, usize)| {
                b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
            };
            if cand.len() > keep {
                cand.select_nth_unstable_by(keep - 1, by_score);
                cand.truncate(keep);
            }
            cand.sort_by(by_score);
            // The greedy extension survives (see the module doc).
            if let Some(g) = live.iter().position(|h| h.greedy) {
                let t = argmax(&lp[g * v..(g + 1) * v]);
                if !cand.iter().any(|c| c.1 == g && c.2 == t) {
                    let last = cand.len() - 1;
                    cand[last] = (live[g].log_prob + lp[g * v + t] as f64, g, t);
                }
            }
            let mut next = Vec::with_capacity(cand.len());
            let mut parents = Vec::with_capacity(self.rows);
            for &(score, i, t) in &cand {
                let p = &live[i];
                let mut h = Hypothesis {
                    tokens: p.tokens.clone(),
                    log_prob: score,
                    score: 0.0,
                    finished: false,
                    attention: p.attention.clone(),
                    greedy: p.greedy && t == argmax(&lp[i * v..(i + 1) * v]),
                };
                h.tokens.push(t as i64);
                if ta > 0 {
                    h.attention.push(att[i * ta..(i + 1) * ta].to_vec());
                }
                if opts.end == Some(t as i64) {
                    h.finished = true;
                    done.push(h);
                } else {
                    parents.push(i);
                    next.push(h);
                }
            }
            live = next;
            // Stop once enough are finished, unless the greedy sequence is still running.
            if done.len() >= opts.width && !live.iter().any(|h| h.greedy) {
                live.clear();
            }
            if !live.is_empty() {
                parents.resize(self.rows, parents[0]);
                self.reorder(host, &parents)?;
            }
        }
        done.extend(live);
        for h in &mut done {
            h.rescore(opts.length_penalty);
        }
        done.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(done)
    }
}
