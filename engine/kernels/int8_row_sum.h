// Sum of a row of +-1 weights from its sign bits (+1 per clear bit, -1 per
// set bit, first k bits): the int8 kernels' zero-point correction. Each
// per-ISA file compiles it with its own flags (POPCNT in the AVX2 and AVX-512
// builds).
#ifndef FLEXOR_ENGINE_KERNELS_INT8_ROW_SUM_H_
#define FLEXOR_ENGINE_KERNELS_INT8_ROW_SUM_H_

#include <cstdint>

namespace flexor {

// static: each per-ISA file keeps its own copy (one inline definition
// shared across files compiled with different -m flags would let the linker
// pick a POPCNT build for the scalar path).
static inline int32_t Int8RowSum(const uint64_t* b, int64_t k) {
  int64_t set = 0;
  for (int64_t m = 0; m < k / 64; ++m) set += __builtin_popcountll(b[m]);
  if (k % 64 != 0) {
    set += __builtin_popcountll(b[k / 64] & ((uint64_t{1} << (k % 64)) - 1));
  }
  return static_cast<int32_t>(k - 2 * set);
}

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_INT8_ROW_SUM_H_
