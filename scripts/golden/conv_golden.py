#!/usr/bin/env python3
"""Golden 1-D convolution and pooling fixtures: PyTorch's `conv1d`, `max_pool1d`, `avg_pool1d`
(float64) on Keras's layout and padding rules, for trellis's tests.

Run from anywhere:  python3 scripts/golden/conv_golden.py
Writes tests/fixtures/conv1d.json (format: see lstm_golden.py). For each case `<c>`:
`<c>.x [B, T, F]` (batch-major, as Keras), `<c>.weight [O, F, k]` and `<c>.bias [O]` (PyTorch's
layout; convolutions only), `<c>.stride`, `<c>.dilation`, `<c>.pad_before`, `<c>.pad_after`
(convolutions) or `<c>.size`, `<c>.stride` (pooling), `<c>.R`, `<c>.output [B, T_out, O]`,
`<c>.loss` = sum(output * R), `<c>.grad_x`, `<c>.grad_weight`, `<c>.grad_bias`.

Keras's padding: "valid" none; "causal" dilation (k - 1) zeros before; "same" (TensorFlow's
rule) T_out = ceil(T / stride), total = max((T_out - 1) stride + dilation (k - 1) + 1 - T, 0),
total // 2 before and the rest after.
"""
import math

import torch
import torch.nn.functional as F

from lstm_golden import t, write

SEED = 20261204


def amounts(padding, T, k, stride, dilation):
    span = dilation * (k - 1)
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return span, 0
    out = math.ceil(T / stride)
    total = max((out - 1) * stride + span + 1 - T, 0)
    return total // 2, total - total // 2


def conv_case(tens, name, seed, T, Fin, O, k, stride, dilation, padding):
    torch.manual_seed(seed)
    B = 2
    x = torch.randn(B, T, Fin, requires_grad=True)
    w = (torch.randn(O, Fin, k) * 0.5).requires_grad_()
    b = torch.randn(O).requires_grad_()
    before, after = amounts(padding, T, k, stride, dilation)
    xp = F.pad(x.transpose(1, 2), (before, after))
    y = F.conv1d(xp, w, b, stride=stride, dilation=dilation).transpose(1, 2)
    R = torch.randn(*y.shape)
    loss = (y * R).sum()
    loss.backward()
    num = lambda v: t(torch.tensor(float(v)))
    for key, v in dict(x=t(x), weight=t(w), bias=t(b), stride=num(stride), dilation=num(dilation),
                       pad_before=num(before), pad_after=num(after), R=t(R), output=t(y),
                       loss=t(loss), grad_x=t(x.grad), grad_weight=t(w.grad),
                       grad_bias=t(b.grad)).items():
        tens[f"{name}.{key}"] = v


def pool_case(tens, name, seed, T, Fin, size, stride, kind):
    torch.manual_seed(seed)
    x = torch.randn(2, T, Fin, requires_grad=True)
    pool = F.max_pool1d if kind == "max" else F.avg_pool1d
    y = pool(x.transpose(1, 2), size, stride).transpose(1, 2)
    R = torch.randn(*y.shape)
    loss = (y * R).sum()
    loss.backward()
    num = lambda v: t(torch.tensor(float(v)))
    for key, v in dict(x=t(x), size=num(size), stride=num(stride), R=t(R), output=t(y),
                       loss=t(loss), grad_x=t(x.grad)).items():
        tens[f"{name}.{key}"] = v


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    tens = {}
    cases = [
        # name, T, F, O, k, stride, dilation, padding
        ("valid", 7, 3, 4, 3, 1, 1, "valid"),
        ("same_dilated", 7, 3, 4, 3, 1, 2, "same"),
        ("causal_strided", 8, 2, 3, 2, 2, 1, "causal"),
        ("same_strided", 7, 3, 2, 4, 3, 1, "same"),
        ("pointwise", 5, 4, 3, 1, 1, 1, "valid"),
    ]
    for i, c in enumerate(cases):
        conv_case(tens, c[0], SEED + i, *c[1:])
    pool_case(tens, "max_pool", SEED + 10, 7, 3, 2, 2, "max")
    pool_case(tens, "avg_pool", SEED + 11, 7, 3, 3, 1, "avg")
    write("conv1d.json", {
        "description": "conv1d / max_pool1d / avg_pool1d on [B, T, F] with Keras's padding; "
                       "loss = sum(output * R); grad_* = d loss / d *",
        "torch_version": torch.__version__,
        "cases": [c[0] for c in cases] + ["max_pool", "avg_pool"],
        "tensors": tens,
    })
