#!/usr/bin/env bash
# Reproduces the accuracy table of docs/accuracy.md: fp32, 1-bit, 2-bit LS,
# ternary (threshold and GXNOR DST) and FleXOR at 0.8 / 0.6 / 0.4 bit per
# weight (N_out = 20, N_tap = 2, q = 1) on the LeNet-style CNN and the MLP,
# all with the same schedule, then writes docs/accuracy_table.md and
# docs/accuracy.png.
#
#   trainer/reproduce_accuracy.sh            # EPOCHS=6 SEEDS=1 JOBS=2
#   SEEDS="2 3" ARCHS=mlp trainer/reproduce_accuracy.sh   # more seeds (the
#                                            # report averages over seeds)
#   EPOCHS=40 JOBS=4 THREADS=2 trainer/reproduce_accuracy.sh   # paper length
#
# Each run is one flexor_train job (export + engine contract check included)
# writing <RUNS>/<tag>.{log,json,flexor}. Finished runs are skipped, and a
# per-run lock directory lets several copies of this script share the work.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-trainer}
RUNS=${RUNS:-$BUILD/runs}
EPOCHS=${EPOCHS:-6}
SEEDS=${SEEDS:-1}
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}
ARCHS=${ARCHS:-"lenet mlp"}
TRAIN=${TRAIN:-$BUILD/trainer/flexor_train}

if [[ -z "${SKIP_BUILD:-}" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DFLEXOR_BUILD_BENCH=OFF \
    -DCMAKE_PREFIX_PATH=/usr/lib/x86_64-linux-gnu/cmake >/dev/null
  ninja -C "$BUILD" -j2 flexor_train
fi
mkdir -p "$RUNS"

# tag method n_in (n_out = 20, n_tap = 2 for FleXOR)
METHODS="fp32:fp32:0 binary1:binary1:0 binary2_ls:binary2_ls:0 \
ternary:ternary:0 flexor-16-20:flexor:16 flexor-12-20:flexor:12 \
flexor-8-20:flexor:8 ternary_dst:ternary_dst:0"

run_one() {
  local arch=$1 spec=$2 seed=$3
  local name=${spec%%:*} rest=${spec#*:}
  local method=${rest%%:*} n_in=${rest#*:}
  local tag="$arch-$name"
  [[ $seed != 1 ]] && tag="$tag-s$seed"
  [[ -s "$RUNS/$tag.json" ]] && return 0
  mkdir "$RUNS/$tag.lock" 2>/dev/null || return 0
  local flexor_flags=()
  if [[ $method == flexor ]]; then
    flexor_flags=(--n_in="$n_in" --n_out=20 --n_tap=2 --planes=1)
  fi
  echo "[reproduce_accuracy] start $tag"
  if "$TRAIN" --arch="$arch" --method="$method" "${flexor_flags[@]}" \
      --epochs="$EPOCHS" --seed="$seed" --threads="$THREADS" \
      --model_name="fashion_$arch" --output="$RUNS/$tag.flexor" \
      --results_json="$RUNS/$tag.json.part" >"$RUNS/$tag.log" 2>&1; then
    mv "$RUNS/$tag.json.part" "$RUNS/$tag.json"
    echo "[reproduce_accuracy] done $tag: $(cat "$RUNS/$tag.json")"
  else
    echo "[reproduce_accuracy] FAILED $tag (exit $?), see $RUNS/$tag.log"
  fi
  rmdir "$RUNS/$tag.lock"
}
export -f run_one
export RUNS EPOCHS THREADS TRAIN

for seed in $SEEDS; do
  for arch in $ARCHS; do
    for spec in $METHODS; do echo "$arch $spec $seed"; done
  done
done | xargs -P "$JOBS" -L 1 bash -c 'run_one "$0" "$1" "$2"'

python3 "$ROOT/trainer/accuracy_report.py" "$RUNS" \
  --table "$ROOT/docs/accuracy_table.md" --plot "$ROOT/docs/accuracy.png"
