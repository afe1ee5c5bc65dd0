// Run-time selection of the instruction set the kernels use. Every kernel
// exists in a portable build plus AVX2 and AVX-512 builds (each compiled with
// its own -m flags); the best one the CPU supports is chosen once via CPUID.
#ifndef FLEXOR_ENGINE_KERNELS_CPU_FEATURES_H_
#define FLEXOR_ENGINE_KERNELS_CPU_FEATURES_H_

namespace flexor {

enum class KernelIsa {
  kScalar,  // Portable C++, always compiled and tested.
  kAvx2,    // AVX2 + FMA + BMI2.
  kAvx512,  // AVX-512 F/BW/DQ/VL.
};

// True if this CPU (and this build) can run kernels of `isa`.
bool IsaSupported(KernelIsa isa);

// The ISA Matmul uses: the best supported one, unless the environment
// variable FLEXOR_KERNEL_ISA ("scalar", "avx2", "avx512") asks for a lower
// supported one (benchmarks and debugging). Computed once.
KernelIsa SelectedIsa();

// True if the AVX-512 VPOPCNTDQ extension is present (GXNOR popcounts).
bool HasAvx512Vpopcntdq();

// True if the AVX-512 VNNI extension is present (VPDPBUSD int8 dot products
// of the int8 activation path).
bool HasAvx512Vnni();

// True if the AVX-512 VBMI extension is present (byte permutes that expand
// weight signs for the int8 convolutions).
bool HasAvx512Vbmi();

const char* IsaName(KernelIsa isa);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_CPU_FEATURES_H_
