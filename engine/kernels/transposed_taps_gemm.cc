#include "engine/kernels/transposed_taps_gemm.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "engine/kernels/transposed_taps.h"
#include "engine/runtime/buffer_pool.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"

namespace flexor {
namespace gemm_support {
namespace {

// The int8 LUT over taps kept transposed (transposed_taps.h). Segment j's
// tap rows are looked up against the activations rotated by its start
// column b_j, in two sums split at column K - b_j of the tap row: the part
// before belongs to row a_j + g, the part after to row a_j + g + 1. Each
// split sum is up to two LutI8 calls on whole 256-column chunks plus, for
// the chunk the split falls in, one on tables whose activations past (or
// before) the split are zero. One parallel loop over runs of 16-row blocks
// of a segment finishes every row whose sums it computed itself; the few
// rows that also take sums from another run (the first row of a run and
// the rows a segment shares with the one before) are finished after it.
// The integers are those of the decrypted-tile path, and the float
// operations the same in the same order, so the outputs are the same bit
// for bit.
class Int8TransposedTapsPath {
 public:
  // Larger batches (FLEXOR_INT8_LUT_MAX_BATCH) and more planes take the
  // decrypted tiles.
  static constexpr int64_t kMaxBatch = 16;
  static constexpr int kMaxPlanes = 4;
  // Segments that start mid-row build a table set per segment and batch
  // row, while the decrypted tiles share their decryption and transpose by
  // the batch: AVX2, 4096x4096, 2 threads, 200-216 against 177-214 us at
  // batch 2, 288-396 against 226-273 at batches 3-4, 653 against 481 at 8.
  static constexpr int64_t kMaxSplitBatch = 1;

  static bool Takes(const LayerWeights& w, int q, int64_t batch) {
    if (w.planes.empty() || w.planes[0].transposed == nullptr) return false;
    const int64_t max_batch =
        w.planes[0].transposed->row_aligned ? kMaxBatch : kMaxSplitBatch;
    return batch <= max_batch && q <= kMaxPlanes;
  }

  Int8TransposedTapsPath(const KernelTable& kt, const PlaneSource& src,
                         const LayerWeights& w, int64_t batch, int64_t r0,
                         int64_t r1)
      : kt_(kt),
        src_(src),
        w_(w),
        batch_(batch),
        r0_(r0),
        r1_(r1),
        K_(w.in_features),
        kw_(CeilDiv(K_, 64)),
        chunks_(LutI8Chunks(kw_)),
        S_(w.planes[0].slices),
        R_(w.planes[0].transposed->rows_per_segment),
        bps_(w.planes[0].transposed->blocks_per_segment),
        segments_(std::min<int64_t>(w.planes[0].net.n_out,
                                    CeilDiv(w.out_features * K_, S_))),
        set_bytes_(LutI8TableBytes(kw_) + 2 * kChunkTableBytes),
        // Row-aligned planes: every segment starts column 0 (one table set)
        // and shares no row, so no sums outlive their run.
        shared_tables_(w.planes[0].transposed->row_aligned),
        sums_(shared_tables_ ? 0 : src.planes() * segments_ * R_ * batch * 2) {
    int64_t prev_end = -1;
    for (int64_t j = 0; j < segments_; ++j) {
      const SegmentStart start = StartOfSegment(j, S_, K_);
      row_[j] = start.row;
      column_[j] = start.column;
      // The last row segments before j add to (a row past their own).
      prev_end_[j] = prev_end;
      prev_end = std::max(prev_end, start.row + R_ - (start.column == 0));
    }
    row_[segments_] = std::numeric_limits<int64_t>::max();
    // Runs of blocks: one block each when all share one table set; else
    // about 4 per thread but 8 blocks at least, as every run builds its
    // segment's tables (kMinSplitTapRows; 2 and 4 runs per segment
    // measured 20% and 40% slower than 1 on 4096x4096 at 2 threads).
    runs_per_segment_ =
        shared_tables_ ? bps_
                       : std::clamp<int64_t>(CeilDiv(4 * Threads(), segments_),
                                             1, std::max<int64_t>(1, bps_ / 8));
  }

