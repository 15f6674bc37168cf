"""The seed model trained on the full IMDB set, epoch by epoch, as a user runs it.

    python imdb_epochs.py --framework keras-tensorflow|keras-jax|pytorch --encoded DIR
                          [--epochs 3] [--batch 128] [--latency 200]

DIR holds x_train.npy, y_train.npy, x_test.npy, y_test.npy, written by
`cargo run --release --example imdb -- --data DATA --dump-encoded DIR`: the very ids trellis
trains on (its tokenizer, 10,000 words, padded to 200), so every framework sees the same data.

Per epoch (one JSON line each): the wall time of training one epoch (batch 128, shuffled,
Adam with Keras's defaults, binary cross-entropy), then the loss and accuracy on the 25,000 test
reviews (not timed). Then predict latency for one review (batch 1): median and 90th percentile
over --latency test reviews after one untimed call. The same figures as trellis' imdb example
with `--each-epoch --latency N`; imdb_epochs.sh runs them all.
"""
import argparse
import json
import os
import sys
import time

import common  # noqa: F401  (thread environment first)
from common import THREADS


def emit(**kv):
    print(json.dumps(kv, separators=(",", ":")), flush=True)


def latency_ms(predict_one, n):
    predict_one(0)
    ms = []
    for i in range(n):
        t = time.perf_counter()
        predict_one(i)
        ms.append((time.perf_counter() - t) * 1e3)
    ms.sort()
    return ms[n // 2], ms[n * 9 // 10]


def keras_run(backend, d, args):
    os.environ["KERAS_BACKEND"] = backend  # before keras is imported
    if backend == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    import keras
    from keras_lstm import seed_model
    keras.utils.set_random_seed(0)
    model = seed_model(keras, "lstm", d["x_train"].shape[1], 128)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    name = f"keras-{backend}"
    for epoch in range(1, args.epochs + 1):
        t = time.perf_counter()
        h = model.fit(d["x_train"], d["y_train"], batch_size=args.batch, epochs=1,
                      shuffle=True, verbose=0)
        seconds = time.perf_counter() - t
        loss, acc = model.evaluate(d["x_test"], d["y_test"], batch_size=args.batch, verbose=0)
        emit(framework=name, epoch=epoch, seconds=round(seconds, 1),
             loss=round(float(h.history["loss"][-1]), 4), test_loss=round(float(loss), 4),
             test_accuracy=round(float(acc), 4))
    x = d["x_test"]
    med, p90 = latency_ms(lambda i: model.predict_on_batch(x[i % len(x):i % len(x) + 1]),
                          args.latency)
    emit(framework=name, latency_ms_median=round(med, 2), latency_ms_p90=round(p90, 2))


def torch_run(d, args):
    import torch
    from torch import nn
    from torch_lstm import Seed
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = Seed("lstm", 128)
    opt = torch.optim.Adam(model.parameters(), eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss()
    x = torch.from_numpy(d["x_train"]).long()
    y = torch.from_numpy(d["y_train"]).float().reshape(-1, 1)
    xt = torch.from_numpy(d["x_test"]).long()
    yt = torch.from_numpy(d["y_test"]).float().reshape(-1, 1)
    n = len(x)
    for epoch in range(1, args.epochs + 1):
        t = time.perf_counter()
        model.train()
        total = 0.0
        for idx in torch.randperm(n).split(args.batch):
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        seconds = time.perf_counter() - t
        model.eval()
        with torch.inference_mode():
            logits = torch.cat([model(b) for b in xt.split(args.batch)])
            test_loss = loss_fn(logits, yt).item()
            acc = ((logits > 0).float() == yt).float().mean().item()
        emit(framework="pytorch", epoch=epoch, seconds=round(seconds, 1),
             loss=round(total / n, 4), test_loss=round(test_loss, 4),
             test_accuracy=round(acc, 4))
    with torch.inference_mode():
        med, p90 = latency_ms(lambda i: torch.sigmoid(model(xt[i % len(xt):i % len(xt) + 1])),
                              args.latency)
    emit(framework="pytorch", latency_ms_median=round(med, 2), latency_ms_p90=round(p90, 2))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--framework", required=True,
                   choices=("keras-tensorflow", "keras-jax", "pytorch"))
    p.add_argument("--encoded", required=True, help="the directory imdb --dump-encoded wrote")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--latency", type=int, default=200)
    args = p.parse_args()
    import numpy as np
    d = {}
    for name in ("x_train", "y_train", "x_test", "y_test"):
        path = os.path.join(args.encoded, f"{name}.npy")
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run the imdb example with --dump-encoded {args.encoded}")
        d[name] = np.load(path)
    if args.framework == "pytorch":
        torch_run(d, args)
    else:
        keras_run(args.framework.removeprefix("keras-"), d, args)


if __name__ == "__main__":
    main()
