// AVX2 + FMA build of the micro-kernels (compiled with -mavx2 -mfma -mbmi2
// -mpopcnt; only called after CPUID says so).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "engine/kernels/int8_row_sum.h"
#include "engine/kernels/microkernels.h"

namespace flexor {
namespace avx2_kernels {

// Lane i of entry p is all ones if bit i of p is set, else zero: one load
// turns 8 weight bits into a lane mask. Built at compile time: a run-time
// initializer in this file could execute AVX2 code on a CPU without it.
struct MaskTable {
  alignas(32) uint32_t v[256][8];
  constexpr MaskTable() : v() {
    for (int p = 0; p < 256; ++p)
      for (int i = 0; i < 8; ++i) v[p][i] = ((p >> i) & 1) ? ~0u : 0u;
  }
};
constexpr MaskTable kMaskTable{};

struct VF {
  using T = __m256;
  static constexpr int kLanes = 8;
  static T Zero() { return _mm256_setzero_ps(); }
  static T Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, T a) { _mm256_storeu_ps(p, a); }
  static T Set1(float f) { return _mm256_set1_ps(f); }
  static T Add(T a, T b) { return _mm256_add_ps(a, b); }
  static T Sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T Neg(T a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.f)); }
  static T Fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  using M = __m256;
  static M LoadMask(const uint64_t* word, int c) {
    const uint8_t byte = reinterpret_cast<const uint8_t*>(word)[c];
    return _mm256_load_ps(reinterpret_cast<const float*>(kMaskTable.v[byte]));
  }
  static T MaskAdd(T a, M m, T b) {
    return _mm256_add_ps(a, _mm256_and_ps(m, b));
  }
  static float Reduce(T a) {
    __m128 s =
        _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

struct VU {
  using T = __m256i;
  static constexpr int kWords = 4;
  static T Load(const uint64_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static void Store(uint64_t* p, T a) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), a);
  }
  static void StoreStreaming(uint64_t* p, T a) {
    _mm256_stream_si256(reinterpret_cast<__m256i*>(p), a);
  }
  static void StreamingFence() { _mm_sfence(); }
  static T Xor(T a, T b) { return _mm256_xor_si256(a, b); }
  static T ShiftInNext(T a, T b) {
    // [a2 a3 b0 b1], then per 128-bit lane: [a1 a2], [a3 b0].
    return _mm256_alignr_epi8(_mm256_permute2x128_si256(a, b, 0x21), a, 8);
  }
  // Shift counts of 64 give 0 for vpsllq, so s = 0 needs no special case.
  static T Funnel(T lo, T hi, int s) {
    return _mm256_or_si256(_mm256_srl_epi64(lo, _mm_cvtsi32_si128(s)),
                           _mm256_sll_epi64(hi, _mm_cvtsi32_si128(64 - s)));
  }
};

constexpr int kSignRowsB1 = 8;
constexpr int kSignRows = 4;
constexpr int kSignBatch = 2;

#include "engine/kernels/microkernels_impl.inc"

// Rows per register block of the pixel-tiled kernels.
constexpr int kPixelRows = 6;
#include "engine/kernels/int8_pixel_impl.inc"
#include "engine/kernels/pixel_microkernels_impl.inc"
// ------------------------------------------------------------ int8 sign path

// The activations come bit-sliced (BitSliceI8Fn): per chunk of 256 weights,
// vector b holds the inputs at bit position b of each weight byte. So per
// bit position one AND (bit 0 of every byte: 0/1, VPMADDUBSW's unsigned
// operand), one VPMADDUBSW against vector b (signed), one VPADDW and a
// 16-bit shift that brings the next bit down: 4 ops per 32 weights, where
// expanding the bits to bytes in place took 5 (broadcast, VPSHUFB, AND,
// MINUB before the multiply-add). Each 16-bit lane gains at most
// 8 * 2 * 128 per chunk, so 8 chunks stay below 2^15; then the lanes are
// widened (VPMADDWD by 1) into 32-bit totals.
constexpr int64_t kI8FlushChunks = 8;
constexpr int kI8Batch = 8;

