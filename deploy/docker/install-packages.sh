#!/bin/sh
# Installs the Debian packages listed in a *.packages file (one per line,
# '#' comments) without recommends, then drops apt's lists: the runtime
# stages of the Dockerfile use it to stay slim.
set -eu
apt-get update -qq
# shellcheck disable=SC2046  # one word per package is intended
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  $(grep -v '^[[:space:]]*#' "$1")
rm -rf /var/lib/apt/lists/*
