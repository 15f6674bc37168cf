#!/usr/bin/env bash
# The seed model in trellis beside its peers (PyTorch, Keras on TensorFlow and on JAX, pure JAX),
# same configuration, alternately for several rounds; prints a markdown table of medians.
#
#   benches/peers/compare.sh [--rounds 3] [--seq 200] [--batch 128] [--hidden 128] [--steps 20]
#                            [--warmup 2] [--cell lstm|gru|bilstm] [--init keras|small]
#                            [--only trellis,jax,...] [--no-build]
#   benches/peers/compare.sh --scaling [--steps 3] [--warmup 1] [--cell lstm] [--only trellis,jax]
#
# Names: trellis, jax, keras-jax, keras-tensorflow, pytorch, pytorch-ftz (default: all).
# --cell (default lstm) picks the seed model's recurrent layers in every framework; --init small
# starts every framework from uniform(+-0.05) weights (default keras: each one's own defaults).
# Environment: SCALING_T, SCALING_B, SCALING_H (the --scaling grid), PEAK_GFLOPS (fp32 peak; default: what the trellis bench measures in the run), PEERS_THREADS (default 2),
# PYTHON (the interpreter that makes the venv, default python3.11), TRELLIS_BIN (a bench binary
# to use instead of building one; implies nothing about --no-build, which skips `cargo build`).
#
# What it does:
#  1. GNU time: every run goes under `/usr/bin/time -v` for its peak resident memory; if that is
#     missing it is installed with `apt-get install -y time` (needs root, or sudo).
#  2. A virtual environment at benches/peers/.venv (git-ignored), made once with
#     --system-site-packages so that an installed torch is used as is (PyPI's torch wheel brings
#     several GB of CUDA libraries); requirements.txt is installed into it, and again whenever
#     that file changes.
#  3. `cargo build --release --example bench` from the repository root, once.
#  4. Round after round, trellis then every peer, each a fresh process printing one JSON line
#     (with "cell" and "ftz": whether the process measured its framework flushing subnormals);
#     peak_rss_mb and cpu (lscpu's model name) are added to the line and it is appended to
#     benches/peers/results/results-<date>.jsonl. Each process's stderr goes to
#     results/results-<date>.log (git-ignored).
#  5. The header (date, CPU model, command, versions, cell) and table.py's table, printed and
#     written to results/results-<date>.md.
# With more CPUs than PEERS_THREADS, every command is pinned with taskset to the first
# PEERS_THREADS CPUs (trellis sizes its thread pool by the CPUs it may run on).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
COMMAND="benches/peers/compare.sh${*:+ $*}"
for v in TRELLIS_BIN PEERS_THREADS PEAK_GFLOPS SCALING_H SCALING_B SCALING_T; do  # settings shown too
    [ -z "${!v:-}" ] || COMMAND="$v=\"${!v}\" $COMMAND"
done

ROUNDS=3 SEQ=200 BATCH=128 HIDDEN=128 STEPS="" WARMUP="" ONLY="" SCALING=0 BUILD=1 CELL=lstm INIT=keras
usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --seq) SEQ=$2; shift 2 ;;
        --batch) BATCH=$2; shift 2 ;;
        --hidden) HIDDEN=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --cell) CELL=$2; shift 2 ;;
        --init) INIT=$2; shift 2 ;;
        --scaling) SCALING=1; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done

case "$CELL" in
    lstm|gru|bilstm) ;;
    *) echo "compare.sh: --cell takes lstm, gru or bilstm, not $CELL" >&2; exit 2 ;;
esac
case "$INIT" in
    keras|small) ;;
    *) echo "compare.sh: --init takes keras or small, not $INIT" >&2; exit 2 ;;
esac
ALL="trellis jax keras-jax keras-tensorflow pytorch pytorch-ftz"
if [ "$SCALING" = 1 ]; then
    NAMES=${ONLY:-trellis,jax}; STEPS=${STEPS:-3}; WARMUP=${WARMUP:-1}; ROUNDS=1