inline int32_t HsumEpi32(__m256i v) {
  __m128i s =
      _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Words [0, words) of a 4-word chunk (words in 1..4); never reads past them.
inline __m256i LoadWords(const uint64_t* p, int64_t words) {
  if (words == 4) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  const __m256i mask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(words),
                                          _mm256_setr_epi64x(0, 1, 2, 3));
  return _mm256_maskload_epi64(reinterpret_cast<const long long*>(p), mask);
}

template <int R, int NB>
void SignDotI8Block(const uint64_t* bits, int64_t bs, const int8_t* x,
                    int64_t xs, int64_t kw, int32_t* neg, int64_t ns) {
  const __m256i one8 = _mm256_set1_epi8(1);
  const __m256i one16 = _mm256_set1_epi16(1);
  const int64_t chunks = (kw + 3) / 4;
  // 32-bit totals live in memory: they change once per 2048 weights, and
  // the registers are needed for the 16-bit accumulators. The loops over
  // rows and batch rows are unrolled early (pragmas) so that GCC keeps the
  // accumulators in registers rather than in a stack array.
  int32_t total[R * NB] = {};
  for (int64_t c0 = 0; c0 < chunks; c0 += kI8FlushChunks) {
    const int64_t c1 = std::min(chunks, c0 + kI8FlushChunks);
    __m256i acc[R * NB];
#pragma GCC unroll 16
    for (int i = 0; i < R * NB; ++i) acc[i] = _mm256_setzero_si256();
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t words = std::min<int64_t>(4, kw - 4 * c);
      __m256i w[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r)
        w[r] = LoadWords(bits + r * bs + 4 * c, words);
      const int8_t* xc = x + 256 * c;
      // Not unrolled: with all 8 bit positions in flight GCC spills the
      // accumulators.
#pragma GCC unroll 1
      for (int b = 0; b < 8; ++b) {
        __m256i m[R];
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          m[r] = _mm256_and_si256(w[r], one8);
          w[r] = _mm256_srli_epi16(w[r], 1);
        }
#pragma GCC unroll 16
        for (int nb = 0; nb < NB; ++nb) {
          const __m256i xv = _mm256_loadu_si256(
              reinterpret_cast<const __m256i*>(xc + nb * xs + 32 * b));
#pragma GCC unroll 16
          for (int r = 0; r < R; ++r) {
            acc[r * NB + nb] = _mm256_add_epi16(acc[r * NB + nb],
                                                _mm256_maddubs_epi16(m[r], xv));
          }
        }
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < R * NB; ++i) {
      total[i] += HsumEpi32(_mm256_madd_epi16(acc[i], one16));
    }
  }
  for (int r = 0; r < R; ++r)
    for (int b = 0; b < NB; ++b) neg[r * ns + b] = total[r * NB + b];
}

// Register blocking: batch 1 keeps 4 rows' accumulators; larger batches
// one row x up to 8 batch rows (8 accumulators, the row's 0/1 masks, 3
// constants of the 16 YMM registers: two rows x 4 spilled accumulators to
// the stack), so the mask expansion is shared by 8 batch rows.
template <int R>
void SignDotI8Rows(const uint64_t* bits, int64_t bs, const int8_t* x,
                   int64_t xs, int64_t batch, int64_t kw, int32_t* neg,
                   int64_t ns) {
  int64_t b = 0;
  for (; b + kI8Batch <= batch; b += kI8Batch) {
    SignDotI8Block<R, kI8Batch>(bits, bs, x + b * xs, xs, kw, neg + b, ns);
  }
  const int8_t* xb = x + b * xs;
  int32_t* nb = neg + b;
  switch (batch - b) {
    case 7:
      return SignDotI8Block<R, 7>(bits, bs, xb, xs, kw, nb, ns);
    case 6:
      return SignDotI8Block<R, 6>(bits, bs, xb, xs, kw, nb, ns);
    case 5:
      return SignDotI8Block<R, 5>(bits, bs, xb, xs, kw, nb, ns);
    case 4:
      return SignDotI8Block<R, 4>(bits, bs, xb, xs, kw, nb, ns);
    case 3:
      return SignDotI8Block<R, 3>(bits, bs, xb, xs, kw, nb, ns);
    case 2:
      return SignDotI8Block<R, 2>(bits, bs, xb, xs, kw, nb, ns);
    case 1:
      return SignDotI8Block<R, 1>(bits, bs, xb, xs, kw, nb, ns);
    default:
      return;
  }
}

