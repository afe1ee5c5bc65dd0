#!/usr/bin/env bash
# Builds the model-file fuzzer with clang, ASan and UBSan in its own build
# directory and runs it for a bounded time over a generated seed corpus.
# Exit 77 (skipped) when clang or libFuzzer is missing; non-zero on a
# finding (the crashing input is left in BUILD_DIR).
#   tests/fuzz/run_fuzz.sh [SOURCE_DIR] [BUILD_DIR] [SECONDS]
set -euo pipefail
SRC=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${2:-$SRC/build-fuzz}
SECONDS_TO_RUN=${3:-60}
command -v clang++ >/dev/null || { echo "clang++ not found: skipped"; exit 77; }
if ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, long) { return 0; }' |
    clang++ -x c++ -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
  echo "libFuzzer (libclang-rt-14-dev) not found: skipped"
  exit 77
fi
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS="$SAN -fsanitize=fuzzer-no-link" \
  -DCMAKE_EXE_LINKER_FLAGS="$SAN" \
  -DFLEXOR_FUZZ=ON -DFLEXOR_BUILD_TESTS=OFF -DFLEXOR_BUILD_BENCH=OFF \
  -DFLEXOR_BUILD_TRAINER=OFF >"$BUILD.configure.log" 2>&1 ||
  { cat "$BUILD.configure.log"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" --target model_fuzzer fuzz_seeds
rm -rf "$BUILD/seeds" && mkdir -p "$BUILD/seeds" "$BUILD/corpus"
"$BUILD/tests/fuzz/fuzz_seeds" "$BUILD/seeds"
cd "$BUILD"
# A run of 2 inputs at batch 1 and 3 must stay small: inputs are capped at
# 256 KiB, memory at 2 GiB, one input at 10 s.
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
UBSAN_OPTIONS=print_stacktrace=1 \
  ./tests/fuzz/model_fuzzer -max_total_time="$SECONDS_TO_RUN" \
    -max_len=262144 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    corpus seeds
