#!/usr/bin/env python3
"""Golden fixtures for recurrent layers started from a given state (Keras `initial_state`,
PyTorch's `(h0, c0)`), for trellis's tests.

Run from anywhere:  python3 scripts/golden/state_golden.py
Writes tests/fixtures/{lstm2_state_packed_grad,gru2_state_packed_grad}.json. Same file format
as lstm_golden.py (see its docstring): float64 throughout, fixed seeds, PyTorch's names.

lstm2_state_packed_grad.json: nn.LSTM(4, 3, num_layers=2), T=5, B=3, time-major, over packed
    post-padded sequences of lengths [5, 2, 3] (pack_padded_sequence), started from random
    h0, c0 [2, B, 3]; mask [T, B] is 1 on real steps. h_n / c_n hold each sequence's state
    after its last real step.
    loss = sum(output * R) + sum(h_n * R2) + sum(c_n * R3); grad_<param>, grad_x, grad_h0,
    grad_c0 = d loss / d *.
gru2_state_packed_grad.json: nn.GRU(4, 3, num_layers=2), the same lengths, from h0 [2, B, 3];
    loss = sum(output * R) + sum(h_n * R2); grad_<param>, grad_x, grad_h0.
"""
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstm_golden import t, write  # one fixture format: the LSTM script's writer

SEED = 20261201


def case(name, module, T, B, seed, lengths, description):
    torch.manual_seed(seed)
    m = module.double()
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(-0.8, 0.8)
    H, L = m.hidden_size, m.num_layers
    lstm = isinstance(m, torch.nn.LSTM)
    x = torch.randn(T, B, m.input_size, dtype=torch.float64, requires_grad=True)
    h0 = (0.8 * torch.randn(L, B, H, dtype=torch.float64)).requires_grad_()
    c0 = (0.8 * torch.randn(L, B, H, dtype=torch.float64)).requires_grad_()
    R = torch.randn(T, B, H, dtype=torch.float64)
    R2 = torch.randn(L, B, H, dtype=torch.float64)
    R3 = torch.randn(L, B, H, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
    out, state = m(packed, (h0, c0) if lstm else h0)
    out, _ = pad_packed_sequence(out, total_length=T)
    hn = state[0] if lstm else state
    loss = (out * R).sum() + (hn * R2).sum()
    if lstm:
        loss = loss + (state[1] * R3).sum()
    loss.backward()
    tens = {k: t(v) for k, v in m.named_parameters()}
    mask = torch.tensor([[1.0 if s < n else 0.0 for n in lengths] for s in range(T)])
    tens.update(x=t(x), h0=t(h0), R=t(R), R2=t(R2), mask=t(mask), output=t(out), h_n=t(hn),
                loss=t(loss))
    if lstm:
        tens.update(c0=t(c0), R3=t(R3), c_n=t(state[1]))
    for k, p in m.named_parameters():
        tens["grad_" + k] = t(p.grad)
    tens["grad_x"] = t(x.grad)
    tens["grad_h0"] = t(h0.grad)
    if lstm:
        tens["grad_c0"] = t(c0.grad)
    write(name, {
        "description": description,
        "torch_version": torch.__version__,
        "config": {"input_size": m.input_size, "hidden_size": H, "num_layers": L,
                   "seq_len": T, "batch": B, "batch_first": False, "bidirectional": False,
                   "lengths": lengths},
        "tensors": tens,
    })


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    nn = torch.nn
    case("lstm2_state_packed_grad.json", nn.LSTM(4, 3, num_layers=2), 5, 3, SEED, [5, 2, 3],
         "torch.nn.LSTM(4, 3, num_layers=2) from (h0, c0) over packed post-padded sequences; "
         "loss = sum(output * R) + sum(h_n * R2) + sum(c_n * R3); grad_* = d loss / d *")
    case("gru2_state_packed_grad.json", nn.GRU(4, 3, num_layers=2), 5, 3, SEED + 1, [5, 2, 3],
         "torch.nn.GRU(4, 3, num_layers=2) from h0 over packed post-padded sequences; "
         "loss = sum(output * R) + sum(h_n * R2); grad_* = d loss / d *")
