#!/usr/bin/env bash
# Many models per server (issue 14). Two scenarios on a repository of N
# models (docs/performance.md, "Many models"):
#
# 1. All resident (default): starts flexor_server loading every model and
#    prints when grpc.health first answered SERVING, when the port opened,
#    when every version was ready, resident memory over an empty server and
#    the files, one /metrics scrape, and RepositoryIndex latency.
# 2. Memory budget (BUDGET=2GiB): starts it with --memory-budget, drives a
#    Zipf(ZIPF_S) ModelInfer mix over the N models for DURATION seconds
#    (flexorctl bench --zipf-models) and prints failed requests, peak RSS
#    against budget + base (base: the server with the N models registered,
#    before any request), hit rate, evictions, and cold-load p50/p99.
#
# Usage: tools/scripts/density_bench.sh [BUILD_DIR] [N] [extra flexor_make_model flags]
# Environment:
#   MODEL_FILE=path   the N models are copies of that file (separate files,
#                     so nothing is shared between them, read or mapped)
#                     instead of N random models (distinct seeds)
#   REPO_DIR=dir      build the repository there and keep it (reused when it
#                     already holds N models); default: a temporary one
#   SCENARIO=resident|budget|both   default: resident, or budget if BUDGET
#   BUDGET=2GiB  DURATION=300  CONCURRENCY=8  ZIPF_S=1.1  THREADS=2
#   SERVER_FLAGS=...  more flexor_server flags (e.g. --per-model-histograms=all,
#                     --model-file-access=map)
# The resident scenario measures the scrape twice: idle, and after every
# model has answered requests (flexorctl bench --spread-models=N), when each
# has its request counter series too.
set -euo pipefail
BUILD=${1:-build}
N=${2:-1000}
shift 2 || true
BUDGET=${BUDGET:-}
SCENARIO=${SCENARIO:-$([ -n "$BUDGET" ] && echo budget || echo resident)}
DURATION=${DURATION:-300}
CONCURRENCY=${CONCURRENCY:-8}
ZIPF_S=${ZIPF_S:-1.1}
THREADS=${THREADS:-2}
TMP=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
REPO=${REPO_DIR:-$TMP/repo}
mkdir -p "$REPO"
have=$(find "$REPO" -mindepth 1 -maxdepth 1 -type d -name 'm*' | wc -l)
if [ "$have" -ne "$N" ]; then
  echo "building a repository of $N models in $REPO" >&2
  if [ -n "${MODEL_FILE:-}" ]; then
    "$(dirname "$0")/copy_models.sh" "$MODEL_FILE" "$REPO" "$N"
  else
    for i in $(seq 1 "$N"); do
      printf -v dir '%s/m%06d/1' "$REPO" "$i"
      [ -s "$dir/model.flexor" ] && continue
      mkdir -p "$dir"
      "$BUILD/tools/flexor_make_model" --name="m$i" --seed="$i" "$@" \
        --out="$dir/model.flexor" >/dev/null
    done
  fi
fi
FILE_BYTES=$(find "$REPO" -name model.flexor -printf '%s\n' |
  awk '{s += $1} END {print s}')
CTL="$BUILD/tools/flexorctl"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "models: $N, model files $FILE_BYTES bytes"

