#include "engine/kernels/reference_kernels.h"

#include <vector>

namespace flexor {

void MatmulReference(const LayerWeights& w, const float* x, int64_t batch,
                     float* y) {
  const int64_t O = w.out_features, K = w.in_features;
  const std::vector<float> dense = DequantizeReference(w);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t o = 0; o < O; ++o) {
      // Double accumulation keeps the reference well below the rounding
      // error of any float kernel it is compared with.
      double acc = w.bias ? w.bias[o] : 0.0;
      for (int64_t k = 0; k < K; ++k) {
        acc += static_cast<double>(dense[o * K + k]) * x[b * K + k];
      }
      y[b * O + o] = static_cast<float>(acc);
    }
  }
}

void TernaryGxnorReference(const LayerWeights& w, const uint64_t* act_nonzero,
                           const uint64_t* act_sign, int64_t batch, float* y) {
  const TernaryView& t = w.ternary;
  const int64_t O = w.out_features, words = t.words_per_row;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t o = 0; o < O; ++o) {
      int64_t dot = 0;
      for (int64_t i = 0; i < words; ++i) {
        const uint64_t both =
            t.nonzero_mask[o * words + i] & act_nonzero[b * words + i];
        const uint64_t differ = t.sign[o * words + i] ^ act_sign[b * words + i];
        dot += __builtin_popcountll(both & ~differ) -
               __builtin_popcountll(both & differ);
      }
      y[b * O + o] =
          t.scales[o] * static_cast<float>(dot) + (w.bias ? w.bias[o] : 0.0f);
    }
  }
}

}  // namespace flexor