// ------------------------------------------------------------ int8 LUT path

// LutI8Tables: the two groups of a table vector (lanes 0 and 1) at once,
// their sums for p = 0-7 in one int16 vector and for p = 8-15 in another:
// VPMADDUBSW of 0/1 patterns (bits 0-1 of p, shared by both, and bits 2-3)
// against the lane's input pairs. VPACKUSWB of the two then is the table
// vector itself (lane L: its group's 16 values in p order), so nothing is
// permuted: about 10 instructions per group instead of 14, and 2.5 shuffles
// instead of 7.
void LutI8Tables(const int8_t* xq, int64_t kw, uint8_t* tables) {
  // Both lanes alike: int16 lane k of a lane is pattern p = k (or 8 + k).
  const __m256i pat01 = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 1, 1, 1));
  const __m256i pat23_lo = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0));
  const __m256i pat23_hi = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1));
  const __m256i pairs01 = _mm256_set1_epi16(0x0100);  // bytes 0, 1
  const __m256i pairs23 = _mm256_set1_epi16(0x0302);  // bytes 2, 3
  const __m256i bias = _mm256_set1_epi16(512);
  const __m256i low5 = _mm256_set1_epi16(31);
  const int64_t groups = 16 * kw;
  auto inputs = [&](int64_t g) {
    int32_t x4 = 0;
    if (g < groups) std::memcpy(&x4, xq + 4 * g, 4);
    return x4;
  };
  for (int64_t cc = 0; cc < LutI8Chunks(kw); ++cc) {
    for (int c = 0; c < 16; ++c) {
      for (int n = 0; n < 2; ++n) {
        const __m256i x = _mm256_inserti128_si256(
            _mm256_castsi128_si256(
                _mm_cvtsi32_si128(inputs(LutI8Group(cc, c, 0, n)))),
            _mm_cvtsi32_si128(inputs(LutI8Group(cc, c, 1, n))), 1);
        const __m256i x01 = _mm256_shuffle_epi8(x, pairs01);
        const __m256i x23 = _mm256_shuffle_epi8(x, pairs23);
        const __m256i s01 =
            _mm256_add_epi16(bias, _mm256_maddubs_epi16(pat01, x01));
        const __m256i e_lo =
            _mm256_add_epi16(s01, _mm256_maddubs_epi16(pat23_lo, x23));
        const __m256i e_hi =
            _mm256_add_epi16(s01, _mm256_maddubs_epi16(pat23_hi, x23));
        __m256i* t =
            reinterpret_cast<__m256i*>(tables + ((cc * 16 + c) * 2 + n) * 64);
        _mm256_storeu_si256(t,
                            _mm256_packus_epi16(_mm256_and_si256(e_lo, low5),
                                                _mm256_and_si256(e_hi, low5)));
        _mm256_storeu_si256(t + 1,
                            _mm256_packus_epi16(_mm256_srli_epi16(e_lo, 5),
                                                _mm256_srli_epi16(e_hi, 5)));
      }
    }
  }
}

// 16x16 byte transpose inside each 128-bit lane of 16 vectors (row r in
// vector r). VPUNPCK{L,H} at 8/16/32/64 bits each move one bit of the row
// index into the element position and one bit of the column into the
// vector index, so afterwards vector v holds, per lane, byte column
// BitReverse4(v) of the 16 rows in row order (lane 1: column + 16).
// 64 shuffles per 16 rows x 32 bytes, no lane crossing.
inline void Transpose16x16InLanes(__m256i* h) {
#define FLEXOR_UNPACK_STAGE(bits, dist)                          \
  for (int i = 0; i < 16; ++i) {                                 \
    if (i & (dist)) continue;                                    \
    const __m256i a = h[i];                                      \
    h[i] = _mm256_unpacklo_epi##bits(a, h[i + (dist)]);          \
    h[i + (dist)] = _mm256_unpackhi_epi##bits(a, h[i + (dist)]); \
  }
  FLEXOR_UNPACK_STAGE(8, 1)
  FLEXOR_UNPACK_STAGE(16, 2)
  FLEXOR_UNPACK_STAGE(32, 4)
  FLEXOR_UNPACK_STAGE(64, 8)
#undef FLEXOR_UNPACK_STAGE
}

