// Non-x86 builds: the SIMD tables alias the portable one (IsaSupported never
// reports AVX2/AVX-512 there, so they are not selected anyway).
#include "engine/kernels/microkernels.h"

namespace flexor {

const KernelTable& Avx2KernelTable() { return ScalarKernelTable(); }
const KernelTable& Avx512KernelTable() { return ScalarKernelTable(); }
const PixelKernelTable& Avx2PixelKernelTable() {
  return ScalarPixelKernelTable();
}
const PixelKernelTable& Avx512PixelKernelTable() {
  return ScalarPixelKernelTable();
}
void SignDotI8Avx2(const uint64_t* bits, int64_t bs, int64_t rows,
                   const int8_t* xq, int64_t xs, int64_t batch, int64_t kw,
                   int32_t* neg, int64_t ns) {
  SignDotI8Portable(bits, bs, rows, xq, xs, batch, kw, neg, ns);
}
void SignDotI8Avx512Vnni(const uint64_t* bits, int64_t bs, int64_t rows,
                         const int8_t* xq, int64_t xs, int64_t batch,
                         int64_t kw, int32_t* neg, int64_t ns) {
  SignDotI8Portable(bits, bs, rows, xq, xs, batch, kw, neg, ns);
}

}  // namespace flexor
