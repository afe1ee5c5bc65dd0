#include "engine/kernels/matmul.h"

#include <vector>

#include "engine/kernels/reference_kernels.h"
#include "tbb/parallel_for.h"

namespace flexor {

// First version: dequantize once per call and run a plain float loop,
// parallel over batch rows. The fused per-ISA kernels replace this.
void Matmul(const LayerWeights& w, const float* x, int64_t batch, float* y,
            KernelPath path) {
  if (path == KernelPath::kReference) {
    MatmulReference(w, x, batch, y);
    return;
  }
  const int64_t O = w.out_features, K = w.in_features;
  const std::vector<float> dense = DequantizeReference(w);
  tbb::parallel_for(int64_t{0}, batch, [&](int64_t b) {
    for (int64_t o = 0; o < O; ++o) {
      float acc = w.bias ? w.bias[o] : 0.0f;
      for (int64_t k = 0; k < K; ++k) acc += dense[o * K + k] * x[b * K + k];
      y[b * O + o] = acc;
    }
  });
}

}  // namespace flexor