constexpr int BitReverse4(int v) {
  return ((v & 1) << 3) | ((v & 2) << 1) | ((v & 4) >> 1) | ((v & 8) >> 3);
}

void TransposeBytes16(const uint64_t* bits, int64_t bs, int64_t rows,
                      int64_t kw, uint8_t* out) {
  for (int64_t cc = 0; cc < LutI8Chunks(kw); ++cc) {
    const int64_t words = std::min<int64_t>(4, kw - 4 * cc);
    __m256i v[16];
    for (int r = 0; r < 16; ++r) {
      v[r] = r < rows ? LoadWords(bits + r * bs + 4 * cc, words)
                      : _mm256_setzero_si256();
    }
    Transpose16x16InLanes(v);
    uint8_t* o = out + cc * 16 * 32;
    for (int i = 0; i < 16; ++i) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + BitReverse4(i) * 32),
                          v[i]);
    }
  }
}

// Per transposed vector (16 rows x byte columns c and c + 16): the two
// nibbles index their groups' tables with VPSHUFB, once for e & 31 and once
// for e >> 5, summed in bytes over 4 vectors (8 look-ups <= 248 per byte);
// VPUNPCK{L,H}BW pairs each row's two byte sums and VPMADDUBSW by (1, 32)
// rebuilds sum e in 16 bits (<= 8160), which holds 8 such steps before the
// 32-bit flush (unsigned, <= 65280). About 13 ops per 256 weight-MACs, of
// which 4 shuffles, against 32 for the sign kernel at batch 1.
template <int kInputs>  // 0: run-time count
void LutI8T(const uint8_t* const* t16, int num_inputs, int64_t kw,
            const uint8_t* tables, int32_t* neg) {
  const int n = kInputs > 0 ? kInputs : num_inputs;
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i one_32 = _mm256_set1_epi16(0x2001);  // bytes (1, 32)
  const __m256i zero = _mm256_setzero_si256();
  // Rows 0-3 | 0-3, 4-7 | 4-7, 8-11 | 8-11, 12-15 | 12-15 (lane 1 holds the
  // byte columns c + 16 of the same rows).
  __m256i tot[4] = {zero, zero, zero, zero};
  const int64_t vectors = LutI8Chunks(kw) * 16;  // a multiple of 4
  for (int64_t f0 = 0; f0 < vectors; f0 += 32) {
    const int64_t f1 = std::min(vectors, f0 + 32);
    __m256i lo_rows = zero, hi_rows = zero;  // rows 0-7 and 8-15 per lane
    for (int64_t v0 = f0; v0 < f1; v0 += 4) {
      __m256i low = zero, high = zero;  // byte sums of e & 31, e >> 5
      // Unrolled by 2, not 4: at 4 GCC hoists the table loads and spills.
#pragma GCC unroll 2
      for (int64_t v = v0; v < v0 + 4; ++v) {
        __m256i x = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(t16[0] + v * 32));
        for (int i = 1; i < n; ++i) {
          x = _mm256_xor_si256(
              x, _mm256_loadu_si256(
                     reinterpret_cast<const __m256i*>(t16[i] + v * 32)));
        }
        const __m256i i0 = _mm256_and_si256(x, low4);
        const __m256i i1 = _mm256_and_si256(_mm256_srli_epi16(x, 4), low4);
        const __m256i* t = reinterpret_cast<const __m256i*>(tables + v * 128);
        low = _mm256_add_epi8(
            low, _mm256_add_epi8(
                     _mm256_shuffle_epi8(_mm256_loadu_si256(t), i0),
                     _mm256_shuffle_epi8(_mm256_loadu_si256(t + 2), i1)));
        high = _mm256_add_epi8(
            high, _mm256_add_epi8(
                      _mm256_shuffle_epi8(_mm256_loadu_si256(t + 1), i0),
                      _mm256_shuffle_epi8(_mm256_loadu_si256(t + 3), i1)));
      }
      lo_rows = _mm256_add_epi16(
          lo_rows,
          _mm256_maddubs_epi16(_mm256_unpacklo_epi8(low, high), one_32));
      hi_rows = _mm256_add_epi16(
          hi_rows,
          _mm256_maddubs_epi16(_mm256_unpackhi_epi8(low, high), one_32));
    }
    tot[0] = _mm256_add_epi32(tot[0], _mm256_unpacklo_epi16(lo_rows, zero));
    tot[1] = _mm256_add_epi32(tot[1], _mm256_unpackhi_epi16(lo_rows, zero));
    tot[2] = _mm256_add_epi32(tot[2], _mm256_unpacklo_epi16(hi_rows, zero));
    tot[3] = _mm256_add_epi32(tot[3], _mm256_unpackhi_epi16(hi_rows, zero));
  }
  // Every row looked up 4 groups per vector, each with 512 added.
  const __m256i bias =
      _mm256_set1_epi32(static_cast<int32_t>(512 * 4 * vectors));
  for (int i = 0; i < 4; ++i) {
    const __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(tot[i]),
                                      _mm256_extracti128_si256(tot[i], 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(neg + 4 * i),
                     _mm_sub_epi32(sum, _mm256_castsi256_si128(bias)));
  }
}

