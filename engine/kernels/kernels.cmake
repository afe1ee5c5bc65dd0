# Kernel sources of flexor_engine (owned by the kernels work; per-ISA files
# get their own -m flags via set_source_files_properties here).
set(FLEXOR_KERNEL_SOURCES
  kernels/layer_weights.cc
  kernels/reference_kernels.cc
  kernels/matmul.cc
)
