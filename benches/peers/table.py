#!/usr/bin/env python3
"""Markdown tables from the JSON lines that compare.sh collects (standard library only).

    table.py results.jsonl [--peak-gflops G]               medians per framework and config
    table.py results.jsonl --scaling [--peer jax]          trellis beside a peer over T, B, H

Each line is one run: {"framework", "seq", "batch", "hidden", "cell", "ftz",
"train_samples_per_s", "infer_samples_per_s", "compile_ms", "arena_mb", "peak_rss_mb", "cpu"}.
"init" (keras: each framework's default initialisers; small: uniform(+-0.05) everywhere) is
part of a configuration, beside cell, T, B and H. Lines that do not parse, or carry an "error"
key, are skipped; a line without "cell" or "init" (older results) is lstm, keras.

FLOPs counted (fp32 multiply-adds as 2), per sample, embedding width E = 128, 2 layers; "in" is
a layer's input width (E, then H, or 2H after a bidirectional layer):
  one layer, one direction, one time step, forward:
    lstm   2*(in + H)*4H + 13H   gate GEMMs x@W and h@U; elementwise: 4H bias/sum adds, 4H gate
                                 activations (1 each), c = f*c + i*g (3H), tanh(c), o*tanh(c)
    gru    2*(in + H)*3H + 16H   gate GEMMs; elementwise: 3H input bias, 3H recurrent bias,
                                 r and z sums (2H), 2 sigmoids (2H), r*hn, + xn, tanh (3H),
                                 h' = n + z*(h - n) (3H)
    bilstm the lstm figure for each of the 2 directions, and the second layer reads 2H
  forward  F = T * sum over layers and directions of the above + 2*D*H (dense over the D
             directions' last states; the embedding is a gather: 0)
  backward = 2F (two GEMMs per forward GEMM: the gradients of the input and of the weight)
  training = 3F + T*E (embedding gradient scatter-add) + 12*P/B (Adam: ~12 flops per parameter
             per step, shared by the B samples of the batch; P = number of parameters)
  inference = F
At T = 200, H = 128, B = 128 that is, inference / training MFLOP per sample: lstm 105.5 / 316.7
(the GEMMs alone: 104.9 and 314.6), gru 79.5 / 238.6, bilstm 263.5 / 790.6. A row's share of
the peak is samples/s * FLOPs per sample / (peak * 1e9), the peak being the fp32 FMA throughput
the trellis bench measured in the same run ("peak_gflops": the largest of its samples before,
between and after its phases; the median over rounds; PEAK_GFLOPS or --peak-gflops override it).
"""
import argparse
import json
import math
import os
import statistics
import sys

EMBED, VOCAB, LAYERS = 128, 10_000, 2
# Per cell: gates, elementwise flops per unit of H and step, biases per layer (in units of
# gates * H), directions.
CELLS = {"lstm": (4, 13, 1, 1), "gru": (3, 16, 2, 1), "bilstm": (4, 13, 1, 2)}


def cell_of(r):
    return r.get("cell") or "lstm"


def layer_inputs(H, cell, E=EMBED):
    """The input width of each layer."""
    dirs = CELLS[cell][3]
    return [E] + [dirs * H] * (LAYERS - 1)


def params(H, cell="lstm", E=EMBED):
    gates, _, biases, dirs = CELLS[cell]
    p = VOCAB * E + dirs * H + 1  # embedding, dense
    for n_in in layer_inputs(H, cell, E):
        p += dirs * ((n_in + H) * gates * H + biases * gates * H)
    return p


def forward_flops(T, H, cell="lstm", E=EMBED):
    gates, elementwise, _, dirs = CELLS[cell]
    per_step = sum(dirs * (2 * (n_in + H) * gates * H + elementwise * H)
                   for n_in in layer_inputs(H, cell, E))
    return T * per_step + 2 * dirs * H


def train_flops(T, B, H, cell="lstm", E=EMBED):
    return 3 * forward_flops(T, H, cell, E) + T * E + 12 * params(H, cell, E) / B


