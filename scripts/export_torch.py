#!/usr/bin/env python3
"""Load a trellis checkpoint into the equivalent PyTorch model and compare predictions.

The model is the seed model's shape: nn.Embedding -> nn.LSTM(num_layers=k, batch_first=True)
-> nn.Linear -> sigmoid on the last step; sizes are read from the checkpoint's tensors, whose
names are PyTorch's state-dict names (trellis writes its one LSTM bias as bias_ih_l{k} and
bias_hh_l{k} as zeros; optimizer.* tensors are skipped).

    TRELLIS_EXPORT_DIR=/tmp/trellis-export cargo test -p trellis-nn --test export_torch
    python3 scripts/export_torch.py /tmp/trellis-export

DIR holds model.safetensors and inputs.json ({"ids": [[...]], "predictions": [...]}, written by
that test). Also: export_torch.py CHECKPOINT.safetensors [INPUTS.json]. Needs torch and numpy
(not the safetensors package: the format is read here). Exits 1 if trellis and PyTorch differ by
more than 1e-4.
"""
import json
import os
import re
import struct
import sys

import numpy as np
import torch
from torch import nn

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        arr = np.frombuffer(buf[base + a : base + b], dtype=DTYPES[info["dtype"]])
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out, meta


class SeedModel(nn.Module):
    def __init__(self, vocab, embed, hidden, layers, out):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.dense = nn.Linear(hidden, out)

    def forward(self, ids):
        h, _ = self.lstm(self.embedding(ids))
        return torch.sigmoid(self.dense(h[:, -1]))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    arg = sys.argv[1]
    if os.path.isdir(arg):
        ckpt, inputs = os.path.join(arg, "model.safetensors"), os.path.join(arg, "inputs.json")
    else:
        ckpt = arg
        inputs = sys.argv[2] if len(sys.argv) > 2 else None
    tensors, meta = read_safetensors(ckpt)
    state = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    vocab, embed = state["embedding.weight"].shape
    hidden = state["lstm.weight_hh_l0"].shape[1]
    layers = len([k for k in state if re.fullmatch(r"lstm\.weight_ih_l\d+", k)])
    out = state["dense.weight"].shape[0]
    model = SeedModel(vocab, embed, hidden, layers, out)
    model.load_state_dict(state, strict=True)
    model.eval()
    print(f"{ckpt}: vocab {vocab}, embed {embed}, LSTM {hidden} x {layers} layers, dense {out}; "
          f"metadata {meta}")
    if inputs is None:
        print("no inputs given: the checkpoint loads into", model)
        return
    with open(inputs) as f:
        data = json.load(f)
    ids = torch.tensor(data["ids"], dtype=torch.long)
    with torch.no_grad():
        pred = model(ids).reshape(-1).numpy()
    ref = np.array(data["predictions"], dtype=np.float32)
    print(f"{'sample':>6} {'pytorch':>10} {'trellis':>10}")
    for i, (p, r) in enumerate(zip(pred, ref)):
        print(f"{i:>6} {p:>10.6f} {r:>10.6f}")
    diff = float(np.max(np.abs(pred - ref)))
    print(f"max |pytorch - trellis| = {diff:.2e}")
    sys.exit(0 if diff <= 1e-4 else 1)


if __name__ == "__main__":
    main()
