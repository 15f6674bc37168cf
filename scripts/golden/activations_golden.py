#!/usr/bin/env python3
"""Golden activation fixtures: `Dense(4, activation)` on rows, in PyTorch (float64), for every
activation trellis offers by Keras's name (`torch.nn.functional`'s function of the same
definition), for trellis's tests.

Run from anywhere:  python3 scripts/golden/activations_golden.py
Writes tests/fixtures/activations.json (format: see lstm_golden.py). Tensors: x [6, 5],
weight [4, 5], bias [4], target [6, 4] (all f32-representable), and per case `{case}.output`
[6, 4], `{case}.loss` (MSE, the mean over every element), `{case}.grad_weight`,
`{case}.grad_bias`; and at the kinks `kinks.z` = [-3, 0, 3, 6], `kinks.{case}.grad` =
d sum(act(z)) / dz (PyTorch's choice at the points where a function bends). Cases are Keras's
names; `elu_0.5` and `leaky_relu_0.01` set the parameter.
"""
import torch
import torch.nn.functional as F

from lstm_golden import t, write

SEED = 20261203

CASES = {
    "linear": lambda z: z,
    "sigmoid": torch.sigmoid,
    "relu": F.relu,
    "tanh": torch.tanh,
    "softmax": lambda z: F.softmax(z, dim=-1),
    "gelu": F.gelu,
    "silu": F.silu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "elu": lambda z: F.elu(z, alpha=1.0),
    "elu_0.5": lambda z: F.elu(z, alpha=0.5),
    "selu": F.selu,
    "leaky_relu": lambda z: F.leaky_relu(z, negative_slope=0.2),
    "leaky_relu_0.01": lambda z: F.leaky_relu(z, negative_slope=0.01),
    "relu6": F.relu6,
    "hard_sigmoid": F.hardsigmoid,
    "hard_silu": F.hardswish,
    "exponential": torch.exp,
    "mish": F.mish,
}


def f32(x):
    return x.float().double()


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(SEED)
    # Pre-activations spread over about [-9, 9]: every piece of every function (relu6's and
    # the hard sigmoid's flat ends, ELU's exponential side) is reached.
    x = f32(torch.randn(6, 5) * 2.0)
    weight0 = f32(torch.randn(4, 5) * 0.8)
    bias0 = f32(torch.randn(4) * 0.5)
    target = f32(torch.rand(6, 4))
    tens = dict(x=t(x), weight=t(weight0), bias=t(bias0), target=t(target))
    for name, act in CASES.items():
        w = weight0.clone().requires_grad_()
        b = bias0.clone().requires_grad_()
        y = act(x @ w.T + b)
        loss = ((y - target) ** 2).mean()
        loss.backward()
        tens.update({f"{name}.output": t(y), f"{name}.loss": t(loss),
                     f"{name}.grad_weight": t(w.grad), f"{name}.grad_bias": t(b.grad)})
    kinks = torch.tensor([-3.0, 0.0, 3.0, 6.0])
    tens["kinks.z"] = t(kinks)
    for name, act in CASES.items():
        z = kinks.clone().requires_grad_()
        act(z).sum().backward()
        tens[f"kinks.{name}.grad"] = t(z.grad)
    write("activations.json", {
        "description": "Dense(4, activation) = act(x W^T + b); loss = mean((output - target)^2); "
                       "grad_* = d loss / d *; one case per activation (Keras's name)",
        "torch_version": torch.__version__,
        "config": {"cases": list(CASES)},
        "tensors": tens,
    })
