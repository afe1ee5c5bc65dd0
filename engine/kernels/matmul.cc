#include "engine/kernels/matmul.h"

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/fused_gemm.h"
#include "engine/kernels/reference_kernels.h"

namespace flexor {

void Matmul(const LayerWeights& w, const float* x, int64_t batch, float* y,
            KernelPath path) {
  if (path == KernelPath::kReference) {
    MatmulReference(w, x, batch, y);
    return;
  }
  const int64_t O = w.out_features;
  if (w.kind == WeightCodecKind::kFloat32) {
    DenseGemm(w, 0, O, x, batch, y, O);
  } else {
    BinaryCodedGemm(w, 0, O, x, batch, y, O);
  }
}

const char* SelectedKernelIsaName() { return IsaName(SelectedIsa()); }

}  // namespace flexor