  void Run(const int8_t* xq, float* y, int64_t ldy, const float* scale,
           const int32_t* qsum) {
    xq_ = xq;
    y_ = y;
    ldy_ = ldy;
    scale_ = scale;
    qsum_ = qsum;
    // Every segment starts in the same column (row-aligned planes): one
    // table set for all.
    PooledArray<uint8_t> shared(shared_tables_ ? batch_ * set_bytes_ : 0);
    if (shared_tables_) {
      tbb::parallel_for(int64_t{0}, batch_, [&](int64_t b) {
        BuildTables(xq_ + b * kw_ * 64, column_[0],
                    shared.data() + b * set_bytes_);
      });
    }
    const int64_t runs = segments_ * runs_per_segment_;
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, runs, 1),
                      [&](const tbb::blocked_range<int64_t>& range) {
                        for (int64_t i = range.begin(); i < range.end(); ++i) {
                          RunBlocks(i / runs_per_segment_,
                                    i % runs_per_segment_, shared.data());
                        }
                      });
    // Rows with sums from two runs (none in row-aligned planes).
    for (int64_t i = 0; i < runs; ++i) {
      const int64_t j = i / runs_per_segment_;
      if (column_[j] == 0 && prev_end_[j] < row_[j]) {
        i += runs_per_segment_ - 1;  // the segment's next runs start rows
        continue;
      }
      const auto [g_lo, g_hi] = RunTapRows(i % runs_per_segment_);
      if (g_lo >= g_hi) continue;
      const int64_t first = row_[j] + g_lo;
      const int64_t last = g_lo == 0 ? std::max(first, prev_end_[j]) : first;
      for (int64_t r = first; r <= last; ++r) {
        if (r >= r0_ && r < r1_ && r < row_[j + 1] && !Complete(j, g_lo, r)) {
          GatherRow(r);
        }
      }
    }
  }

 private:
  static constexpr int64_t kChunkTableBytes = 16 * 2 * 64;  // one chunk
  static constexpr int64_t kChunkColumns = 256;
  static constexpr int64_t kChunkT16Bytes = 16 * 32;
  static constexpr int kMaxSegments = 64;

  // Tap rows [g_lo, g_hi) of run `run` of a segment (whole 16-row blocks).
  std::pair<int64_t, int64_t> RunTapRows(int64_t run) const {
    const int64_t b0 = bps_ * run / runs_per_segment_;
    const int64_t b1 = bps_ * (run + 1) / runs_per_segment_;
    return {16 * b0, std::min(16 * b1, R_)};
  }

  // Whether row r of segment j (its owner: a_j <= r < a_{j+1}) takes all
  // its sums from the run that starts at tap row g_lo.
  bool Complete(int64_t j, int64_t g_lo, int64_t r) const {
    const int64_t g = r - row_[j];
    if (r <= prev_end_[j]) return false;  // an earlier segment adds to it
    return column_[j] == 0 || g == 0 || g - 1 >= g_lo;
  }

  // The tables of xq rotated left by `column`, then those of the chunk the
  // split at K - column falls in, with the columns after the split zeroed
  // and with those before it zeroed.
  void BuildTables(const int8_t* xq, int64_t column, uint8_t* out) const {
    int8_t* x = reinterpret_cast<int8_t*>(
        Grow(LocalScratch().bytes, chunks_ * kChunkColumns + kChunkColumns));
    std::memcpy(x, xq + column, K_ - column);
    std::memcpy(x + K_ - column, xq, column);
    std::memset(x + K_, 0, chunks_ * kChunkColumns - K_);
    kt_.lut_i8_tables(x, kw_, out);
    const int64_t split = K_ - column;
    if (column == 0 || split % kChunkColumns == 0) return;
    const int64_t cb = split / kChunkColumns, at = split % kChunkColumns;
    int8_t* part = x + chunks_ * kChunkColumns;
    std::memcpy(part, x + cb * kChunkColumns, at);
    std::memset(part + at, 0, kChunkColumns - at);
    kt_.lut_i8_tables(part, 4, out + LutI8TableBytes(kw_));
    std::memset(part, 0, at);
    std::memcpy(part + at, x + cb * kChunkColumns + at, kChunkColumns - at);
    kt_.lut_i8_tables(part, 4, out + LutI8TableBytes(kw_) + kChunkTableBytes);
  }

  // sum[r] (+)= the look-up of chunks [c0, c1) of the 16 tap rows, with
  // `tables` those of chunk c0 onwards.
  void LookUp(const uint8_t* const* in, int num, int64_t c0, int64_t c1,
              const uint8_t* tables, bool add, int32_t* sum) const {
    if (c0 >= c1) {
      if (!add) std::fill(sum, sum + 16, 0);
      return;
    }
    const uint8_t* at[64];
    for (int t = 0; t < num; ++t) at[t] = in[t] + c0 * kChunkT16Bytes;
    int32_t part[16];
    kt_.lut_i8(at, num, 4 * (c1 - c0), tables, add ? part : sum);
    if (add) {
      for (int r = 0; r < 16; ++r) sum[r] += part[r];
    }
  }

