// Convolution as a GEMM over output pixels: Y[O, P] = W[O, K] * cols[K, P],
// written straight into NCHW order (no transpose), with the layer's
// per-channel epilogue (bias, folded BatchNorm, ReLU) applied on the way out.
//
// The im2col matrix comes in pixel tiles: [tile][Kp][lanes], `lanes` pixels
// per tile (PixelLanes), ColsRows rows: K (float weights) or K rounded up to
// 64 (bit-coded weights, the padding rows zero), plus one spare row. Float
// weights use a broadcast + FMA kernel; binary/ternary weights are decrypted
// once per call and use the BiQGEMM-style look-up tables of microkernels.h over
// the pixel lanes.
#ifndef FLEXOR_ENGINE_KERNELS_CONV_GEMM_H_
#define FLEXOR_ENGINE_KERNELS_CONV_GEMM_H_

#include <cstdint>
#include <vector>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/layer_weights.h"
#include "engine/kernels/microkernels.h"

namespace flexor {

struct ChannelEpilogue {
  const float* scale = nullptr;  // [O] or null (1)
  const float* shift = nullptr;  // [O] or null (0); includes the bias
  bool relu = false;
};

// Pixels per tile for `isa` (two vectors).
int64_t PixelLanes(KernelIsa isa);
// Rows of a cols tile for these weights (the tile stride is this * lanes).
int64_t ColsRows(const LayerWeights& w);

// The im2col runs of an Ho x Wo output: every output row split at tile
// boundaries (Im2colPlan::pieces).
std::vector<Im2colPiece> PlanIm2colPieces(int64_t out_h, int64_t out_w,
                                          int64_t lanes);

// Decrypted weights shared by every tile and sample of one call.
struct PreparedWeights {
  const uint64_t* bits = nullptr;  // [q][O][ceil(K/64)] (bit-coded only)
  const float* alpha = nullptr;    // [q][O]
  int planes = 0;
};
// Floats of scratch PrepareWeights needs (0 for float weights).
int64_t PreparedWeightsFloats(const LayerWeights& w);
PreparedWeights PrepareWeights(const LayerWeights& w, float* scratch,
                               KernelIsa isa = SelectedIsa());

// Floats of per-thread scratch PixelGemm needs.
int64_t PixelGemmScratchFloats(const LayerWeights& w, KernelIsa isa);

// Tiles [tile_begin, tile_end) of one sample: y[o * P + p] for the pixels
// of those tiles. Sequential (the caller parallelises over tiles or
// samples). `work`: PixelGemmScratchFloats floats of this thread.
void PixelGemm(const LayerWeights& w, const PreparedWeights& prepared,
               const float* cols, int64_t P, int64_t tile_begin,
               int64_t tile_end, const ChannelEpilogue& epilogue, float* y,
               float* work, KernelIsa isa = SelectedIsa());

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_CONV_GEMM_H_
