#!/usr/bin/env bash
# Fair dispatch across models (issue 14): one server with N copies of a
# model; the same closed-loop load (CONCURRENCY requests in flight) sent to
# one model and then spread round robin over all N (flexorctl bench
# --spread-models=N), back to back, REPEAT times, with the load average.
# Usage: tools/scripts/spread_bench.sh [BUILD_DIR] [N] [REPEAT]
# Env: MODEL_FILE (default models/fashion_lenet/1/model.flexor),
# CONCURRENCY (8), DURATION (10 s), THREADS (2), SERVER (a flexor_server
# binary to compare, default BUILD_DIR's), SERVER_FLAGS, SCRAPE_EVERY
# (seconds: scrape /metrics that often during the runs, as Prometheus would).
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
"$(dirname "$0")/copy_models.sh" "$MODEL_FILE" "$TMP/repo" "$N"
"$SERVER" --model-repository="$TMP/repo" --model-control-mode=explicit \
  --load-model='*' --grpc-port=0 --metrics-port=0 --port-file="$TMP/ports" \
  --threads="${THREADS:-2}" --log-level=error ${SERVER_FLAGS:-} &
PID=$!
for _ in $(seq 1 6000); do [ -s "$TMP/ports" ] && break; sleep 0.01; done
GRPC=$(sed -n 's/^grpc=//p' "$TMP/ports")
METRICS=$(sed -n 's/^metrics=//p' "$TMP/ports")
CTL=("$BUILD/tools/flexorctl" --server="localhost:$GRPC" bench
  --concurrency="$CONCURRENCY" --duration-s="$DURATION" --warmup-s=2)
# Sums and counts of the server-wide queue, compute and batch-size
# histograms (label-free series, the default --per-model-histograms=none).
sums() {
  curl -s "http://127.0.0.1:$METRICS/metrics" | awk '
    /^flexor_inference_(queue_duration_seconds|compute_duration_seconds|batch_size)_(sum|count) / {
      printf "%s=%s ", $1, $2 }'
}
# Mean queue wait, compute time per execution and batch size between two
# sums() snapshots.
delta() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); v0[kv[1]] = kv[2] }
    n = split(b, y, " "); for (i = 1; i <= n; i++) { split(y[i], kv, "="); v1[kv[1]] = kv[2] }
    for (k in v1) d[k] = v1[k] - v0[k]
    q = "flexor_inference_queue_duration_seconds_"; c = "flexor_inference_compute_duration_seconds_"
    s = "flexor_inference_batch_size_"
    printf "server: queue mean %.0f us, compute mean %.0f us per execution, batch mean %.2f",
      d[q "count"] ? 1e6 * d[q "sum"] / d[q "count"] : 0,
      d[c "count"] ? 1e6 * d[c "sum"] / d[c "count"] : 0,
      d[s "count"] ? d[s "sum"] / d[s "count"] : 0 }'
}
if [ -n "${SCRAPE_EVERY:-}" ]; then
  (while kill -0 "$PID" 2>/dev/null; do
     curl -s -o /dev/null "http://127.0.0.1:$METRICS/metrics"; sleep "$SCRAPE_EVERY"
   done) &
fi
echo "server $SERVER, $N models, concurrency $CONCURRENCY, ${DURATION} s per run"
for r in $(seq 1 "$REPEAT"); do
  echo "run $r, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  a=$(sums)
  echo "  one model:   $("${CTL[@]}" --model=m000001)"
  b=$(sums)
  echo "               $(delta "$a" "$b")"
  echo "  spread $N: $("${CTL[@]}" --spread-models="$N")"
  c=$(sums)
  echo "               $(delta "$b" "$c")"
done
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
