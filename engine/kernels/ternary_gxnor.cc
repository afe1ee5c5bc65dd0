#include "engine/kernels/ternary_gxnor.h"

#include "engine/kernels/reference_kernels.h"
#include "tbb/parallel_for.h"

namespace flexor {

void TernaryGxnor(const LayerWeights& w, const uint64_t* act_nonzero,
                  const uint64_t* act_sign, int64_t batch, float* y,
                  KernelPath path) {
  if (path == KernelPath::kReference) {
    TernaryGxnorReference(w, act_nonzero, act_sign, batch, y);
    return;
  }
  // Rows are independent: split the batch across the arena's threads. The
  // popcount loop itself compiles to POPCNT per word.
  const int64_t words = w.ternary.words_per_row;
  tbb::parallel_for(int64_t{0}, batch, [&](int64_t b) {
    TernaryGxnorReference(w, act_nonzero + b * words, act_sign + b * words, 1,
                          y + b * w.out_features);
  });
}

}  // namespace flexor
