#!/usr/bin/env python3
"""Golden layer-normalisation fixtures: PyTorch's `nn.functional.layer_norm` (float64), which
is Keras's `LayerNormalization` (biased variance, epsilon inside the root), for trellis's tests.

Run from anywhere:  python3 scripts/golden/layernorm_golden.py
Writes tests/fixtures/layernorm.json (Keras's epsilon 1e-3, gamma and beta) and
layernorm_plain.json (PyTorch's epsilon 1e-5, neither) (format: see lstm_golden.py).
Tensors: x [B, T, F], epsilon [], weight / bias [F] (when used), R [B, T, F], output, loss = sum(output * R),
grad_x, grad_weight, grad_bias.
"""
import torch

from lstm_golden import t, write

SEED = 20261203


def case(name, seed, eps, affine):
    # Epsilon as the f32 model holds it (1e-3 is not an f32), so f64 checks can be tight.
    eps = float(torch.tensor(eps, dtype=torch.float32))
    torch.manual_seed(seed)
    B, T, F = 3, 4, 5
    # Rows on different scales and offsets, one nearly constant (where epsilon matters).
    x = torch.randn(B, T, F) * torch.tensor([0.5, 3.0, 1.0]).reshape(3, 1, 1) + 2.0
    x[1, 2] = 0.7 + 1e-3 * torch.randn(F)
    x.requires_grad_()
    weight = (0.5 + torch.rand(F)).requires_grad_() if affine else None
    bias = torch.randn(F).requires_grad_() if affine else None
    R = torch.randn(B, T, F)
    y = torch.nn.functional.layer_norm(x, (F,), weight, bias, eps)
    loss = (y * R).sum()
    loss.backward()
    tens = dict(x=t(x), epsilon=t(torch.tensor(eps)), R=t(R), output=t(y), loss=t(loss),
                grad_x=t(x.grad))
    if affine:
        tens.update(weight=t(weight), bias=t(bias), grad_weight=t(weight.grad),
                    grad_bias=t(bias.grad))
    write(name, {
        "description": f"torch.nn.functional.layer_norm over the last axis, eps {eps}, "
                       f"{'with' if affine else 'without'} weight and bias; "
                       "loss = sum(output * R); grad_* = d loss / d *",
        "torch_version": torch.__version__,
        "config": {"B": B, "T": T, "F": F, "epsilon": eps, "affine": affine},
        "tensors": tens,
    })


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    case("layernorm.json", SEED, 1e-3, True)
    case("layernorm_plain.json", SEED + 1, 1e-5, False)
