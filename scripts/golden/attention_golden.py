#!/usr/bin/env python3
"""Golden attention fixtures: Keras's `Attention` (dot) and `AdditiveAttention` semantics,
computed in PyTorch (float64), for trellis's tests.

Run from anywhere:  python3 scripts/golden/attention_golden.py
Writes tests/fixtures/attention_{dot,dot_masked,additive,additive_masked}.json (format: see
lstm_golden.py). Tensors: q [B, Tq, D], k [B, Tk, D], v [B, Tk, Dv], scale (when used),
key_mask [B, Tk] / query_mask [B, Tq] (when used, 1 = real), R [B, Tq, Dv], R2 [B, Tq, Tk],
context, weights, loss = sum(context * R) + sum(weights * R2), grad_{q,k,v,scale}.

The formula (Keras 3, keras/src/layers/attention/attention.py and additive_attention.py):

    dot:       s = q @ k^T                      (times the scalar `scale` when use_scale)
    additive:  s = sum_d scale[d] * tanh(q[b,i,d] + k[b,j,d])   (scale = 1 without use_scale)
    masked:    s = s - 1e9 * (1 - key_mask)[:, None, :]
    w = softmax(s, axis=-1)
    w = w * key_mask[:, None, :]     # trellis: padding keys get zero weight in every row; only
                                     # changes a row whose keys are all padding (Keras: uniform)
    context = (w @ v) * query_mask[:, :, None]
"""
import torch

from lstm_golden import t, write

SEED = 20261202


def attention(q, k, v, kind, scale, key_mask, query_mask):
    if kind == "dot":
        s = q @ k.transpose(1, 2)
        if scale is not None:
            s = s * scale
    else:
        sc = scale if scale is not None else 1.0
        s = (sc * torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3))).sum(-1)
    if key_mask is not None:
        s = s - 1e9 * (1.0 - key_mask).unsqueeze(-2)
    w = torch.softmax(s, dim=-1)
    if key_mask is not None:
        w = w * key_mask.unsqueeze(-2)
    c = w @ v
    if query_mask is not None:
        c = c * query_mask.unsqueeze(-1)
    return c, w


def lengths_mask(lengths, T):
    return torch.tensor([[1.0 if s < n else 0.0 for s in range(T)] for n in lengths])


def case(name, kind, seed, use_scale, masked):
    torch.manual_seed(seed)
    B, Tq, Tk, D, Dv = 3, 3, 4, 3, 2
    q = torch.randn(B, Tq, D, requires_grad=True)
    k = torch.randn(B, Tk, D, requires_grad=True)
    v = torch.randn(B, Tk, Dv, requires_grad=True)
    scale = None
    if use_scale:
        shape = [] if kind == "dot" else [D]
        scale = (0.5 + torch.rand(shape)).requires_grad_()
    key_mask = lengths_mask([4, 2, 0], Tk) if masked else None  # sample 2: no real key
    query_mask = lengths_mask([3, 2, 3], Tq) if masked else None
    R = torch.randn(B, Tq, Dv)
    R2 = torch.randn(B, Tq, Tk)
    c, w = attention(q, k, v, kind, scale, key_mask, query_mask)
    loss = (c * R).sum() + (w * R2).sum()
    loss.backward()
    tens = dict(q=t(q), k=t(k), v=t(v), R=t(R), R2=t(R2), context=t(c), weights=t(w),
                loss=t(loss), grad_q=t(q.grad), grad_k=t(k.grad), grad_v=t(v.grad))
    if scale is not None:
        tens.update(scale=t(scale), grad_scale=t(scale.grad))
    if masked:
        tens.update(key_mask=t(key_mask), query_mask=t(query_mask))
    write(name, {
        "description": f"Keras {'Attention' if kind == 'dot' else 'AdditiveAttention'}"
                       f"(use_scale={use_scale}) semantics{', key and query masks' if masked else ''}"
                       "; loss = sum(context * R) + sum(weights * R2); grad_* = d loss / d *",
        "torch_version": torch.__version__,
        "config": {"kind": kind, "use_scale": use_scale, "masked": masked,
                   "B": B, "Tq": Tq, "Tk": Tk, "D": D, "Dv": Dv},
        "tensors": tens,
    })


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    case("attention_dot.json", "dot", SEED, False, False)
    case("attention_dot_masked.json", "dot", SEED + 1, True, True)
    case("attention_additive.json", "additive", SEED + 2, False, False)
    case("attention_additive_masked.json", "additive", SEED + 3, True, True)
