#!/usr/bin/env python3
"""Golden metric values from scikit-learn on fixed predictions, for trellis's epoch metrics.

Run from anywhere:  python3 scripts/golden/metrics_golden.py   (needs scikit-learn, numpy)
Writes tests/fixtures/metrics.json (the fixture format of lstm_golden.py).

binary: `scores [n, 1]` (probabilities, with tied values), `labels [n, 1]` (0/1):
    precision, recall, f1 (threshold: score > 0.5), auc (roc_auc_score, ties as sklearn),
    accuracy, perplexity = exp(log_loss).
multiclass: `probs [n, K]` (rows sum to 1), `ids [n]`: precision/recall/f1 with
    average="macro" (zero_division=0) of the argmax, accuracy, top_k (top_k_accuracy_score,
    k=2), perplexity = exp(log_loss).
Values are float64 in `tensors` as `<case>.<metric>` of shape [].
"""
import numpy as np
import torch
from sklearn import metrics as M

from lstm_golden import t, write

SEED = 20261201


def scalar(v):
    return t(torch.tensor(float(v), dtype=torch.float64))


def main():
    rng = np.random.default_rng(SEED)
    out = {}
    n = 200
    # Scores on a grid of 1/16 (exact in f32), so many ties across classes.
    labels = rng.integers(0, 2, n)
    scores = np.clip(np.round((0.35 * labels + rng.random(n) * 0.65) * 16) / 16, 1 / 16, 15 / 16)
    pred = (scores > 0.5).astype(int)
    b = {
        "precision": M.precision_score(labels, pred),
        "recall": M.recall_score(labels, pred),
        "f1": M.f1_score(labels, pred),
        "auc": M.roc_auc_score(labels, scores),
        "accuracy": M.accuracy_score(labels, pred),
        "perplexity": np.exp(M.log_loss(labels, scores)),
    }
    out["binary.scores"] = t(torch.tensor(scores).reshape(n, 1))
    out["binary.labels"] = t(torch.tensor(labels, dtype=torch.float64).reshape(n, 1))
    for k, v in b.items():
        out["binary." + k] = scalar(v)

    K = 5
    logits = rng.normal(size=(n, K)) * 1.5
    ids = rng.integers(0, K, n)
    logits[np.arange(n), ids] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs = probs.astype(np.float32).astype(np.float64)  # what trellis holds
    probs /= probs.sum(1, keepdims=True)
    am = probs.argmax(1)
    mc = {
        "precision": M.precision_score(ids, am, average="macro", zero_division=0),
        "recall": M.recall_score(ids, am, average="macro", zero_division=0),
        "f1": M.f1_score(ids, am, average="macro", zero_division=0),
        "accuracy": M.accuracy_score(ids, am),
        "top_k": M.top_k_accuracy_score(ids, probs, k=2, labels=np.arange(K)),
        "perplexity": np.exp(M.log_loss(ids, probs, labels=np.arange(K))),
    }
    out["multiclass.probs"] = t(torch.tensor(probs))
    out["multiclass.ids"] = t(torch.tensor(ids, dtype=torch.float64))
    for k, v in mc.items():
        out["multiclass." + k] = scalar(v)
    write("metrics.json", {
        "description": "epoch metrics by scikit-learn on fixed predictions",
        "sklearn_version": __import__("sklearn").__version__,
        "tensors": out,
    })


if __name__ == "__main__":
    main()
