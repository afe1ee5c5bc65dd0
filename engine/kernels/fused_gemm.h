// Fused decrypt + GEMM drivers behind Matmul: tiling, oneTBB parallelism
// over output-row tiles, and the choice of micro-kernel per shape. Exposed
// separately from Matmul so tests and benchmarks can force an ISA or method.
#ifndef FLEXOR_ENGINE_KERNELS_FUSED_GEMM_H_
#define FLEXOR_ENGINE_KERNELS_FUSED_GEMM_H_

#include <atomic>
#include <cstdint>

#include "engine/kernels/activation_precision.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/layer_weights.h"

namespace flexor {

enum class BinaryMethod {
  kAuto,
  // Weight bits become +-1 vectors (AVX-512: one k-mask blend per 16
  // weights) fed to FMAs; K is the vector axis. Best for small batches.
  kSignFma,
  // T-MAC style for small batches: per activation row, a 16-entry table of
  // signed partial sums per group of 4 inputs; the nibbles of 16 weight rows
  // index it with one VPERMPS (shuffle as table look-up). FP32 tables.
  kLutRows,
  // BiQGEMM style over the batch: for every group of 4 inputs, a 16-entry table
  // of signed partial sums per batch column; each 4 weight bits select one
  // entry, so one vector add does 4 x lanes multiply-adds. Tables are FP32
  // (exact path: only the summation order differs from the reference).
  kLut,
  // Int8 activations (ActivationPrecision::kInt8; forcing it implies int8):
  // x quantised per row, weight bits expanded to 0/1 bytes (AVX-512: k-mask
  // move; AVX2: shuffle + and + min) and summed against the int8 rows with
  // VPDPBUSD (AVX-512 VNNI) or VPMADDUBSW (AVX2). Reads the decrypted
  // row-major bits as they are (no transpose).
  kInt8Sign,
};

struct GemmOptions {
  KernelIsa isa = SelectedIsa();
  BinaryMethod method = BinaryMethod::kAuto;
  int lut_vectors = 0;  // LUT batch tile in vectors (1, 2, 4); 0 = auto
  // kInt8 lets kAuto pick the int8 kernel where it is the faster one (small
  // batches); results then carry the quantisation error documented in
  // activation_precision.h. Rows containing Inf/NaN run the FP32 path.
  ActivationPrecision activations = ActivationPrecision::kFloat32;
  // Profiling: when set, nanoseconds spent decrypting weights are added
  // here (summed over threads).
  std::atomic<int64_t>* decrypt_nanos = nullptr;
};

// With ActivationPrecision::kInt8, kAuto uses the int8 kernel for batches
// up to kInt8MaxBatch, and for every batch on AVX-512 CPUs with VNNI, where
// it also beats the FP32 batch LUT at 32 and 128 (docs/performance.md).
constexpr int64_t kInt8MaxBatch = 15;
// Within the int8 path, batches up to kInt8LutMaxBatch use the T-MAC style
// LUT kernel on CPUs whose kernel table has one (AVX2); same results. With
// 16-row blocks and 5-bit split tables it does ~13 vector ops per 256
// weight-MACs (plus ~6 for the byte transpose, shared by the batch) against
// 32 for the sign kernel. Measured 2026-12-02 on 4096x4096 and 4096x14336
// at 2 threads (docs/performance.md): 12-17% faster at batch 1, 25-36% at
// 2-4, 5-14% at 6-8, about equal at 12-15. FLEXOR_INT8_LUT_MAX_BATCH
// overrides the maximum (experiments; 0 = never, the sign kernel).
constexpr int64_t kInt8LutMaxBatch = 15;

// The method kAuto resolves to for this shape.
BinaryMethod ChooseMethod(KernelIsa isa, int64_t batch, int64_t out_features,
                          int64_t in_features);
BinaryMethod ChooseMethod(KernelIsa isa, int64_t batch, int64_t out_features,
                          int64_t in_features, ActivationPrecision activations);
const char* MethodName(BinaryMethod method);
// Which int8 kernel kInt8Sign runs for this ISA and batch ("avx2_lut",
// "avx512_vnni", "avx2_maddubs" or "portable"), for logs and benchmarks.
const char* Int8KernelName(KernelIsa isa, int64_t batch);

// Per-row int8 quantisation used by kInt8Sign: for each of the `batch` rows
// of x [batch, k], scale[b] = max_k |x| / 127 (0 for an all-zero row),
// q[b * q_stride + i] = round_to_nearest_even(x / scale) in [-127, 127] for
// i < k and 0 for k <= i < q_stride, sum[b] = sum_i q[b * q_stride + i].
// So |x - scale * q| <= scale / 2 per element (up to float rounding of the
// scale, < 1e-4 relative). Returns false (outputs unspecified) if any value
// is Inf or NaN. The same values for every `isa` (its vectorised range scan
// and row quantiser).
bool QuantizeActivationsInt8(const float* x, int64_t batch, int64_t k,
                             int64_t q_stride, int8_t* q, float* scale,
                             int32_t* sum, KernelIsa isa = SelectedIsa());

// Rows [row_begin, row_end) of y = x W^T + bias for binary-coded (kBinary)
// or ternary (kTernary, run as two binary planes) weights: x is [batch, K]
// row-major, y[b * ldy + o]. Decrypts one tile of rows at a time into a
// cache-resident buffer and consumes it at once; runs tbb::parallel_for
// over row tiles in the caller's task arena. Results do not depend on the
// number of threads (every output is summed in a fixed order).
void BinaryCodedGemm(const LayerWeights& w, int64_t row_begin, int64_t row_end,
                     const float* x, int64_t batch, float* y, int64_t ldy,
                     const GemmOptions& options = GemmOptions());

// Same contract for kFloat32 weights.
void DenseGemm(const LayerWeights& w, int64_t row_begin, int64_t row_end,
               const float* x, int64_t batch, float* y, int64_t ldy,
               const GemmOptions& options = GemmOptions());

// Gated-XNOR ternary x ternary (see TernaryGxnorReference), parallel over
// row tiles.
void TernaryGxnorGemm(const LayerWeights& w, const uint64_t* act_nonzero,
                      const uint64_t* act_sign, int64_t batch, float* y,
                      KernelIsa isa = SelectedIsa());

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_FUSED_GEMM_H_
