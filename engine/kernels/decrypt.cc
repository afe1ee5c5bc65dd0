#include "engine/kernels/decrypt.h"

#include <algorithm>
#include <vector>

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
  // Rows are not whole words (convolutions: K = C * kh * kw). Decrypting
  // row by row costs a few short decrypt_words calls and masked partial
  // words per row; instead decrypt the tile as one contiguous range, then
  // move each row to its word-aligned place. Row r's bits start at bit r k
  // of the range and go to bit 64 r row_words >= r k, so moving rows last
  // to first, and each row's words last to first, only reads words that are
  // not yet overwritten: word d of the output reads range words s and s + 1
  // with s + 1 <= d (64 d - (r k + 64 j) = r (64 row_words - k) >= 1 bit).
  DecryptRange(plane, row_begin * k, rows * k, out, isa);
  const uint64_t tail_mask = (uint64_t{1} << (k & 63)) - 1;  // k & 63 != 0
  for (int64_t r = rows - 1; r >= 1; --r) {
    const int64_t bit = r * k;
    const int64_t src = bit >> 6;
    const int shift = static_cast<int>(bit & 63);
    uint64_t* dst = out + r * row_words;
    for (int64_t j = row_words - 1; j >= 0; --j) {
      const uint64_t lo = out[src + j];
      // The range ends at word WordsForBits(rows k) - 1; beyond it, zeros.
      const uint64_t hi =
          shift == 0 || (src + j + 1) * 64 >= rows * k ? 0 : out[src + j + 1];
      dst[j] = shift == 0 ? lo : (lo >> shift) | (hi << (64 - shift));
    }
    dst[row_words - 1] &= tail_mask;
  }
  out[row_words - 1] &= tail_mask;  // row 0 is in place; cut row 1's bits
}

void DecryptPlane(const BinaryPlaneView& plane, int64_t num_weights,
                  uint64_t* out, KernelIsa isa) {
  if (num_weights <= 0) return;
  const KernelTable& kt = GetKernelTable(isa);
  // A plane larger than a core's L2 (1-2 MiB on current x86 server parts)
  // leaves the cache anyway: storing it past the caches saves reading every
  // output line before writing it. 4096x4096 and 4096x14336 at 0.8 bit, one
  // thread (kernels_bench decrypt, Zen 5, six runs each): AVX-512 57-69% of
  // memcpy with cached stores, 63-75% streamed; AVX2 within its noise
  // (54-58% cached, 46-69% streamed). Streamed tiles must not share cache
  // lines with cached stores (tiles below end on output lines): with tiles
  // counted from each segment's start, 1-32 KiB tiles ran 3-8x slower.
  constexpr int64_t kStreamingBytes = int64_t{1} << 20;
  const DecryptWordsFn decrypt_words = num_weights / 8 >= kStreamingBytes
                                           ? kt.decrypt_words_streaming
                                           : kt.decrypt_words;
  const int64_t S = plane.slices, wpv = plane.words_per_vector;
  const int n_out = plane.net.n_out;
  // Segment j fills out bits [j*S, min((j+1)*S, n)). Output word w inside it
  // holds segment bits from 64w - j*S: one funnel shift per segment, so the
  // interior words of all segments are produced by whole-word calls.
  struct Segment {
    Taps taps;
    int64_t begin_bit, end_bit;    // output bits
    int64_t word_begin, word_end;  // output words entirely inside
    int64_t first_line;  // word of the output cache line word_begin is in
  };
  // Tiles end on output cache lines, so a line is never split between a
  // call's streamed words and its neighbour's cached scalar ones (AVX2,
  // 4096x4096, 0.8 bit, medians of 7 alternating rounds: 31.6-33.5 GB/s
  // with tiles counted from each segment's first word, 34.6-37.4 with
  // tiles on lines).
  const int64_t phase = (reinterpret_cast<uintptr_t>(out) / 8) % 8;
  std::vector<Segment> segs;
  for (int j = 0; j < n_out; ++j) {
    Segment g;
    g.taps = TapsOf(plane, j);
    g.begin_bit = j * S;
    g.end_bit = std::min((j + 1) * S, num_weights);
    if (g.begin_bit >= g.end_bit) break;
    g.word_begin = (g.begin_bit + 63) >> 6;
    g.word_end = std::max(g.word_begin, g.end_bit >> 6);
    g.first_line = ((g.word_begin + phase) & ~int64_t{7}) - phase;
    segs.push_back(g);
  }
  // Tiles of ~512 KiB of stored bits (4096 words per vector at N_in = 16):
  // the tile stays in L2 while every output reuses it, so stored bits come
  // from memory once, and each decrypt_words call streams thousands of
  // words. Measured on 4096x4096 and 4096x14336 (AVX2 and AVX-512, best of
  // 20): 1 KiB tiles (L1-resident) reached 62-70% of memcpy, 16-32 KiB
  // 72-77%; software prefetching of the next tile only cost.
  const int64_t kTileWords =
      std::max<int64_t>(128, (int64_t{512} << 10) / 8 / plane.net.n_in) & ~7;
  const int64_t longest = (S + 63) / 64 + 1;
  for (int64_t t0 = 0; t0 < longest + 8; t0 += kTileWords) {
    for (const Segment& g : segs) {
      const int64_t w0 = std::max(g.word_begin, g.first_line + t0);
      const int64_t w1 = std::min(g.word_end, g.first_line + t0 + kTileWords);
      if (w0 >= w1) continue;
      const int64_t s = 64 * w0 - g.begin_bit;
      decrypt_words(g.taps.ptr, g.taps.count, wpv, s >> 6,
                    static_cast<int>(s & 63), w1 - w0, out + w0);
    }
  }
  // The < 64 bits at each end of a segment share words with its neighbours.
  for (const Segment& g : segs) {
    const int64_t head_end = std::min(g.end_bit, 64 * g.word_begin);
    WriteSegmentBits(kt, g.taps, wpv, 0, head_end - g.begin_bit, out,
                     g.begin_bit);
    const int64_t tail_begin = std::max(head_end, 64 * g.word_end);
    WriteSegmentBits(kt, g.taps, wpv, tail_begin - g.begin_bit,
                     g.end_bit - tail_begin, out, tail_begin);
  }
  if ((num_weights & 63) != 0) {
    out[(num_weights - 1) >> 6] &= LowMask(num_weights & 63);
  }
}

}  // namespace flexor
