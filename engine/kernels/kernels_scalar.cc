// Portable build of the micro-kernels: plain C++ "vectors" of 4 floats that
// any compiler can keep in registers (or auto-vectorize with the baseline
// ISA). Always compiled, always tested; the fallback on CPUs without AVX2.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "engine/kernels/int8_row_sum.h"
#include "engine/kernels/microkernels.h"

namespace flexor {
namespace scalar_kernels {

struct VF {
  struct T {
    float v[4];
  };
  static constexpr int kLanes = 4;
  static T Zero() { return T{{0.f, 0.f, 0.f, 0.f}}; }
  static T Load(const float* p) { return T{{p[0], p[1], p[2], p[3]}}; }
  static void Store(float* p, T a) {
    for (int i = 0; i < 4; ++i) p[i] = a.v[i];
  }
  static T Set1(float f) { return T{{f, f, f, f}}; }
  static T Add(T a, T b) {
    for (int i = 0; i < 4; ++i) a.v[i] += b.v[i];
    return a;
  }
  static T Sub(T a, T b) {
    for (int i = 0; i < 4; ++i) a.v[i] -= b.v[i];
    return a;
  }
  static T Neg(T a) {
    for (int i = 0; i < 4; ++i) a.v[i] = -a.v[i];
    return a;
  }
  static T Fma(T a, T b, T c) {
    // Not std::fma: a is +-1 or alpha, and the SIMD builds fuse; rounding of
    // a single product of +-1 is exact either way.
    for (int i = 0; i < 4; ++i) c.v[i] += a.v[i] * b.v[i];
    return c;
  }
  using M = uint32_t;
  static M LoadMask(const uint64_t* word, int c) {
    return static_cast<M>(*word >> (4 * c)) & 15;
  }
  static T MaskAdd(T a, M m, T b) {
    for (int i = 0; i < 4; ++i) a.v[i] += ((m >> i) & 1) ? b.v[i] : 0.f;
    return a;
  }
  static float Reduce(T a) { return (a.v[0] + a.v[1]) + (a.v[2] + a.v[3]); }
};

struct VU {
  using T = uint64_t;
  static constexpr int kWords = 1;
  static T Load(const uint64_t* p) { return *p; }
  static void Store(uint64_t* p, T a) { *p = a; }
  static void StoreStreaming(uint64_t* p, T a) { *p = a; }
  static void StreamingFence() {}
  static T Xor(T a, T b) { return a ^ b; }
  static T ShiftInNext(T, T b) { return b; }
  static T Funnel(T lo, T hi, int s) {
    return s == 0 ? lo : (lo >> s) | (hi << (64 - s));
  }
};

constexpr int kSignRowsB1 = 4;
constexpr int kSignRows = 2;
constexpr int kSignBatch = 2;

#include "engine/kernels/microkernels_impl.inc"

// Rows per register block of the pixel-tiled kernels.
constexpr int kPixelRows = 2;
#include "engine/kernels/int8_pixel_impl.inc"
#include "engine/kernels/pixel_microkernels_impl.inc"

}  // namespace scalar_kernels

void Int8KnPortable(const int8_t* w, int64_t w_stride, int64_t rows,
                    int64_t groups, const uint32_t* base, const int64_t* offs,
                    int64_t lanes, int32_t* acc,
                    const int32_t* low_digit_shift) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t l = 0; l < lanes; ++l) {
      int32_t sum = 0;
      for (int64_t g = 0; g < groups; ++g) {
        const uint32_t x = (offs ? base + offs[g] : base + g * lanes)[l];
        const int8_t* w4 = w + r * w_stride + 4 * g;
        for (int i = 0; i < 4; ++i) {
          sum += w4[i] * static_cast<int32_t>((x >> (8 * i)) & 0xff);
        }
      }
      int32_t& out = acc[r * lanes + l];
      out = low_digit_shift ? 254 * out + sum - low_digit_shift[r] : sum;
    }
  }
}

void Transpose16Portable(const uint64_t* bits, int64_t bit_stride, int64_t rows,
                         int64_t k_words, uint64_t* out) {
  for (int64_t m = 0; m < k_words; ++m) {
    int64_t r = 0;
    for (; r < rows; ++r) out[m * 16 + r] = bits[r * bit_stride + m];
    for (; r < 16; ++r) out[m * 16 + r] = 0;
  }
}

namespace {

// The sum e_g[p] of LutI8Tables, with inputs past the row read as zero.
int LutI8Entry(const int8_t* xq, int64_t k_words, int64_t g, int p) {
  int e = 512;
  for (int i = 0; i < 4; ++i) {
    const int64_t k = 4 * g + i;
    if (((p >> i) & 1) && k < 64 * k_words) e += xq[k];
  }
  return e;
}

}  // namespace

