#!/usr/bin/env bash
# Fills a model repository with N copies of one model file: m000001/1 ..
# mNNNNNN/1, skipping copies already there. In bulk, one mkdir and one tee
# per 1,000 copies: a mkdir and a cp per model made about 6 copies a second
# on a 2-core VM (100,000 copies took hours). Used by density_bench.sh and
# spread_bench.sh.
# Usage: tools/scripts/copy_models.sh MODEL_FILE REPO N
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 MODEL_FILE REPO N" >&2
  exit 2
fi
FILE=$1
REPO=$2
N=$3
[ -s "$FILE" ] || { echo "$FILE: no such model file" >&2; exit 1; }
missing=()
for i in $(seq 1 "$N"); do
  printf -v dir '%s/m%06d/1' "$REPO" "$i"
  [ -s "$dir/model.flexor" ] || missing+=("$dir")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
printf '%s\n' "${missing[@]}" | xargs -r -d '\n' mkdir -p
printf '%s/model.flexor\n' "${missing[@]}" |
  xargs -r -d '\n' -n 1000 sh -c 'tee "$@" <"$0" >/dev/null' "$FILE"
