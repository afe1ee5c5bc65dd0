// Layer-level matmul entry point used by the operators: picks the kernel for
// the codec, shape and CPU, and parallelises it with oneTBB inside whatever
// task arena the caller runs in.
#ifndef FLEXOR_ENGINE_KERNELS_MATMUL_H_
#define FLEXOR_ENGINE_KERNELS_MATMUL_H_

#include <cstdint>

#include "engine/kernels/layer_weights.h"

namespace flexor {

enum class KernelPath {
  kAuto,       // Fastest available for the CPU and shape.
  kReference,  // Scalar reference (tests, debugging).
};

// y[b, o] = sum_k W[o, k] * x[b, k] + bias[o] for x [batch, K], y [batch, O].
void Matmul(const LayerWeights& w, const float* x, int64_t batch, float* y,
            KernelPath path = KernelPath::kAuto);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_MATMUL_H_
