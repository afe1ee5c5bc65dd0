// AVX-512 (F/BW/DQ/VL) build of the micro-kernels. The sign path loads 16
// weight bits straight into a k-mask (no shuffles), and the GXNOR kernel
// uses VPOPCNTQ where the CPU has it.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "engine/kernels/int8_row_sum.h"
#include "engine/kernels/microkernels.h"

namespace flexor {
namespace avx512_kernels {

struct VF {
  using T = __m512;
  static constexpr int kLanes = 16;
  static T Zero() { return _mm512_setzero_ps(); }
  static T Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, T a) { _mm512_storeu_ps(p, a); }
  static T Set1(float f) { return _mm512_set1_ps(f); }
  static T Add(T a, T b) { return _mm512_add_ps(a, b); }
  static T Sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T Neg(T a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.f)); }
  static T Fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  using M = __mmask16;
  // kmovw k, m16: 16 weight bits become a lane mask with one load.
  static M LoadMask(const uint64_t* word, int c) {
    return _load_mask16(reinterpret_cast<__mmask16*>(
        const_cast<uint16_t*>(reinterpret_cast<const uint16_t*>(word) + c)));
  }
  static T MaskAdd(T a, M m, T b) { return _mm512_mask_add_ps(a, m, a, b); }
  static float Reduce(T a) { return _mm512_reduce_add_ps(a); }
};

struct VU {
  using T = __m512i;
  static constexpr int kWords = 8;
  static T Load(const uint64_t* p) { return _mm512_loadu_si512(p); }
  static void Store(uint64_t* p, T a) { _mm512_storeu_si512(p, a); }
  static void StoreStreaming(uint64_t* p, T a) {
    _mm512_stream_si512(reinterpret_cast<__m512i*>(p), a);
  }
  static void StreamingFence() { _mm_sfence(); }
  static T Xor(T a, T b) { return _mm512_xor_si512(a, b); }
  static T ShiftInNext(T a, T b) { return _mm512_alignr_epi64(b, a, 1); }
  static T Funnel(T lo, T hi, int s) {
    return _mm512_or_si512(_mm512_srl_epi64(lo, _mm_cvtsi32_si128(s)),
                           _mm512_sll_epi64(hi, _mm_cvtsi32_si128(64 - s)));
  }
};

constexpr int kSignRowsB1 = 8;
constexpr int kSignRows = 4;
constexpr int kSignBatch = 4;

#include "engine/kernels/microkernels_impl.inc"

// Rows per register block of the pixel-tiled kernels.
constexpr int kPixelRows = 8;
#include "engine/kernels/int8_pixel_impl.inc"
#include "engine/kernels/pixel_microkernels_impl.inc"

// Row-LUT with VPERMPS: the 16 rows' words for one k word are split into
// their low and high 32-bit halves (lane r = row r), and shifting by 4j puts
// nibble j of every row in the low 4 bits, which is all VPERMPS reads: one
// shift, one permute and one add per 64 weights.
void LutRowsVpermps(const uint64_t* bits16, int64_t kw, const float* table,
                    float* dot) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                         22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21,
                                        23, 25, 27, 29, 31);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  for (int64_t m = 0; m < kw; ++m) {
    const __m512i w0 = _mm512_loadu_si512(bits16 + m * 16);
    const __m512i w1 = _mm512_loadu_si512(bits16 + m * 16 + 8);
    const __m512i lo = _mm512_permutex2var_epi32(w0, even, w1);
    const __m512i hi = _mm512_permutex2var_epi32(w0, odd, w1);
    const float* t = table + m * 16 * 16;
#define FLEXOR_LUT_STEP(src, j, acc)                                  \
  acc = _mm512_add_ps(                                                \
      acc, _mm512_permutexvar_ps(_mm512_srli_epi32(src, 4 * ((j)&7)), \
                                 _mm512_loadu_ps(t + (j)*16)))
    FLEXOR_LUT_STEP(lo, 0, acc0);
    FLEXOR_LUT_STEP(lo, 1, acc1);
    FLEXOR_LUT_STEP(lo, 2, acc0);
    FLEXOR_LUT_STEP(lo, 3, acc1);
    FLEXOR_LUT_STEP(lo, 4, acc0);
    FLEXOR_LUT_STEP(lo, 5, acc1);
    FLEXOR_LUT_STEP(lo, 6, acc0);
    FLEXOR_LUT_STEP(lo, 7, acc1);
    FLEXOR_LUT_STEP(hi, 8, acc0);
    FLEXOR_LUT_STEP(hi, 9, acc1);
    FLEXOR_LUT_STEP(hi, 10, acc0);
    FLEXOR_LUT_STEP(hi, 11, acc1);
    FLEXOR_LUT_STEP(hi, 12, acc0);
    FLEXOR_LUT_STEP(hi, 13, acc1);
    FLEXOR_LUT_STEP(hi, 14, acc0);
    FLEXOR_LUT_STEP(hi, 15, acc1);
#undef FLEXOR_LUT_STEP
  }
  _mm512_storeu_ps(dot, _mm512_add_ps(acc0, acc1));
}