start() {  # $1 = repository, then extra flags
  local repo=$1
  shift
  rm -f "$TMP/ports" "$TMP/listening"
  T0=$(date +%s%N)
  "$BUILD/server/flexor_server" --model-repository="$repo" \
    --model-control-mode=explicit --load-model='*' --grpc-port=0 \
    --metrics-port=0 --port-file="$TMP/ports" \
    --listening-port-file="$TMP/listening" --threads="$THREADS" \
    --log-level=warning ${SERVER_FLAGS:-} "$@" &
  PID=$!
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$PID/status"; }
hwm() { awk '/VmHWM/ {print $2 * 1024}' "/proc/$PID/status"; }
ms_since_start() { echo $(( ($(date +%s%N) - T0) / 1000000 )); }
# Milliseconds from start until grpc.health (service "") answers SERVING.
wait_health() {
  for _ in $(seq 1 60000); do
    if [ -s "$TMP/listening" ]; then
      local port
      port=$(sed -n 's/^grpc=//p' "$TMP/listening")
      if "$CTL" --server="127.0.0.1:$port" --timeout-ms=1000 health \
        >/dev/null 2>&1; then
        ms_since_start
        return
      fi
    fi
    sleep 0.005
  done
  echo "the server did not answer health" >&2
  exit 1
}
wait_ready() {
  for _ in $(seq 1 60000); do [ -s "$TMP/ports" ] && return; sleep 0.01; done
  echo "the server did not become ready" >&2
  exit 1
}
metric() {  # $1 = metric name with labels as printed, e.g. 'x{result="hit"}'
  awk -v m="$1" '$1 == m {print $2}' "$TMP/metrics"
}
scrape() { curl -s "http://127.0.0.1:$METRICS/metrics" >"$TMP/metrics"; }
# Starts the server ($@ as for start), waits for health and readiness, and
# sets T_HEALTH / T_READY (ms since start), GRPC / METRICS (ports) and
# $TMP/metrics (one scrape).
start_and_wait() {
  start "$@"
  T_HEALTH=$(wait_health)
  wait_ready
  T_READY=$(ms_since_start)
  GRPC=$(sed -n 's/^grpc=//p' "$TMP/ports")
  METRICS=$(sed -n 's/^metrics=//p' "$TMP/ports")
  scrape
}
scrape_size() {  # "BYTES bytes, LINES lines" of one scrape
  scrape
  echo "$(wc -c <"$TMP/metrics") bytes, $(wc -l <"$TMP/metrics") lines"
}

# The same server with an empty repository: the baseline resident set. It
# goes through what the loaded server goes through before its RSS is read
# (health probes, one scrape, a second of rest), so the difference is what
# the models cost: the first gRPC call alone adds ~0.8 MiB (gRPC's server
# threads and buffers), 1% of 1,000 LeNet files.
mkdir -p "$TMP/empty"
start_and_wait "$TMP/empty"
sleep 1
EMPTY_RSS=$(rss)
stop

if [ "$SCENARIO" = resident ] || [ "$SCENARIO" = both ]; then
  echo "== all $N models resident"
  start_and_wait "$REPO"
  LOADED=$(metric flexor_model_versions_loaded)
  sleep 1
  RSS=$(rss)
  SCRAPE_IDLE=$(scrape_size)
  echo "health SERVING after $T_HEALTH ms; all $LOADED versions ready after $T_READY ms"
  awk -v b="$EMPTY_RSS" -v r="$RSS" -v f="$FILE_BYTES" -v n="$N" 'BEGIN {
    printf "RSS %.1f MiB (empty server %.1f MiB): growth %.1f MiB = files x %.3f (overhead %.1f%%), %.1f KiB per model over its file\n",
      r / 1048576, b / 1048576, (r - b) / 1048576, (r - b) / f, 100 * ((r - b) / f - 1),
      (r - b - f) / n / 1024 }'
  # Mapped files (--model-file-access=map) count in RssFile, read ones in
  # RssAnon: the growth above compares either with the file bytes.
  awk '/^Rss(Anon|File|Shmem)/ {printf "%s %.1f MiB  ", $1, $2 / 1024} END {print ""}' \
    "/proc/$PID/status"
  echo "one /metrics scrape (idle): $SCRAPE_IDLE"
  "$CTL" --server="localhost:$GRPC" bench --spread-models="$N" \
    --requests=$((2 * N)) --concurrency=8 --warmup-s=0 --duration-s=600 >/dev/null
  echo "one /metrics scrape (every model used): $(scrape_size)"
  "$CTL" --server="localhost:$GRPC" bench --rpc=index \
    --concurrency=1 --duration-s=3 --warmup-s=0.5
  stop
fi

