#include "engine/kernels/microkernels.h"

namespace flexor {

const KernelTable& GetKernelTable(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512:
      return Avx512KernelTable();
    case KernelIsa::kAvx2:
      return Avx2KernelTable();
    case KernelIsa::kScalar:
      break;
  }
  return ScalarKernelTable();
}

const PixelKernelTable& GetPixelKernelTable(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512:
      return Avx512PixelKernelTable();
    case KernelIsa::kAvx2:
      return Avx2PixelKernelTable();
    case KernelIsa::kScalar:
      break;
  }
  return ScalarPixelKernelTable();
}

}  // namespace flexor
