// AVX-512 VNNI int8 sign kernel (compiled with -mavx512vnni; the kernel table
// only points at it after CPUID reports AVX512_VNNI). Kept out of
// kernels_avx512.cc so that file still runs on AVX-512 CPUs without VNNI.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

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

// Int8 pixel kernel: one VPDPBUSD per (row, vector of 16 pixels, channel
// group): 16 x 4 u8 activations times the row's 4 broadcast s8 weights, summed
// into 32 bits. R rows x NV vectors of accumulators stay in registers.
template <int R, int NV>
void Int8KnBlock(const int8_t* w, int64_t ws, int64_t groups,
                 const uint32_t* base, const int64_t* offs, int64_t lanes,
                 int32_t* acc, const int32_t* low_digit_shift) {
  __m512i sum[R * NV];
#pragma GCC unroll 32
  for (int i = 0; i < R * NV; ++i) sum[i] = _mm512_setzero_si512();
  for (int64_t g = 0; g < groups; ++g) {
    const uint32_t* row = offs ? base + offs[g] : base + g * lanes;
    __m512i x[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) x[v] = _mm512_loadu_si512(row + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      int32_t w4;
      std::memcpy(&w4, w + r * ws + 4 * g, 4);
      const __m512i wv = _mm512_set1_epi32(w4);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v)
        sum[r * NV + v] = Dpbusd(sum[r * NV + v], x[v], wv);
    }
  }
#pragma GCC unroll 32
  for (int i = 0; i < R * NV; ++i) {
    int32_t* out = acc + (i / NV) * lanes + 16 * (i % NV);
    __m512i value = sum[i];
    if (low_digit_shift != nullptr) {
      // 254 * high + low - shift; 254 a = 256 a - 2 a.
      const __m512i high = _mm512_loadu_si512(out);
      value = _mm512_add_epi32(
          _mm512_sub_epi32(_mm512_slli_epi32(high, 8),
                           _mm512_slli_epi32(high, 1)),
          _mm512_sub_epi32(value, _mm512_set1_epi32(low_digit_shift[i / NV])));
    }
    _mm512_storeu_si512(out, value);
  }
}

template <int R, int NV>
void Int8KnRows(const int8_t* w, int64_t ws, int64_t rows, int64_t groups,
                const uint32_t* base, const int64_t* offs, int64_t lanes,
                int32_t* acc, const int32_t* low_digit_shift) {
  auto shift = [&](int64_t r) {
    return low_digit_shift ? low_digit_shift + r : nullptr;
  };
  int64_t r = 0;
  for (; r + R <= rows; r += R) {
    Int8KnBlock<R, NV>(w + r * ws, ws, groups, base, offs, lanes,
                       acc + r * lanes, shift(r));
  }
  for (; r + 4 <= rows; r += 4) {
    Int8KnBlock<4, NV>(w + r * ws, ws, groups, base, offs, lanes,
                       acc + r * lanes, shift(r));
  }
  for (; r < rows; ++r) {
    Int8KnBlock<1, NV>(w + r * ws, ws, groups, base, offs, lanes,
                       acc + r * lanes, shift(r));
  }
}

}  // namespace avx512_vnni_kernels

void Int8KnAvx512Vnni(const int8_t* w, int64_t w_stride, int64_t rows,
                      int64_t groups, const uint32_t* base, const int64_t* offs,
                      int64_t lanes, int32_t* acc,
                      const int32_t* low_digit_shift) {
  switch (lanes) {
    case 16:
      return avx512_vnni_kernels::Int8KnRows<12, 1>(
          w, w_stride, rows, groups, base, offs, lanes, acc, low_digit_shift);
    case 32:
      return avx512_vnni_kernels::Int8KnRows<8, 2>(
          w, w_stride, rows, groups, base, offs, lanes, acc, low_digit_shift);
    default:
      return Int8KnAvx2(w, w_stride, rows, groups, base, offs, lanes, acc,
                        low_digit_shift);
  }
}

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
