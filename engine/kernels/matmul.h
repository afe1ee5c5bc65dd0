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
// kAuto runs the fused decrypt + GEMM kernels of fused_gemm.h (sign-mask FMA
// for small batches, FP32 look-up tables for larger ones) for the ISA chosen
// by CPUID, in parallel over output-row tiles in the caller's task arena;
// results do not depend on the arena's thread count.
void Matmul(const LayerWeights& w, const float* x, int64_t batch, float* y,
            KernelPath path = KernelPath::kAuto);

// The instruction set kAuto runs on this machine: "avx512", "avx2" or
// "scalar" (for logs and metrics).
const char* SelectedKernelIsaName();

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_MATMUL_H_
