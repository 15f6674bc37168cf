//! A word tokenizer matching `keras.preprocessing.text.Tokenizer` with its defaults, with
//! the id convention of `keras.datasets.imdb`.
//!
//! Splitting ([`text_to_words`]): lower-case, remove `<br />` line breaks, turn every
//! character of ``!"#$%&()*+,-./:;<=>?@[\]^_`{|}~`` and tab/newline into a space, split on
//! whitespace and drop empty pieces. Apostrophes are not filtered, so `don't` stays one word
//! (as in Keras, a quote-like `'word'` keeps its apostrophes too). Two deliberate
//! differences from Keras: `<br />` tags are removed (Keras would leave a word `br`), and the
//! split is on any Unicode whitespace where Keras splits on `' '` only (in IMDB this matters
//! for about 1,500 U+0085 and 44 U+00A0 characters in 50,000 reviews).
//!
//! Ids: `0` is padding ([`PAD`]), `1` starts every encoded text ([`START`]), `2` is
//! out-of-vocabulary ([`OOV`]); the word of training-set frequency rank `r` (0-based; ties
//! broken by first occurrence, as Keras' stable sort does) gets id `r + 3`
//! ([`INDEX_FROM`]). Only ids `< num_words` are kept; every other word encodes as `OOV`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use super::vocab::rank_by_frequency;
use crate::{NnError, Result};

/// Padding id.
pub const PAD: i64 = 0;
/// Id that starts every encoded text.
pub const START: i64 = 1;
/// Id of words outside the kept vocabulary.
pub const OOV: i64 = 2;
/// Id of the most frequent word; the word of rank `r` gets `r + INDEX_FROM`.
pub const INDEX_FROM: i64 = 3;

/// Characters Keras' `Tokenizer` filters out by default (replaced with a space).
pub const KERAS_FILTERS: &str = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n";

fn is_filtered(c: char) -> bool {
    c.is_ascii() && KERAS_FILTERS.as_bytes().contains(&(c as u8))
}

/// Lower-cases `text`, removes `<br />` (and `<br/>`, `<br>`), maps the Keras filter
/// characters to spaces, so that splitting the result on whitespace gives the words.
fn normalize(text: &str) -> String {
    let lower = text.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut rest = lower.as_str();
    while let Some(pos) = rest.find("<br") {
        push_filtered(&mut out, &rest[..pos]);
        let after = &rest[pos + 3..];
        let tag_len = [" />", "/>", ">"]
            .iter()
            .find(|end| after.starts_with(*end))
            .map(|end| end.len());
        match tag_len {
            Some(n) => {
                out.push(' ');
                rest = &after[n..];
            }
            None => {
                // Not a line break tag: `<` is filtered to a space, `br` kept.
                out.push_str(" br");
                rest = after;
            }
        }
    }
    push_filtered(&mut out, rest);
    out
}

fn push_filtered(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| if is_filtered(c) { ' ' } else { c }));
}

/// Splits a text into words like `keras.preprocessing.text.text_to_word_sequence` with its
/// default filters, after removing `<br />` line breaks (see the module docs).
///
/// ```
/// use trellis_nn::data::text_to_words;
/// assert_eq!(text_to_words("Don't! It's GREAT.<br /><br />10/10"),
///            ["don't", "it's", "great", "10", "10"]);
/// ```
pub fn text_to_words(text: &str) -> Vec<String> {
    normalize(text)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// A word-level tokenizer: the `num_words - 3` most frequent training words and their ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokenizer {
    num_words: usize,
    /// Kept words by rank: `words[r]` has id `r + 3`.
    words: Vec<String>,
    index: HashMap<String, i64>,
}

