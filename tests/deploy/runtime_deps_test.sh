#!/usr/bin/env bash
# Checks that a slim runtime image built from a package list can run the
# given binaries: every shared library they load (ldd) must belong to a
# Debian package that the list installs, directly or as a dependency, or
# that debian:12-slim already has (the dependency closure of apt).
# This is what the Dockerfile's runtime stages rely on; no container engine
# is needed to check it.
#
# Usage: runtime_deps_test.sh PACKAGES_FILE BINARY...
# Exit: 0 ok, 1 a library is missing from the image, 77 skipped (no dpkg or
# apt metadata on this machine).
set -euo pipefail
packages_file=$1
shift
command -v dpkg >/dev/null && command -v apt-cache >/dev/null || {
  echo "SKIP: dpkg/apt-cache not available"; exit 77; }

mapfile -t listed < <(grep -v '^\s*#' "$packages_file" | grep -v '^\s*$')
for p in "${listed[@]}" apt; do
  apt-cache show "$p" >/dev/null 2>&1 || {
    if [ "$p" = apt ]; then echo "SKIP: no apt metadata"; exit 77; fi
    echo "FAIL: $packages_file lists '$p', which is not a Debian package"
    exit 1
  }
done

# Every package the image will have: the listed ones, the base image's, and
# everything they depend on (Depends/PreDepends only, as
# --no-install-recommends installs).
closure=$(apt-cache depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances \
  "${listed[@]}" apt 2>/dev/null | grep -v '^ ' | sed 's/:.*//; s/[<>]//g' |
  sort -u)

status=0
for binary in "$@"; do
  [ -x "$binary" ] || { echo "FAIL: $binary is not an executable"; exit 1; }
  if ldd "$binary" | grep -q 'not found'; then
    echo "FAIL: $binary: unresolved libraries:"
    ldd "$binary" | grep 'not found'
    exit 1
  fi
  mapfile -t libs < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3}')
  # One dpkg query for all libraries, by the path ldd printed and by its
  # real path (with merged /usr, dpkg may know either).
  mapfile -t reals < <(realpath "${libs[@]}")
  owners=$(dpkg -S "${libs[@]}" "${reals[@]}" 2>/dev/null |
    sed -n 's/^\([^:,]*\)[^ ]* \(.*\)$/\2 \1/p' || true)
  failed=0
  for i in "${!libs[@]}"; do
    owner=$(awk -v a="${libs[$i]}" -v b="${reals[$i]}" \
      '$1 == a || $1 == b {print $2; exit}' <<<"$owners")
    if [ -z "$owner" ]; then
      echo "FAIL: $binary loads ${libs[$i]}, which no Debian package installs"
      failed=1
    elif ! grep -qx "$owner" <<<"$closure"; then
      echo "FAIL: $binary loads ${libs[$i]} from package $owner," \
        "which $packages_file does not bring in"
      failed=1
    fi
  done
  if [ $failed -eq 0 ]; then
    echo "$(basename "$binary"): ${#libs[@]} shared libraries, all from" \
      "packages in the runtime image"
  fi
  status=$((status | failed))
done
exit $status
