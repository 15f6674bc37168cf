#!/usr/bin/env python3
"""Golden LSTM fixtures from PyTorch, for trellis's tests.

Run from anywhere:  python3 scripts/golden/lstm_golden.py
Writes tests/fixtures/{lstm_t3,lstm_t3_batch_first,lstm2_t5_grad}.json at the repo root.
Deterministic: fixed torch seed, float64 throughout, CPU only.

File format (every fixture)
---------------------------
One JSON object:

    {
      "description": "<free text: what module, what loss>",
      "torch_version": "2.x",
      "config": {"input_size": .., "hidden_size": .., "num_layers": .., "seq_len": T,
                 "batch": B, "batch_first": bool, ...},
      "tensors": {
        "<name>": {"shape": [d0, d1, ...], "data": [v0, v1, ...]},
        ...
      }
    }

`data` is the tensor flattened in row-major (C) order, float64 written with Python's repr
(shortest string that round-trips exactly); a scalar has shape []. Tensor names follow
PyTorch: weight_ih_l{k} [4H, in_k], weight_hh_l{k} [4H, H], bias_ih_l{k} [4H],
bias_hh_l{k} [4H] (gate order i, f, g, o). trellis uses one bias = bias_ih + bias_hh.
h_n / c_n are PyTorch's [num_layers, B, H].

lstm_t3.json / lstm_t3_batch_first.json (nn.LSTM(3, 2), T=3, B=2; the same weights and input,
the batch-first file holds x and the outputs transposed to [B, T, .]):
    x, output, h_n, c_n           zero initial state
    h0, c0                        a random initial state, [1, B, H]
    output_h0, h_n_h0, c_n_h0     the results from (h0, c0)

lstm2_t5_grad.json (nn.LSTM(4, 3, num_layers=2), T=5, B=3, time-major, zero initial state):
    parameters (l0 and l1), x [T, B, 4], R [T, B, 3], R2 [B, 3],
    output [T, B, 3], h_n, c_n [2, B, 3], loss [] = sum(output * R) + sum(h_n[-1] * R2),
    grad_<param> for every parameter, grad_x.
"""
import json
import os

import torch

SEED = 20240611
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures")


def t(x):
    x = x.detach().to(torch.float64).contiguous()
    return {"shape": list(x.shape), "data": [float(v) for v in x.reshape(-1).tolist()]}


def write(name, obj):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name)
    # One tensor a line: readable diffs, exact float64 (json writes floats with repr).
    head = {k: v for k, v in obj.items() if k != "tensors"}
    lines = [json.dumps(k) + ": " + json.dumps(v) for k, v in head.items()]
    tens = ",\n  ".join(json.dumps(k) + ": " + json.dumps(v) for k, v in obj["tensors"].items())
    lines.append('"tensors": {\n  ' + tens + "\n}")
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    assert json.loads(text) == json.loads(json.dumps(obj))
    with open(path, "w") as f:
        f.write(text)
    print("wrote", os.path.relpath(path, ROOT))


def params(m):
    return {k: t(v) for k, v in m.named_parameters()}


def lstm_t3():
    torch.manual_seed(SEED)
    T, B, I, H = 3, 2, 3, 2
    m = torch.nn.LSTM(input_size=I, hidden_size=H).double()
    # Default init is U(-1/sqrt(H), 1/sqrt(H)); redraw wider so every gate is exercised.
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(-1.0, 1.0)
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = 0.5 * torch.randn(1, B, H, dtype=torch.float64)
    c0 = 0.5 * torch.randn(1, B, H, dtype=torch.float64)
    with torch.no_grad():
        out, (hn, cn) = m(x)
        out2, (hn2, cn2) = m(x, (h0, c0))
    cfg = {"input_size": I, "hidden_size": H, "num_layers": 1, "seq_len": T, "batch": B}
    tens = params(m)
    tens.update(
        x=t(x), output=t(out), h_n=t(hn), c_n=t(cn),
        h0=t(h0), c0=t(c0), output_h0=t(out2), h_n_h0=t(hn2), c_n_h0=t(cn2),
    )
    write("lstm_t3.json", {
        "description": "torch.nn.LSTM(input_size=3, hidden_size=2), time-major; "
                       "out, (h_n, c_n) = lstm(x) and output_h0, (h_n_h0, c_n_h0) = lstm(x, (h0, c0))",
        "torch_version": torch.__version__,
        "config": dict(cfg, batch_first=False),
        "tensors": tens,
    })

    # The same module and data with batch_first=True.
    mb = torch.nn.LSTM(input_size=I, hidden_size=H, batch_first=True).double()
    mb.load_state_dict(m.state_dict())
    xb = x.transpose(0, 1).contiguous()
    with torch.no_grad():
        outb, (hnb, cnb) = mb(xb)
        outb2, (hnb2, cnb2) = mb(xb, (h0, c0))
    assert torch.allclose(outb, out.transpose(0, 1), rtol=0, atol=1e-14)
    tens = params(mb)
    tens.update(
        x=t(xb), output=t(outb), h_n=t(hnb), c_n=t(cnb),
        h0=t(h0), c0=t(c0), output_h0=t(outb2), h_n_h0=t(hnb2), c_n_h0=t(cnb2),
    )
    write("lstm_t3_batch_first.json", {
        "description": "lstm_t3.json's module and data with batch_first=True: x [B, T, in], "
                       "output [B, T, H]; h0/c0/h_n/c_n stay [1, B, H]",
        "torch_version": torch.__version__,
        "config": dict(cfg, batch_first=True),
        "tensors": tens,
    })


def lstm2_t5_grad():
    torch.manual_seed(SEED + 2)
    T, B, I, H, L = 5, 3, 4, 3, 2
    m = torch.nn.LSTM(input_size=I, hidden_size=H, num_layers=L).double()
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(-0.8, 0.8)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    R = torch.randn(T, B, H, dtype=torch.float64)
    R2 = torch.randn(B, H, dtype=torch.float64)
    out, (hn, cn) = m(x)
    loss = (out * R).sum() + (hn[-1] * R2).sum()
    loss.backward()
    tens = params(m)
    tens.update(x=t(x), R=t(R), R2=t(R2), output=t(out), h_n=t(hn), c_n=t(cn), loss=t(loss))
    for k, p in m.named_parameters():
        tens["grad_" + k] = t(p.grad)
    tens["grad_x"] = t(x.grad)
    write("lstm2_t5_grad.json", {
        "description": "torch.nn.LSTM(input_size=4, hidden_size=3, num_layers=2), time-major, "
                       "zero initial state; loss = sum(output * R) + sum(h_n[-1] * R2); "
                       "grad_* = d loss / d *",
        "torch_version": torch.__version__,
        "config": {"input_size": I, "hidden_size": H, "num_layers": L, "seq_len": T,
                   "batch": B, "batch_first": False},
        "tensors": tens,
    })


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    lstm_t3()
    lstm2_t5_grad()
