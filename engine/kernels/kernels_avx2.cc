// AVX2 + FMA build of the micro-kernels (compiled with -mavx2 -mfma -mbmi2
// -mpopcnt; only called after CPUID says so).
#include <immintrin.h>

#include <cstdint>

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
#include "engine/kernels/pixel_microkernels_impl.inc"

}  // namespace avx2_kernels

const KernelTable& Avx2KernelTable() {
  static const KernelTable table = {KernelIsa::kAvx2,
                                    avx2_kernels::VF::kLanes,
                                    avx2_kernels::DecryptWords,
                                    avx2_kernels::SignDot,
                                    avx2_kernels::LutBuild,
                                    avx2_kernels::LutGemm,
                                    avx2_kernels::LutRowsPortable,
                                    avx2_kernels::DenseDot,
                                    avx2_kernels::GxnorPortable};
  return table;
}

const PixelKernelTable& Avx2PixelKernelTable() {
  static const PixelKernelTable table = {
      KernelIsa::kAvx2,       avx2_kernels::VF::kLanes,
      avx2_kernels::DenseKn,  avx2_kernels::LutBuildRows,
      avx2_kernels::Im2col,   avx2_kernels::PadInput,
      avx2_kernels::StoreTile};
  return table;
}

}  // namespace flexor