if [ "$SCENARIO" = budget ] || [ "$SCENARIO" = both ]; then
  BUDGET=${BUDGET:-2GiB}
  echo "== memory budget $BUDGET, $N registered, Zipf($ZIPF_S), concurrency $CONCURRENCY, ${DURATION}s"
  start_and_wait "$REPO" --memory-budget="$BUDGET"
  BUDGET_BYTES=$(metric flexor_memory_budget_bytes)
  sleep 1
  BASE_RSS=$(rss)
  echo "health SERVING after $T_HEALTH ms; ready (all registered) after $T_READY ms"
  PEAK=$BASE_RSS
  (
    while kill -0 "$PID" 2>/dev/null; do
      awk '/VmRSS/ {print $2 * 1024}' "/proc/$PID/status" 2>/dev/null
      sleep 1
    done
  ) >"$TMP/rss.log" &
  SAMPLER=$!
  set +e
  "$CTL" --server="localhost:$GRPC" --timeout-ms=30000 bench \
    --zipf-models="$N" --zipf-s="$ZIPF_S" --concurrency="$CONCURRENCY" \
    --duration-s="$DURATION" --warmup-s=0 | tee "$TMP/bench.txt"
  set -e
  END_RSS=$(rss)
  HWM=$(hwm)
  kill "$SAMPLER" 2>/dev/null || true
  PEAK=$(sort -n "$TMP/rss.log" | tail -1)
  scrape
  HITS=$(metric 'flexor_model_residency_requests_total{result="hit"}')
  MISSES=$(metric 'flexor_model_residency_requests_total{result="miss"}')
  COLD_OK=$(metric 'flexor_model_cold_loads_total{result="success"}')
  COLD_FAIL=$(metric 'flexor_model_cold_loads_total{result="failure"}')
  EVICTIONS=$(metric flexor_model_evictions_total)
  RESIDENT=$(metric flexor_model_resident_bytes)
  LOADED=$(metric flexor_model_versions_loaded)
  FAILED=$(sed -n 's/.*errors: *//p' "$TMP/bench.txt")
  echo "failed requests: ${FAILED:-?}"
  echo "hits $HITS, misses $MISSES: hit rate $(awk -v h="$HITS" -v m="$MISSES" 'BEGIN {printf "%.2f%%", 100 * h / (h + m)}')"
  echo "cold loads $COLD_OK ok, $COLD_FAIL failed; evictions $EVICTIONS; resident at the end: $LOADED versions, $RESIDENT bytes charged"
  # Cold-load percentiles from the histogram (upper bound of the bucket).
  grep '^flexor_model_cold_load_duration_seconds_bucket' "$TMP/metrics" |
    sed 's/.*le="\([^"]*\)"} \(.*\)/\1 \2/' | awk -v total="$COLD_OK" '
      { le[NR] = $1; c[NR] = $2 }
      END {
        n = 0; for (i = 1; i <= NR; i++) if (c[i] >= 0) n = c[i]
        for (q = 0; q < 2; q++) {
          p = q == 0 ? 0.5 : 0.99
          for (i = 1; i <= NR; i++) if (c[i] >= p * n) break
          printf "cold load p%s <= %s s\n", q == 0 ? "50" : "99", le[i]
        }
      }'
  awk -v base="$BASE_RSS" -v peak="$PEAK" -v hwm="$HWM" -v end="$END_RSS" \
    -v budget="$BUDGET_BYTES" -v empty="$EMPTY_RSS" -v n="$N" 'BEGIN {
    printf "RSS: empty server %.1f MiB; base (%d registered) %.1f MiB (%.0f B per registered model)\n",
      empty / 1048576, n, base / 1048576, (base - empty) / n
    printf "RSS: peak sampled %.1f MiB, VmHWM %.1f MiB, end %.1f MiB; budget + base %.1f MiB: %s\n",
      peak / 1048576, hwm / 1048576, end / 1048576, (budget + base) / 1048576,
      hwm <= budget + base ? "within" : "EXCEEDED" }'
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  stop
fi
