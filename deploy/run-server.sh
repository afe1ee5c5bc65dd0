#!/usr/bin/env bash
# The README's main job: install dependencies, build, start flexor_server on
# the shipped model repository (models/), wait until it is ready, answer a
# sample Fashion-MNIST request with flexorctl, then keep serving in the
# foreground until Ctrl-C / SIGTERM (graceful shutdown).
#
# Usage: deploy/run-server.sh [--grpc-port N] [--metrics-port N]
#                             [--repository DIR] [-- extra server flags]
# Environment: FLEXOR_DEMO_EXIT=1 exits after the sample request (CI);
#              BUILD_DIR (default build), JOBS (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

GRPC_PORT=8001
METRICS_PORT=8002
REPOSITORY=models
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --grpc-port) GRPC_PORT=$2; shift 2 ;;
    --metrics-port) METRICS_PORT=$2; shift 2 ;;
    --repository) REPOSITORY=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run-server: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
log() { echo "run-server: $*"; }

bash deploy/install-deps.sh
log "building flexor_server and flexorctl in $BUILD_DIR/ (Release)"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS" \
  --target flexor_server flexorctl flexor_make_model

SERVER=$BUILD_DIR/server/flexor_server
CTL=$BUILD_DIR/tools/flexorctl
if ! compgen -G "$REPOSITORY/*/[0-9]*/model.flexor" >/dev/null; then
  DEMO=$BUILD_DIR/demo-models
  log "no model in $REPOSITORY/ yet: generating a demo model with RANDOM"
  log "weights (flexor_make_model) into $DEMO/ - its predictions are"
  log "meaningless; train one with flexor_train for real answers"
  "$BUILD_DIR/tools/flexor_make_model" --name=fashion_lenet --arch=lenet \
    --method=flexor --out="$DEMO/fashion_lenet/1/model.flexor"
  REPOSITORY=$DEMO
fi

# Admin RPCs (load, unload, uploads) need a bearer token; inference is open.
TOKEN_FILE=$BUILD_DIR/admin-token
if [ ! -s "$TOKEN_FILE" ]; then
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' \
    >"$TOKEN_FILE" && echo >>"$TOKEN_FILE")
  log "generated the admin token $TOKEN_FILE"
fi

PORT_FILE=$BUILD_DIR/flexor_server.ports
rm -f "$PORT_FILE"
log "starting $SERVER on repository $REPOSITORY/"
"$SERVER" --model-repository="$REPOSITORY" --model-control-mode=explicit \
  --load-model='*' --grpc-port="$GRPC_PORT" --metrics-port="$METRICS_PORT" \
  --auth-token-file="$TOKEN_FILE" --port-file="$PORT_FILE" "${EXTRA[@]}" &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || return $?
  fi
}
trap 'stop_server; exit $?' INT TERM

for _ in $(seq 1 600); do
  [ -s "$PORT_FILE" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { log "the server exited"; wait "$SERVER_PID"; exit 1; }
  sleep 0.1
done
[ -s "$PORT_FILE" ] || { log "the server did not become ready"; stop_server; exit 1; }
GRPC_PORT=$(sed -n 's/^grpc=//p' "$PORT_FILE")
METRICS_PORT=$(sed -n 's/^metrics=//p' "$PORT_FILE")
"$CTL" --server="localhost:$GRPC_PORT" status

cat <<INFO

  gRPC (KServe v2 / Open Inference Protocol): localhost:$GRPC_PORT
      health: grpc.health.v1 (service "" or a model name); reflection on
  Prometheus metrics:                          http://localhost:$METRICS_PORT/metrics
  Models:  $CTL --server=localhost:$GRPC_PORT list
  Admin:   $CTL --server=localhost:$GRPC_PORT --token-file=$TOKEN_FILE load MODEL [FILE]

INFO

IMAGES=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
LABELS=/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
MODEL=$("$CTL" --server="localhost:$GRPC_PORT" list | awk '$3 == "READY" {print $1; exit}')
log "sample request: Fashion-MNIST test image 0 to model '$MODEL'"
"$CTL" --server="localhost:$GRPC_PORT" --model="$MODEL" infer \
  --images="$IMAGES" --labels="$LABELS" --index=0 --count=1

if [ "${FLEXOR_DEMO_EXIT:-0}" = "1" ]; then
  log "FLEXOR_DEMO_EXIT=1: stopping the server"
  stop_server
  log "server exited cleanly"
  exit 0
fi
log "serving in the foreground (pid $SERVER_PID); Ctrl-C stops it gracefully"
wait "$SERVER_PID"
