#!/usr/bin/env python3
"""Golden entity-span fixtures from seqeval (PyPI `seqeval` 1.2.2, MIT), for trellis's tests.

Run with seqeval installed:  python3 scripts/golden/spans_golden.py
Writes tests/fixtures/spans.json:

    {"description": .., "seqeval_version": "1.2.2",
     "gold": [[tag, ..], ..], "pred": [[tag, ..], ..],        # sentences of tag strings
     "gold_spans": [[[type, start, end], ..], ..],             # get_entities of each sentence
     "overall": {"precision": p, "recall": r, "f1": f, "support": n},   # average="micro"
     "per_label": {type: {"precision": .., "recall": .., "f1": .., "support": ..}}}

The sentences are random draws over IOB1/IOB2/IOE/IOBES tags of three types plus `O` and bare
`B` / `I`, malformed on purpose (an `I-X` after `O`, type switches inside a span, `E` without
`B`), the predictions the gold with some tags replaced, so most spans match and some do not.
"""
import importlib.metadata
import json
import os
import random

from seqeval.metrics.sequence_labeling import precision_recall_fscore_support
from seqeval.metrics.sequence_labeling import get_entities

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TAGS = ["O"] * 6 + [f"{p}-{t}" for p in "BIES" for t in ["PER", "LOC", "ORG"]] + ["B", "I"]


def main():
    rng = random.Random(20261203)
    gold, pred = [], []
    for _ in range(60):
        n = rng.randint(0, 14)
        g = [rng.choice(TAGS) for _ in range(n)]
        p = [t if rng.random() < 0.8 else rng.choice(TAGS) for t in g]
        gold.append(g)
        pred.append(p)
    p, r, f, s = precision_recall_fscore_support(gold, pred, average="micro", zero_division=0)
    labels = sorted({e[0] for seq in gold + pred for e in get_entities(seq)})
    lp, lr, lf, ls = precision_recall_fscore_support(gold, pred, average=None, zero_division=0)
    assert len(lp) == len(labels), (labels, lp)
    out = {
        "description": "entity spans (conlleval rules) and micro / per-type precision, recall, "
                       "F1 by seqeval",
        "seqeval_version": importlib.metadata.version("seqeval"),
        "gold": gold,
        "pred": pred,
        "gold_spans": [[list(e) for e in get_entities(g)] for g in gold],
        "overall": {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)},
        "per_label": {
            l: {"precision": float(a), "recall": float(b), "f1": float(c), "support": int(d)}
            for l, a, b, c, d in zip(labels, lp, lr, lf, ls)
        },
    }
    path = os.path.join(ROOT, "tests", "fixtures", "spans.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")
    print("wrote", os.path.relpath(path, ROOT), out["overall"])


if __name__ == "__main__":
    main()