else
    NAMES=${ONLY:-${ALL// /,}}; STEPS=${STEPS:-20}; WARMUP=${WARMUP:-2}
fi
NAMES=${NAMES//,/ }
for n in $NAMES; do
    case " $ALL " in *" $n "*) ;; *) echo "compare.sh: unknown name $n (one of: $ALL)" >&2; exit 2 ;; esac
done
has() { case " $NAMES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

export PEERS_THREADS=${PEERS_THREADS:-2}
export OMP_NUM_THREADS=$PEERS_THREADS MKL_NUM_THREADS=$PEERS_THREADS
export XLA_FLAGS=${XLA_FLAGS:-"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=$PEERS_THREADS"}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
PEAK=(${PEAK_GFLOPS:+--peak-gflops "$PEAK_GFLOPS"})

# 1. GNU time.
if ! /usr/bin/time -v true >/dev/null 2>&1; then
    echo "compare.sh: installing GNU time (apt-get install -y time)" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq time >&2
fi

# 2. The virtual environment (only if a Python peer is asked for).
VENV=$HERE/.venv
PY=$VENV/bin/python
if [ -n "${NAMES// /}" ] && [ "$NAMES" != trellis ]; then
    if [ ! -x "$PY" ]; then
        PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
        echo "compare.sh: making $VENV with $PYTHON (--system-site-packages)" >&2
        "$PYTHON" -m venv --system-site-packages "$VENV"
        "$PY" -m pip install -q --upgrade pip >&2
    fi
    SUM=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
    if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$SUM" ]; then
        echo "compare.sh: installing requirements.txt into $VENV" >&2
        "$PY" -m pip install -q -r "$HERE/requirements.txt" >&2
        echo "$SUM" > "$VENV/.requirements.sha256"
    fi
fi

# 3. trellis' bench example.
TRELLIS_BIN_GIVEN=${TRELLIS_BIN:-}
TRELLIS_BIN=${TRELLIS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench}
if has trellis; then
    if [ "$BUILD" = 1 ]; then
        echo "compare.sh: cargo build --release --example bench" >&2
        (cd "$ROOT" && cargo build --release --example bench >&2)
    fi
    [ -x "$TRELLIS_BIN" ] || { echo "compare.sh: no bench binary at $TRELLIS_BIN" >&2; exit 1; }
fi

PIN=()
if [ "$(nproc)" -gt "$PEERS_THREADS" ] && command -v taskset >/dev/null; then
    PIN=(taskset -c "0-$((PEERS_THREADS - 1))")
fi

CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
CPU=${CPU:-unknown CPU}
# The model name alone does not tell the vector width ("AMD EPYC" is a Zen 3 without AVX-512
# on one host and a Zen 4 with it on another), and trellis' kernels and GEMMs depend on it.
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    CPU="$CPU (AVX-512)"
elif grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    CPU="$CPU (AVX2, no AVX-512)"
fi

STAMP=$(date +%Y-%m-%d-%H%M%S)
KIND=results; [ "$SCALING" = 1 ] && KIND=scaling
mkdir -p "$HERE/results"
OUT=$HERE/results/$KIND-$STAMP.jsonl
LOG=$HERE/results/$KIND-$STAMP.log
MD=$HERE/results/$KIND-$STAMP.md
: > "$OUT"

# One run: name T B H; appends its JSON line (with peak_rss_mb and cpu) to $OUT.
run() {
    local name=$1 T=$2 B=$3 H=$4 cmd
    local sizes=(--seq "$T" --batch "$B" --steps "$STEPS" --hidden "$H" --cell "$CELL" --init "$INIT")
    case "$name" in
        trellis) cmd=("$TRELLIS_BIN" "${sizes[@]}") ;;
        pytorch) cmd=("$PY" "$HERE/torch_lstm.py" "${sizes[@]}" --warmup "$WARMUP") ;;
        pytorch-ftz)
            cmd=("$PY" "$HERE/torch_lstm.py" "${sizes[@]}" --warmup "$WARMUP" --flush-denormal) ;;
        jax) cmd=("$PY" "$HERE/jax_lstm.py" "${sizes[@]}" --warmup "$WARMUP") ;;
        keras-jax) cmd=("$PY" "$HERE/keras_lstm.py" --backend jax "${sizes[@]}" --warmup "$WARMUP") ;;
        keras-tensorflow) cmd=("$PY" "$HERE/keras_lstm.py" --backend tensorflow "${sizes[@]}" --warmup "$WARMUP") ;;
    esac
    local tv stdout rc=0
    tv=$(mktemp) stdout=$(mktemp)
    echo "== $name T=$T B=$B H=$H cell=$CELL init=$INIT: ${cmd[*]}" >> "$LOG"
    "${PIN[@]}" /usr/bin/time -v -o "$tv" "${cmd[@]}" > "$stdout" 2>> "$LOG" || rc=$?
    local line rss
    line=$(grep '^{' "$stdout" | tail -n 1 || true)
    rss=$(awk -F: '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$tv")
    cat "$tv" >> "$LOG"
    rm -f "$tv" "$stdout"
    if [ "$rc" != 0 ] || [ -z "$line" ]; then
        echo "{\"framework\":\"$name\",\"seq\":$T,\"batch\":$B,\"hidden\":$H,\"cell\":\"$CELL\",\"init\":\"$INIT\",\"error\":\"exit $rc, see results/$(basename "$LOG")\"}" >> "$OUT"
        echo "   $name FAILED (exit $rc; see $LOG)" >&2
        return 0
    fi
    line="${line%\}},\"peak_rss_mb\":${rss:-null},\"cpu\":\"${CPU//\"/}\"}"
    echo "$line" >> "$OUT"
    echo "   $line" >&2
}

