#!/usr/bin/env bash
# Soak test of the server as deployed securely: flexor_server on a shipped
# model over TLS, admin RPCs behind a bearer token, --require-signed-models;
# a steady inference load (flexorctl bench) for DURATION seconds while a new
# signed version of the model is uploaded (RepositoryModelLoad) every
# SWAP_SECS seconds. Reports requests, errors, latency p50/p99, swaps and the
# server's resident memory at start and end; exits 1 on any failed request
# or swap. docs/operations.md, "Soak test".
#
# Usage: tools/scripts/soak.sh [BUILD_DIR] [REPOSITORY] [DURATION] [SWAP_SECS]
#        (defaults: build models 600 30; CONCURRENCY=8, THREADS=2)
set -euo pipefail
BUILD=${1:-build}
REPO_SRC=${2:-models}
DURATION=${3:-600}
SWAP_SECS=${4:-30}
CONCURRENCY=${CONCURRENCY:-8}
THREADS=${THREADS:-2}
SERVER=$BUILD/server/flexor_server
CTL=$BUILD/tools/flexorctl
IMAGES=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
for f in "$SERVER" "$CTL"; do
  [ -x "$f" ] || { echo "soak: $f is missing; build it first" >&2; exit 2; }
done
MODEL_FILE=$(ls "$REPO_SRC"/*/[0-9]*/model.flexor 2>/dev/null | head -1)
[ -n "$MODEL_FILE" ] || { echo "soak: no model in $REPO_SRC" >&2; exit 2; }
MODEL=$(basename "$(dirname "$(dirname "$MODEL_FILE")")")

TMP=$(mktemp -d)
PID=
BENCH_PID=
cleanup() {
  [ -n "$BENCH_PID" ] && kill "$BENCH_PID" 2>/dev/null
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
log() { echo "soak: $(date -u +%H:%M:%S) $*"; }
rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }

# Credentials, as an operator would make them.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/admin-token"
"$CTL" keygen --out="$TMP/signing" >/dev/null
TLS=(--tls-ca-file="$TMP/tls.crt" --tls-server-name=localhost)

# The repository: the model, signed, as version 1.
mkdir -p "$TMP/repo/$MODEL/1"
cp "$MODEL_FILE" "$TMP/repo/$MODEL/1/model.flexor"
"$CTL" model sign --key="$TMP/signing.pem" "$TMP/repo/$MODEL/1/model.flexor" \
  >/dev/null

"$SERVER" --model-repository="$TMP/repo" --model-control-mode=explicit \
  --load-model='*' --address=127.0.0.1 --grpc-port=0 --metrics-port=0 \
  --port-file="$TMP/ports" --threads="$THREADS" --log-level=warning \
  --tls-cert-file="$TMP/tls.crt" --tls-key-file="$TMP/tls.key" \
  --auth-token-file="$TMP/admin-token" \
  --model-trusted-keys="$TMP/signing.pub.pem" --require-signed-models \
  2>"$TMP/server.log" &
PID=$!
for _ in $(seq 1 600); do [ -s "$TMP/ports" ] && break; sleep 0.05; done
PORT=$(sed -n 's/^grpc=//p' "$TMP/ports")
[ -n "$PORT" ] || { cat "$TMP/server.log"; echo "soak: no server"; exit 1; }
RSS_START=$(rss_mib)
log "server pid $PID on 127.0.0.1:$PORT (TLS, token, signed models), RSS" \
  "$RSS_START MiB; $DURATION s of load at concurrency $CONCURRENCY, a swap" \
  "every $SWAP_SECS s"

"$CTL" --server="127.0.0.1:$PORT" "${TLS[@]}" --model="$MODEL" bench \
  --images="$IMAGES" --concurrency="$CONCURRENCY" --duration-s="$DURATION" \
  --warmup-s=1 --json >"$TMP/bench.json" 2>"$TMP/bench.err" &
BENCH_PID=$!

swaps=0
swap_failures=0
version=1
start=$(date +%s)
while kill -0 "$BENCH_PID" 2>/dev/null; do
  sleep "$SWAP_SECS" &
  wait $! || true
  kill -0 "$BENCH_PID" 2>/dev/null || break
  [ $(($(date +%s) - start)) -lt "$DURATION" ] || break
  version=$((version + 1))
  cp "$MODEL_FILE" "$TMP/next.flexor"
  "$CTL" model sign --key="$TMP/signing.pem" "$TMP/next.flexor" >/dev/null
  if "$CTL" --server="127.0.0.1:$PORT" "${TLS[@]}" \
      --token-file="$TMP/admin-token" --version="$version" \
      load "$MODEL" "$TMP/next.flexor" >/dev/null 2>"$TMP/swap.err"; then
    swaps=$((swaps + 1))
    # Resident memory once the load has run a while: the baseline for
    # "flat" (the start figure is before any request).
    [ $swaps -ne 1 ] || RSS_WARM=$(rss_mib)
  else
    swap_failures=$((swap_failures + 1))
    log "swap to version $version FAILED: $(cat "$TMP/swap.err")"
  fi
  [ $((swaps % 4)) -ne 0 ] || log "$swaps swaps, version $version, RSS $(rss_mib) MiB"
done
bench_rc=0
wait "$BENCH_PID" || bench_rc=$?
BENCH_PID=
RSS_END=$(rss_mib)
kill -TERM "$PID"
wait "$PID" || true
PID=

python3 - "$TMP/bench.json" "$RSS_START" "${RSS_WARM:-?}" "$RSS_END" "$swaps" \
  "$swap_failures" "$bench_rc" <<'PY'
import json, sys
path, rss0, rss_warm, rss1, swaps, swap_fail, bench_rc = sys.argv[1:]
lines = [l for l in open(path) if l.strip().startswith("{")]
r = json.loads(lines[-1]) if lines else {}
errors = sum(r.get("errors", {}).values())
lat = r.get("latency_us", {})
print("soak: requests %d, errors %d %s, %.1f req/s, latency p50 %.0f us, "
      "p99 %.0f us; swaps %s (failed %s); server RSS %s MiB at start, %s "
      "MiB after the first swap, %s MiB at end"
      % (r.get("ok", 0), errors, json.dumps(r.get("errors", {})),
         r.get("throughput_rps", 0), lat.get("p50", 0), lat.get("p99", 0),
         swaps, swap_fail, rss0, rss_warm, rss1))
bad = errors or int(swap_fail) or int(bench_rc) or not r
sys.exit(1 if bad else 0)
PY
