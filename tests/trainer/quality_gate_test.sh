#!/usr/bin/env bash
# flexor_train's publishing gate, end to end on real files: a tiny training
# run below --min_publish_accuracy exits 8 and leaves the repository empty;
# the same run above the bar publishes version 1.
# Usage: quality_gate_test.sh FLEXOR_TRAIN
set -uo pipefail
train=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {
  "$train" --arch=mlp --method=flexor --epochs=1 --max_steps=10 \
    --train_limit=512 --test_limit=200 --threads=1 --model_name=gate \
    --output="$work/model.flexor" --publish_dir="$work/repo" "$@" \
    >"$work/log" 2>&1
}
run --min_publish_accuracy=99.9
rc=$?
[ $rc -eq 8 ] || { cat "$work/log"; echo "FAIL: exit $rc, want 8"; exit 1; }
grep -q "below --min_publish_accuracy" "$work/log" ||
  { cat "$work/log"; echo "FAIL: the log does not say why"; exit 1; }
if [ -n "$(ls -A "$work/repo" 2>/dev/null)" ]; then
  ls -R "$work/repo"; echo "FAIL: a gated model reached the repository"; exit 1
fi
run --min_publish_accuracy=5 ||
  { cat "$work/log"; echo "FAIL: exit $?, want 0 above the bar"; exit 1; }
[ -f "$work/repo/gate/1/model.flexor" ] ||
  { ls -R "$work/repo"; echo "FAIL: version 1 was not published"; exit 1; }
echo "quality gate: blocked below the bar (exit 8), published above it"
