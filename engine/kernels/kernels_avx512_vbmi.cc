// AVX-512 VBMI weight expansion for the int8 convolutions (compiled with
// -mavx512vbmi; the pixel kernel table only points at it after CPUID reports
// AVX512_VBMI). Kept apart so the other AVX-512 files still run on CPUs
// without VBMI (Skylake-X, Cascade Lake).
#include <immintrin.h>

#include <cstdint>

#include "engine/kernels/int8_row_sum.h"
#include "engine/kernels/microkernels.h"

namespace flexor {

// A channel group's live channels are one run of live * taps <= 128 bits
// in the row (channel-major, tap-minor). Each half becomes 64 bytes of +-1
// (one masked blend), and VPERMT2B gathers byte i * taps + t into output
// byte 4 t + i; bytes of missing channels are zeroed by the permute's mask.
void Int8PackWeightsAvx512Vbmi(const uint64_t* bits, int64_t kw, int64_t rows,
                               int64_t channels, int64_t taps, int8_t* w8,
                               int64_t ws, int32_t* row_sums) {
  if (taps > 32) {
    Int8PackWeightsAvx512(bits, kw, rows, channels, taps, w8, ws, row_sums);
    return;
  }
  const int64_t c4n = (channels + 3) / 4, out_bytes = 4 * taps;
  const int64_t full = channels / 4;  // groups with 4 live channels
  alignas(64) uint8_t index[128];
  for (int64_t j = 0; j < 128; ++j) {
    const int64_t t = j / 4, i = j % 4;
    index[j] = static_cast<uint8_t>(t < taps ? i * taps + t : 0);
  }
  const __m512i idx0 = _mm512_load_si512(index);
  const __m512i idx1 = _mm512_load_si512(index + 64);
  // Output bytes that belong to live channels of the last, partial group.
  const int64_t live_last = channels - 4 * full;
  uint64_t keep[2] = {~uint64_t{0}, ~uint64_t{0}};
  if (live_last != 0) {
    keep[0] = keep[1] = 0;
    for (int64_t j = 0; j < 128; ++j) {
      if (j % 4 < live_last) keep[j / 64] |= uint64_t{1} << (j % 64);
    }
  }
  const __m512i one = _mm512_set1_epi8(1), minus_one = _mm512_set1_epi8(-1);
  const int64_t K = channels * taps;
  for (int64_t o = 0; o < rows; ++o) {
    const uint64_t* b = bits + o * kw;
    int8_t* out = w8 + o * ws;
    row_sums[o] = Int8RowSum(b, K);
    for (int64_t c4 = 0; c4 < c4n; ++c4) {
      const int64_t k = 4 * c4 * taps;
      const bool partial = c4 == full;
      const int64_t live_bits = (partial ? live_last : 4) * taps;
      uint64_t lo = Int8RowWord(b, kw, k), hi = Int8RowWord(b, kw, k + 64);
      // Bits past the group's live channels are another channel's (or
      // padding): only indices < live_bits are ever selected.
      (void)live_bits;
      const __m512i vlo = _mm512_mask_blend_epi8(lo, one, minus_one);
      const __m512i vhi = _mm512_mask_blend_epi8(hi, one, minus_one);
      int8_t* dst = out + c4 * out_bytes;
      _mm512_storeu_si512(dst, _mm512_maskz_permutex2var_epi8(
                                   partial ? keep[0] : ~0ull, vlo, idx0, vhi));
      if (out_bytes > 64) {
        _mm512_storeu_si512(
            dst + 64, _mm512_maskz_permutex2var_epi8(partial ? keep[1] : ~0ull,
                                                     vlo, idx1, vhi));
      }
    }
  }
}

}  // namespace flexor
