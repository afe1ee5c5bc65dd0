#include "engine/kernels/gemm_support.h"

#include "tbb/task_arena.h"

namespace flexor::gemm_support {

Scratch& LocalScratch() {
  thread_local Scratch scratch;
  return scratch;
}

int Threads() { return tbb::this_task_arena::max_concurrency(); }

void Int8AccumulatePlane(const int32_t* __restrict neg,
                         const float* __restrict alpha,
                         const int32_t* __restrict qsum, int64_t n, int64_t nb,
                         bool first, float* __restrict acc) {
  if (nb == 1) {
    const int32_t qs = qsum[0];
    if (first) {
      for (int64_t r = 0; r < n; ++r) {
        acc[r] = alpha[r] * static_cast<float>(qs - 2 * neg[r]);
      }
    } else {
      for (int64_t r = 0; r < n; ++r) {
        acc[r] += alpha[r] * static_cast<float>(qs - 2 * neg[r]);
      }
    }
    return;
  }
  for (int64_t r = 0; r < n; ++r) {
    const float a = alpha[r];
    for (int64_t b = 0; b < nb; ++b) {
      const float v = a * static_cast<float>(qsum[b] - 2 * neg[r * nb + b]);
      acc[r * nb + b] = first ? v : acc[r * nb + b] + v;
    }
  }
}

void StoreInt8Rows(const float* acc, int64_t o0, int64_t n, int64_t b0,
                   int64_t nb, const float* scale, const float* bias, float* y,
                   int64_t ldy) {
  if (nb == 1) {
    float* yr = y + b0 * ldy + o0;
    const float sb = scale[b0];
    if (bias) {
      for (int64_t r = 0; r < n; ++r) yr[r] = acc[r] * sb + bias[o0 + r];
    } else {
      for (int64_t r = 0; r < n; ++r) yr[r] = acc[r] * sb + 0.0f;
    }
    return;
  }
  for (int64_t r = 0; r < n; ++r) {
    const float c = bias ? bias[o0 + r] : 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      y[(b0 + b) * ldy + o0 + r] = acc[r * nb + b] * scale[b0 + b] + c;
    }
  }
}

}  // namespace flexor::gemm_support
