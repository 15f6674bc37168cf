//! Language-model data: texts as one stream of token ids cut into windows whose targets are
//! the same window shifted by one step, and the unigram perplexity a model must beat.

use ndarray::Array2;

use super::vocab::Vocab;
use crate::{NnError, Result};

/// Windows for next-token prediction: `x[i, t]` is token `s + t` of the stream and `y[i, t]`
/// token `s + t + 1`, for window starts `s = i * stride`.
#[derive(Debug, Clone)]
pub struct LmWindows {
    /// Inputs `[n, len]`.
    pub x: Array2<i64>,
    /// Next-token targets `[n, len]`.
    pub y: Array2<i64>,
    pub len: usize,
}

impl LmWindows {
    /// Number of windows.
    pub fn rows(&self) -> usize {
        self.x.nrows()
    }
}

/// Cuts `stream` into windows of `len` steps every `stride` tokens (at most `max_rows`).
/// Errors if `len` or `stride` is 0 or the stream is shorter than one window plus its target.
pub fn lm_windows(stream: &[i64], len: usize, stride: usize, max_rows: usize) -> Result<LmWindows> {
    for (name, v) in [("len", len), ("stride", stride)] {
        if v == 0 {
            return Err(NnError::InvalidArgument {
                name,
                value: "0".into(),
                message: "must be at least 1".into(),
            });
        }
    }
    if stream.len() <= len {
        return Err(NnError::InvalidArgument {
            name: "stream",
            value: format!("{} tokens", stream.len()),
            message: format!("need more than one window of {len} steps"),
        });
    }
    let n = ((stream.len() - len - 1) / stride + 1).min(max_rows);
    let (mut x, mut y) = (Vec::with_capacity(n * len), Vec::with_capacity(n * len));
    for i in 0..n {
        let s = i * stride;
        x.extend_from_slice(&stream[s..s + len]);
        y.extend_from_slice(&stream[s + 1..s + len + 1]);
    }
    let shaped = |v| Array2::from_shape_vec((n, len), v).expect("n windows of len");
    Ok(LmWindows {
        x: shaped(x),
        y: shaped(y),
        len,
    })
}

/// The characters of `texts` as one stream of ids in `vocab` (unseen characters become
/// `oov`), each text followed by `sep` (a separator id, e.g. a newline's).
pub fn char_stream<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    vocab: &Vocab,
    oov: i64,
    sep: i64,
) -> Vec<i64> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4];
    for t in texts {
        out.extend(t.chars().map(|c| vocab.id_or(c.encode_utf8(&mut buf), oov)));
        out.push(sep);
    }
    out
}

/// Perplexity of the unigram model fitted on `train` (add-one smoothed over `vocab_size` ids)
/// on `test`: `exp(-mean log p(token))`, the figure a sequence model must beat.
pub fn unigram_perplexity(train: &[i64], test: &[i64], vocab_size: usize) -> f64 {
    let mut counts = vec![1u64; vocab_size.max(1)];
    for &t in train {
        if let Some(c) = usize::try_from(t).ok().and_then(|i| counts.get_mut(i)) {
            *c += 1;
        }
    }
    let total: u64 = counts.iter().sum();
    let nll: f64 = test
        .iter()
        .map(|&t| {
            let c = usize::try_from(t)
                .ok()
                .and_then(|i| counts.get(i))
                .copied()
                .unwrap_or(1);
            -((c as f64) / total as f64).ln()
        })
        .sum();
    (nll / test.len().max(1) as f64).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_shift_by_one() {
        let w = lm_windows(&[1, 2, 3, 4, 5, 6], 2, 2, 10).unwrap();
        assert_eq!(w.x, ndarray::array![[1, 2], [3, 4]]);
        assert_eq!(w.rows(), 2);
        assert_eq!(w.y, ndarray::array![[2, 3], [4, 5]]);
        assert!(lm_windows(&[1, 2], 2, 1, 10).is_err());
        assert!(lm_windows(&[1, 2, 3], 0, 1, 10)
            .unwrap_err()
            .to_string()
            .contains("len"));
    }

    #[test]
    fn chars_and_unigram() {
        let v = Vocab::fit("abab".chars().map(String::from), &["<pad>", "<oov>"], None);
        let s = char_stream(["ab", "c"], &v, 1, 0);
        assert_eq!(s, [v.get("a").unwrap(), v.get("b").unwrap(), 0, 1, 0]);
        // A uniform unigram over k ids has perplexity k.
        assert!((unigram_perplexity(&[], &[0, 1, 2, 3], 4) - 4.0).abs() < 1e-12);
    }
}
