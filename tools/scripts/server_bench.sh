#!/usr/bin/env bash
# Server latency/throughput at several concurrencies, with and without
# dynamic batching, plus the empty-RPC (ServerLive) baseline
# (docs/performance.md, "## Server").
# Usage: tools/scripts/server_bench.sh [BUILD_DIR] [REPOSITORY] [SECONDS]
set -euo pipefail
BUILD=${1:-build}
REPO=${2:-models}
SECONDS_PER_RUN=${3:-5}
THREADS=${THREADS:-2}
CONCURRENCY=${CONCURRENCY:-1,8,64}
TMP=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
IMAGES=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

run() {  # $1 = label, rest = server flags
  local label=$1; shift
  rm -f "$TMP/ports"
  "$BUILD/server/flexor_server" --model-repository="$REPO" --grpc-port=0 \
    --metrics-port=0 --port-file="$TMP/ports" --threads="$THREADS" \
    --log-level=warning "$@" &
  PID=$!
  for _ in $(seq 1 300); do [ -s "$TMP/ports" ] && break; sleep 0.05; done
  local port
  port=$(sed -n 's/^grpc=//p' "$TMP/ports")
  echo "== $label ($*)"
  "$BUILD/tools/flexorctl" --server="localhost:$port" bench --rpc=live \
    --concurrency=1 --duration-s="$SECONDS_PER_RUN"
  "$BUILD/tools/flexorctl" --server="localhost:$port" bench --images="$IMAGES" \
    --concurrency="$CONCURRENCY" --duration-s="$SECONDS_PER_RUN" ${JSON:+--json}
  kill -TERM "$PID"; wait "$PID"; PID=
}

run "dynamic batching" --dynamic-batching=true --max-queue-delay-us=200
run "no batching" --dynamic-batching=false
