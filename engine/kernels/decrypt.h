// Fast FleXOR decryption of the canonical layout (DESIGN.md): any contiguous
// range of a plane's row-major weights is the XOR of the same range of the
// N_tap stored vectors of its output segment(s), done word-wide by the
// per-ISA DecryptWordsFn and funnel-shifted to start at bit 0 of `out`.
#ifndef FLEXOR_ENGINE_KERNELS_DECRYPT_H_
#define FLEXOR_ENGINE_KERNELS_DECRYPT_H_

#include <cstdint>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/layer_weights.h"

namespace flexor {

// Writes weight bits [first, first + count) of `plane` (0 = +1, 1 = -1) to
// out bits [0, count); bits of the last word past `count` are zeroed.
// Requires first + count <= slices * n_out.
void DecryptRange(const BinaryPlaneView& plane, int64_t first, int64_t count,
                  uint64_t* out, KernelIsa isa = SelectedIsa());

// Rows [row_begin, row_begin + rows) of a plane of a [O, k] matrix, one row
// per `row_words` = ceil(k / 64) words, each row starting at bit 0 of its
// first word (tail bits zero).
void DecryptRows(const BinaryPlaneView& plane, int64_t k, int64_t row_begin,
                 int64_t rows, uint64_t* out, KernelIsa isa = SelectedIsa());

// Whole-plane decryption in slice tiles, so each tile of the N_in stored
// vectors is read from memory once and reused, from L1, by all N_out outputs:
// out holds num_weights bits row-major. This is what "decryption alone" is
// benchmarked with.
void DecryptPlane(const BinaryPlaneView& plane, int64_t num_weights,
                  uint64_t* out, KernelIsa isa = SelectedIsa());

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_DECRYPT_H_