  // One run: the split sums of its blocks, and the rows it completes.
  void RunBlocks(int64_t j, int64_t run, const uint8_t* shared) const {
    const auto [g_lo, g_hi] = RunTapRows(run);
    const int64_t a = row_[j], nb = batch_;
    if (g_lo >= g_hi || a + g_lo > r1_ || a + g_hi < r0_) return;
    const uint8_t* tables = shared;
    if (!shared_tables_) {
      uint8_t* own = Grow(LocalScratch().tables, nb * set_bytes_);
      for (int64_t b = 0; b < nb; ++b) {
        BuildTables(xq_ + b * kw_ * 64, column_[j], own + b * set_bytes_);
      }
      tables = own;
    }
    const int planes = src_.planes();
    int32_t neg[kMaxPlanes * 17 * kMaxBatch];
    if (column_[j] == 0 && prev_end_[j] < a && a + R_ <= row_[j + 1]) {
      // Row-aligned (the segment starts a row and shares none with its
      // neighbours): tap row g is row a + g, one look-up per block and
      // batch row, straight to y; nothing for the pass after the loop.
      const uint8_t* in[64];
      for (int64_t g0 = g_lo; g0 < g_hi; g0 += 16) {
        const int64_t first = std::max(a + g0, r0_);
        const int64_t last = std::min(a + std::min(g0 + 16, R_), r1_);
        if (first >= last) continue;
        for (int p = 0; p < planes; ++p) {
          const int num = TapBlocks(p, j, g0 / 16, in);
          for (int64_t b = 0; b < nb; ++b) {
            int32_t dot16[16];
            kt_.lut_i8(in, num, kw_, tables + b * set_bytes_, dot16);
            for (int64_t r = first; r < last; ++r) {
              neg[(p * 17 + r - first) * nb + b] = dot16[r - a - g0];
            }
          }
        }
        FinishRows(first, last - first, neg, 17 * nb);
      }
      return;
    }
    // Per plane and batch row: 16 "before" then 16 "after" sums.
    int32_t split[kMaxPlanes * kMaxBatch * 32];
    // "After" sums of tap row g0 - 1 (none before tap row 0).
    int32_t carry[kMaxPlanes * kMaxBatch] = {};
    for (int64_t g0 = g_lo; g0 < g_hi; g0 += 16) {
      LookUpBlock(j, g0, tables, split);
      // Rows a + g for this block's g (and g = R after the last block).
      int64_t first = a + g0, last = a + std::min(g0 + 16, R_);
      if (last == a + R_ && column_[j] != 0) ++last;
      if (g0 == g_lo && !Complete(j, g_lo, first)) ++first;
      first = std::max({first, prev_end_[j] + 1, r0_});
      last = std::min({last, row_[j + 1], r1_});
      const int64_t n = last - first;
      for (int p = 0; p < planes; ++p) {
        for (int64_t b = 0; b < nb; ++b) {
          const int32_t* before = split + (p * nb + b) * 32;
          const int32_t* after = before + 16;
          const int32_t c = carry[p * nb + b];
          for (int64_t i = 0; i < n; ++i) {
            const int64_t g = first - a + i - g0;  // in [0, 16]
            int32_t v = g < 16 && g0 + g < R_ ? before[g] : 0;
            if (column_[j] != 0) v += g > 0 ? after[g - 1] : c;
            neg[(p * 17 + i) * nb + b] = v;
          }
          carry[p * nb + b] = after[15];
        }
      }
      if (n > 0) FinishRows(first, n, neg, 17 * nb);
    }
  }

  // The inputs of LutI8 for block `block` of segment j in plane p: the
  // transposed blocks of the segment's taps, or (batch > 1) their XOR, done
  // once for all batch rows by the decryption kernel with no shift.
  int TapBlocks(int p, int64_t j, int64_t block, const uint8_t** in) const {
    const BinaryPlaneView& plane = w_.planes[p];
    const TransposedTaps& taps = *plane.transposed;
    int num = 0;
    for (int t = 0; t < plane.net.n_in; ++t) {
      if ((plane.net.rows[j] >> t) & 1u) in[num++] = taps.Block(t, block);
    }
    if (num == 0) in[num++] = taps.ZeroBlock();
    if (batch_ > 1 && num > 1) {
      const int64_t words = taps.block_bytes / 8;
      const uint64_t* words_in[64];
      for (int t = 0; t < num; ++t) {
        words_in[t] = reinterpret_cast<const uint64_t*>(in[t]);
      }
      uint64_t* xored = Grow(LocalScratch().bits, words);
      kt_.decrypt_words(words_in, num, words, 0, 0, words, xored);
      in[0] = reinterpret_cast<const uint8_t*>(xored);
      num = 1;
    }
    return num;
  }