void LutI8(const uint8_t* const* t16, int num_inputs, int64_t kw,
           const uint8_t* tables, int32_t* neg) {
  switch (num_inputs) {
    case 1:
      return LutI8T<1>(t16, 1, kw, tables, neg);
    case 2:
      return LutI8T<2>(t16, 2, kw, tables, neg);
    default:
      return LutI8T<0>(t16, num_inputs, kw, tables, neg);
  }
}

// Int8 pixel kernel: VPMADDUBSW multiplies the u8 activations by the
// broadcast s8 weights of one (row, channel group) and adds pixel pairs into
// 16 bits; with |w| <= 1 a pair is at most 510, so 64 groups sum in 16 bits
// (32640) before VPMADDWD widens them. R rows x NV vectors of 8 pixels.
template <int R, int NV>
void Int8KnBlock(const int8_t* w, int64_t ws, int64_t groups,
                 const uint32_t* base, const int64_t* offs, int64_t lanes,
                 int32_t* acc, const int32_t* low_digit_shift) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i sum32[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) sum32[r][v] = _mm256_setzero_si256();
  for (int64_t g0 = 0; g0 < groups; g0 += 64) {
    const int64_t g1 = std::min(groups, g0 + 64);
    __m256i sum16[R][NV];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v) sum16[r][v] = _mm256_setzero_si256();
    for (int64_t g = g0; g < g1; ++g) {
      const uint32_t* row = offs ? base + offs[g] : base + g * lanes;
      __m256i x[NV];
      for (int v = 0; v < NV; ++v) {
        x[v] =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 8 * v));
      }
      for (int r = 0; r < R; ++r) {
        int32_t w4;
        std::memcpy(&w4, w + r * ws + 4 * g, 4);
        const __m256i wv = _mm256_set1_epi32(w4);
        for (int v = 0; v < NV; ++v) {
          sum16[r][v] =
              _mm256_add_epi16(sum16[r][v], _mm256_maddubs_epi16(x[v], wv));
        }
      }
    }
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v)
        sum32[r][v] =
            _mm256_add_epi32(sum32[r][v], _mm256_madd_epi16(sum16[r][v], ones));
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV; ++v) {
      __m256i* out = reinterpret_cast<__m256i*>(acc + r * lanes + 8 * v);
      __m256i value = sum32[r][v];
      if (low_digit_shift != nullptr) {
        // 254 * high + low - shift; 254 a = 256 a - 2 a.
        const __m256i high = _mm256_loadu_si256(out);
        value = _mm256_add_epi32(
            _mm256_sub_epi32(_mm256_slli_epi32(high, 8),
                             _mm256_slli_epi32(high, 1)),
            _mm256_sub_epi32(value, _mm256_set1_epi32(low_digit_shift[r])));
      }
      _mm256_storeu_si256(out, value);
    }
  }
}

