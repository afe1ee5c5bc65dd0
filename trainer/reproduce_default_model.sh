#!/usr/bin/env bash
# Reproduces the server's default model, models/fashion_lenet/<version>/:
# LeNet-5 style CNN on Fashion-MNIST, FleXOR 0.8 bit per weight (N_in = 16,
# N_out = 20, N_tap = 2, q = 1; first conv and last dense layer in float),
# 6 epochs, seed 1, one libtorch thread. flexor_train checks the exported file
# with the engine (exit 6 if the contract fails) and publishes it as the next
# version of models/fashion_lenet (version 1 in an empty repository).
#
#   trainer/reproduce_default_model.sh [REPOSITORY_ROOT]    # default: models
#
# Takes about 10 minutes on one idle x86-64 core (~100 s per epoch), ~17
# minutes when the 2-core machine is shared.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-trainer}
REPOSITORY=${1:-$ROOT/models}
EPOCHS=${EPOCHS:-6}
THREADS=${THREADS:-1}

if [[ -z "${SKIP_BUILD:-}" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DFLEXOR_BUILD_BENCH=OFF \
    -DCMAKE_PREFIX_PATH=/usr/lib/x86_64-linux-gnu/cmake >/dev/null
  ninja -C "$BUILD" -j2 flexor_train
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$BUILD/trainer/flexor_train" \
  --arch=lenet --method=flexor --n_in=16 --n_out=20 --n_tap=2 --planes=1 \
  --epochs="$EPOCHS" --seed=1 --threads="$THREADS" \
  --model_name=fashion_lenet --output="$WORK/model.flexor" \
  --publish-dir="$REPOSITORY"
