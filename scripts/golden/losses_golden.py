#!/usr/bin/env python3
"""Golden values for trellis's losses (Keras semantics) from PyTorch: each loss's batch mean
and its gradient with respect to the model output (probabilities or logits).

Run from anywhere:  python3 scripts/golden/losses_golden.py
Writes tests/fixtures/losses.json (the fixture format of lstm_golden.py: float64, fixed seed).

Each case `<name>` has tensors `<name>.input [n, k]` (the output the loss reads: logits when
from_logits, else probabilities), `<name>.target` (`[n, k]`, or `[n]` class ids for the sparse
loss), `<name>.loss []` (mean over samples and units) and `<name>.grad [n, k]` (d loss / d
input); `config` lists each case's loss and options. Keras's forms, by PyTorch:
- binary cross-entropy: BCEWithLogits on logits; on probabilities -(y log p + (1-y) log(1-p))
  (Keras clips p to [1e-7, 1-1e-7]; the inputs here stay inside); label smoothing
  y (1 - s) + s / 2; soft labels as given;
- (sparse) categorical cross-entropy: cross_entropy on logits (soft targets and
  label_smoothing as PyTorch's, which is Keras's y (1 - s) + s / K); on probabilities
  -sum y log(p / sum p);
- Huber: huber_loss(delta); mean squared error: mse_loss; mean absolute error: l1_loss.
"""
import torch
import torch.nn.functional as F

from lstm_golden import t, write

SEED = 20261201
N, K = 5, 4


def case(cases, tensors, name, cfg, inp, target, fn):
    x = inp.clone().requires_grad_()
    loss = fn(x, target)
    (g,) = torch.autograd.grad(loss, x)
    cases[name] = cfg
    tensors[name + ".input"] = t(inp)
    tensors[name + ".target"] = t(target)
    tensors[name + ".loss"] = t(loss)
    tensors[name + ".grad"] = t(g)


def main():
    torch.manual_seed(SEED)
    d = torch.float64
    cases, tensors = {}, {}
    z1 = 3.0 * torch.randn(N, 1, dtype=d)
    z1[0, 0] = 40.0  # far in the tail: the stable form stays exact
    y1 = torch.randint(0, 2, (N, 1)).to(d)
    soft = torch.rand(N, 1, dtype=d)
    p1 = torch.sigmoid(torch.randn(N, 1, dtype=d))
    zk = 2.0 * torch.randn(N, K, dtype=d)
    ids = torch.randint(0, K, (N,))
    onehot = F.one_hot(ids, K).to(d)
    soft_k = torch.softmax(torch.randn(N, K, dtype=d), -1)
    pk = torch.softmax(torch.randn(N, K, dtype=d), -1) * 0.9  # rows not summing to 1
    pred = torch.randn(N, K, dtype=d)
    reg = pred + 1.5 * torch.randn(N, K, dtype=d)

    def bce_logits(s=0.0):
        return lambda z, y: F.binary_cross_entropy_with_logits(z, y * (1 - s) + 0.5 * s)

    def bce_probs(p, y):
        return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()

    def ce_logits(s=0.0):
        return lambda z, y: F.cross_entropy(z, y, label_smoothing=s)

    def cce_probs(p, y):
        q = p / p.sum(-1, keepdim=True)
        return -(y * torch.log(q)).sum(-1).mean()

    bce = "BinaryCrossentropy"
    sparse = "SparseCategoricalCrossentropy"
    cce = "CategoricalCrossentropy"
    c = lambda loss, logits=False, s=0.0, delta=1.0: {
        "loss": loss, "from_logits": logits, "label_smoothing": s, "delta": delta}
    case(cases, tensors, "bce_logits", c(bce, True), z1, y1, bce_logits())
    case(cases, tensors, "bce_logits_soft", c(bce, True), z1, soft, bce_logits())
    case(cases, tensors, "bce_logits_smooth", c(bce, True, 0.2), z1, y1, bce_logits(0.2))
    case(cases, tensors, "bce_probs_soft", c(bce), p1, soft, bce_probs)
    case(cases, tensors, "sparse_logits", c(sparse, True), zk, ids, ce_logits())
    case(cases, tensors, "sparse_logits_smooth", c(sparse, True, 0.1), zk, ids, ce_logits(0.1))
    case(cases, tensors, "cce_logits_onehot", c(cce, True), zk, onehot, ce_logits())
    case(cases, tensors, "cce_logits_soft", c(cce, True), zk, soft_k, ce_logits())
    case(cases, tensors, "cce_logits_smooth", c(cce, True, 0.3), zk, onehot, ce_logits(0.3))
    case(cases, tensors, "cce_probs_soft", c(cce), pk, soft_k, cce_probs)
    for delta in (1.0, 0.5, 2.5):
        case(cases, tensors, f"huber_{delta}", c("Huber", delta=delta), pred, reg,
             lambda p, y, dl=delta: F.huber_loss(p, y, delta=dl))
    case(cases, tensors, "mse", c("MeanSquaredError"), pred, reg, F.mse_loss)
    case(cases, tensors, "mae", c("MeanAbsoluteError"), pred, reg, F.l1_loss)
    write("losses.json", {
        "description": "trellis losses (Keras semantics) by PyTorch: mean loss and its "
                       "gradient w.r.t. the input, per case",
        "torch_version": torch.__version__,
        "config": cases,
        "tensors": tensors,
    })


if __name__ == "__main__":
    main()
