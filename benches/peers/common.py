"""Shared bits of the peer scripts: arguments, thread settings, random data, the subnormal
probe, the JSON line.

Import this module *before* torch / tensorflow / jax / keras: it sets the thread environment
variables those libraries read when they load.
"""
import argparse
import json
import os
import sys
import time

THREADS = int(os.environ.get("PEERS_THREADS", "2"))
VOCAB = 10_000
EMBED = 128
CELLS = ("lstm", "gru", "bilstm")

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
    p.add_argument("--cell", choices=CELLS, default="lstm",
                   help="lstm: LSTM -> LSTM; gru: GRU -> GRU (torch.nn.GRU's formula); "
                        "bilstm: Bidirectional(LSTM) twice, outputs concatenated")
    p.add_argument("--init", choices=("keras", "small"), default="keras",
                   help="keras: the framework's default initialisers; small: uniform(+-0.05) "
                        "for every parameter, as trellis' bench --init small (the regime where "
                        "gradients decay into subnormals)")
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


# The probe's operand: the fp32 number with bit pattern 0x000AE398 (1e-39; the smallest normal
# is 1.18e-38), made and checked bit by bit: once a process flushes (torch.set_flush_denormal sets
# DAZ on the main thread), numpy's own float conversions and comparisons flush too. Times one it
# stays 1e-39 unless the thread flushes: with DAZ the operand reads as zero, with FTZ the
# (subnormal) result is written as zero; either way the result is exactly zero.
SUBNORMAL_BITS = 0x000AE398
PROBE_N = 256  # 256 x 256: large enough that the frameworks split the work over their threads


SMALL = 0.05  # --init small: every parameter uniform in +-SMALL


def small_like(shapes, seed=0):
    """--init small: numpy arrays uniform in +-SMALL, one per shape."""
    import numpy as np
    rng = np.random.default_rng(seed)
    return [rng.uniform(-SMALL, SMALL, size=s).astype(np.float32) for s in shapes]


def probe_inputs():
    """(a, ones, eye): a PROBE_N x PROBE_N fp32 matrix of the subnormal 1e-39, a matrix of ones
    and the identity (numpy), for `flushes`."""
    import numpy as np
    a = np.full((PROBE_N, PROBE_N), SUBNORMAL_BITS, np.uint32).view(np.float32)
    ones = np.full_like(a, 0x3F800000, dtype=np.uint32).view(np.float32)  # 1.0
    eye = np.zeros_like(ones)
    np.fill_diagonal(eye, ones[0, 0])  # a copy of bits, no arithmetic
    return a, ones, eye


def flushes(framework, checks):
    """Whether the framework flushes subnormals where it computes, measured: `checks` maps a
    name to a function that runs one op through the framework (a @ eye, a * ones, ...) on
    `probe_inputs()` and returns the result as numpy. True if every result is exactly zero
    (flushed), False if every one kept the subnormal value; a mix is reported on stderr and
    counts as False (some of the work keeps subnormals, and pays for them on Intel cores).
    Results are read as bits, never compared as floats (see SUBNORMAL_BITS)."""
    import numpy as np
    results = {}
    for name, run in checks.items():
        bits = np.ascontiguousarray(run()).view(np.uint32) & 0x7FFFFFFF
        results[name] = bool(np.all(bits == 0))
        if not results[name] and not np.all(bits == SUBNORMAL_BITS):
            raise SystemExit(f"{framework}: subnormal probe {name} gave bit patterns "
                             f"{[hex(b) for b in bits.ravel()[:4]]}..., neither 0 nor "
                             f"{SUBNORMAL_BITS:#x}")
    detail = ", ".join(f"{k} {'flushed' if v else 'kept'}" for k, v in results.items())
    print(f"{framework}: subnormals: {detail}", file=sys.stderr)
    return all(results.values())


def emit(framework, args, train_sps, infer_sps, compile_ms, ftz):
    line = {
        "framework": framework,
        "seq": args.seq,
        "batch": args.batch,
        "hidden": args.hidden,
        "cell": args.cell,
        "init": args.init,
        "ftz": ftz,
        "train_samples_per_s": round(train_sps, 1),
        "infer_samples_per_s": round(infer_sps, 1),
        "compile_ms": None if compile_ms is None else round(compile_ms, 1),
        "arena_mb": None,
    }
    print(json.dumps(line, separators=(",", ":")), flush=True)
