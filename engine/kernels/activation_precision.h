// How a binary-coded layer's activations enter the dot products. Shared by
// the operator-facing Matmul options and the kernel-level GemmOptions.
#ifndef FLEXOR_ENGINE_KERNELS_ACTIVATION_PRECISION_H_
#define FLEXOR_ENGINE_KERNELS_ACTIVATION_PRECISION_H_

namespace flexor {

enum class ActivationPrecision {
  // Exact FP32 activations (only the summation order differs from the
  // double-precision reference). The default.
  kFloat32,
  // Each activation row is quantised to int8 with one scale per row
  // (scale = max|x| / 127, round to nearest even); the dot products with the
  // +-1 weights are then exact integer sums. Error per output:
  //   |y - y_exact| <= scale / 2 * sum_k |W[o, k]|  (+ float rounding),
  // see docs/performance.md. Used for small batches (where it is several
  // times faster); larger batches keep the FP32 kernels.
  kInt8,
};

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_ACTIVATION_PRECISION_H_
