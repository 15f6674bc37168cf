#!/usr/bin/env python3
"""Run trellis's ONNX exports in onnxruntime and compare with trellis's own predictions.

Each MODEL.onnx is checked against MODEL.reference.json beside it ({"input": {"dtype", "shape",
"data"}, "output": {"shape", "data"}}, written by trellis_nn::onnx::write_reference):

    cargo run --release --example imdb -- --onnx /tmp/m.onnx
    python3 scripts/onnx_check.py /tmp/m.onnx

    TRELLIS_ONNX_DIR=/tmp/trellis-onnx cargo test -p trellis-nn --test deploy onnx_variants
    python3 scripts/onnx_check.py /tmp/trellis-onnx          # every *.onnx in the directory

Needs onnxruntime and numpy (pip install onnxruntime; not in CI). Prints the largest absolute
difference per model; exits 1 if one exceeds the tolerance (default 1e-5, --tol to change).
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
import onnxruntime as ort


def check(path, tol):
    ref_path = os.path.splitext(path)[0] + ".reference.json"
    with open(ref_path) as f:
        ref = json.load(f)
    x = np.asarray(ref["input"]["data"], dtype=ref["input"]["dtype"])
    x = x.reshape(ref["input"]["shape"])
    want = np.asarray(ref["output"]["data"], dtype=np.float32).reshape(ref["output"]["shape"])
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (got,) = sess.run(["output"], {"input": x})
    got = got.reshape(want.shape)
    diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    ok = diff <= tol
    print(
        f"{'ok  ' if ok else 'FAIL'} {os.path.basename(path)}: {x.shape[0]} samples, output "
        f"{list(want.shape)}, max |onnxruntime - trellis| = {diff:.3g} (tolerance {tol:g})"
    )
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+", help="MODEL.onnx files or directories of them")
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()
    files = []
    for p in args.paths:
        files += sorted(glob.glob(os.path.join(p, "*.onnx"))) if os.path.isdir(p) else [p]
    if not files:
        sys.exit("no .onnx files found")
    print(f"onnxruntime {ort.__version__}")
    results = [check(f, args.tol) for f in files]
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