def load(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "error" not in r and "framework" in r:
                    rows.append(r)
    return rows


def med(rows, key):
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return statistics.median(vals) if vals else None


def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


ORDER = ["trellis", "jax", "keras-jax", "keras-tensorflow", "pytorch", "pytorch-ftz"]


def order(name):
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def ftz(rows):
    """Whether the runs flushed subnormals: yes, no, mixed (runs disagree), - (not recorded)."""
    seen = {r.get("ftz") for r in rows} - {None}
    if not seen:
        return "-"
    return ("yes" if True in seen else "no") if len(seen) == 1 else "mixed"


def config(r):
    return (cell_of(r), r.get("init") or "keras", r["seq"], r["batch"], r["hidden"])


def config_order(c):
    return (list(CELLS).index(c[0]), c[1:])


def compare(rows, peak):
    out = []
    for cell, init, T, B, H in sorted({config(r) for r in rows}, key=config_order):
        rs = [r for r in rows if config(r) == (cell, init, T, B, H)]
        ftr, finf = train_flops(T, B, H, cell), forward_flops(T, H, cell)
        out.append(f"cell {cell}, init {init}, T = {T}, B = {B}, H = {H}: "
                   f"{ftr / 1e6:.1f} MFLOP per training sample, "
                   f"{finf / 1e6:.1f} MFLOP per inference sample; fp32 peak {peak:g} GFLOP/s "
                   f"(= {peak * 1e9 / ftr:,.0f} training / {peak * 1e9 / finf:,.0f} inference "
                   "samples/s).\n")
        out.append("| framework | runs | ftz | train samples/s | infer samples/s | compile ms "
                   "| peak RSS MB | trellis/peer train | trellis/peer infer "
                   "| train % of peak | infer % of peak |")
        out.append("|---|--:|:-:|--:|--:|--:|--:|--:|--:|--:|--:|")
        by = {}
        for r in rs:
            by.setdefault(r["framework"], []).append(r)
        med_of = {fw: {k: med(v, k) for k in ("train_samples_per_s", "infer_samples_per_s",
                                               "compile_ms", "peak_rss_mb")}
                  for fw, v in by.items()}
        tr = med_of.get("trellis", {})
        for fw in sorted(by, key=order):
            m = med_of[fw]
            tt, ti = m["train_samples_per_s"], m["infer_samples_per_s"]

            def ratio(a, b):
                return f"{a / b:.2f}x" if a and b else "-"

            out.append(
                f"| {fw} | {len(by[fw])} | {ftz(by[fw])} | {fmt(tt)} | {fmt(ti)} "
                f"| {fmt(m['compile_ms'])} "
                f"| {fmt(m['peak_rss_mb'])} "
                f"| {ratio(tr.get('train_samples_per_s'), tt)} "
                f"| {ratio(tr.get('infer_samples_per_s'), ti)} "
                f"| {fmt(tt and 100 * tt * ftr / (peak * 1e9), 1)} "
                f"| {fmt(ti and 100 * ti * finf / (peak * 1e9), 1)} |")
        peers = {fw: m for fw, m in med_of.items() if fw != "trellis"}
        if tr and peers:
            line = []
            for key, what in (("train_samples_per_s", "train"), ("infer_samples_per_s", "inference")):
                best = max((fw for fw in peers if peers[fw][key]), key=lambda fw: peers[fw][key],
                           default=None)
                if best and tr.get(key):
                    line.append(f"{what} {tr[key] / peers[best][key]:.2f}x the fastest peer "
                                f"({best})")
            if line:
                out.append("\ntrellis: " + "; ".join(line) + ".")
        out.append("")
    return "\n".join(out)


def scaling(rows, peak, peer):
    by = {}
    for r in rows:
        by.setdefault(config(r), {}).setdefault(r["framework"], []).append(r)
    peer_rows = [r for fws in by.values() for r in fws.get(peer, [])]
    out = [f"trellis beside {peer}; samples/s (train / inference), compile ms, trellis arena MB, "
           f"peak RSS MB; share of the {peak:g} GFLOP/s fp32 peak for trellis training; "
           f"{peer} flushes subnormals: {ftz(peer_rows)}.\n",
           f"| cell | init | T | B | H | trellis train | trellis infer | trellis compile ms "
           f"| arena MB | trellis RSS MB | {peer} train | {peer} infer | {peer} compile ms | {peer} RSS MB "
           f"| train ratio | infer ratio | trellis train % of peak |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for (cell, init, T, B, H) in sorted(by, key=config_order):
        fws = by[(cell, init, T, B, H)]
        t = {k: med(fws.get("trellis", []), k) for k in
             ("train_samples_per_s", "infer_samples_per_s", "compile_ms", "arena_mb", "peak_rss_mb")}
        p = {k: med(fws.get(peer, []), k) for k in
             ("train_samples_per_s", "infer_samples_per_s", "compile_ms", "peak_rss_mb")}

        def ratio(k):
            return f"{t[k] / p[k]:.2f}x" if t[k] and p[k] else "-"

        share = (t["train_samples_per_s"]
                 and 100 * t["train_samples_per_s"] * train_flops(T, B, H, cell) / (peak * 1e9))
        out.append(
            f"| {cell} | {init} | {T} | {B} | {H} | {fmt(t['train_samples_per_s'])} "
            f"| {fmt(t['infer_samples_per_s'])} "
            f"| {fmt(t['compile_ms'])} | {fmt(t['arena_mb'], 1)} | {fmt(t['peak_rss_mb'])} "
            f"| {fmt(p['train_samples_per_s'])} | {fmt(p['infer_samples_per_s'])} "
            f"| {fmt(p['compile_ms'])} | {fmt(p['peak_rss_mb'])} "
            f"| {ratio('train_samples_per_s')} | {ratio('infer_samples_per_s')} | {fmt(share, 1)} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--peak-gflops", type=float, default=None,
                    help="fp32 peak (default: PEAK_GFLOPS, else the median peak_gflops the "
                         "trellis bench measured in these results, else 270)")
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--peer", default="jax", help="the peer beside trellis in --scaling")
    a = ap.parse_args()
    rows = load(a.files)
    if not rows:
        sys.exit("table.py: no results in " + ", ".join(a.files))
    if a.peak_gflops is None:
        measured = [r["peak_gflops"] for r in rows
                    if isinstance(r.get("peak_gflops"), (int, float)) and r["peak_gflops"] > 0]
        a.peak_gflops = float(os.environ.get("PEAK_GFLOPS") or
                              (round(statistics.median(measured), 1) if measured else 270))
    print(scaling(rows, a.peak_gflops, a.peer) if a.scaling else compare(rows, a.peak_gflops))


if __name__ == "__main__":
    main()