machine() {
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $CPU, $(nproc) CPUs (nproc); runs use $PEERS_THREADS threads${PIN:+, pinned with ${PIN[*]}}; fp32 peak ${PEAK_GFLOPS:+set to $PEAK_GFLOPS GFLOP/s}${PEAK_GFLOPS:-measured by the trellis bench (peak_gflops, the largest of its three samples a run; median over rounds)}"
    if [ -n "${TRELLIS_BIN_GIVEN:-}" ]; then
        echo "- trellis: the bench binary $TRELLIS_BIN (given by TRELLIS_BIN)"
    else
        echo "- trellis: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (modified)')"
    fi
    if [ -x "$PY" ] && [ "$NAMES" != trellis ]; then
        echo "- Peers: Python $("$PY" -c 'import platform; print(platform.python_version())'), $("$PY" -m pip list --format=freeze 2>/dev/null \
            | grep -iE '^(torch|tensorflow[-_]cpu|tensorflow|jax|jaxlib|keras|numpy)==' | tr '\n' ' ')"
    fi
    echo "- Model: the seed model with --cell $CELL ($(case $CELL in
        lstm) echo 'LSTM(H, return_sequences) -> LSTM(H)' ;;
        gru) echo 'GRU(H, return_sequences) -> GRU(H), torch.nn.GRU formula' ;;
        bilstm) echo 'Bidirectional(LSTM(H, return_sequences)) -> Bidirectional(LSTM(H)), concat' ;;
        esac)); --init $INIT ($([ "$INIT" = small ] && echo 'every parameter uniform(+-0.05)' \
        || echo "each framework's default initialisers; trellis: Keras's")); peers otherwise at" \
        "their defaults; ftz = subnormals flushed, as each process measured it"
    echo "- Command: \`$COMMAND\`"
    echo "- Results: benches/peers/results/$(basename "$OUT")"
}

TABLEPY=python3; [ -x "$PY" ] && TABLEPY=$PY  # table.py needs only the standard library

if [ "$SCALING" = 1 ]; then
    # The grid (overridable, e.g. for a quick try: SCALING_T=10 SCALING_B=8 SCALING_H=16).
    GRID_T=${SCALING_T:-50 100 200 400} GRID_B=${SCALING_B:-32 128 512} GRID_H=${SCALING_H:-128 256 512}
    N=$(( $(wc -w <<< "$GRID_T") * $(wc -w <<< "$GRID_B") * $(wc -w <<< "$GRID_H") )); k=0
    for T in $GRID_T; do
        for B in $GRID_B; do
            for H in $GRID_H; do
                k=$((k + 1))
                echo "[$k/$N] $(date +%H:%M:%S) T=$T B=$B H=$H" >&2
                for n in $NAMES; do run "$n" "$T" "$B" "$H"; done
            done
        done
    done
    PEER=$(for n in $NAMES; do [ "$n" = trellis ] || { echo "$n"; break; }; done)
    {
        echo "## Scaling: trellis beside ${PEER:-jax}"
        echo
        machine
        echo "- Steps per run: $STEPS (after the first step and $WARMUP warm-up steps for the peer; trellis: 1 warm-up)"
        echo
        "$TABLEPY" "$HERE/table.py" --scaling --peer "${PEER:-jax}" "${PEAK[@]}" "$OUT"
    } | tee "$MD"
else
    for r in $(seq 1 "$ROUNDS"); do
        echo "round $r/$ROUNDS $(date +%H:%M:%S)" >&2
        for n in $NAMES; do run "$n" "$SEQ" "$BATCH" "$HIDDEN"; done
    done
    {
        echo "## trellis beside its peers: the seed model"
        echo
        machine
        echo "- Medians of $ROUNDS rounds; each run: $STEPS timed steps (train) and $STEPS timed batches (inference)"
        echo
        "$TABLEPY" "$HERE/table.py" "${PEAK[@]}" "$OUT"
    } | tee "$MD"
fi
