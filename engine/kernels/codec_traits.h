// One table row per weight codec: how the kernels see its weights and what
// it costs to store them. The drivers (fused_gemm.cc, matmul.cc) and
// LayerWeights look a codec up here instead of switching on
// WeightCodecKind in several places; a new codec is one new row.
// (DequantizeReference stays a separate, obviously-correct switch: it is the
// reference the rows here are tested against.)
#ifndef FLEXOR_ENGINE_KERNELS_CODEC_TRAITS_H_
#define FLEXOR_ENGINE_KERNELS_CODEC_TRAITS_H_

#include <cstdint>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/layer_weights.h"

namespace flexor {

struct WeightCodecTraits {
  WeightCodecKind kind;
  const char* name;
  // Number of binary planes the binary-plane kernels (sign_fma, lut,
  // lut_rows, int8) run on: W[o, k] = sum_p alpha_p[o] (1 - 2 bit_p(o, k)).
  // 0: dense FP32, run by DenseGemm.
  int (*planes)(const LayerWeights& w);
  // Rows [o0, o0 + rows) of plane p as row-major bits, ceil(K / 64) words
  // per row, each row starting at bit 0 (binary: FleXOR decryption).
  void (*plane_rows)(const LayerWeights& w, int p, int64_t o0, int64_t rows,
                     uint64_t* out, KernelIsa isa);
  // alpha_p[o] for o in [o0, o0 + rows).
  void (*plane_alphas)(const LayerWeights& w, int p, int64_t o0, int64_t rows,
                       float* out);
  // Storage per weight (scales not counted) and resident payload bytes.
  double (*bits_per_weight)(const LayerWeights& w);
  int64_t (*compressed_bytes)(const LayerWeights& w);
};

const WeightCodecTraits& CodecTraits(WeightCodecKind kind);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_CODEC_TRAITS_H_
