// FleXOR taps kept in the int8 LUT kernel's transposed layout, so that the
// kernel decrypts inside its look-up loop.
//
// When a plane's slice count S is a multiple of K, every segment D_j of the
// canonical layout starts on a row boundary and holds R = S / K whole rows:
// row j R + g is bits [g K, (g + 1) K) of the XOR of segment j's taps. XOR
// commutes with the byte transpose of TransposeBytes16, so the taps are
// transposed once at load and LutI8 reads the XOR of a segment's tap blocks:
// no funnel shift, no decrypted tile and no transpose per request (about
// 1.7x less work per 16-row block than decrypt + transpose + look-up,
// kernels_bench int8_lut_block). Costs as much memory again as the stored
// bits, so it is only built where the int8 LUT kernel runs (AVX2).
#ifndef FLEXOR_ENGINE_KERNELS_TRANSPOSED_TAPS_H_
#define FLEXOR_ENGINE_KERNELS_TRANSPOSED_TAPS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/layer_weights.h"

namespace flexor {

struct TransposedTaps {
  int64_t rows_per_segment = 0;    // R = S / K
  int64_t blocks_per_segment = 0;  // ceil(R / 16)
  int64_t block_bytes = 0;         // LutI8TransposedBytes(ceil(K / 64))
  int num_taps = 0;                // the network's N_in
  // [num_taps][blocks_per_segment][block_bytes], then one block of zeros
  // (the input of an output bit with no taps). Rows past R are zero.
  std::vector<uint8_t> bytes;

  // Rows [16 block, 16 block + 16) of every segment, as stored in tap t.
  const uint8_t* Block(int t, int64_t block) const {
    return bytes.data() + (t * blocks_per_segment + block) * block_bytes;
  }
  uint8_t* Block(int t, int64_t block) {
    return bytes.data() + (t * blocks_per_segment + block) * block_bytes;
  }
  const uint8_t* ZeroBlock() const {
    return bytes.data() + num_taps * blocks_per_segment * block_bytes;
  }
};

// Whether every segment of the plane starts on a row boundary (S % K == 0).
bool SegmentsOnRowBoundaries(const BinaryPlaneView& plane, int64_t k);

// The plane's taps in transposed blocks; requires SegmentsOnRowBoundaries.
std::shared_ptr<const TransposedTaps> TransposeTaps(
    const BinaryPlaneView& plane, int64_t k);

// Attaches transposed taps to every plane of a binary-coded layer when the
// ISA has the int8 LUT kernel and every plane has the same S, a multiple of
// K. Returns whether it did (the int8 path then uses them).
bool AttachTransposedTaps(LayerWeights& w, KernelIsa isa);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_TRANSPOSED_TAPS_H_
