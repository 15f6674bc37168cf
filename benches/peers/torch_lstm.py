"""The seed model in PyTorch eager: Embedding -> nn.LSTM(num_layers=2) -> Linear -> sigmoid.

Train step = forward + BCE-with-logits + backward + Adam (Keras defaults, eps=1e-7), timed over
--steps after --warmup untimed steps; inference = forward under torch.inference_mode(), timed
over --steps batches. Eager mode has no compile step: compile_ms is null.
"""
import common  # noqa: F401  (thread environment first)
from common import THREADS, VOCAB, EMBED, Timer, data, emit, parse_args

import torch
from torch import nn


class Seed(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.lstm = nn.LSTM(EMBED, hidden, num_layers=2, batch_first=True)
        self.dense = nn.Linear(hidden, 1)

    def forward(self, ids):
        out, _ = self.lstm(self.embedding(ids))
        return self.dense(out[:, -1, :])  # logits; the prediction is their sigmoid


def main():
    args = parse_args()
    torch.set_num_threads(THREADS)
    try:
        torch.set_num_interop_threads(THREADS)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    xn, yn = data(args.seq, args.batch)
    x, y = torch.from_numpy(xn).long(), torch.from_numpy(yn)

    model = Seed(args.hidden)
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
    emit("pytorch", args, train_sps, infer_sps, None)


if __name__ == "__main__":
    main()