void LutI8TablesPortable(const int8_t* xq, int64_t k_words, uint8_t* tables) {
  for (int64_t cc = 0; cc < LutI8Chunks(k_words); ++cc) {
    for (int c = 0; c < 16; ++c) {
      for (int n = 0; n < 2; ++n) {
        uint8_t* t = tables + ((cc * 16 + c) * 2 + n) * 64;
        for (int h = 0; h < 2; ++h) {
          const int64_t g = LutI8Group(cc, c, h, n);
          for (int p = 0; p < 16; ++p) {
            const int e = LutI8Entry(xq, k_words, g, p);
            t[16 * h + p] = static_cast<uint8_t>(e & 31);
            t[32 + 16 * h + p] = static_cast<uint8_t>(e >> 5);
          }
        }
      }
    }
  }
}

void TransposeBytes16Portable(const uint64_t* bits, int64_t bit_stride,
                              int64_t rows, int64_t k_words, uint8_t* out) {
  for (int64_t cc = 0; cc < LutI8Chunks(k_words); ++cc) {
    for (int c = 0; c < 16; ++c) {
      for (int h = 0; h < 2; ++h) {
        const int64_t byte = LutI8Byte(cc, c, h);
        for (int64_t r = 0; r < 16; ++r) {
          out[(cc * 16 + c) * 32 + 16 * h + r] =
              r < rows && byte < 8 * k_words
                  ? static_cast<uint8_t>(bits[r * bit_stride + byte / 8] >>
                                         (8 * (byte % 8)))
                  : 0;
        }
      }
    }
  }
}

void LutI8Portable(const uint8_t* const* t16, int num_inputs, int64_t k_words,
                   const uint8_t* tables, int32_t* neg) {
  const int64_t chunks = LutI8Chunks(k_words);
  for (int r = 0; r < 16; ++r) {
    int32_t sum = 0;
    for (int64_t v = 0; v < chunks * 16; ++v) {  // (cc, c) pairs
      for (int h = 0; h < 2; ++h) {
        uint8_t byte = 0;
        for (int i = 0; i < num_inputs; ++i)
          byte ^= t16[i][v * 32 + 16 * h + r];
        for (int n = 0; n < 2; ++n) {
          const int p = (byte >> (4 * n)) & 15;
          const uint8_t* t = tables + (v * 2 + n) * 64 + 16 * h;
          sum += t[p] + 32 * t[32 + p] - 512;
        }
      }
    }
    neg[r] = sum;
  }
}

void BitSliceI8Portable(const int8_t* x, int64_t k_words, int8_t* out) {
  const int64_t k = 64 * k_words;
  for (int64_t c = 0; c < BitSlicedI8Bytes(k_words) / 256; ++c) {
    for (int b = 0; b < 8; ++b) {
      for (int j = 0; j < 32; ++j) {
        const int64_t i = 256 * c + 8 * j + b;
        out[256 * c + 32 * b + j] = i < k ? x[i] : 0;
      }
    }
  }
}

// Plain loops: the bit-exact reference for the SIMD int8 kernels.
void SignDotI8Portable(const uint64_t* bits, int64_t bit_stride, int64_t rows,
                       const int8_t* xq, int64_t x_stride, int64_t batch,
                       int64_t k_words, int32_t* neg, int64_t neg_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t* row = bits + r * bit_stride;
    for (int64_t b = 0; b < batch; ++b) {
      const int8_t* x = xq + b * x_stride;
      int32_t sum = 0;
      for (int64_t m = 0; m < k_words; ++m) {
        const uint64_t w = row[m];
        for (int i = 0; i < 64; ++i) {
          sum += ((w >> i) & 1) ? x[64 * m + i] : 0;
        }
      }
      neg[r * neg_stride + b] = sum;
    }
  }
}

const KernelTable& ScalarKernelTable() {
  static const KernelTable table = {KernelIsa::kScalar,
                                    scalar_kernels::VF::kLanes,
                                    scalar_kernels::DecryptWords,
                                    scalar_kernels::DecryptWords,
                                    scalar_kernels::SignDot,
                                    scalar_kernels::LutBuild,
                                    scalar_kernels::LutGemm,
                                    scalar_kernels::LutRowsPortable,
                                    scalar_kernels::DenseDot,
                                    scalar_kernels::GxnorPortable,
                                    SignDotI8Portable,
                                    nullptr,
                                    Transpose16Portable,
                                    nullptr,
                                    nullptr,
                                    nullptr,
                                    "portable"};
  return table;
}

const PixelKernelTable& ScalarPixelKernelTable() {
  static const PixelKernelTable table = {KernelIsa::kScalar,
                                         scalar_kernels::VF::kLanes,
                                         scalar_kernels::DenseKn,
                                         scalar_kernels::LutBuildRows,
                                         scalar_kernels::Im2col,
                                         scalar_kernels::PadInput,
                                         scalar_kernels::StoreTile,
                                         scalar_kernels::StoreTileTransposed,
                                         scalar_kernels::TransposeToTiles,
                                         Int8KnPortable,
                                         "portable",
                                         scalar_kernels::Int8Range,
                                         scalar_kernels::Int8QuantizeRow,
                                         scalar_kernels::Int8QuantizeC4,
                                         scalar_kernels::Int8Im2col,
                                         scalar_kernels::Int8PackWeights,
                                         scalar_kernels::MaxPool2x2,
                                         scalar_kernels::StoreTileI32};
  return table;
}

}  // namespace flexor
