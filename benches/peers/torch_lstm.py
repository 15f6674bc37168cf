"""The seed model in PyTorch eager: Embedding -> two recurrent layers -> Linear -> sigmoid.

--cell lstm: nn.LSTM(num_layers=2); gru: nn.GRU(num_layers=2); bilstm: nn.LSTM(num_layers=2,
bidirectional=True), whose second layer reads both directions of the first (2H) and whose last
states of both directions (h_n, as Keras's Bidirectional(LSTM) returns them) feed Linear(2H, 1).

Train step = forward + BCE-with-logits + backward + Adam (Keras defaults, eps=1e-7), timed over
--steps after --warmup untimed steps; inference = forward under torch.inference_mode(), timed
over --steps batches. Eager mode has no compile step: compile_ms is null.

PyTorch leaves subnormals as they are by default; --flush-denormal calls
torch.set_flush_denormal(True) first (framework name "pytorch-ftz"). Either way "ftz" in the
JSON line is measured after the run: a matmul and an elementwise product on subnormal operands.
"""
import sys

import common  # noqa: F401  (thread environment first)
from common import (EMBED, SMALL, THREADS, VOCAB, Timer, data, emit, flushes, parse_args,
                    probe_inputs)

import torch
from torch import nn


class Seed(nn.Module):
    def __init__(self, cell, hidden):
        super().__init__()
        self.directions = 2 if cell == "bilstm" else 1
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.rnn = rnn(EMBED, hidden, num_layers=2, batch_first=True,
                       bidirectional=self.directions == 2)
        self.dense = nn.Linear(self.directions * hidden, 1)

    def forward(self, ids):
        _, state = self.rnn(self.embedding(ids))
        h_n = state[0] if isinstance(state, tuple) else state  # [layers * directions, B, H]
        last = torch.cat(list(h_n[-self.directions:]), dim=1)  # the last layer's, [B, dirs * H]
        return self.dense(last)  # logits; the prediction is their sigmoid


def main():
    args = parse_args(lambda p: p.add_argument(
        "--flush-denormal", action="store_true",
        help="torch.set_flush_denormal(True) before anything runs (reported as pytorch-ftz)"))
    if args.flush_denormal and not torch.set_flush_denormal(True):
        sys.exit("torch.set_flush_denormal(True): not supported on this CPU")
    torch.set_num_threads(THREADS)
    try:
        torch.set_num_interop_threads(THREADS)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    xn, yn = data(args.seq, args.batch)
    x, y = torch.from_numpy(xn).long(), torch.from_numpy(yn)

    model = Seed(args.cell, args.hidden)
    if args.init == "small":
        with torch.no_grad():
            for p in model.parameters():
                nn.init.uniform_(p, -SMALL, SMALL)
    loss_fn = nn.BCEWithLogitsLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    model.train()
    for _ in range(1 + args.warmup):
        step()
    with Timer() as t:
        for _ in range(args.steps):
            loss = step()
        loss.item()
    train_sps = args.steps * args.batch / t.s

    model.eval()
    with torch.inference_mode():
        for _ in range(1 + args.warmup):
            torch.sigmoid(model(x))
        with Timer() as t:
            for _ in range(args.steps):
                p = torch.sigmoid(model(x))
            p.numpy()
    infer_sps = args.steps * args.batch / t.s

    name = "pytorch-ftz" if args.flush_denormal else "pytorch"
    a, ones, eye = (torch.from_numpy(v) for v in probe_inputs())
    ftz = flushes(name, {"matmul": lambda: (a @ eye).numpy(), "mul": lambda: (a * ones).numpy()})
    emit(name, args, train_sps, infer_sps, None, ftz)


if __name__ == "__main__":
    main()