impl Tokenizer {
    /// Builds the vocabulary from training texts, keeping the words whose id (frequency
    /// rank + 3) is below `num_words`. Errors if `num_words < 3`.
    pub fn fit<I, S>(texts: I, num_words: usize) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        check_num_words(num_words)?;
        let norms: Vec<String> = texts.into_iter().map(|t| normalize(t.as_ref())).collect();
        let mut ranked = rank_by_frequency(norms.iter().flat_map(|n| n.split_whitespace()));
        ranked.truncate(num_words - INDEX_FROM as usize);
        Self::from_words(ranked, num_words)
    }

    /// A tokenizer from words in rank order (`words[r]` gets id `r + 3`); words whose id
    /// would be `>= num_words` are dropped. Errors on `num_words < 3`, an empty word, a word
    /// containing whitespace or a filtered character, or a repeated word.
    pub fn from_words(mut words: Vec<String>, num_words: usize) -> Result<Self> {
        check_num_words(num_words)?;
        words.truncate(num_words - INDEX_FROM as usize);
        let mut index = HashMap::with_capacity(words.len());
        for (r, w) in words.iter().enumerate() {
            if let Some(msg) = invalid_word(w) {
                return Err(NnError::InvalidArgument {
                    name: "words",
                    value: format!("{w:?} (rank {r})"),
                    message: msg.into(),
                });
            }
            if index.insert(w.clone(), r as i64 + INDEX_FROM).is_some() {
                return Err(NnError::InvalidArgument {
                    name: "words",
                    value: format!("{w:?} (rank {r})"),
                    message: "word repeated".into(),
                });
            }
        }
        Ok(Tokenizer {
            num_words,
            words,
            index,
        })
    }

    /// The `num_words` this tokenizer was built with: every id it produces is below it.
    pub fn num_words(&self) -> usize {
        self.num_words
    }

    /// The kept words in rank order: `words()[r]` has id `r + 3`.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Number of ids in use: 3 reserved ids plus the kept words.
    pub fn vocab_size(&self) -> usize {
        self.words.len() + INDEX_FROM as usize
    }

    /// The id of one (already normalised) word: its rank + 3, or [`OOV`].
    pub fn id(&self, word: &str) -> i64 {
        self.index.get(word).copied().unwrap_or(OOV)
    }

    /// The word of an id, or `None` for the reserved ids and ids out of range.
    pub fn word(&self, id: i64) -> Option<&str> {
        let r = usize::try_from(id.checked_sub(INDEX_FROM)?).ok()?;
        self.words.get(r).map(String::as_str)
    }

    /// Encodes a text: `[START, id(w1), id(w2), ...]`.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        let norm = normalize(text);
        std::iter::once(START)
            .chain(norm.split_whitespace().map(|w| self.id(w)))
            .collect()
    }

    /// Decodes ids to words separated by spaces: `<pad>`, `<start>`, `<oov>` for the
    /// reserved ids, `<unk:ID>` for ids this tokenizer never produces.
    pub fn decode(&self, ids: &[i64]) -> String {
        let mut out = String::new();
        for (i, &id) in ids.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            match (id, self.word(id)) {
                (_, Some(w)) => out.push_str(w),
                (PAD, None) => out.push_str("<pad>"),
                (START, None) => out.push_str("<start>"),
                (OOV, None) => out.push_str("<oov>"),
                (_, None) => {
                    let _ = write!(out, "<unk:{id}>");
                }
            }
        }
        out
    }

    /// Writes the kept words, one a line, in rank order (line `r`, 0-based, has id `r + 3`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut text = String::with_capacity(self.words.iter().map(|w| w.len() + 1).sum());
        for w in &self.words {
            text.push_str(w);
            text.push('\n');
        }
        std::fs::write(path, text).map_err(|source| NnError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Reads a vocabulary written by [`Tokenizer::save`]; `num_words` becomes the number of
    /// words + 3. Errors name the file and line of an empty, invalid or repeated word.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| NnError::Io {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| NnError::Utf8 {
            path: path.to_owned(),
            valid_up_to: e.utf8_error().valid_up_to(),
        })?;
        let file = path.display().to_string();
        let mut words = Vec::new();
        let mut seen = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let vocab_err = |message: String| NnError::Vocab {
                file: file.clone(),
                line: i + 1,
                message,
            };
            if let Some(msg) = invalid_word(line) {
                return Err(vocab_err(format!("{msg}: {line:?}")));
            }
            if let Some(first) = seen.insert(line, i + 1) {
                return Err(vocab_err(format!(
                    "word {line:?} repeated (first on line {first})"
                )));
            }
            words.push(line.to_owned());
        }
        let n = words.len() + INDEX_FROM as usize;
        Self::from_words(words, n)
    }
}

