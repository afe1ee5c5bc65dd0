// Layer-level matmul entry point used by the operators: picks the kernel for
// the codec, shape and CPU, and parallelises it with oneTBB inside whatever
// task arena the caller runs in.
#ifndef FLEXOR_ENGINE_KERNELS_MATMUL_H_
#define FLEXOR_ENGINE_KERNELS_MATMUL_H_

#include <atomic>
#include <cstdint>

#include "engine/kernels/activation_precision.h"
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

// Per-call options of the operators (e.g. from the model's config).
struct MatmulOptions {
  // kInt8: binary-coded and ternary layers may quantise activations to int8
  // per row where that is faster (batch <= kInt8MaxBatch of fused_gemm.h);
  // error bound in activation_precision.h. Dense FP32 layers and
  // KernelPath::kReference ignore it.
  ActivationPrecision activations = ActivationPrecision::kFloat32;
  // Profiling hook: when set, nanoseconds spent decrypting weights are added
  // here (summed over threads). Null: nothing is timed.
  std::atomic<int64_t>* decrypt_nanos = nullptr;
};

// Same as above with explicit options; the overload without options uses
// DefaultMatmulOptions().
void Matmul(const LayerWeights& w, const float* x, int64_t batch, float* y,
            KernelPath path, const MatmulOptions& options);

// Process-wide default for Matmul without options: FP32 activations unless
// the environment variable FLEXOR_ACTIVATION_PRECISION=int8 was set at the
// first call (benchmarks, experiments); per-model choices should pass
// MatmulOptions explicitly.
const MatmulOptions& DefaultMatmulOptions();

// The instruction set kAuto runs on this machine: "avx512", "avx2" or
// "scalar" (for logs and metrics).
const char* SelectedKernelIsaName();

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_MATMUL_H_
