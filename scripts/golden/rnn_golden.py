#!/usr/bin/env python3
"""Golden GRU, simple RNN and bidirectional / masked fixtures from PyTorch, for trellis's tests.

Run from anywhere:  python3 scripts/golden/rnn_golden.py
Writes tests/fixtures/{gru2_t5_grad,bilstm_t4_grad,bigru_t4_grad,bilstm_packed_grad,
bigru_packed_grad,rnn2_t5_grad,birnn_relu_t4_grad,birnn_packed_grad}.json. Same file format as lstm_golden.py (see its docstring): float64
throughout, fixed seeds, PyTorch's parameter names (`*_reverse` for the backward direction).

gru2_t5_grad.json: nn.GRU(4, 3, num_layers=2), T=5, B=3, time-major, zero initial state;
    loss = sum(output * R) + sum(h_n[-1] * R2); grad_<param>, grad_x.
bilstm_t4_grad.json / bigru_t4_grad.json: nn.LSTM / nn.GRU(4, 3, bidirectional=True), T=4,
    B=3; output [T, B, 2H] (forward then backward features), h_n [2, B, H];
    loss = sum(output * R) + sum(h_n * R2).
rnn2_t5_grad.json: nn.RNN(4, 3, num_layers=2) (tanh), as gru2_t5_grad.json.
birnn_relu_t4_grad.json: nn.RNN(4, 3, nonlinearity="relu", bidirectional=True), T=4, B=3.
birnn_packed_grad.json: nn.RNN(4, 3, bidirectional=True) (tanh) over packed sequences, as below.
bilstm_packed_grad.json / bigru_packed_grad.json: the bidirectional modules over
    post-padded sequences of lengths `lengths` (pack_padded_sequence): padded steps output
    zero, the backward direction starts at each sequence's last real step, h_n holds each
    sequence's final states; `mask` [T, B] is 1 on real steps; same loss.
"""
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstm_golden import t, write  # one fixture format: the LSTM script's writer

SEED = 20261130


def case(name, module, T, B, seed, lengths=None, description=""):
    torch.manual_seed(seed)
    m = module.double()
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(-0.8, 0.8)
    H = m.hidden_size
    dirs = 2 if m.bidirectional else 1
    x = torch.randn(T, B, m.input_size, dtype=torch.float64, requires_grad=True)
    R = torch.randn(T, B, dirs * H, dtype=torch.float64)
    R2 = torch.randn(m.num_layers * dirs, B, H, dtype=torch.float64)
    if lengths is None:
        out, hn = m(x)
    else:
        packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
        out, hn = m(packed)
        out, _ = pad_packed_sequence(out, total_length=T)
    hn = hn[0] if isinstance(hn, tuple) else hn
    loss = (out * R).sum() + (hn * R2).sum()
    loss.backward()
    tens = {k: t(v) for k, v in m.named_parameters()}
    tens.update(x=t(x), R=t(R), R2=t(R2), output=t(out), h_n=t(hn), loss=t(loss))
    if lengths is not None:
        mask = torch.tensor([[1.0 if s < n else 0.0 for n in lengths] for s in range(T)])
        tens["mask"] = t(mask)
    for k, p in m.named_parameters():
        tens["grad_" + k] = t(p.grad)
    tens["grad_x"] = t(x.grad)
    cfg = {"input_size": m.input_size, "hidden_size": H, "num_layers": m.num_layers,
           "seq_len": T, "batch": B, "batch_first": False, "bidirectional": m.bidirectional}
    if lengths is not None:
        cfg["lengths"] = lengths
    write(name, {
        "description": description + "; loss = sum(output * R) + sum(h_n * R2) (h_n: the "
                       "final hidden states, [layers * directions, B, H]); grad_* = d loss / d *",
        "torch_version": torch.__version__,
        "config": cfg,
        "tensors": tens,
    })


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    nn = torch.nn
    case("gru2_t5_grad.json", nn.GRU(4, 3, num_layers=2), 5, 3, SEED,
         description="torch.nn.GRU(4, 3, num_layers=2), time-major, zero initial state")
    case("bilstm_t4_grad.json", nn.LSTM(4, 3, bidirectional=True), 4, 3, SEED + 1,
         description="torch.nn.LSTM(4, 3, bidirectional=True), time-major")
    case("bigru_t4_grad.json", nn.GRU(4, 3, bidirectional=True), 4, 3, SEED + 2,
         description="torch.nn.GRU(4, 3, bidirectional=True), time-major")
    case("bilstm_packed_grad.json", nn.LSTM(4, 3, bidirectional=True), 5, 3, SEED + 3,
         lengths=[5, 2, 3], description="torch.nn.LSTM(4, 3, bidirectional=True) over packed "
         "post-padded sequences (pack_padded_sequence / pad_packed_sequence)")
    case("bigru_packed_grad.json", nn.GRU(4, 3, bidirectional=True), 5, 3, SEED + 4,
         lengths=[5, 2, 3], description="torch.nn.GRU(4, 3, bidirectional=True) over packed "
         "post-padded sequences (pack_padded_sequence / pad_packed_sequence)")
    case("rnn2_t5_grad.json", nn.RNN(4, 3, num_layers=2), 5, 3, SEED + 5,
         description="torch.nn.RNN(4, 3, num_layers=2) (tanh), time-major, zero initial state")
    case("birnn_relu_t4_grad.json", nn.RNN(4, 3, nonlinearity="relu", bidirectional=True), 4, 3,
         SEED + 6, description="torch.nn.RNN(4, 3, nonlinearity='relu', bidirectional=True), "
         "time-major")
    case("birnn_packed_grad.json", nn.RNN(4, 3, bidirectional=True), 5, 3, SEED + 7,
         lengths=[5, 2, 3], description="torch.nn.RNN(4, 3, bidirectional=True) (tanh) over "
         "packed post-padded sequences (pack_padded_sequence / pad_packed_sequence)")