template <int R, int NV>
void Int8KnRows(const int8_t* w, int64_t ws, int64_t rows, int64_t groups,
                const uint32_t* base, const int64_t* offs, int64_t lanes,
                int32_t* acc, const int32_t* low_digit_shift) {
  int64_t r = 0;
  for (; r + R <= rows; r += R) {
    Int8KnBlock<R, NV>(w + r * ws, ws, groups, base, offs, lanes,
                       acc + r * lanes,
                       low_digit_shift ? low_digit_shift + r : nullptr);
  }
  for (; r < rows; ++r) {
    Int8KnBlock<1, NV>(w + r * ws, ws, groups, base, offs, lanes,
                       acc + r * lanes,
                       low_digit_shift ? low_digit_shift + r : nullptr);
  }
}

// The int8 convolutions' weight expansion (Int8PackWeightsFn) for taps <=
// 32: each live channel's (up to) 32 taps become 32 bytes of +-1
// (broadcast, VPSHUFB, AND, CMPEQ, OR), then the 4 channels are interleaved
// by two VPUNPCK stages, 16 taps per 128-bit lane: about 40 ops per group
// of 4 x 25 weights, against ~90 for one PDEP per channel and 16 taps.
// Writes whole 64-byte (taps <= 16) or 128-byte vectors per group: at most
// 60 bytes past a row's last group, as the PDEP version.
void Int8PackWeightsInterleave(const uint64_t* bits, int64_t kw, int64_t rows,
                               int64_t channels, int64_t taps, int8_t* w8,
                               int64_t ws, int32_t* row_sums) {
  if (taps > 32) {
    Int8PackWeights(bits, kw, rows, channels, taps, w8, ws, row_sums);
    return;
  }
  const __m256i spread =
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                       2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
  const __m256i one = _mm256_set1_epi8(1);
  const int64_t c4n = (channels + 3) / 4, group_bits = 4 * taps;
  for (int64_t o = 0; o < rows; ++o) {
    const uint64_t* b = bits + o * kw;
    int8_t* out = w8 + o * ws;
    row_sums[o] = Int8RowSum(b, channels * taps);
    for (int64_t c4 = 0; c4 < c4n; ++c4) {
      const int64_t live = std::min<int64_t>(4, channels - 4 * c4);
      // Channel i's taps from its own 32 bits (straight to registers: a
      // store of the whole run and unaligned reloads stalled on store
      // forwarding).
      __m256i ch[4];
      for (int64_t i = 0; i < 4; ++i) {
        if (i >= live) {
          ch[i] = _mm256_setzero_si256();
          continue;
        }
        const auto m = static_cast<uint32_t>(
            Int8RowWord(b, kw, c4 * group_bits + i * taps));
        const __m256i v = _mm256_shuffle_epi8(
            _mm256_set1_epi32(static_cast<int32_t>(m)), spread);
        ch[i] = _mm256_or_si256(
            one, _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit));
      }
      const __m256i a = _mm256_unpacklo_epi8(ch[0], ch[1]);
      const __m256i a2 = _mm256_unpackhi_epi8(ch[0], ch[1]);
      const __m256i c = _mm256_unpacklo_epi8(ch[2], ch[3]);
      const __m256i c2 = _mm256_unpackhi_epi8(ch[2], ch[3]);
      // Lane 0: taps 0-3, 4-7, 8-11, 12-15; lane 1: the same + 16.
      const __m256i t0 = _mm256_unpacklo_epi16(a, c);
      const __m256i t1 = _mm256_unpackhi_epi16(a, c);
      const __m256i t2 = _mm256_unpacklo_epi16(a2, c2);
      const __m256i t3 = _mm256_unpackhi_epi16(a2, c2);
      __m256i* dst = reinterpret_cast<__m256i*>(out + c4 * group_bits);
      _mm256_storeu_si256(dst, _mm256_permute2x128_si256(t0, t1, 0x20));
      _mm256_storeu_si256(dst + 1, _mm256_permute2x128_si256(t2, t3, 0x20));
      if (taps > 16) {
        _mm256_storeu_si256(dst + 2, _mm256_permute2x128_si256(t0, t1, 0x31));
        _mm256_storeu_si256(dst + 3, _mm256_permute2x128_si256(t2, t3, 0x31));
      }
    }
  }
}

}  // namespace avx2_kernels

