//! Entity spans from tag sequences, and their precision, recall and F1: how NER, chunking and
//! semantic role labelling taggers are scored (CoNLL's `conlleval`), not by token accuracy. A
//! span counts when its type and both ends match exactly.
//!
//! Tags are `B-X` (begin), `I-X` (inside), `E-X` (end), `S-X` (single), `O` (outside), so IOB1,
//! IOB2 (BIO), IOE and IOBES all read the same way; a bare `B` / `I` has the type `_`. Spans
//! follow conlleval's rules exactly as seqeval 1.2 computes them (its default mode): a span
//! ends at an `O`, a `B` / `S`, after an `E` / `S`, or where the type changes, and starts at a
//! `B` / `S`, an `I` / `E` after `O`, `E` or `S`, or where the type changes — so a stray
//! `I-X` after `O` opens a span, as conlleval counts it. Scores are micro averages over every
//! span (seqeval's `average="micro"`), with 0 where a ratio has nothing to divide by.
use std::collections::{BTreeMap, HashSet};

use crate::{NnError, Result};

/// One entity: its type and the steps it covers, `start..=end`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub label: String,
    pub start: usize,
    pub end: usize,
}

/// The spans of one tag sequence, in order.
pub fn spans<S: AsRef<str>>(tags: &[S]) -> Vec<Span> {
    let split = |t: &str| -> (char, String) {
        let mut chars = t.chars();
        let prefix = chars.next().unwrap_or('O');
        let rest = chars.as_str();
        let label = rest.split_once('-').map_or(rest, |(_, l)| l);
        let label = if label.is_empty() { "_" } else { label };
        (prefix, label.to_string())
    };
    let mut out = Vec::new();
    let (mut prev, mut prev_label, mut begin) = ('O', String::new(), 0);
    // An `O` after the last tag closes the last span.
    let end = std::iter::once(('O', "_".to_string()));
    let all = tags.iter().map(|t| split(t.as_ref())).chain(end);
    for (i, (tag, label)) in all.enumerate() {
        let typed = |t: char| t != 'O' && t != '.';
        let ends = matches!(prev, 'E' | 'S')
            || (matches!(prev, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
            || (typed(prev) && prev_label != label);
        let starts = matches!(tag, 'B' | 'S')
            || (matches!(prev, 'E' | 'S' | 'O') && matches!(tag, 'I' | 'E'))
            || (typed(tag) && prev_label != label);
        if ends {
            out.push(Span {
                label: prev_label.clone(),
                start: begin,
                end: i - 1,
            });
        }
        if starts {
            begin = i;
        }
        (prev, prev_label) = (tag, label);
    }
    out
}

/// Precision, recall and F1 over spans, with the number of true spans (`support`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

impl Score {
    fn of(hits: usize, predicted: usize, support: usize) -> Score {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(hits, predicted), ratio(hits, support));
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Score {
            precision,
            recall,
            f1,
            support,
        }
    }
}

/// The scores of predicted tag sequences against the true ones: over all spans (micro
/// average) and per span type.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanScores {
    pub overall: Score,
    pub per_label: BTreeMap<String, Score>,
}

/// Scores `pred` against `gold`, one tag sequence per sentence, each pair of equal length (an
/// error names the first sentence that differs). A span must match in type, start and end.
pub fn span_scores<S: AsRef<str>, P: AsRef<str>>(
    gold: &[Vec<S>],
    pred: &[Vec<P>],
) -> Result<SpanScores> {
    if gold.len() != pred.len() {
        return Err(NnError::Shape(format!(
            "span_scores: {} true sentences but {} predicted",
            gold.len(),
            pred.len()
        )));
    }
    let mut truth = HashSet::new();
    let mut guess = HashSet::new();
    for (s, (g, p)) in gold.iter().zip(pred).enumerate() {
        if g.len() != p.len() {
            return Err(NnError::Shape(format!(
                "span_scores: sentence {s} has {} true tags but {} predicted",
                g.len(),
                p.len()
            )));
        }
        truth.extend(spans(g).into_iter().map(|x| (s, x)));
        guess.extend(spans(p).into_iter().map(|x| (s, x)));
    }
    let hits: HashSet<_> = truth.intersection(&guess).collect();
    let mut labels: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for (_, x) in &truth {
        labels.entry(x.label.clone()).or_default()[2] += 1;
    }
    for (_, x) in &guess {
        labels.entry(x.label.clone()).or_default()[1] += 1;
    }
    for (_, x) in &hits {
        labels.entry(x.label.clone()).or_default()[0] += 1;
    }
    Ok(SpanScores {
        overall: Score::of(hits.len(), guess.len(), truth.len()),
        per_label: labels
            .into_iter()
            .map(|(l, [h, p, t])| (l, Score::of(h, p, t)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(label: &str, start: usize, end: usize) -> Span {
        Span {
            label: label.into(),
            start,
            end,
        }
    }

    #[test]
    fn conlleval_reads_every_scheme() {
        assert_eq!(
            spans(&["B-PER", "I-PER", "O", "B-LOC"]),
            [sp("PER", 0, 1), sp("LOC", 3, 3)]
        );
        // A stray I after O opens a span; a type change closes one.
        assert_eq!(
            spans(&["O", "I-PER", "I-LOC", "I-LOC"]),
            [sp("PER", 1, 1), sp("LOC", 2, 3)]
        );
        // IOBES and IOE.
        assert_eq!(
            spans(&["S-X", "B-Y", "E-Y", "I-Z", "E-Z", "E-Z"]),
            [sp("X", 0, 0), sp("Y", 1, 2), sp("Z", 3, 4), sp("Z", 5, 5)]
        );
        assert_eq!(spans(&["B", "I", "O"]), [sp("_", 0, 1)]);
        assert!(spans::<&str>(&[]).is_empty());
    }

    #[test]
    fn lengths_must_match() {
        let e = span_scores(&[vec!["O"]], &[vec!["O", "O"]]).unwrap_err();
        assert!(
            e.to_string().contains("sentence 0 has 1 true tags but 2"),
            "{e}"
        );
    }
}
