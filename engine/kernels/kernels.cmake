# Kernel sources of flexor_engine (owned by the kernels work; per-ISA files
# get their own -m flags via set_source_files_properties here). Included from
# engine/CMakeLists.txt, so paths are relative to engine/.
set(FLEXOR_KERNEL_SOURCES
  kernels/activation_precision.cc
  kernels/layer_weights.cc
  kernels/transposed_taps.cc
  kernels/codec_traits.cc
  kernels/reference_kernels.cc
  kernels/matmul.cc
  kernels/cpu_features.cc
  kernels/decrypt.cc
  kernels/gemm_support.cc
  kernels/fused_gemm.cc
  kernels/transposed_taps_gemm.cc
  kernels/conv_gemm.cc
  kernels/int8_conv.cc
  kernels/microkernels.cc
  kernels/kernels_scalar.cc
)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
  list(APPEND FLEXOR_KERNEL_SOURCES
    kernels/kernels_avx2.cc
    kernels/kernels_avx512.cc
    kernels/kernels_avx512_vnni.cc
    kernels/kernels_avx512_vbmi.cc)
  # Only these files get wider ISAs; they run after a CPUID check
  # (cpu_features.cc), so the library still runs on any x86-64.
  set_source_files_properties(
    ${CMAKE_CURRENT_LIST_DIR}/kernels_avx2.cc
    PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mbmi2;-mpopcnt")
  set_source_files_properties(
    ${CMAKE_CURRENT_LIST_DIR}/kernels_avx512.cc
    PROPERTIES COMPILE_OPTIONS
    "-mavx512f;-mavx512bw;-mavx512dq;-mavx512vl;-mavx2;-mfma;-mbmi2;-mpopcnt")
  set_source_files_properties(
    ${CMAKE_CURRENT_LIST_DIR}/kernels_avx512_vnni.cc
    PROPERTIES COMPILE_OPTIONS
    "-mavx512f;-mavx512bw;-mavx512dq;-mavx512vl;-mavx512vnni;-mavx2;-mfma;-mbmi2;-mpopcnt")
  set_source_files_properties(
    ${CMAKE_CURRENT_LIST_DIR}/kernels_avx512_vbmi.cc
    PROPERTIES COMPILE_OPTIONS
    "-mavx512f;-mavx512bw;-mavx512dq;-mavx512vl;-mavx512vbmi;-mavx2;-mfma;-mbmi2;-mpopcnt")
else()
  # Other architectures: the portable kernels only.
  list(APPEND FLEXOR_KERNEL_SOURCES kernels/microkernels_stubs.cc)
endif()