  // The split sums of tap rows [g0, g0 + 16) of segment j, every plane and
  // batch row, to split[(p * batch + b) * 32 + (0 | 16) + r] and to Sums
  // (for the rows finished after the parallel loop).
  void LookUpBlock(int64_t j, int64_t g0, const uint8_t* tables,
                   int32_t* split) const {
    const int64_t split_at = K_ - column_[j], cb = split_at / kChunkColumns;
    const bool whole = column_[j] == 0, aligned = split_at % kChunkColumns == 0;
    const uint8_t* in[64];
    for (int p = 0; p < src_.planes(); ++p) {
      const int num = TapBlocks(p, j, g0 / 16, in);
      const int64_t rows = std::min<int64_t>(16, R_ - g0);
      for (int64_t b = 0; b < batch_; ++b) {
        const uint8_t* t = tables + b * set_bytes_;
        const uint8_t* edge = t + LutI8TableBytes(kw_);
        int32_t* before = split + (p * batch_ + b) * 32;
        int32_t* after = before + 16;
        if (whole) {
          LookUp(in, num, 0, chunks_, t, false, before);
          std::fill(after, after + 16, 0);
        } else if (aligned) {
          LookUp(in, num, 0, cb, t, false, before);
          LookUp(in, num, cb, chunks_, t + cb * kChunkTableBytes, false, after);
        } else {
          LookUp(in, num, 0, cb, t, false, before);
          LookUp(in, num, cb, cb + 1, edge, true, before);
          LookUp(in, num, cb, cb + 1, edge + kChunkTableBytes, false, after);
          LookUp(in, num, cb + 1, chunks_, t + (cb + 1) * kChunkTableBytes,
                 true, after);
        }
        int32_t* out = Sums(p, j, g0, b);
        for (int64_t r = 0; r < rows; ++r) {
          out[2 * r * batch_] = before[r];
          out[2 * r * batch_ + 1] = after[r];
        }
      }
    }
  }

  // Split sums of tap row g of segment j, plane p, batch row b: [before,
  // after]; tap rows are 2 * batch_ ints apart.
  int32_t* Sums(int p, int64_t j, int64_t g, int64_t b) const {
    return sums_.data() + (((p * segments_ + j) * R_ + g) * batch_ + b) * 2;
  }

  // Row r from Sums: per plane the "before" sum of tap row r - a_j and the
  // "after" sum of tap row r - a_j - 1 of every segment j that reaches it.
  void GatherRow(int64_t r) const {
    int32_t neg[kMaxPlanes * kMaxBatch] = {};
    const int64_t nb = batch_;
    const int64_t owner =
        std::upper_bound(row_, row_ + segments_, r) - row_ - 1;
    for (int p = 0; p < src_.planes(); ++p) {
      for (int64_t j = 0; j <= owner; ++j) {
        const int64_t g = r - row_[j];
        if (g > R_) continue;
        for (int64_t b = 0; b < nb; ++b) {
          if (g < R_) neg[p * nb + b] += Sums(p, j, g, b)[0];
          if (g > 0) neg[p * nb + b] += Sums(p, j, g - 1, b)[1];
        }
      }
    }
    FinishRows(r, 1, neg, nb);
  }

  // Rows [lo, lo + n) to y from neg[p * plane_stride + i * batch + b].
  void FinishRows(int64_t lo, int64_t n, const int32_t* neg,
                  int64_t plane_stride) const {
    float alpha[17], acc[17 * kMaxBatch];
    for (int p = 0; p < src_.planes(); ++p) {
      src_.Alphas(p, lo, n, alpha);
      Int8AccumulatePlane(neg + p * plane_stride, alpha, qsum_, n, batch_,
                          p == 0, acc);
    }
    StoreInt8Rows(acc, lo, n, 0, batch_, scale_, w_.bias, y_, ldy_);
  }

  const KernelTable& kt_;
  const PlaneSource& src_;
  const LayerWeights& w_;
  const int64_t batch_, r0_, r1_, K_, kw_, chunks_, S_, R_, bps_, segments_;
  const int64_t set_bytes_;
  const bool shared_tables_;
  int64_t runs_per_segment_ = 1;
  int64_t row_[kMaxSegments + 1], column_[kMaxSegments],
      prev_end_[kMaxSegments];
  PooledArray<int32_t> sums_;
  const int8_t* xq_ = nullptr;
  float* y_ = nullptr;
  int64_t ldy_ = 0;
  const float* scale_ = nullptr;
  const int32_t* qsum_ = nullptr;
};

}  // namespace
}  // namespace gemm_support

bool TransposedTapsGemmTakes(const LayerWeights& w, int planes, int64_t batch) {
  return gemm_support::Int8TransposedTapsPath::Takes(w, planes, batch);
}

void Int8TransposedTapsGemm(const KernelTable& kt,
                            const gemm_support::PlaneSource& src,
                            const LayerWeights& w, int64_t r0, int64_t r1,
                            int64_t batch, const int8_t* xq, float* y,
                            int64_t ldy, const float* scale,
                            const int32_t* qsum) {
  gemm_support::Int8TransposedTapsPath(kt, src, w, batch, r0, r1)
      .Run(xq, y, ldy, scale, qsum);
}

}  // namespace flexor
