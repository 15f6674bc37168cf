//! [`TextEncoder`]: texts to padded rows of token ids — the tokenizer with the row length and
//! the padding sides — so a saved model can take raw text as it was trained on it.
use ndarray::Array2;

use super::{pad_sequences, Side, Tokenizer, PAD};

/// A [`Tokenizer`] and how its id sequences become rows of `maxlen` (Keras's
/// `pad_sequences`: padding and truncating at the front by default, padding with 0).
#[derive(Clone, Debug, PartialEq)]
pub struct TextEncoder {
    pub tokenizer: Tokenizer,
    pub maxlen: usize,
    pub padding: Side,
    pub truncating: Side,
}

impl TextEncoder {
    /// Keras's defaults: pad and truncate at the front.
    pub fn new(tokenizer: Tokenizer, maxlen: usize) -> Self {
        TextEncoder {
            tokenizer,
            maxlen,
            padding: Side::Pre,
            truncating: Side::Pre,
        }
    }
    pub fn with_padding(mut self, side: Side) -> Self {
        self.padding = side;
        self
    }
    pub fn with_truncating(mut self, side: Side) -> Self {
        self.truncating = side;
        self
    }

    /// The texts as ids, `[texts, maxlen]`.
    pub fn encode<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> Array2<i64> {
        let seqs: Vec<Vec<i64>> = texts
            .into_iter()
            .map(|t| self.tokenizer.encode(t))
            .collect();
        pad_sequences(&seqs, self.maxlen, self.padding, self.truncating, PAD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_and_truncates_as_configured() {
        let t = Tokenizer::fit(["a b c"], 10).unwrap();
        let e = TextEncoder::new(t, 3);
        // START = 1, a = 3, b = 4, c = 5, unknown = 2.
        assert_eq!(
            e.encode(["a", "a b c d"]),
            ndarray::array![[0, 1, 3], [4, 5, 2]]
        );
        let e = e.with_padding(Side::Post).with_truncating(Side::Post);
        assert_eq!(
            e.encode(["a", "a b c d"]),
            ndarray::array![[1, 3, 0], [1, 3, 4]]
        );
    }
}
