// FleXOR taps kept in the int8 LUT kernel's transposed layout, so that the
// kernel decrypts inside its look-up loop.
//
// Segment D_j of a plane (S bits, the XOR of its taps) holds weight bits
// [j S, (j + 1) S) of the row-major [O, K] matrix. Cut into "tap rows" of K
// bits, tap row g of every segment is bits [g K, (g + 1) K) of the same tap
// vectors, so the taps are byte-transposed once at load in blocks of 16 tap
// rows, and LutI8 reads the XOR of a segment's tap blocks (XOR commutes with
// the transpose): no funnel shift, no decrypted tile and no transpose per
// request (about 1.7x less work per 16-row block than decrypt + transpose +
// look-up, kernels_bench int8_lut_block).
//
// Segment j starts at row a_j, column b_j (StartOfSegment): tap row g's
// columns q < K - b_j are row a_j + g, columns b_j + q, and the rest are
// row a_j + g + 1, columns q - (K - b_j). So the kernel looks up tap row g
// against the activations rotated by b_j and splits the sum at K - b_j:
// row a_j + g takes the first part of tap row g and the second of tap row
// g - 1. Row-aligned planes (S a multiple of K) have b_j = 0: no split.
//
// Costs as much memory again as the stored bits, so it is only built where
// the int8 LUT kernel runs (AVX2).
#ifndef FLEXOR_ENGINE_KERNELS_TRANSPOSED_TAPS_H_
#define FLEXOR_ENGINE_KERNELS_TRANSPOSED_TAPS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/layer_weights.h"

namespace flexor {

struct TransposedTaps {
  int64_t rows_per_segment = 0;    // R = ceil(S / K) tap rows
  int64_t blocks_per_segment = 0;  // ceil(R / 16)
  int64_t block_bytes = 0;         // LutI8TransposedBytes(ceil(K / 64))
  int num_taps = 0;                // the network's N_in
  bool row_aligned = false;        // S % K == 0: every b_j is 0
  // [num_taps][blocks_per_segment][block_bytes], then one block of zeros
  // (the input of an output bit with no taps). Rows past R and bits past S
  // are zero.
  std::vector<uint8_t> bytes;

  // Tap rows [16 block, 16 block + 16) of every segment, as stored in tap t.
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

// Where segment j of a plane with `slices` bits per segment starts in a
// row-major matrix of `k` columns.
struct SegmentStart {
  int64_t row;     // a_j
  int64_t column;  // b_j
};
inline SegmentStart StartOfSegment(int64_t j, int64_t slices, int64_t k) {
  return {j * slices / k, j * slices % k};
}

// The plane's taps in transposed blocks of tap rows; requires slices >= k.
std::shared_ptr<const TransposedTaps> TransposeTaps(
    const BinaryPlaneView& plane, int64_t k);

// Segments that start mid-row cost a table set per segment and request
// (the activations rotated by b_j, ~4 blocks' look-ups at K = 4096), which
// pays off only over many tap rows: measured on 4096x4096 (410 tap rows
// per segment) 90 us against 118 us for decrypted tiles (AVX2, batch 1, 2
// threads), but the MLP's 784 x 1024 layer (~100 tap rows) took 1.8x as
// long.
inline constexpr int64_t kMinSplitTapRows = 128;

// Attaches transposed taps to every plane of a binary-coded layer when the
// ISA has the int8 LUT kernel and every plane has the same S, at least K
// (so a row takes bits from at most two segments): a multiple of K, or of
// at least `min_split_rows` tap rows. Returns whether it did (the int8 path
// then uses them).
bool AttachTransposedTaps(LayerWeights& w, KernelIsa isa,
                          int64_t min_split_rows = kMinSplitTapRows);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_TRANSPOSED_TAPS_H_