// [16 rows][k words] -> [k word][16 rows] for LutRowsVpermps, in 8x8 blocks
// of words held in registers: unpack (pairs of rows), VPERMT2Q (quads),
// VSHUFI64X2 (halves) = 24 shuffles per 64 words, against a load and a
// store per word (plus loop overhead) for the scalar copy.
void Transpose16(const uint64_t* bits, int64_t bs, int64_t rows, int64_t kw,
                 uint64_t* out) {
  const __m512i idx_even = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
  const __m512i idx_odd = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  int64_t m = 0;
  for (; m + 8 <= kw; m += 8) {
    for (int half = 0; half < 2; ++half) {
      __m512i r[8];
      for (int i = 0; i < 8; ++i) {
        const int64_t row = 8 * half + i;
        r[i] = row < rows ? _mm512_loadu_si512(bits + row * bs + m)
                          : _mm512_setzero_si512();
      }
      // a[2i] = rows 2i, 2i+1 of words 0 2 4 6; a[2i+1] of words 1 3 5 7.
      __m512i a[8], b[8];
      for (int i = 0; i < 8; i += 2) {
        a[i] = _mm512_unpacklo_epi64(r[i], r[i + 1]);
        a[i + 1] = _mm512_unpackhi_epi64(r[i], r[i + 1]);
      }
      // b[w] (w < 4): rows 0-3 of words w and w + 4; b[w + 4]: rows 4-7.
      for (int i = 0; i < 8; i += 4) {
        for (int j = 0; j < 2; ++j) {
          b[i + j] =
              _mm512_permutex2var_epi64(a[i + j], idx_even, a[i + j + 2]);
          b[i + j + 2] =
              _mm512_permutex2var_epi64(a[i + j], idx_odd, a[i + j + 2]);
        }
      }
      for (int w = 0; w < 4; ++w) {
        const __m512i lo = _mm512_shuffle_i64x2(b[w], b[w + 4], 0x44);
        const __m512i hi = _mm512_shuffle_i64x2(b[w], b[w + 4], 0xee);
        _mm512_storeu_si512(out + (m + w) * 16 + 8 * half, lo);
        _mm512_storeu_si512(out + (m + w + 4) * 16 + 8 * half, hi);
      }
    }
  }
  if (m < kw) Transpose16Portable(bits + m, bs, rows, kw - m, out + m * 16);
}

