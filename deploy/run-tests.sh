#!/usr/bin/env bash
# The README's test command: installs dependencies, builds everything and runs
# the whole test suite with CTest; then a second pass builds the project with
# AddressSanitizer + UndefinedBehaviorSanitizer in its own build tree
# (build-asan) and runs the suite again there.
# Usage: deploy/run-tests.sh [ctest args...]   (applied to both passes)
# Environment: BUILD_DIR (build), SANITIZER_BUILD_DIR (build-asan),
#   JOBS (nproc), FLEXOR_SANITIZER_PASS=0 skips the second pass.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$JOBS"
(cd "$BUILD_DIR" && ctest --output-on-failure -j "$JOBS" --timeout 600 "$@")

[ "${FLEXOR_SANITIZER_PASS:-1}" = 1 ] || exit 0
# Sanitizer pass. Left out, with the reason: the fuzz test (it builds and
# runs its own ASan+UBSan fuzzer in the first pass), the deploy checks
# (manifests, packages and the local stack: no code of ours runs under the
# sanitizers there, and runtime_deps would flag libasan), the benchmarks
# (they only measure speed) and the trainer (libtorch is not instrumented
# and training under ASan takes too long for CI). Measured on a 2-core
# machine: see docs/security.md, "Sanitizers".
SAN_DIR=${SANITIZER_BUILD_DIR:-build-asan}
start=$(date +%s)
cmake -S . -B "$SAN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DFLEXOR_SANITIZE=address,undefined -DFLEXOR_BUILD_BENCH=OFF \
  -DFLEXOR_BUILD_TRAINER=OFF
cmake --build "$SAN_DIR" -j "$JOBS"
built=$(date +%s)
# halt_on_error: a report fails the test that caused it (the server's
# reports end its process, which the real-process tests notice).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/deploy/sanitizers/lsan.supp:print_suppressions=0}
(cd "$SAN_DIR" && ctest --output-on-failure -j "$JOBS" --timeout 1200 \
  -LE 'fuzz|deploy' "$@")
echo "run-tests: sanitizer pass: build $((built - start)) s, tests" \
  "$(($(date +%s) - built)) s"