fn check_num_words(num_words: usize) -> Result<()> {
    if num_words < INDEX_FROM as usize {
        return Err(NnError::InvalidArgument {
            name: "num_words",
            value: num_words.to_string(),
            message: "must be at least 3 (ids 0, 1, 2 are reserved)".into(),
        });
    }
    Ok(())
}

fn invalid_word(w: &str) -> Option<&'static str> {
    if w.is_empty() {
        Some("empty word")
    } else if w.chars().any(|c| c.is_whitespace() || is_filtered(c)) {
        Some("word contains whitespace or a filtered character")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_keras() {
        assert_eq!(
            text_to_words("Hello, World! It's a \"test\"...\tdone\nnow"),
            ["hello", "world", "it's", "a", "test", "done", "now"]
        );
        // Apostrophes are not filtered, wherever they are (as in Keras).
        assert_eq!(
            text_to_words("'quoted' rock'n'roll"),
            ["'quoted'", "rock'n'roll"]
        );
        // Line breaks separate words; `<br` not followed by a tag end is ordinary text.
        assert_eq!(
            text_to_words("end.<br /><br />Next<BR/>one<br>two"),
            ["end", "next", "one", "two"]
        );
        assert_eq!(text_to_words("a<bright b"), ["a", "bright", "b"]);
        assert_eq!(
            text_to_words("x-ray a_b (c)[d]{e}"),
            ["x", "ray", "a", "b", "c", "d", "e"]
        );
        // Non-ASCII letters are kept and lower-cased.
        assert_eq!(text_to_words("Amélie ÉCOLE"), ["amélie", "école"]);
        assert!(text_to_words("  ...!!! ").is_empty());
    }

    #[test]
    fn ranks_by_count_then_first_occurrence() {
        // counts: the 3, cat 2, sat 2, a 1, mat 1; cat before sat, a before mat.
        let t = Tokenizer::fit(["The cat sat.", "the cat, a mat; the SAT"], 100).unwrap();
        assert_eq!(t.words(), ["the", "cat", "sat", "a", "mat"]);
        assert_eq!(t.id("the"), 3);
        assert_eq!(t.id("mat"), 7);
        assert_eq!(t.id("dog"), OOV);
        assert_eq!(t.word(4), Some("cat"));
        assert_eq!(t.word(2), None);
        assert_eq!(t.word(8), None);
        assert_eq!(t.vocab_size(), 8);
    }

    #[test]
    fn num_words_limits_ids() {
        let t = Tokenizer::fit(["The cat sat.", "the cat, a mat; the SAT"], 5).unwrap();
        assert_eq!(t.words(), ["the", "cat"]);
        assert_eq!(t.encode("the sat cat mat"), [1, 3, 2, 4, 2]);
        assert!(Tokenizer::fit(["a"], 2).is_err());
        let empty = Tokenizer::fit(["a b"], 3).unwrap();
        assert_eq!(empty.encode("a b"), [1, 2, 2]);
    }

    #[test]
    fn decode_round_trip() {
        let t = Tokenizer::fit(["b a b"], 10).unwrap();
        assert_eq!(
            t.decode(&[0, 1, 3, 4, 2, 99]),
            "<pad> <start> b a <oov> <unk:99>"
        );
    }

    #[test]
    fn from_words_rejects_bad_words() {
        assert!(Tokenizer::from_words(vec!["a".into(), "a".into()], 10).is_err());
        assert!(Tokenizer::from_words(vec!["a b".into()], 10).is_err());
        assert!(Tokenizer::from_words(vec!["".into()], 10).is_err());
        assert!(Tokenizer::from_words(vec!["a,".into()], 10).is_err());
    }
}
