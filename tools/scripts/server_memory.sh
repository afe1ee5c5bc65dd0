#!/usr/bin/env bash
# Resident memory of flexor_server with N models loaded vs the sum of their
# payload sizes (docs/performance.md, "## Server").
# Usage: tools/scripts/server_memory.sh [BUILD_DIR] [N] [extra flexor_make_model flags]
# With MODEL_FILE=path, the N models are copies of that file (separate files,
# so nothing is shared) instead of random models.
set -euo pipefail
BUILD=${1:-build}
N=${2:-100}
shift 2 || true
REPO=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null; rm -rf "$REPO"' EXIT
for i in $(seq 1 "$N"); do
  if [ -n "${MODEL_FILE:-}" ]; then
    mkdir -p "$REPO/m$i/1" && cp "$MODEL_FILE" "$REPO/m$i/1/model.flexor"
  else
    "$BUILD/tools/flexor_make_model" --name="m$i" --seed="$i" "$@" \
      --out="$REPO/m$i/1/model.flexor" >/dev/null
  fi
done
"$BUILD/server/flexor_server" --model-repository="$REPO" \
  --model-control-mode=explicit --grpc-port=0 --metrics-port=0 \
  --port-file="$REPO/ports" --threads=2 --log-level=warning &
PID=$!
for _ in $(seq 1 300); do [ -s "$REPO/ports" ] && break; sleep 0.05; done
PORT=$(sed -n 's/^grpc=//p' "$REPO/ports")
CTL="$BUILD/tools/flexorctl --server=localhost:$PORT"
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$PID/status"; }
# One inference first, so lazily initialised runtime state (gRPC, TBB) is
# part of the baseline.
$CTL load m1 >/dev/null
$CTL --model=m1 bench --requests=200 --duration-s=5 --warmup-s=0 >/dev/null
$CTL unload m1 >/dev/null
BEFORE=$(rss)
for i in $(seq 1 "$N"); do $CTL load "m$i" >/dev/null; done
# Every model serves once (faults in anything touched per request).
for i in $(seq 1 "$N"); do
  $CTL --model="m$i" bench --requests=2 --duration-s=5 --warmup-s=0 >/dev/null
done
AFTER=$(rss)
FILES=$(find "$REPO" -name model.flexor -printf '%s\n' | awk '{s += $1} END {print s}')
METRICS=$(sed -n 's/^metrics=//p' "$REPO/ports")
WEIGHTS=$(curl -s "localhost:$METRICS/metrics" |
  awk '/^flexor_model_compressed_weight_bytes/ {s += $2} END {printf "%d", s}')
DELTA=$((AFTER - BEFORE))
awk -v n="$N" -v before="$BEFORE" -v after="$AFTER" -v files="$FILES" \
    -v weights="$WEIGHTS" -v delta="$DELTA" 'BEGIN {
  printf "models %d; RSS before %.1f MiB, after %.1f MiB: +%.2f MiB\n", n, before/1048576, after/1048576, delta/1048576
  printf "sum of model files %.2f MiB (compressed weights %.2f MiB)\n", files/1048576, weights/1048576
  printf "RSS growth / file bytes = %.3f (overhead %.1f%%); per model %.1f KiB resident for %.1f KiB file\n", delta/files, 100*(delta-files)/files, delta/n/1024, files/n/1024
}'
