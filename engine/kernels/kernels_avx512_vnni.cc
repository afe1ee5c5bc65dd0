// AVX-512 VNNI int8 sign kernel (compiled with -mavx512vnni; the kernel table
// only points at it after CPUID reports AVX512_VNNI). Kept out of
// kernels_avx512.cc so that file still runs on AVX-512 CPUs without VNNI.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "engine/kernels/microkernels.h"

namespace flexor {
namespace avx512_vnni_kernels {

// acc += VPDPBUSD(u8, s8) in place. GCC 12 does not coalesce the
// accumulator of _mm512_dpbusd_epi32 inside these unrolled loops and adds
// two register copies per instruction (measured: ~1/3 of the loop's
// instructions); the asm form keeps it in one register.
inline __m512i Dpbusd(__m512i acc, __m512i u8, __m512i s8) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
  return acc;
}

// Per 64 weights: KMOVQ loads the row's bit word straight into a mask
// register, one zero-masked byte move turns it into 64 bytes of 0/1 (shared
// by every batch row), and one VPDPBUSD per batch row adds the activations
// whose bit is set, four bytes per 32-bit lane (0/1 is the unsigned operand,
// the int8 activations, read from memory, the signed one). No 16-bit stage,
// so nothing to flush.
template <int R, int NB>
void Block(const uint64_t* bits, int64_t bs, const int8_t* x, int64_t xs,
           int64_t kw, int32_t* neg, int64_t ns) {
  const __m512i one8 = _mm512_set1_epi8(1);
  // Fully unrolled early (pragmas) so GCC keeps every accumulator in a
  // register instead of a stack array.
  __m512i acc[R * NB];
#pragma GCC unroll 16
  for (int i = 0; i < R * NB; ++i) acc[i] = _mm512_setzero_si512();
  for (int64_t m = 0; m < kw; ++m) {
    __m512i mask[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      mask[r] = _mm512_maskz_mov_epi8(_cvtu64_mask64(bits[r * bs + m]), one8);
    }
#pragma GCC unroll 16
    for (int b = 0; b < NB; ++b) {
      const __m512i xv = _mm512_loadu_si512(x + b * xs + 64 * m);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        acc[r * NB + b] = Dpbusd(acc[r * NB + b], mask[r], xv);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int b = 0; b < NB; ++b) {
      neg[r * ns + b] = _mm512_reduce_add_epi32(acc[r * NB + b]);
    }
  }
}

// 4 rows x 4 batch rows = 16 accumulators of the 32 ZMM registers; batch 1
// uses 8 rows so that 8 independent VPDPBUSD chains hide its latency.
template <int R>
void Rows(const uint64_t* bits, int64_t bs, const int8_t* x, int64_t xs,
          int64_t batch, int64_t kw, int32_t* neg, int64_t ns) {
  int64_t b = 0;
  for (; b + 4 <= batch; b += 4) {
    Block<R, 4>(bits, bs, x + b * xs, xs, kw, neg + b, ns);
  }
  switch (batch - b) {
    case 3:
      return Block<R, 3>(bits, bs, x + b * xs, xs, kw, neg + b, ns);
    case 2:
      return Block<R, 2>(bits, bs, x + b * xs, xs, kw, neg + b, ns);
    case 1:
      return Block<R, 1>(bits, bs, x + b * xs, xs, kw, neg + b, ns);
    default:
      return;
  }
}

}  // namespace avx512_vnni_kernels

void SignDotI8Avx512Vnni(const uint64_t* bits, int64_t bs, int64_t rows,
                         const int8_t* xq, int64_t xs, int64_t batch,
                         int64_t kw, int32_t* neg, int64_t ns) {
  using avx512_vnni_kernels::Block;
  using avx512_vnni_kernels::Rows;
  int64_t r = 0;
  if (batch == 1) {
    for (; r + 8 <= rows; r += 8) {
      Block<8, 1>(bits + r * bs, bs, xq, xs, kw, neg + r * ns, ns);
    }
  } else {
    for (; r + 4 <= rows; r += 4) {
      Rows<4>(bits + r * bs, bs, xq, xs, batch, kw, neg + r * ns, ns);
    }
  }
  for (; r < rows; ++r) {
    Rows<1>(bits + r * bs, bs, xq, xs, batch, kw, neg + r * ns, ns);
  }
}

}  // namespace flexor
