// Helpers over one row of sign bits shared by the int8 kernels of every ISA:
// the row sum of its +-1 weights (the zero-point correction) and reading 64
// bits from any bit offset (the convolution weight packing). Each per-ISA
// file compiles them with its own flags (POPCNT in the AVX2 and AVX-512
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

// 64 bits of a row of `kw` words from bit k on, zeros past its last word.
static inline uint64_t Int8RowWord(const uint64_t* b, int64_t kw, int64_t k) {
  const int64_t w = k >> 6, s = k & 63;
  if (w >= kw) return 0;
  uint64_t v = b[w] >> s;
  if (s != 0 && w + 1 < kw) v |= b[w + 1] << (64 - s);
  return v;
}

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_INT8_ROW_SUM_H_
