#include "engine/kernels/ternary_gxnor.h"

#include "engine/kernels/fused_gemm.h"
#include "engine/kernels/reference_kernels.h"

namespace flexor {

void TernaryGxnor(const LayerWeights& w, const uint64_t* act_nonzero,
                  const uint64_t* act_sign, int64_t batch, float* y,
                  KernelPath path) {
  if (path == KernelPath::kReference) {
    TernaryGxnorReference(w, act_nonzero, act_sign, batch, y);
    return;
  }
  // Per-ISA popcount kernel (VPOPCNTQ on AVX-512 CPUs that have it),
  // parallel over output-row tiles.
  TernaryGxnorGemm(w, act_nonzero, act_sign, batch, y);
}

}  // namespace flexor