void Int8KnAvx2(const int8_t* w, int64_t w_stride, int64_t rows, int64_t groups,
                const uint32_t* base, const int64_t* offs, int64_t lanes,
                int32_t* acc, const int32_t* low_digit_shift) {
  switch (lanes) {
    case 8:
      return avx2_kernels::Int8KnRows<8, 1>(w, w_stride, rows, groups, base,
                                            offs, lanes, acc, low_digit_shift);
    case 16:
      return avx2_kernels::Int8KnRows<4, 2>(w, w_stride, rows, groups, base,
                                            offs, lanes, acc, low_digit_shift);
    case 32:
      return avx2_kernels::Int8KnRows<2, 4>(w, w_stride, rows, groups, base,
                                            offs, lanes, acc, low_digit_shift);
    default:
      return Int8KnPortable(w, w_stride, rows, groups, base, offs, lanes, acc,
                            low_digit_shift);
  }
}

void SignDotI8Avx2(const uint64_t* bits, int64_t bs, int64_t rows,
                   const int8_t* xq, int64_t xs, int64_t batch, int64_t kw,
                   int32_t* neg, int64_t ns) {
  using avx2_kernels::SignDotI8Block;
  using avx2_kernels::SignDotI8Rows;
  int64_t r = 0;
  if (batch == 1) {
    for (; r + 4 <= rows; r += 4) {
      SignDotI8Block<4, 1>(bits + r * bs, bs, xq, xs, kw, neg + r * ns, ns);
    }
  }
  for (; r < rows; ++r) {
    SignDotI8Rows<1>(bits + r * bs, bs, xq, xs, batch, kw, neg + r * ns, ns);
  }
}

const KernelTable& Avx2KernelTable() {
  static const KernelTable table = {KernelIsa::kAvx2,
                                    avx2_kernels::VF::kLanes,
                                    avx2_kernels::DecryptWords,
                                    avx2_kernels::DecryptWordsStreaming,
                                    avx2_kernels::SignDot,
                                    avx2_kernels::LutBuild,
                                    avx2_kernels::LutGemm,
                                    avx2_kernels::LutRowsPortable,
                                    avx2_kernels::DenseDot,
                                    avx2_kernels::GxnorPortable,
                                    SignDotI8Avx2,
                                    BitSliceI8Portable,
                                    Transpose16Portable,
                                    avx2_kernels::LutI8Tables,
                                    avx2_kernels::TransposeBytes16,
                                    avx2_kernels::LutI8,
                                    "avx2_maddubs"};
  return table;
}

const PixelKernelTable& Avx2PixelKernelTable() {
  static const PixelKernelTable table = {
      KernelIsa::kAvx2,
      avx2_kernels::VF::kLanes,
      avx2_kernels::DenseKn,
      avx2_kernels::LutBuildRows,
      avx2_kernels::Im2col,
      avx2_kernels::PadInput,
      avx2_kernels::StoreTile,
      avx2_kernels::StoreTileTransposed,
      avx2_kernels::TransposeToTiles,
      Int8KnAvx2,
      "avx2_maddubs",
      avx2_kernels::Int8Range,
      avx2_kernels::Int8QuantizeRow,
      avx2_kernels::Int8QuantizeC4,
      avx2_kernels::Int8Im2col,
      avx2_kernels::Int8PackWeightsInterleave,
      avx2_kernels::MaxPool2x2,
      avx2_kernels::StoreTileI32};
  return table;
}

}  // namespace flexor
