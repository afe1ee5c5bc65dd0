// Pieces shared by the GEMM drivers of fused_gemm.cc and
// transposed_taps_gemm.cc: per-thread scratch, the plane source of a
// binary-coded layer and the int8 paths' epilogue. Internal to the kernels.
#ifndef FLEXOR_ENGINE_KERNELS_GEMM_SUPPORT_H_
#define FLEXOR_ENGINE_KERNELS_GEMM_SUPPORT_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "engine/kernels/codec_traits.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/layer_weights.h"
#include "engine/kernels/scoped_nanos.h"

namespace flexor::gemm_support {

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }

// Per-thread buffers of the leaf tasks. Leaf task bodies never wait on other
// TBB work, so a buffer is never shared by two tasks at once.
struct Scratch {
  std::vector<uint64_t> bits;
  std::vector<float> alpha, dots, acc, table;
  std::vector<int32_t> idots;
  std::vector<uint8_t> bytes, tables;
};
Scratch& LocalScratch();
template <class T>
T* Grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// Threads of the current TBB arena.
int Threads();

// The q bit planes of a binary-coded or ternary layer, from its codec's
// row of the traits table (codec_traits.h).
class PlaneSource {
 public:
  PlaneSource(const LayerWeights& w, KernelIsa isa,
              std::atomic<int64_t>* decrypt_nanos = nullptr)
      : w_(w),
        isa_(isa),
        traits_(CodecTraits(w.kind)),
        decrypt_nanos_(decrypt_nanos) {}

  int planes() const { return traits_.planes(w_); }

  // Rows [o0, o0 + rows) of plane p, ceil(K / 64) words per row.
  void Rows(int p, int64_t o0, int64_t rows, uint64_t* out) const {
    const ScopedNanos timer(decrypt_nanos_);  // profiling, when asked for
    traits_.plane_rows(w_, p, o0, rows, out, isa_);
  }

  void Alphas(int p, int64_t o0, int64_t rows, float* out) const {
    traits_.plane_alphas(w_, p, o0, rows, out);
  }

 private:
  const LayerWeights& w_;
  KernelIsa isa_;
  const WeightCodecTraits& traits_;
  std::atomic<int64_t>* decrypt_nanos_;
};

// acc[r * nb + b] = (or +=) alpha[r] * (qsum[b] - 2 * neg[r * nb + b]) for
// one plane; the same float operations in the same order for every nb, so
// the fast nb == 1 loop (vectorised) and the general one agree bit for bit.
// |qsum - 2 neg| <= 127 K < 2^24 for K < 2^17: exact in float; beyond that
// it rounds like any float sum.
void Int8AccumulatePlane(const int32_t* __restrict neg,
                         const float* __restrict alpha,
                         const int32_t* __restrict qsum, int64_t n, int64_t nb,
                         bool first, float* __restrict acc);

// The int8 paths' output: y[b, o0 + r] = acc[r * nb + b] * scale[b] + bias
// for rows r < n and batch rows b0 .. b0 + nb, the same operations for every
// nb (the nb == 1 loop is contiguous, so it vectorises).
void StoreInt8Rows(const float* acc, int64_t o0, int64_t n, int64_t b0,
                   int64_t nb, const float* scale, const float* bias, float* y,
                   int64_t ldy);

}  // namespace flexor::gemm_support

#endif  // FLEXOR_ENGINE_KERNELS_GEMM_SUPPORT_H_
