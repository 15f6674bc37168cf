#!/usr/bin/env python3
"""Golden multi-head attention fixtures: Keras's `MultiHeadAttention` by its formula in PyTorch
autograd (float64), checked against `torch.nn.MultiheadAttention` where the two coincide, for
trellis's tests.

Run from anywhere:  python3 scripts/golden/mha_golden.py
Writes tests/fixtures/mha.json (format: see lstm_golden.py). The formula (h heads):

    q = (query Wq^T + bq) / sqrt(key_dim);  k = key Wk^T + bk;  v = value Wv^T + bv
    s[b,h,i,j] = q_h[b,i] . k_h[b,j] - 1e9 (1 - m[b,i,j]);  w = softmax_j(s) m
    m = key_mask[b,j] (and j <= i when causal);  c_h = w v_h  (times query_mask[b,i])
    out = concat_h(c_h) Wo^T + bo

Cases (tensors prefixed `<case>.`):
- `cross`: query [2, 3, 5], value [2, 4, 4], key [2, 4, 3]; 2 heads, key_dim 3, value_dim 2,
  output 6; no masks.
- `self_masked_causal`: x [3, 4, 4] attending to itself, zero rows after lengths 4, 2, 3
  (padding, masked as keys and queries), causal; 2 heads, key_dim 2, output 4.
Each: inputs, `query_weight`, `query_bias`, ... `output_bias` (PyTorch layout [out, in]),
`target`, `output`, `weights [B, h, Tq, Tk]`, `loss` = mean((output - target)^2),
`grad_<parameter>`.
"""
import torch

from lstm_golden import t, write

SEED = 20261203
NAMES = ["query", "key", "value", "output"]


def f32(x):
    return x.float().double()


def mha(q_in, v_in, k_in, p, h, kd, vd, key_mask=None, query_mask=None, causal=False):
    q = (q_in @ p["query_weight"].T + p["query_bias"]) / kd ** 0.5
    k = k_in @ p["key_weight"].T + p["key_bias"]
    v = v_in @ p["value_weight"].T + p["value_bias"]
    B, Tq, Tk = q.shape[0], q.shape[1], k.shape[1]
    q = q.view(B, Tq, h, kd).transpose(1, 2)
    k = k.view(B, Tk, h, kd).transpose(1, 2)
    v = v.view(B, Tk, h, vd).transpose(1, 2)
    m = torch.ones(B, Tq, Tk)
    if key_mask is not None:
        m = m * key_mask[:, None, :]
    if causal:
        m = m * torch.tril(torch.ones(Tq, Tk))
    s = q @ k.transpose(-1, -2) - 1e9 * (1 - m)[:, None]
    w = torch.softmax(s, -1) * m[:, None]
    c = w @ v
    if query_mask is not None:
        c = c * query_mask[:, None, :, None]
    c = c.transpose(1, 2).reshape(B, Tq, h * vd)
    return c @ p["output_weight"].T + p["output_bias"], w


def params(dq, dk, dv, h, kd, vd, out):
    shapes = {"query": (h * kd, dq), "key": (h * kd, dk), "value": (h * vd, dv),
              "output": (out, h * vd)}
    p = {}
    for n in NAMES:
        rows, cols = shapes[n]
        p[n + "_weight"] = f32(torch.randn(rows, cols) * 0.5).requires_grad_()
        p[n + "_bias"] = f32(torch.randn(rows) * 0.2).requires_grad_()
    return p


def case(name, inputs, p, h, kd, vd, **masks):
    out, w = mha(*inputs, p, h, kd, vd, **masks)
    target = f32(torch.rand(out.shape))
    loss = ((out - target) ** 2).mean()
    loss.backward()
    tens = {"target": t(target), "output": t(out), "weights": t(w), "loss": t(loss)}
    for k, v in p.items():
        tens[k] = t(v)
        tens["grad_" + k] = t(v.grad)
    return {f"{name}.{k}": v for k, v in tens.items()}


def check_against_torch():
    """The formula is torch.nn.MultiheadAttention where their options meet."""
    E, h = 4, 2
    x = torch.randn(2, 3, E)
    p = params(E, E, E, h, E // h, E // h, E)
    ref = torch.nn.MultiheadAttention(E, h, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([p[n + "_weight"] for n in NAMES[:3]]))
        ref.in_proj_bias.copy_(torch.cat([p[n + "_bias"] for n in NAMES[:3]]))
        ref.out_proj.weight.copy_(p["output_weight"])
        ref.out_proj.bias.copy_(p["output_bias"])
    want, want_w = ref(x, x, x, average_attn_weights=False)
    got, got_w = mha(x, x, x, p, h, E // h, E // h)
    assert torch.allclose(got, want, atol=1e-12), (got - want).abs().max()
    assert torch.allclose(got_w, want_w, atol=1e-12)


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(SEED)
    check_against_torch()
    tens = {}
    q, v, k = f32(torch.randn(2, 3, 5)), f32(torch.randn(2, 4, 4)), f32(torch.randn(2, 4, 3))
    p = params(5, 3, 4, 2, 3, 2, 6)
    tens.update({"cross.query": t(q), "cross.value": t(v), "cross.key": t(k)})
    tens.update(case("cross", (q, v, k), p, 2, 3, 2))
    lengths = [4, 2, 3]
    mask = torch.tensor([[float(s < n) for s in range(4)] for n in lengths])
    x = f32(torch.randn(3, 4, 4)) * mask[:, :, None]
    p = params(4, 4, 4, 2, 2, 2, 4)
    tens["self_masked_causal.x"] = t(x)
    tens.update(case("self_masked_causal", (x, x, x), p, 2, 2, 2, key_mask=mask,
                     query_mask=mask, causal=True))
    write("mha.json", {
        "description": "Keras MultiHeadAttention by formula (see scripts/golden/mha_golden.py); "
                       "loss = mean((output - target)^2); grad_* = d loss / d *",
        "torch_version": torch.__version__,
        "config": {"cross": {"num_heads": 2, "key_dim": 3, "value_dim": 2, "output_shape": 6},
                   "self_masked_causal": {"num_heads": 2, "key_dim": 2, "lengths": lengths,
                                          "causal": True}},
        "tensors": tens,
    })
