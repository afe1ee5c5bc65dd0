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

}  // namespace flexor
