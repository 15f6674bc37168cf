//! A vocabulary over tokens that are already split: ranks by training frequency (ties by
//! first occurrence, Keras' stable sort) and ids after a few reserved ones. The word
//! [`Tokenizer`](super::Tokenizer) ranks with [`rank_by_frequency`]; a tagger's words and tags,
//! or a character model's characters, use [`Vocab`] directly.

use std::collections::HashMap;

/// The distinct tokens of `tokens`, most frequent first, ties in order of first occurrence.
pub fn rank_by_frequency<I, S>(tokens: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    // token -> (count, first occurrence)
    let mut counts: HashMap<String, (u64, usize)> = HashMap::new();
    for t in tokens {
        let t = t.as_ref();
        if let Some(entry) = counts.get_mut(t) {
            entry.0 += 1;
        } else {
            let order = counts.len();
            counts.insert(t.to_owned(), (1, order));
        }
    }
    let mut ranked: Vec<(String, (u64, usize))> = counts.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)));
    ranked.into_iter().map(|(t, _)| t).collect()
}

/// Token ids: `reserved` ids first (padding, out-of-vocabulary, ... as the user names them),
/// then the kept tokens by rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    reserved: Vec<String>,
    tokens: Vec<String>,
    index: HashMap<String, i64>,
}

impl Vocab {
    /// Ranks `tokens` by frequency and keeps the first `max_tokens` (all if `None`), after
    /// the `reserved` names (e.g. `["<pad>", "<oov>"]`: id 0 pads, id 1 stands for unseen
    /// tokens).
    pub fn fit<I, S>(tokens: I, reserved: &[&str], max_tokens: Option<usize>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut ranked = rank_by_frequency(tokens);
        if let Some(m) = max_tokens {
            ranked.truncate(m);
        }
        let reserved: Vec<String> = reserved.iter().map(|s| (*s).to_owned()).collect();
        let index = ranked
            .iter()
            .enumerate()
            .map(|(r, t)| (t.clone(), (r + reserved.len()) as i64))
            .collect();
        Vocab {
            reserved,
            tokens: ranked,
            index,
        }
    }

    /// The id of `token`, `None` if it was not kept.
    pub fn get(&self, token: &str) -> Option<i64> {
        self.index.get(token).copied()
    }

    /// The id of `token`, or `fallback` (an out-of-vocabulary id) if it was not kept.
    pub fn id_or(&self, token: &str, fallback: i64) -> i64 {
        self.get(token).unwrap_or(fallback)
    }

    /// The token (or reserved name) of an id.
    pub fn token(&self, id: i64) -> Option<&str> {
        let i = usize::try_from(id).ok()?;
        match i.checked_sub(self.reserved.len()) {
            None => Some(&self.reserved[i]),
            Some(r) => self.tokens.get(r).map(String::as_str),
        }
    }

    /// Number of ids: reserved plus kept tokens (the `input_dim` of an Embedding, or the
    /// units of a softmax over tags).
    pub fn len(&self) -> usize {
        self.reserved.len() + self.tokens.len()
    }

    /// True when no id exists at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kept tokens by rank (id `reserved + r`).
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_then_reserves() {
        let v = Vocab::fit("b a c a b a".split(' '), &["<pad>", "<oov>"], Some(2));
        assert_eq!(v.tokens(), ["a", "b"]);
        assert_eq!(v.get("a"), Some(2));
        assert_eq!(v.get("b"), Some(3));
        assert_eq!(v.get("c"), None);
        assert_eq!(v.id_or("c", 1), 1);
        assert_eq!(v.token(0), Some("<pad>"));
        assert_eq!(v.token(3), Some("b"));
        assert_eq!(v.token(4), None);
        assert_eq!(v.token(-1), None);
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn ties_keep_first_occurrence() {
        assert_eq!(
            rank_by_frequency(["x", "y", "z", "y", "x"]),
            ["x", "y", "z"]
        );
    }
}
