#include "engine/kernels/transposed_taps.h"

#include <algorithm>

#include "engine/codec/bit_layout.h"
#include "engine/kernels/microkernels.h"

namespace flexor {
namespace {

// out[m] = bits [first + 64 m, + 64) of the n-word vector v, m < WordsForBits
// (count), zero past v's end and past `count` bits.
void ExtractBits(const uint64_t* v, int64_t n, int64_t first, int64_t count,
                 uint64_t* out) {
  const int64_t words = WordsForBits(count);
  const int shift = static_cast<int>(first & 63);
  for (int64_t m = 0; m < words; ++m) {
    const int64_t w = (first >> 6) + m;
    const uint64_t lo = w < n ? v[w] : 0;
    const uint64_t hi = w + 1 < n ? v[w + 1] : 0;
    out[m] = shift == 0 ? lo : (lo >> shift) | (hi << (64 - shift));
  }
  if ((count & 63) != 0) {
    out[words - 1] &= (uint64_t{1} << (count & 63)) - 1;
  }
}

}  // namespace

std::shared_ptr<const TransposedTaps> TransposeTaps(
    const BinaryPlaneView& plane, int64_t k) {
  auto taps = std::make_shared<TransposedTaps>();
  const int64_t kw = WordsForBits(k);
  taps->rows_per_segment = (plane.slices + k - 1) / k;
  taps->row_aligned = plane.slices % k == 0;
  taps->blocks_per_segment = (taps->rows_per_segment + 15) / 16;
  taps->block_bytes = LutI8TransposedBytes(kw);
  taps->num_taps = plane.net.n_in;
  taps->bytes.assign(
      (taps->num_taps * taps->blocks_per_segment + 1) * taps->block_bytes, 0);
  std::vector<uint64_t> rows(16 * kw);
  for (int t = 0; t < taps->num_taps; ++t) {
    const uint64_t* v = plane.stored + t * plane.words_per_vector;
    for (int64_t b = 0; b < taps->blocks_per_segment; ++b) {
      const int64_t n = std::min<int64_t>(16, taps->rows_per_segment - 16 * b);
      std::fill(rows.begin(), rows.end(), 0);
      for (int64_t r = 0; r < n; ++r) {
        const int64_t first = (16 * b + r) * k;
        ExtractBits(v, plane.words_per_vector, first,
                    std::min(k, plane.slices - first), rows.data() + r * kw);
      }
      TransposeBytes16Portable(rows.data(), kw, n, kw, taps->Block(t, b));
    }
  }
  return taps;
}

bool AttachTransposedTaps(LayerWeights& w, KernelIsa isa,
                          int64_t min_split_rows) {
  if (w.kind != WeightCodecKind::kBinary || w.planes.empty() ||
      GetKernelTable(isa).lut_i8 == nullptr) {
    return false;
  }
  for (const BinaryPlaneView& p : w.planes) {
    const int64_t k = w.in_features;
    if (k <= 0 || p.slices < k || p.slices != w.planes[0].slices) {
      return false;
    }
    if (p.slices % k != 0 && (p.slices + k - 1) / k < min_split_rows) {
      return false;
    }
  }
  for (BinaryPlaneView& p : w.planes) {
    p.transposed = TransposeTaps(p, w.in_features);
  }
  return true;
}

}  // namespace flexor
