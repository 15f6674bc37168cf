#!/usr/bin/env python3
"""Golden weight-penalty fixture: Keras's regularizers (`L1`, `L2`, `L1L2`: `l1 sum|w| +
l2 sum w^2`, added to the loss) on Embedding -> LSTM -> Dense, in PyTorch autograd (float64),
for trellis's tests.

Run from anywhere:  python3 scripts/golden/regularizers_golden.py
Writes tests/fixtures/regularizers.json (format: see lstm_golden.py). The model:
Embedding(7, 2) (L1(0.05)) -> LSTM(3) (kernel L2(0.01), recurrent L1(0.02), bias
L1L2(0.03, 0.04); gates i, f, g, o; one bias) -> last h -> Dense(1) (kernel L1L2(0.01, 0.02),
bias L2(0.05)); loss = mean((output - target)^2) + the penalties. Tensors: ids [3, 4],
embedding [7, 2], weight_ih [12, 2], weight_hh [12, 3], bias [12], dense_weight [1, 3],
dense_bias [1], target [3, 1] (all f32-representable), output, data_loss, penalty, loss,
grad_<each parameter>.
"""
import torch

from lstm_golden import t, write

SEED = 20261203


def f32(x):
    return x.float().double()


def l1l2(w, l1, l2):
    return l1 * w.abs().sum() + l2 * (w * w).sum()


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(SEED)
    B, T, V, E, H = 3, 4, 7, 2, 3
    ids = torch.tensor([[1, 4, 2, 6], [3, 3, 5, 1], [6, 2, 4, 3]])
    p = {
        "embedding": f32(torch.randn(V, E) * 0.5),
        "weight_ih": f32(torch.randn(4 * H, E) * 0.5),
        "weight_hh": f32(torch.randn(4 * H, H) * 0.5),
        "bias": f32(torch.randn(4 * H) * 0.3),
        "dense_weight": f32(torch.randn(1, H) * 0.5),
        "dense_bias": f32(torch.randn(1) * 0.3),
    }
    for v in p.values():
        v.requires_grad_()
    target = f32(torch.rand(B, 1))
    x = p["embedding"][ids]  # [B, T, E]
    h = torch.zeros(B, H)
    c = torch.zeros(B, H)
    for s in range(T):
        z = x[:, s] @ p["weight_ih"].T + h @ p["weight_hh"].T + p["bias"]
        i, f, g, o = z.split(H, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    y = h @ p["dense_weight"].T + p["dense_bias"]
    data = ((y - target) ** 2).mean()
    penalty = (l1l2(p["embedding"], 0.05, 0.0) + l1l2(p["weight_ih"], 0.0, 0.01)
               + l1l2(p["weight_hh"], 0.02, 0.0) + l1l2(p["bias"], 0.03, 0.04)
               + l1l2(p["dense_weight"], 0.01, 0.02) + l1l2(p["dense_bias"], 0.0, 0.05))
    loss = data + penalty
    loss.backward()
    tens = dict(ids=t(ids), target=t(target), output=t(y), data_loss=t(data),
                penalty=t(penalty), loss=t(loss))
    for k, v in p.items():
        tens[k] = t(v)
        tens["grad_" + k] = t(v.grad)
    write("regularizers.json", {
        "description": "Embedding(7, 2) L1(0.05) -> LSTM(3) kernel L2(0.01), recurrent L1(0.02), "
                       "bias L1L2(0.03, 0.04) -> Dense(1) kernel L1L2(0.01, 0.02), bias L2(0.05); "
                       "loss = MSE + penalties; grad_* = d loss / d *",
        "torch_version": torch.__version__,
        "config": {"B": B, "T": T, "vocab": V, "dim": E, "units": H},
        "tensors": tens,
    })
