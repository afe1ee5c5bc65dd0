#!/usr/bin/env bash
# The whole service on one machine, no container engine: flexor_server on a
# copy of the shipped repository, a real Prometheus (Debian's package)
# scraping it with deploy/monitoring's config and alert rules, a load
# generator (flexorctl bench), and flexor_train training a new version of
# the model and publishing it to the server while the load runs. At the end
# it prints the Prometheus queries that show the hot swap (which version
# answered when, failed requests, loads) and stops everything gracefully.
#
# Usage: deploy/local-stack.sh [--short] [--check] [--keep] [--concurrency N]
#   --short        bounded run for CI: a tiny training (20 steps on 1,024
#                  images, a few seconds) instead of one epoch on 12,000
#   --check        exit 1 unless Prometheus saw both versions serve, the new
#                  one serving at the end, and no failed request or load
#   --keep         leave the server and Prometheus running afterwards
#                  (Ctrl-C stops them) to explore http://localhost:PORT
#   --concurrency  load generator connections (default 4)
# Environment: BUILD_DIR (default build; missing binaries are built there),
#              WORK_DIR (default: a new temporary directory, removed at the
#              end unless --keep), MODEL (default fashion_lenet).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SHORT=0 CHECK=0 KEEP=0 CONCURRENCY=4
while [ $# -gt 0 ]; do
  case "$1" in
    --short) SHORT=1 ;;
    --check) CHECK=1 ;;
    --keep) KEEP=1 ;;
    --concurrency) CONCURRENCY=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "local-stack: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
BUILD_DIR=${BUILD_DIR:-build}
MODEL=${MODEL:-fashion_lenet}
log() { echo "local-stack [$(date +%T)]: $*"; }
die() { log "ERROR: $*"; exit 1; }

for tool in prometheus promtool curl python3; do
  command -v $tool >/dev/null ||
    die "$tool not found; run deploy/install-deps.sh (Debian: prometheus, curl)"
done
SERVER=$BUILD_DIR/server/flexor_server
CTL=$BUILD_DIR/tools/flexorctl
TRAIN=$BUILD_DIR/trainer/flexor_train
if [ ! -x "$SERVER" ] || [ ! -x "$CTL" ] || [ ! -x "$TRAIN" ]; then
  log "building flexor_server, flexorctl and flexor_train in $BUILD_DIR/"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DFLEXOR_BUILD_TRAINER=ON >/dev/null
  cmake --build "$BUILD_DIR" --target flexor_server flexorctl flexor_train
fi
ls models/"$MODEL"/[0-9]*/model.flexor >/dev/null 2>&1 ||
  die "no shipped model models/$MODEL/<version>/model.flexor"

if [ -n "${WORK_DIR:-}" ]; then
  mkdir -p "$WORK_DIR"
  WORK=$(cd "$WORK_DIR" && pwd)
else
  WORK=$(mktemp -d /tmp/flexor-local-stack.XXXXXX)
