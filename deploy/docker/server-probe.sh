#!/bin/sh
# Health check of the flexor-server image (HEALTHCHECK): grpc.health.v1 on
# 127.0.0.1:8001, over TLS when the entrypoint enabled it (the certificate
# must name "localhost", or set FLEXOR_TLS_SERVER_NAME). Usage:
# flexor-probe [SERVICE]
set -eu
tls_dir=${FLEXOR_TLS_DIR:-/etc/flexor/tls}
tls=""
if [ -s "$tls_dir/tls.crt" ]; then
  ca=$tls_dir/ca.crt
  [ -s "$ca" ] || ca=$tls_dir/tls.crt
  tls="--tls-ca-file=$ca --tls-server-name=${FLEXOR_TLS_SERVER_NAME:-localhost}"
fi
# shellcheck disable=SC2086
exec /usr/local/bin/flexorctl --server=127.0.0.1:"${FLEXOR_GRPC_PORT:-8001}" \
  --timeout-ms=2000 $tls health "$@"
