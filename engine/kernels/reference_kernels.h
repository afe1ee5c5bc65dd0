// Portable scalar reference kernels. Every fast kernel is tested against
// these; they favour obviousness over speed.
#ifndef FLEXOR_ENGINE_KERNELS_REFERENCE_KERNELS_H_
#define FLEXOR_ENGINE_KERNELS_REFERENCE_KERNELS_H_

#include <cstdint>

#include "engine/kernels/layer_weights.h"

namespace flexor {

// y[b, o] = sum_k W[o, k] * x[b, k] + bias[o]; x is [batch, K], y is
// [batch, O], both row-major. Weights are dequantized one row at a time.
void MatmulReference(const LayerWeights& w, const float* x, int64_t batch,
                     float* y);

// Ternary x ternary dot products with the gated-XNOR popcount formula of
// DESIGN.md: activations are given as (nonzero, sign) bit rows
// [batch][words_per_row]. y[b, o] = scales[o] * dot + bias[o].
void TernaryGxnorReference(const LayerWeights& w, const uint64_t* act_nonzero,
                           const uint64_t* act_sign, int64_t batch, float* y);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_REFERENCE_KERNELS_H_