fi
PIDS=()
cleanup() {
  local rc=$?
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ $KEEP -eq 0 ] && [ -z "${WORK_DIR:-}" ]; then rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq 1 $((seconds * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$what did not come up within ${seconds}s (logs in $WORK)"
}

# --- the model repository: a copy, so publishing leaves models/ alone ------
mkdir -p "$WORK/repository"
cp -r "models/$MODEL" "$WORK/repository/"
OLD_VERSION=$(ls "$WORK/repository/$MODEL" | grep -E '^[0-9]+$' | sort -n | tail -1)
NEW_VERSION=$((OLD_VERSION + 1))
START=$(date +%s.%N)

# --- flexor_server ------------------------------------------------------------
log "starting flexor_server on $WORK/repository (logs: $WORK/server.log)"
"$SERVER" --model-repository="$WORK/repository" --model-control-mode=explicit \
  --load-model='*' --address=127.0.0.1 --grpc-port=0 --metrics-port=0 \
  --port-file="$WORK/ports" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
wait_for 60 flexor_server test -s "$WORK/ports"
GRPC_PORT=$(sed -n 's/^grpc=//p' "$WORK/ports")
METRICS_PORT=$(sed -n 's/^metrics=//p' "$WORK/ports")
"$CTL" --server="127.0.0.1:$GRPC_PORT" health "$MODEL"

# --- Prometheus: the shipped config, scraping every second here -------------
PROM_PORT=$(free_port)
mkdir -p "$WORK/prometheus/targets"
cp deploy/monitoring/alerts.yml "$WORK/prometheus/"
sed -e 's/^\(  scrape_interval:\).*/\1 1s/' \
  -e 's/^\(  evaluation_interval:\).*/\1 1s/' \
  -e 's/^\(    refresh_interval:\).*/\1 1s/' \
  -e 's/^\(    scrape_timeout:\).*/\1 1s/' \
  deploy/monitoring/prometheus.yml >"$WORK/prometheus/prometheus.yml"
cat >"$WORK/prometheus/targets/local.json" <<EOF
[{"targets": ["127.0.0.1:$METRICS_PORT"], "labels": {"deployment": "local-stack"}}]
EOF
promtool check config "$WORK/prometheus/prometheus.yml" >/dev/null ||
  die "promtool rejected the generated Prometheus config"
log "starting Prometheus on http://127.0.0.1:$PROM_PORT (logs: $WORK/prometheus.log)"
prometheus --config.file="$WORK/prometheus/prometheus.yml" \
  --storage.tsdb.path="$WORK/prometheus/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn \
  >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
PROM=http://127.0.0.1:$PROM_PORT
wait_for 60 Prometheus curl -sf "$PROM/-/ready"
scraped() {
  curl -sf "$PROM/api/v1/query?query=up%7Bjob%3D%22flexor-server%22%7D%3D%3D1" |
    grep -q '"value"'
}
wait_for 30 "the first scrape" scraped

# --- load: rounds of flexorctl bench until the swap is over ----------------
IMAGES=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
touch "$WORK/load.running"
(
  while [ -e "$WORK/load.running" ]; do
    "$CTL" --server="127.0.0.1:$GRPC_PORT" --model="$MODEL" bench \
      --images="$IMAGES" --concurrency="$CONCURRENCY" --duration-s=2 \
      --warmup-s=0 --json || echo '{"ok": 0, "errors": {"BENCH_FAILED": 1}}'
  done >"$WORK/bench.jsonl" 2>"$WORK/bench.log"
) &
LOAD_PID=$!
PIDS+=($LOAD_PID)
log "load running: flexorctl bench, $CONCURRENCY connections (v$OLD_VERSION serving)"
sleep 5

# --- the trainer publishes a new version while the load runs ---------------
if [ $SHORT -eq 1 ]; then
  TRAIN_FLAGS=(--epochs=1 --max_steps=20 --train_limit=1024 --test_limit=500)
else
  TRAIN_FLAGS=(--epochs=1 --train_limit=12000 --test_limit=2000)
fi
log "training a new FleXOR 0.8-bit $MODEL and publishing it to the server" \
  "(${TRAIN_FLAGS[*]}; logs: $WORK/trainer.log)"
"$TRAIN" --arch=lenet --method=flexor --n_in=16 --n_out=20 --n_tap=2 \
  "${TRAIN_FLAGS[@]}" --threads=1 --model_name="$MODEL" \
  --output="$WORK/new.flexor" --publish_server="127.0.0.1:$GRPC_PORT" \
  >"$WORK/trainer.log" 2>&1 || {
  tail -5 "$WORK/trainer.log"
  die "flexor_train failed"
}
grep -E "engine check|publish" "$WORK/trainer.log" | sed 's/^/  /'
log "published; load continues on the new version"
sleep 6
rm -f "$WORK/load.running"
wait $LOAD_PID || true
sleep 3  # two more scrapes and rule evaluations

# --- what Prometheus saw --------------------------------------------------------
set +e
python3 deploy/local_stack_report.py --prometheus="$PROM" --model="$MODEL" \
  --old-version="$OLD_VERSION" --new-version="$NEW_VERSION" --start="$START" \
  --bench-json="$WORK/bench.jsonl" $([ $CHECK -eq 1 ] && echo --check)
REPORT=$?
set -e
# Every dashboard query must evaluate on this live Prometheus.
python3 tests/deploy/check_dashboard.py --prometheus="$PROM" \
  deploy/monitoring/grafana-dashboard.json || REPORT=1
[ $REPORT -eq 0 ] || exit $REPORT

if [ $KEEP -eq 1 ]; then
  log "--keep: server gRPC 127.0.0.1:$GRPC_PORT, metrics" \
    "http://127.0.0.1:$METRICS_PORT/metrics, Prometheus $PROM; Ctrl-C stops"
  wait "${PIDS[0]}"
fi
log "stopping (SIGTERM: the server drains in-flight requests)"
