#!/usr/bin/env bash
# Many models per server (issue 14): builds a repository of N models, starts
# flexor_server loading all of them, and prints the figures the density bars
# are stated in: seconds until the gRPC port answers and until every version
# is ready, resident memory over the model files, the size of one /metrics
# scrape, and RepositoryIndex latency (docs/performance.md, "Many models").
# Usage: tools/scripts/density_bench.sh [BUILD_DIR] [N] [extra flexor_make_model flags]
# With MODEL_FILE=path the N models are copies of that file (separate files:
# the server reads each into its own memory, so nothing is shared) instead of
# N random models (distinct seeds; slower to build for large N).
# SERVER_FLAGS adds flexor_server flags (e.g. --per-model-histograms=all).
# The scrape is measured twice: idle, and after every model has answered
# requests (flexorctl bench --spread-models=N), when each has its request
# counter series too.
set -euo pipefail
BUILD=${1:-build}
N=${2:-1000}
shift 2 || true
TMP=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
REPO=$TMP/repo
mkdir -p "$REPO"
for i in $(seq 1 "$N"); do
  dir=$(printf '%s/m%06d/1' "$REPO" "$i")
  mkdir -p "$dir"
  if [ -n "${MODEL_FILE:-}" ]; then
    cp "$MODEL_FILE" "$dir/model.flexor"
  else
    "$BUILD/tools/flexor_make_model" --name="m$i" --seed="$i" "$@" \
      --out="$dir/model.flexor" >/dev/null
  fi
done
FILE_BYTES=$(find "$REPO" -name model.flexor -printf '%s\n' |
  awk '{s += $1} END {print s}')

# The same server with an empty repository: the baseline resident set.
mkdir -p "$TMP/empty"
start() {  # $1 = repository
  rm -f "$TMP/ports"
  "$BUILD/server/flexor_server" --model-repository="$1" \
    --model-control-mode=explicit --load-model='*' --grpc-port=0 \
    --metrics-port=0 --port-file="$TMP/ports" --threads=2 \
    --log-level=warning ${SERVER_FLAGS:-} &
  PID=$!
}
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$PID/status"; }
wait_port() {
  for _ in $(seq 1 6000); do [ -s "$TMP/ports" ] && return; sleep 0.01; done
  echo "the server did not open its ports" >&2
  exit 1
}
start "$TMP/empty"
wait_port
sleep 1
BASE_RSS=$(rss)
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=

T0=$(date +%s%N)
start "$REPO"
wait_port
T_PORT=$(date +%s%N)
GRPC=$(sed -n 's/^grpc=//p' "$TMP/ports")
METRICS=$(sed -n 's/^metrics=//p' "$TMP/ports")
loaded() {
  curl -s "http://127.0.0.1:$METRICS/metrics" |
    awk '/^flexor_model_versions_loaded / {print int($2)}'
}
until [ "$(loaded)" = "$N" ]; do sleep 0.05; done
T_READY=$(date +%s%N)
sleep 1
RSS=$(rss)
SCRAPE=$(curl -s "http://127.0.0.1:$METRICS/metrics" | wc -c)
LINES=$(curl -s "http://127.0.0.1:$METRICS/metrics" | wc -l)
echo "models: $N, model files $FILE_BYTES bytes"
echo "ports open after $(( (T_PORT - T0) / 1000000 )) ms; all ready after $(( (T_READY - T0) / 1000000 )) ms"
awk -v b="$BASE_RSS" -v r="$RSS" -v f="$FILE_BYTES" -v n="$N" 'BEGIN {
  printf "RSS %.1f MiB (empty server %.1f MiB): growth %.1f MiB = files x %.3f (overhead %.1f%%), %.1f KiB per model\n",
    r / 1048576, b / 1048576, (r - b) / 1048576, (r - b) / f, 100 * ((r - b) / f - 1),
    (r - b - f) / n / 1024 }'
echo "one /metrics scrape (idle): $SCRAPE bytes, $LINES lines"
"$BUILD/tools/flexorctl" --server="localhost:$GRPC" bench --spread-models="$N" \
  --requests=$((2 * N)) --concurrency=8 --warmup-s=0 --duration-s=600 >/dev/null
SCRAPE=$(curl -s "http://127.0.0.1:$METRICS/metrics" | wc -c)
LINES=$(curl -s "http://127.0.0.1:$METRICS/metrics" | wc -l)
echo "one /metrics scrape (every model used): $SCRAPE bytes, $LINES lines"
"$BUILD/tools/flexorctl" --server="localhost:$GRPC" bench --rpc=index \
  --concurrency=1 --duration-s=3 --warmup-s=0.5
