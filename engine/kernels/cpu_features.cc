#include "engine/kernels/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace flexor {
namespace {

KernelIsa DetectBestIsa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl")) {
    return KernelIsa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2")) {
    return KernelIsa::kAvx2;
  }
#endif
  return KernelIsa::kScalar;
}

KernelIsa ComputeSelectedIsa() {
  KernelIsa isa = DetectBestIsa();
  const char* env = std::getenv("FLEXOR_KERNEL_ISA");
  if (env == nullptr) return isa;
  KernelIsa want = isa;
  if (std::strcmp(env, "scalar") == 0) want = KernelIsa::kScalar;
  if (std::strcmp(env, "avx2") == 0) want = KernelIsa::kAvx2;
  if (std::strcmp(env, "avx512") == 0) want = KernelIsa::kAvx512;
  return IsaSupported(want) ? want : isa;
}

}  // namespace

bool IsaSupported(KernelIsa isa) {
  static const KernelIsa best = DetectBestIsa();
  return static_cast<int>(isa) <= static_cast<int>(best);
}

KernelIsa SelectedIsa() {
  static const KernelIsa selected = ComputeSelectedIsa();
  return selected;
}

bool HasAvx512Vpopcntdq() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = [] {
    __builtin_cpu_init();
    return IsaSupported(KernelIsa::kAvx512) &&
           __builtin_cpu_supports("avx512vpopcntdq");
  }();
  return has;
#else
  return false;
#endif
}

bool HasAvx512Vnni() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = [] {
    __builtin_cpu_init();
    return IsaSupported(KernelIsa::kAvx512) &&
           __builtin_cpu_supports("avx512vnni");
  }();
  return has;
#else
  return false;
#endif
}

bool HasAvx512Vbmi() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = [] {
    __builtin_cpu_init();
    return IsaSupported(KernelIsa::kAvx512) &&
           __builtin_cpu_supports("avx512vbmi");
  }();
  return has;
#else
  return false;
#endif
}

const char* IsaName(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kScalar:
      return "scalar";
    case KernelIsa::kAvx2:
      return "avx2";
    case KernelIsa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

}  // namespace flexor
