//! Entity spans and their scores (`trellis_nn::spans`) against seqeval 1.2.2 on 60 random,
//! partly malformed sentences of IOB1 / IOB2 / IOE / IOBES tags
//! (`scripts/golden/spans_golden.py` -> `tests/fixtures/spans.json`).
use serde_json::Value;
use trellis_nn::spans::{span_scores, spans, Score, Span};

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/spans.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sentences(v: &Value) -> Vec<Vec<String>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

fn assert_score(got: &Score, want: &Value, what: &str) {
    for (name, g) in [
        ("precision", got.precision),
        ("recall", got.recall),
        ("f1", got.f1),
    ] {
        let w = want[name].as_f64().unwrap();
        assert!((g - w).abs() < 1e-12, "{what} {name}: {g} vs seqeval {w}");
    }
    assert_eq!(
        got.support as u64,
        want["support"].as_u64().unwrap(),
        "{what}"
    );
}

#[test]
fn spans_and_scores_match_seqeval() {
    let fx = fixture();
    let (gold, pred) = (sentences(&fx["gold"]), sentences(&fx["pred"]));
    assert_eq!(gold.len(), 60);
    let mut total = 0;
    for (g, want) in gold.iter().zip(fx["gold_spans"].as_array().unwrap()) {
        let want: Vec<Span> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|e| Span {
                label: e[0].as_str().unwrap().into(),
                start: e[1].as_u64().unwrap() as usize,
                end: e[2].as_u64().unwrap() as usize,
            })
            .collect();
        total += want.len();
        assert_eq!(spans(g), want, "{g:?}");
    }
    assert!(total > 200, "{total} spans");
    let s = span_scores(&gold, &pred).unwrap();
    assert_score(&s.overall, &fx["overall"], "overall");
    let per = fx["per_label"].as_object().unwrap();
    assert_eq!(s.per_label.len(), per.len());
    for (label, want) in per {
        assert_score(&s.per_label[label], want, label);
    }
    // The same predictions score perfectly against themselves.
    let own = span_scores(&pred, &pred).unwrap().overall;
    assert_eq!((own.precision, own.recall, own.f1), (1.0, 1.0, 1.0));
}
