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

}  // namespace flexor
