"""Shared bits of the peer scripts: arguments, thread settings, random data, the JSON line.

Import this module *before* torch / tensorflow / jax / keras: it sets the thread environment
variables those libraries read when they load.
"""
import argparse
import json
import os
import time

THREADS = int(os.environ.get("PEERS_THREADS", "2"))
VOCAB = 10_000
EMBED = 128

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
            "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(var, str(THREADS))
# XLA (JAX, and Keras on JAX): Eigen's thread pool for the CPU backend, limited to THREADS.
# Kept if the caller already set XLA_FLAGS.
os.environ.setdefault(
    "XLA_FLAGS",
    f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={THREADS}",
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's banner off stderr


def parse_args(extra=None):
    p = argparse.ArgumentParser()
    p.add_argument("--seq", type=int, default=200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--warmup", type=int, default=2,
                   help="untimed steps after the first (compiling) one")
    if extra:
        extra(p)
    return p.parse_args()


def data(seq, batch, seed=0):
    """Random token ids in [0, VOCAB) and random 0/1 labels (numpy), made before any timing."""
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.integers(0, VOCAB, size=(batch, seq), dtype=np.int32)
    y = rng.integers(0, 2, size=(batch, 1)).astype(np.float32)
    return x, y


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0


def emit(framework, args, train_sps, infer_sps, compile_ms):
    line = {
        "framework": framework,
        "seq": args.seq,
        "batch": args.batch,
        "hidden": args.hidden,
        "train_samples_per_s": round(train_sps, 1),
        "infer_samples_per_s": round(infer_sps, 1),
        "compile_ms": None if compile_ms is None else round(compile_ms, 1),
        "arena_mb": None,
    }
    print(json.dumps(line, separators=(",", ":")), flush=True)
