#!/usr/bin/env bash
# The seed model on the full IMDB set, 3 epochs, in trellis and the peers, one after another in
# one run: seconds per epoch, test accuracy after each epoch, predict latency for one review.
#
#   benches/peers/imdb_epochs.sh [--epochs N] [--only trellis,keras-tensorflow,keras-jax,pytorch]
#
# Fetches the data (scripts/fetch-imdb.sh), has trellis encode it once and write the ids as
# .npy files so every framework trains on the same ids, then prints one JSON line per epoch
# and per latency figure (results/imdb-epochs-DATE.jsonl). Needs the venv compare.sh makes.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
EPOCHS=3
ONLY="trellis,keras-tensorflow,keras-jax,pytorch"
while [ $# -gt 0 ]; do
    case "$1" in
        --epochs) EPOCHS="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        *) echo "imdb_epochs.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
PY="$HERE/.venv/bin/python"
[ -x "$PY" ] || { echo "imdb_epochs.sh: no $PY; run benches/peers/compare.sh once to make it" >&2; exit 1; }
DATA="$("$ROOT/scripts/fetch-imdb.sh" | tail -1)"
ENC="$ROOT/data/imdb-encoded"
OUT="$HERE/results/imdb-epochs-$(date +%Y-%m-%d-%H%M%S).jsonl"
(cd "$ROOT" && cargo build --release --example imdb >&2)
BIN="$ROOT/target/release/examples/imdb"
"$BIN" --data "$DATA" --dump-encoded "$ENC" >&2
for fw in ${ONLY//,/ }; do
    echo "== $fw" >&2
    if [ "$fw" = trellis ]; then
        "$BIN" --data "$DATA" --epochs "$EPOCHS" --each-epoch --latency 200 | tee /dev/stderr \
            | python3 -c '
import json, re, sys
for line in sys.stdin:
    m = re.match(r"epoch (\d+): ([\d.]+) s, loss ([\d.]+), test accuracy ([\d.]+)", line)
    if m:
        print(json.dumps({"framework": "trellis", "epoch": int(m[1]), "seconds": float(m[2]),
                          "loss": float(m[3]), "test_accuracy": float(m[4])}))
    m = re.match(r"predict latency, batch 1: median ([\d.]+) ms, p90 ([\d.]+) ms", line)
    if m:
        print(json.dumps({"framework": "trellis", "latency_ms_median": float(m[1]),
                          "latency_ms_p90": float(m[2])}))
' | tee -a "$OUT"
    else
        (cd "$HERE" && "$PY" imdb_epochs.py --framework "$fw" --encoded "$ENC" --epochs "$EPOCHS") | tee -a "$OUT"
    fi
done
echo "wrote $OUT" >&2
