#!/usr/bin/env bash
# Fair dispatch across models (issue 14): one server with N copies of a
# model; the same closed-loop load (CONCURRENCY requests in flight) sent to
# one model and then spread round robin over all N (flexorctl bench
# --spread-models=N), back to back, REPEAT times, with the load average.
# Usage: tools/scripts/spread_bench.sh [BUILD_DIR] [N] [REPEAT]
# Env: MODEL_FILE (default models/fashion_lenet/1/model.flexor),
# CONCURRENCY (8), DURATION (10 s), THREADS (2), SERVER (a flexor_server
# binary to compare, default BUILD_DIR's), SERVER_FLAGS.
set -euo pipefail
BUILD=${1:-build}
N=${2:-1000}
REPEAT=${3:-3}
MODEL_FILE=${MODEL_FILE:-models/fashion_lenet/1/model.flexor}
CONCURRENCY=${CONCURRENCY:-8}
DURATION=${DURATION:-10}
SERVER=${SERVER:-$BUILD/server/flexor_server}
TMP=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
for i in $(seq 1 "$N"); do
  dir=$(printf '%s/repo/m%06d/1' "$TMP" "$i")
  mkdir -p "$dir"
  cp "$MODEL_FILE" "$dir/model.flexor"
done
"$SERVER" --model-repository="$TMP/repo" --model-control-mode=explicit \
  --load-model='*' --grpc-port=0 --metrics-port=-1 --port-file="$TMP/ports" \
  --threads="${THREADS:-2}" --log-level=error ${SERVER_FLAGS:-} &
PID=$!
for _ in $(seq 1 6000); do [ -s "$TMP/ports" ] && break; sleep 0.01; done
GRPC=$(sed -n 's/^grpc=//p' "$TMP/ports")
CTL=("$BUILD/tools/flexorctl" --server="localhost:$GRPC" bench
  --concurrency="$CONCURRENCY" --duration-s="$DURATION" --warmup-s=2)
echo "server $SERVER, $N models, concurrency $CONCURRENCY, ${DURATION} s per run"
for r in $(seq 1 "$REPEAT"); do
  echo "run $r, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "  one model:   $("${CTL[@]}" --model=m000001)"
  echo "  spread $N: $("${CTL[@]}" --spread-models="$N")"
done
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
