// Gated-XNOR kernel: ternary weights x ternary activations (GXNOR-Net), both
// as (nonzero, sign) bit rows; only positions where both are non-zero count.
#ifndef FLEXOR_ENGINE_KERNELS_TERNARY_GXNOR_H_
#define FLEXOR_ENGINE_KERNELS_TERNARY_GXNOR_H_

#include <cstdint>

#include "engine/kernels/layer_weights.h"
#include "engine/kernels/matmul.h"

namespace flexor {

// y[b, o] = scales[o] * sum_k t_w[o, k] * t_a[b, k] + bias[o]. Activation
// rows are [batch][w.ternary.words_per_row] words, padding bits zero.
void TernaryGxnor(const LayerWeights& w, const uint64_t* act_nonzero,
                  const uint64_t* act_sign, int64_t batch, float* y,
                  KernelPath path = KernelPath::kAuto);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_TERNARY_GXNOR_H_
