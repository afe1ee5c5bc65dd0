#include "engine/kernels/matmul.h"

#include <cstdlib>
#include <cstring>

#include "engine/kernels/codec_traits.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/fused_gemm.h"
#include "engine/kernels/reference_kernels.h"

namespace flexor {

const MatmulOptions& DefaultMatmulOptions() {
  static const MatmulOptions options = [] {
    MatmulOptions o;
    const char* env = std::getenv("FLEXOR_ACTIVATION_PRECISION");
    if (env != nullptr) {
      const absl::StatusOr<ActivationPrecision> parsed =
          ParseActivationPrecision(env);
      if (parsed.ok()) o.activations = *parsed;
    }
    return o;
  }();
  return options;
}

void Matmul(const LayerWeights& w, const float* x, int64_t batch, float* y,
            KernelPath path) {
  Matmul(w, x, batch, y, path, DefaultMatmulOptions());
}

void Matmul(const LayerWeights& w, const float* x, int64_t batch, float* y,
            KernelPath path, const MatmulOptions& options) {
  if (path == KernelPath::kReference) {
    MatmulReference(w, x, batch, y);
    return;
  }
  const int64_t O = w.out_features;
  if (CodecTraits(w.kind).planes(w) == 0) {
    DenseGemm(w, 0, O, x, batch, y, O);
  } else {
    GemmOptions gemm;
    gemm.activations = options.activations;
    gemm.decrypt_nanos = options.decrypt_nanos;
    BinaryCodedGemm(w, 0, O, x, batch, y, O, gemm);
  }
}

const char* SelectedKernelIsaName() { return IsaName(SelectedIsa()); }

}  // namespace flexor
