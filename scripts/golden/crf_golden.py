#!/usr/bin/env python3
"""Golden linear-chain CRF fixtures from PyTorch (float64 autograd), for trellis's tests.

Run with torch and pytorch-crf (PyPI `pytorch-crf` 0.7.2, MIT) installed:
    python3 scripts/golden/crf_golden.py
Writes tests/fixtures/crf.json (format: see lstm_golden.py).

The CRF (pytorch-crf's semantics; A[i, j] scores tag i followed by tag j):
    score(y) = start[y_1] + sum_k e[t_k, y_k] + sum_{k>1} A[y_{k-1}, y_k] + end[y_n]
over a row's real steps t_1 < ... < t_n (mask 1), nll(y) = logsumexp_{y'} score(y') - score(y).
Computed here by enumerating every path (independent of the forward algorithm trellis builds),
then checked against `torchcrf.CRF` on the rows it takes (its mask must start with a real step
and be contiguous), so the fixture is pytorch-crf's.

Cases (tensors prefixed `<case>.`):
- `chain`: emissions e [4, 5, 3], transitions [3, 3], start [3], end [3]; mask [4, 5] with rows
  all real, post-padded, pre-padded, with holes; tags one-hot [4, 5, 3]; R [4, 1].
  `nll [4, 1]`, `decoded [4, 5, 3]` (one-hot best path, zero on padding),
  `loss = sum(nll * R)`, `grad_e`, `grad_transitions`, `grad_start`, `grad_end`.
- `layer`: x [3, 4, 5] (zero rows after lengths 4, 2, 3: Keras's Masking(0) marks them),
  Dense weight [4, 5] / bias [4] (torch.nn.Linear), the CRF's transitions / start / end,
  labels [3, 4] (tag ids; padding 0). `loss` = the mean nll over the 3 sequences,
  `decoded [3, 4, 4]`, gradients of every parameter.
"""
import itertools

import torch
from torchcrf import CRF

from lstm_golden import t, write

SEED = 20261203


def score(e, a, s, f, real, path):
    """The score of `path` over the real steps `real` of one row's emissions `e [T, K]`."""
    tot = s[path[0]] + f[path[-1]]
    for i, (step, y) in enumerate(zip(real, path)):
        tot = tot + e[step, y]
        if i > 0:
            tot = tot + a[path[i - 1], y]
    return tot


def brute(e, a, s, f, mask, tags):
    """nll [B, 1] and decoded one-hot [B, T, K] by enumerating every path of every row."""
    B, T, K = e.shape
    nll, dec = [], torch.zeros(B, T, K, dtype=torch.float64)
    for b in range(B):
        real = [step for step in range(T) if mask[b, step] > 0]
        if not real:
            nll.append(torch.zeros((), dtype=torch.float64))
            continue
        paths = list(itertools.product(range(K), repeat=len(real)))
        scores = torch.stack([score(e[b], a, s, f, real, p) for p in paths])
        gold = [int(tags[b, step]) for step in real]
        nll.append(torch.logsumexp(scores, 0) - score(e[b], a, s, f, real, gold))
        best = paths[int(torch.argmax(scores.detach()))]
        for step, y in zip(real, best):
            dec[b, step, y] = 1.0
    return torch.stack(nll).reshape(B, 1), dec


def torchcrf_agrees(e, a, s, f, mask, tags, nll, dec, rows):
    """pytorch-crf's nll and Viterbi path on `rows` (contiguous masks from step 0) equal ours."""
    K = e.shape[2]
    crf = CRF(K, batch_first=True).double()
    with torch.no_grad():
        crf.transitions.copy_(a)
        crf.start_transitions.copy_(s)
        crf.end_transitions.copy_(f)
    m = mask[rows].bool()
    llh = crf(e[rows], tags[rows].long(), m, reduction="none")
    assert torch.allclose(-llh, nll[rows, 0], atol=1e-12), (-llh, nll[rows, 0])
    for r, path in zip(rows, crf.decode(e[rows], m)):
        assert dec[r].argmax(-1)[: len(path)].tolist() == path, (r, path)


def chain():
    torch.manual_seed(SEED)
    B, T, K = 4, 5, 3
    leaf = lambda *shape: (torch.rand(*shape, dtype=torch.float64) * 4 - 2).requires_grad_()
    e, a, s, f = leaf(B, T, K), leaf(K, K), leaf(K), leaf(K)
    mask = torch.tensor(
        [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 0, 1]], dtype=torch.float64
    )
    tags = torch.randint(0, K, (B, T))
    R = torch.rand(B, 1, dtype=torch.float64) * 2 - 1
    nll, dec = brute(e, a, s, f, mask, tags)
    torchcrf_agrees(e, a, s, f, mask, tags, nll, dec, [0, 1])
    loss = (nll * R).sum()
    loss.backward()
    onehot = torch.nn.functional.one_hot(tags, K).double()
    return {
        "chain.e": t(e), "chain.transitions": t(a), "chain.start": t(s), "chain.end": t(f),
        "chain.mask": t(mask), "chain.tags": t(onehot), "chain.R": t(R),
        "chain.nll": t(nll), "chain.decoded": t(dec), "chain.loss": t(loss),
        "chain.grad_e": t(e.grad), "chain.grad_transitions": t(a.grad),
        "chain.grad_start": t(s.grad), "chain.grad_end": t(f.grad),
    }


def layer():
    torch.manual_seed(SEED + 1)
    B, T, F, K = 3, 4, 5, 4
    lengths = [4, 2, 3]
    x = torch.randn(B, T, F, dtype=torch.float64)
    mask = torch.zeros(B, T, dtype=torch.float64)
    for b, n in enumerate(lengths):
        x[b, n:] = 0.0
        mask[b, :n] = 1.0
    dense = torch.nn.Linear(F, K).double()
    crf = CRF(K, batch_first=True).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.uniform_(-1.0, 1.0)
    labels = torch.randint(0, K, (B, T)) * mask.long()
    e = dense(x)
    nll, dec = brute(e, crf.transitions, crf.start_transitions, crf.end_transitions, mask, labels)
    llh = crf(e, labels, mask.bool(), reduction="none")
    assert torch.allclose(-llh, nll[:, 0], atol=1e-12)
    loss = nll.mean()
    loss.backward()
    out = {
        "layer.x": t(x), "layer.labels": t(labels), "layer.loss": t(loss), "layer.decoded": t(dec),
    }
    for name, p in [("weight", dense.weight), ("bias", dense.bias),
                    ("transitions", crf.transitions), ("start_transitions", crf.start_transitions),
                    ("end_transitions", crf.end_transitions)]:
        out[f"layer.{name}"] = t(p)
        out[f"layer.grad_{name}"] = t(p.grad)
    return out


def main():
    tensors = {**chain(), **layer()}
    write("crf.json", {
        "description": "linear-chain CRF (pytorch-crf semantics): nll by enumerating every "
                       "path, Viterbi path, gradients by torch autograd (float64)",
        "torch_version": torch.__version__,
        "config": {"seed": SEED},
        "tensors": tensors,
    })


if __name__ == "__main__":
    main()
