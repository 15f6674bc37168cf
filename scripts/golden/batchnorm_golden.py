#!/usr/bin/env python3
"""Golden batch-normalisation fixtures: PyTorch's `nn.functional.batch_norm` (float64) on
features last, in training (the batch's moments) and in inference (given moving moments), for
trellis's tests. Keras's `BatchNormalization` normalises the same way; its moving averages
(momentum 0.99, biased variance) are written out by the formula, as PyTorch's differ (momentum
0.1 the other way round, unbiased running variance).

Run from anywhere:  python3 scripts/golden/batchnorm_golden.py
Writes tests/fixtures/batchnorm.json (a sequence [B, T, F], Keras's epsilon 1e-3, gamma and
beta), batchnorm_plain.json (rows [B, F], epsilon 1e-5, neither) and batchnorm_masked.json
(a sequence with a 0/1 `weights` [B, T, 1] marking padding; Keras's masked moments,
sum(w x) / (sum(w) + 1e-7), written by formula as PyTorch has none) (format: see
lstm_golden.py). Tensors: x, epsilon [], weight / bias [F] (when used), R, output (training),
loss = sum(output * R), grad_x, grad_weight, grad_bias, batch_mean / batch_var [F] (biased),
moving_mean / moving_var [F] (the moments inference reads), inference_output (x normalised by
them), momentum [], new_moving_mean / new_moving_var [F] (Keras's update after this batch).
"""
import torch

from lstm_golden import t, write

SEED = 20261204
MOMENTUM = 0.99


def masked_moments(rows, w):
    """Keras's masked moments over rows [N, F] with weights [N, 1]."""
    count = w.sum() + 1e-7
    mean = (w * rows).sum(0) / count
    var = (w * (rows - mean) ** 2).sum(0) / count
    return mean, var


def case(name, seed, shape, eps, affine, masked=False):
    # Epsilon as the f32 model holds it (1e-3 is not an f32), so f64 checks can be tight.
    eps = float(torch.tensor(eps, dtype=torch.float32))
    momentum = float(torch.tensor(MOMENTUM, dtype=torch.float32))
    torch.manual_seed(seed)
    F = shape[-1]
    # Features on different scales and offsets.
    x = torch.randn(*shape) * (0.5 + 2.0 * torch.rand(F)) + torch.randn(F) * 3.0
    x.requires_grad_()
    weight = (0.5 + torch.rand(F)).requires_grad_() if affine else None
    bias = torch.randn(F).requires_grad_() if affine else None
    R = torch.randn(*shape)
    # batch_norm takes channels at axis 1: features last -> [N, F] rows.
    rows = x.reshape(-1, F)
    if masked:
        # Each sequence's last steps are padding: lengths 3, 1, 2, 3.
        lengths = torch.tensor([3, 1, 2, 3])
        weights = (torch.arange(shape[1])[None, :] < lengths[:, None]).double()[..., None]
        w = weights.reshape(-1, 1)
        mean, var = masked_moments(rows, w)
        y = (rows - mean) / torch.sqrt(var + eps) * weight + bias
    else:
        y = torch.nn.functional.batch_norm(rows, None, None, weight, bias, True, 0.0, eps)
    y = y.reshape(shape)
    loss = (y * R).sum()
    loss.backward()
    with torch.no_grad():
        if masked:
            mean, var = masked_moments(rows, w)
        else:
            mean = rows.mean(0)
            var = rows.var(0, unbiased=False)
        moving_mean = torch.randn(F)
        moving_var = 0.5 + torch.rand(F)
        inf = torch.nn.functional.batch_norm(rows, moving_mean, moving_var, weight, bias,
                                             False, 0.0, eps).reshape(shape)
        new_mean = momentum * moving_mean + (1 - momentum) * mean
        new_var = momentum * moving_var + (1 - momentum) * var
    tens = dict(x=t(x), epsilon=t(torch.tensor(eps)), R=t(R), output=t(y), loss=t(loss),
                grad_x=t(x.grad), batch_mean=t(mean), batch_var=t(var),
                moving_mean=t(moving_mean), moving_var=t(moving_var), inference_output=t(inf),
                momentum=t(torch.tensor(momentum)), new_moving_mean=t(new_mean),
                new_moving_var=t(new_var))
    if masked:
        tens.update(weights=t(weights))
    if affine:
        tens.update(weight=t(weight), bias=t(bias), grad_weight=t(weight.grad),
                    grad_bias=t(bias.grad))
    write(name, {
        "description": f"torch.nn.functional.batch_norm over every axis but the last, eps {eps}, "
                       f"{'with' if affine else 'without'} weight and bias; training output, "
                       "loss = sum(output * R), grad_* = d loss / d *; inference output from "
                       "moving_mean / moving_var; Keras's moving-average update at momentum "
                       f"{momentum}",
        "torch_version": torch.__version__,
        "config": {"shape": list(shape), "epsilon": eps, "affine": affine,
                   "momentum": momentum, "masked": masked},
        "tensors": tens,
    })


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    case("batchnorm.json", SEED, (4, 3, 5), 1e-3, True)
    case("batchnorm_plain.json", SEED + 1, (6, 4), 1e-5, False)
    case("batchnorm_masked.json", SEED + 2, (4, 3, 5), 1e-3, True, masked=True)
