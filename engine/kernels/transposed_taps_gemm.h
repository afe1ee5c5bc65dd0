// The int8 LUT over FleXOR taps kept transposed (transposed_taps.h): the
// GEMM driver of Int8SignPath (fused_gemm.cc) for layers whose taps are.
#ifndef FLEXOR_ENGINE_KERNELS_TRANSPOSED_TAPS_GEMM_H_
#define FLEXOR_ENGINE_KERNELS_TRANSPOSED_TAPS_GEMM_H_

#include <cstdint>

#include "engine/kernels/gemm_support.h"
#include "engine/kernels/layer_weights.h"
#include "engine/kernels/microkernels.h"

namespace flexor {

// Whether Int8TransposedTapsGemm serves this layer of `planes` bit planes
// at this batch: its taps are transposed, and the batch and plane count
// are within what the path handles (segments that start mid-row: batch 1).
bool TransposedTapsGemmTakes(const LayerWeights& w, int planes, int64_t batch);

// Rows [r0, r1) of y = the int8 layer over xq (batch rows of 64 ceil(K /
// 64) quantised activations, with their scales and sums), written with the
// same float operations as the decrypted-tile path, so the same outputs
// bit for bit.
void Int8TransposedTapsGemm(const KernelTable& kt,
                            const gemm_support::PlaneSource& src,
                            const LayerWeights& w, int64_t r0, int64_t r1,
                            int64_t batch, const int8_t* xq, float* y,
                            int64_t ldy, const float* scale,
                            const int32_t* qsum);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_TRANSPOSED_TAPS_GEMM_H_
