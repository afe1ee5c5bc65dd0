#include "engine/kernels/decrypt.h"

#include <algorithm>

#include "engine/kernels/microkernels.h"

namespace flexor {
namespace {

inline uint64_t LowMask(int64_t n) {
  return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
}

// The stored vectors XORed into output segment j.
struct Taps {
  const uint64_t* ptr[kMaxXorWidth];
  int count = 0;
};

Taps TapsOf(const BinaryPlaneView& plane, int64_t j) {
  Taps taps;
  uint64_t row = plane.net.rows[static_cast<size_t>(j)];
  while (row != 0) {
    const int t = __builtin_ctzll(row);
    row &= row - 1;
    taps.ptr[taps.count++] = plane.stored + t * plane.words_per_vector;
  }
  return taps;
}

// Writes bits [s, s + len) of segment D (given by its taps) to out bits
// [ob, ob + len), leaving every other bit of out untouched.
void WriteSegmentBits(const KernelTable& kt, const Taps& taps, int64_t wpv,
                      int64_t s, int64_t len, uint64_t* out, int64_t ob) {
  if (len <= 0) return;
  int64_t w = ob >> 6;
  const int o = static_cast<int>(ob & 63);
  uint64_t v;
  if (o != 0) {
    kt.decrypt_words(taps.ptr, taps.count, wpv, s >> 6, s & 63, 1, &v);
    const int64_t n1 = std::min<int64_t>(len, 64 - o);
    const uint64_t mask = LowMask(n1) << o;
    out[w] = (out[w] & ~mask) | ((v << o) & mask);
    s += n1;
    len -= n1;
    ++w;
  }
  const int64_t full = len >> 6;
  if (full > 0) {
    kt.decrypt_words(taps.ptr, taps.count, wpv, s >> 6, s & 63, full, out + w);
  }
  const int64_t rem = len & 63;
  if (rem != 0) {
    const int64_t s2 = s + 64 * full;
    kt.decrypt_words(taps.ptr, taps.count, wpv, s2 >> 6, s2 & 63, 1, &v);
    const uint64_t mask = LowMask(rem);
    out[w + full] = (out[w + full] & ~mask) | (v & mask);
  }
}

}  // namespace

void DecryptRange(const BinaryPlaneView& plane, int64_t first, int64_t count,
                  uint64_t* out, KernelIsa isa) {
  if (count <= 0) return;
  const KernelTable& kt = GetKernelTable(isa);
  const int64_t S = plane.slices;
  int64_t done = 0;
  while (done < count) {
    const int64_t i = first + done;
    const int64_t j = i / S, s = i % S;
    const int64_t len = std::min(count - done, S - s);
    WriteSegmentBits(kt, TapsOf(plane, j), plane.words_per_vector, s, len, out,
                     done);
    done += len;
  }
  if ((count & 63) != 0) out[(count - 1) >> 6] &= LowMask(count & 63);
}

void DecryptRows(const BinaryPlaneView& plane, int64_t k, int64_t row_begin,
                 int64_t rows, uint64_t* out, KernelIsa isa) {
  const int64_t row_words = (k + 63) / 64;
  if ((k & 63) == 0) {
    // Rows are whole words: the tile is one contiguous range.
    DecryptRange(plane, row_begin * k, rows * k, out, isa);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    DecryptRange(plane, (row_begin + r) * k, k, out + r * row_words, isa);
  }
}

void DecryptPlane(const BinaryPlaneView& plane, int64_t num_weights,
                  uint64_t* out, KernelIsa isa) {
  if (num_weights <= 0) return;
  const KernelTable& kt = GetKernelTable(isa);
  const int64_t S = plane.slices;
  const int n_out = plane.net.n_out;
  Taps taps[kMaxXorWidth];
  for (int j = 0; j < n_out; ++j) taps[j] = TapsOf(plane, j);
  // 4096 slices = 512 bytes per stored vector: with up to 64 inputs the tile
  // of stored bits stays in L1 while all outputs are produced from it.
  constexpr int64_t kTileSlices = 4096;
  for (int64_t s0 = 0; s0 < S; s0 += kTileSlices) {
    const int64_t s1 = std::min(S, s0 + kTileSlices);
    for (int j = 0; j < n_out; ++j) {
      const int64_t base = j * S;
      const int64_t len = std::min(s1, num_weights - base) - s0;
      if (len <= 0) break;
      WriteSegmentBits(kt, taps[j], plane.words_per_vector, s0, len, out,
                       base + s0);
    }
  }
  if ((num_weights & 63) != 0) {
    out[(num_weights - 1) >> 6] &= LowMask(num_weights & 63);
  }
}

}  // namespace flexor
