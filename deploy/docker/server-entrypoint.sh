#!/bin/sh
# Entry point of the flexor-server image: runs flexor_server with the
# arguments given (the image's CMD by default) plus the security flags for
# what is mounted, so that admin RPCs are never open by default:
#
#   /etc/flexor/auth/admin-token   admin bearer token(s), one per line
#                                  (a Kubernetes Secret); when absent a random
#                                  token is generated into
#                                  $HOME/.flexor/admin-token at every start
#                                  (read it with `docker exec <c> cat ...`)
#   /etc/flexor/tls/tls.crt, tls.key   serve gRPC over TLS
#   /etc/flexor/tls/ca.crt         also verify client certificates (mTLS)
#   /etc/flexor/signing/*.pem      trusted model-signing public keys
#   FLEXOR_REQUIRE_SIGNED_MODELS=1 refuse unsigned models
#
# Inference stays open (--auth-inference=open), so `flexorctl infer` and
# Triton/KServe clients work without credentials. Flags given as arguments
# come last and win. FLEXOR_AUTH_DIR / FLEXOR_TLS_DIR / FLEXOR_SIGNING_DIR
# move the directories. docs/security.md explains each flag.
set -eu
auth_dir=${FLEXOR_AUTH_DIR:-/etc/flexor/auth}
tls_dir=${FLEXOR_TLS_DIR:-/etc/flexor/tls}
signing_dir=${FLEXOR_SIGNING_DIR:-/etc/flexor/signing}
log() { echo "flexor-entrypoint: $*" >&2; }

set -- "$@"
extra=""
if [ -s "$auth_dir/admin-token" ]; then
  extra="$extra --auth-token-file=$auth_dir/admin-token"
  log "admin RPCs need a token from $auth_dir/admin-token"
else
  token_dir=${HOME:-/tmp}/.flexor
  # A read-only root filesystem (Kubernetes) leaves /tmp.
  mkdir -p "$token_dir" 2>/dev/null || token_dir=/tmp/.flexor
  mkdir -p "$token_dir"
  token_file=$token_dir/admin-token
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' \
    >"$token_file" && echo >>"$token_file")
  extra="$extra --auth-token-file=$token_file"
  log "no $auth_dir/admin-token mounted: generated a random admin token in" \
    "$token_file (docker exec <container> cat $token_file)"
fi
if [ -s "$tls_dir/tls.crt" ] && [ -s "$tls_dir/tls.key" ]; then
  extra="$extra --tls-cert-file=$tls_dir/tls.crt --tls-key-file=$tls_dir/tls.key"
  if [ -s "$tls_dir/ca.crt" ]; then
    extra="$extra --tls-client-ca-file=$tls_dir/ca.crt"
  fi
  log "gRPC over TLS with $tls_dir/tls.crt"
fi
keys=""
for key in "$signing_dir"/*.pem; do
  [ -s "$key" ] || continue
  keys="${keys:+$keys,}$key"
done
if [ -n "$keys" ]; then
  extra="$extra --model-trusted-keys=$keys"
fi
if [ "${FLEXOR_REQUIRE_SIGNED_MODELS:-0}" = 1 ]; then
  extra="$extra --require-signed-models"
fi
# shellcheck disable=SC2086  # one word per flag is intended
exec /usr/local/bin/flexor_server $extra "$@"