__attribute__((target("avx512vpopcntdq"))) void GxnorVpopcnt(
    const uint64_t* w_nz, const uint64_t* w_sign, int64_t rows, int64_t words,
    const uint64_t* a_nz, const uint64_t* a_sign, int64_t batch, int32_t* dot) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t* wn = w_nz + r * words;
    const uint64_t* wsg = w_sign + r * words;
    for (int64_t b = 0; b < batch; ++b) {
      const uint64_t* an = a_nz + b * words;
      const uint64_t* asg = a_sign + b * words;
      __m512i total = _mm512_setzero_si512();
      __m512i negative = _mm512_setzero_si512();
      int64_t i = 0;
      for (; i + 8 <= words; i += 8) {
        const __m512i m = _mm512_and_si512(_mm512_loadu_si512(wn + i),
                                           _mm512_loadu_si512(an + i));
        const __m512i d = _mm512_xor_si512(_mm512_loadu_si512(wsg + i),
                                           _mm512_loadu_si512(asg + i));
        total = _mm512_add_epi64(total, _mm512_popcnt_epi64(m));
        negative = _mm512_add_epi64(
            negative, _mm512_popcnt_epi64(_mm512_and_si512(m, d)));
      }
      if (i < words) {
        const __mmask8 k = static_cast<__mmask8>((1u << (words - i)) - 1);
        const __m512i m = _mm512_and_si512(_mm512_maskz_loadu_epi64(k, wn + i),
                                           _mm512_maskz_loadu_epi64(k, an + i));
        const __m512i d =
            _mm512_xor_si512(_mm512_maskz_loadu_epi64(k, wsg + i),
                             _mm512_maskz_loadu_epi64(k, asg + i));
        total = _mm512_add_epi64(total, _mm512_popcnt_epi64(m));
        negative = _mm512_add_epi64(
            negative, _mm512_popcnt_epi64(_mm512_and_si512(m, d)));
      }
      dot[r * batch + b] =
          static_cast<int32_t>(_mm512_reduce_add_epi64(total) -
                               2 * _mm512_reduce_add_epi64(negative));
    }
  }
}

}  // namespace avx512_kernels

void Int8PackWeightsAvx512(const uint64_t* bits, int64_t kw, int64_t rows,
                           int64_t channels, int64_t taps, int8_t* w8,
                           int64_t ws, int32_t* row_sums) {
  avx512_kernels::Int8PackWeights(bits, kw, rows, channels, taps, w8, ws,
                                  row_sums);
}

const KernelTable& Avx512KernelTable() {
  static const KernelTable table = {
      KernelIsa::kAvx512,
      avx512_kernels::VF::kLanes,
      avx512_kernels::DecryptWords,
      avx512_kernels::DecryptWordsStreaming,
      avx512_kernels::SignDot,
      avx512_kernels::LutBuild,
      avx512_kernels::LutGemm,
      avx512_kernels::LutRowsVpermps,
      avx512_kernels::DenseDot,
      HasAvx512Vpopcntdq() ? avx512_kernels::GxnorVpopcnt
                           : avx512_kernels::GxnorPortable,
      HasAvx512Vnni() ? SignDotI8Avx512Vnni : SignDotI8Avx2,
      HasAvx512Vnni() ? nullptr : BitSliceI8Portable,
      avx512_kernels::Transpose16,
      nullptr,
      nullptr,
      nullptr,
      HasAvx512Vnni() ? "avx512_vnni" : "avx2_maddubs"};
  return table;
}

const PixelKernelTable& Avx512PixelKernelTable() {
  static const PixelKernelTable table = {
      KernelIsa::kAvx512,
      avx512_kernels::VF::kLanes,
      avx512_kernels::DenseKn,
      avx512_kernels::LutBuildRows,
      avx512_kernels::Im2col,
      avx512_kernels::PadInput,
      avx512_kernels::StoreTile,
      avx512_kernels::StoreTileTransposed,
      avx512_kernels::TransposeToTiles,
      HasAvx512Vnni() ? Int8KnAvx512Vnni : Int8KnAvx2,
      HasAvx512Vnni() ? "avx512_vnni" : "avx2_maddubs",
      avx512_kernels::Int8Range,
      avx512_kernels::Int8QuantizeRow,
      avx512_kernels::Int8QuantizeC4,
      avx512_kernels::Int8Im2col,
      HasAvx512Vbmi() ? Int8PackWeightsAvx512Vbmi : Int8PackWeightsAvx512,
      avx512_kernels::MaxPool2x2,
      avx512_kernels::StoreTileI32};
  return table;
}

}  // namespace flexor
