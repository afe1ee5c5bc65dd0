#include "engine/kernels/fused_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "engine/kernels/codec_traits.h"
#include "engine/kernels/decrypt.h"
#include "engine/kernels/microkernels.h"
#include "engine/kernels/scoped_nanos.h"
#include "engine/kernels/transposed_taps.h"
#include "engine/runtime/buffer_pool.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"
#include "tbb/task_arena.h"

namespace flexor {
namespace {

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }

// Per-thread buffers of the leaf tasks. Leaf task bodies never wait on other
// TBB work, so a buffer is never shared by two tasks at once.
struct Scratch {
  std::vector<uint64_t> bits;
  std::vector<float> alpha, dots, acc, table;
  std::vector<int32_t> idots;
  std::vector<uint8_t> bytes, tables;
};
Scratch& LocalScratch() {
  thread_local Scratch scratch;
  return scratch;
}
template <class T>
T* Grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// Row tile size: rows * row_bytes of decrypted bits fit `budget` bytes, and
// there are at least `min_tiles` tiles when the layer is big enough.
int64_t RowTile(int64_t rows, int64_t row_bytes, int64_t budget, int64_t lo,
                int64_t hi, int64_t min_tiles) {
  int64_t rt = std::clamp(budget / std::max<int64_t>(row_bytes, 1), lo, hi);
  rt = std::min(rt, RoundUp(CeilDiv(rows, min_tiles), lo));
  return std::max(lo, rt / lo * lo);
}

// The q bit planes of a binary-coded or ternary layer, from its codec's
// row of the traits table (codec_traits.h).
class PlaneSource {
 public:
  PlaneSource(const LayerWeights& w, KernelIsa isa,
              std::atomic<int64_t>* decrypt_nanos = nullptr)
      : w_(w),
        isa_(isa),
        traits_(CodecTraits(w.kind)),
        decrypt_nanos_(decrypt_nanos) {}

  int planes() const { return traits_.planes(w_); }

  // Rows [o0, o0 + rows) of plane p, ceil(K / 64) words per row.
  void Rows(int p, int64_t o0, int64_t rows, uint64_t* out) const {
    const ScopedNanos timer(decrypt_nanos_);  // profiling, when asked for
    traits_.plane_rows(w_, p, o0, rows, out, isa_);
  }

  void Alphas(int p, int64_t o0, int64_t rows, float* out) const {
    traits_.plane_alphas(w_, p, o0, rows, out);
  }

 private:
  const LayerWeights& w_;
  KernelIsa isa_;
  const WeightCodecTraits& traits_;
  std::atomic<int64_t>* decrypt_nanos_;
};

int Threads() { return tbb::this_task_arena::max_concurrency(); }

// Runs body(scratch, o0, n) for the row tiles [o0, o0 + n) of [r0, r1),
// tiles of rt rows spread over the TBB arena; each task gets its thread's
// scratch buffers.
template <typename Body>
void ForEachRowTile(int64_t r0, int64_t r1, int64_t rt, const Body& body) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, CeilDiv(r1 - r0, rt), 1),
                    [&](const tbb::blocked_range<int64_t>& range) {
                      Scratch& s = LocalScratch();
                      for (int64_t t = range.begin(); t < range.end(); ++t) {
                        const int64_t o0 = r0 + t * rt;
                        body(s, o0, std::min(rt, r1 - o0));
                      }
                    });
}

// Decrypts rows [o0, o0 + n) of all q planes into the thread's scratch:
// bits [q][n][kw] words and alphas [q][n].
void DecryptTile(const PlaneSource& src, int q, int64_t o0, int64_t n,
                 int64_t kw, Scratch& s, uint64_t** bits, float** alpha) {
  *bits = Grow(s.bits, q * n * kw);
  *alpha = Grow(s.alpha, q * n);
  for (int p = 0; p < q; ++p) {
    src.Rows(p, o0, n, *bits + p * n * kw);
    src.Alphas(p, o0, n, *alpha + p * n);
  }
}

void SignFmaPath(const KernelTable& kt, const PlaneSource& src,
                 const LayerWeights& w, int64_t r0, int64_t r1, const float* x,
                 int64_t batch, float* y, int64_t ldy) {
  const int64_t K = w.in_features, kw = CeilDiv(K, 64), Kp = kw * 64;
  const int q = src.planes();
  // The kernel reads whole words of x: pad rows when K is not a multiple of
  // 64 (zeros meet the zero tail bits of the decrypted rows).
  PooledArray<float> padded(Kp != K ? batch * Kp : 0);
  const float* xp = x;
  int64_t xs = K;
  if (Kp != K) {
    std::fill(padded.begin(), padded.end(), 0.0f);
    for (int64_t b = 0; b < batch; ++b) {
      std::copy(x + b * K, x + (b + 1) * K, padded.data() + b * Kp);
    }
    xp = padded.data();
    xs = Kp;
  }
  // About 32 KiB of decrypted bits per tile: they stay in L1/L2 while the
  // tile is consumed, and small tiles balance the threads well.
  const int64_t rows = r1 - r0;
  const int64_t rt =
      RowTile(rows, kw * 8 * q, int64_t{32} << 10, 8, 256, 4 * Threads());
  constexpr int64_t kBatchChunk = 64;
  ForEachRowTile(r0, r1, rt, [&](Scratch& s, int64_t o0, int64_t n) {
    uint64_t* bits;
    float* alpha;
    DecryptTile(src, q, o0, n, kw, s, &bits, &alpha);
    float* dot = Grow(s.dots, n * kBatchChunk);
    float* acc = Grow(s.acc, n * kBatchChunk);
    for (int64_t b0 = 0; b0 < batch; b0 += kBatchChunk) {
      const int64_t nb = std::min(kBatchChunk, batch - b0);
      for (int p = 0; p < q; ++p) {
        kt.sign_dot(bits + p * n * kw, kw, n, xp + b0 * xs, xs, nb, kw, dot,
                    nb);
        for (int64_t r = 0; r < n; ++r) {
          const float a = alpha[p * n + r];
          for (int64_t b = 0; b < nb; ++b) {
            const float v = a * dot[r * nb + b];
            acc[r * nb + b] = p == 0 ? v : acc[r * nb + b] + v;
          }
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        const float bias = w.bias ? w.bias[o0 + r] : 0.0f;
        for (int64_t b = 0; b < nb; ++b) {
          y[(b0 + b) * ldy + o0 + r] = acc[r * nb + b] + bias;
        }
      }
    }
  });
}

void LutRowsPath(const KernelTable& kt, const PlaneSource& src,
                 const LayerWeights& w, int64_t r0, int64_t r1, const float* x,
                 int64_t batch, float* y, int64_t ldy) {
  const int64_t K = w.in_features, kw = CeilDiv(K, 64);
  const int q = src.planes();
  // One table per activation row: [16 kw groups][16 entries], built once per
  // call and shared by every row tile (padding inputs are zero).
  const int64_t groups = kw * 16;
  PooledArray<float> tables(batch * groups * 16);
  tbb::parallel_for(int64_t{0}, batch, [&](int64_t b) {
    const float* xb = x + b * K;
    for (int64_t g = 0; g < groups; ++g) {
      float v[4];
      for (int i = 0; i < 4; ++i) {
        const int64_t k = 4 * g + i;
        v[i] = k < K ? xb[k] : 0.0f;
      }
      // Same formula as LutBuild: (+-x0 +-x1) + (+-x2 +-x3).
      const float s01 = v[0] + v[1], d01 = v[0] - v[1];
      const float s23 = v[2] + v[3], d23 = v[2] - v[3];
      const float p01[4] = {s01, -d01, d01, -s01};
      const float p23[4] = {s23, -d23, d23, -s23};
      float* t = tables.data() + (b * groups + g) * 16;
      for (int p = 0; p < 16; ++p) t[p] = p01[p & 3] + p23[p >> 2];
    }
  });
  const int64_t rows = r1 - r0;
  const int64_t rt =
      RowTile(rows, kw * 8 * q, int64_t{32} << 10, 16, 256, 4 * Threads());
  ForEachRowTile(r0, r1, rt, [&](Scratch& s, int64_t o0, int64_t n) {
    const int64_t blocks = CeilDiv(n, 16);
    uint64_t* bits = Grow(s.bits, n * kw + q * blocks * 16 * kw);
    uint64_t* t16 = bits + n * kw;
    float* alpha = Grow(s.alpha, q * n);
    for (int p = 0; p < q; ++p) {
      src.Rows(p, o0, n, bits);
      src.Alphas(p, o0, n, alpha + p * n);
      // Transpose to [block][k word][16 rows] for the 16-row kernel,
      // once per tile for every activation row (in registers, 8x8 words at
      // a time, where the ISA has a kernel for it).
      uint64_t* tp = t16 + p * blocks * 16 * kw;
      for (int64_t blk = 0; blk < blocks; ++blk) {
        kt.transpose16(bits + blk * 16 * kw, kw,
                       std::min<int64_t>(16, n - blk * 16), kw,
                       tp + blk * 16 * kw);
      }
    }
    float* acc = Grow(s.acc, blocks * 16);
    float dot[16];
    for (int64_t b = 0; b < batch; ++b) {
      const float* table = tables.data() + b * groups * 16;
      for (int p = 0; p < q; ++p) {
        const uint64_t* tp = t16 + p * blocks * 16 * kw;
        for (int64_t blk = 0; blk < blocks; ++blk) {
          kt.lut_rows(tp + blk * 16 * kw, kw, table, dot);
          for (int64_t r = 0; r < 16 && blk * 16 + r < n; ++r) {
            const int64_t i = blk * 16 + r;
            const float v = alpha[p * n + i] * dot[r];
            acc[i] = p == 0 ? v : acc[i] + v;
          }
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        y[b * ldy + o0 + r] = acc[r] + (w.bias ? w.bias[o0 + r] : 0.0f);
      }
    }
  });
}

// Whether the int8 path uses the LUT kernel (where the ISA has one, AVX2;
// see kInt8LutMaxBatch).
bool UseInt8Lut(const KernelTable& kt, int64_t batch) {
  static const int64_t max_batch = [] {
    const char* env = std::getenv("FLEXOR_INT8_LUT_MAX_BATCH");
    return env ? std::atoll(env) : int64_t{kInt8LutMaxBatch};
  }();
  return kt.lut_i8 != nullptr && batch <= max_batch;
}

// acc[r * nb + b] = (or +=) alpha[r] * (qsum[b] - 2 * neg[r * nb + b]) for
// one plane; the same float operations in the same order for every nb, so
// the fast nb == 1 loop (vectorised) and the general one agree bit for bit.
// |qsum - 2 neg| <= 127 K < 2^24 for K < 2^17: exact in float; beyond that
// it rounds like any float sum.
void Int8AccumulatePlane(const int32_t* __restrict neg,
                         const float* __restrict alpha,
                         const int32_t* __restrict qsum, int64_t n, int64_t nb,
                         bool first, float* __restrict acc) {
  if (nb == 1) {
    const int32_t qs = qsum[0];
    if (first) {
      for (int64_t r = 0; r < n; ++r) {
        acc[r] = alpha[r] * static_cast<float>(qs - 2 * neg[r]);
      }
    } else {
      for (int64_t r = 0; r < n; ++r) {
        acc[r] += alpha[r] * static_cast<float>(qs - 2 * neg[r]);
      }
    }
    return;
  }
  for (int64_t r = 0; r < n; ++r) {
    const float a = alpha[r];
    for (int64_t b = 0; b < nb; ++b) {
      const float v = a * static_cast<float>(qsum[b] - 2 * neg[r * nb + b]);
      acc[r * nb + b] = first ? v : acc[r * nb + b] + v;
    }
  }
}

// The int8 paths' output: y[b, o0 + r] = acc[r * nb + b] * scale[b] + bias
// for rows r < n and batch rows b0 .. b0 + nb, the same operations for every
// nb (the nb == 1 loop is contiguous, so it vectorises).
void StoreInt8Rows(const float* acc, int64_t o0, int64_t n, int64_t b0,
                   int64_t nb, const float* scale, const float* bias, float* y,
                   int64_t ldy) {
  if (nb == 1) {
    float* yr = y + b0 * ldy + o0;
    const float sb = scale[b0];
    if (bias) {
      for (int64_t r = 0; r < n; ++r) yr[r] = acc[r] * sb + bias[o0 + r];
    } else {
      for (int64_t r = 0; r < n; ++r) yr[r] = acc[r] * sb + 0.0f;
    }
    return;
  }
  for (int64_t r = 0; r < n; ++r) {
    const float c = bias ? bias[o0 + r] : 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      y[(b0 + b) * ldy + o0 + r] = acc[r * nb + b] * scale[b0 + b] + c;
    }
  }
}

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
        sums_(src.planes() * segments_ * R_ * batch * 2) {
    int64_t prev_end = -1;
    bool one_start = true;
    for (int64_t j = 0; j < segments_; ++j) {
      const SegmentStart start = StartOfSegment(j, S_, K_);
      row_[j] = start.row;
      column_[j] = start.column;
      one_start = one_start && start.column == column_[0];
      // The last row segments before j add to (a row past their own).
      prev_end_[j] = prev_end;
      prev_end = std::max(prev_end, start.row + R_ - (start.column == 0));
    }
    row_[segments_] = std::numeric_limits<int64_t>::max();
    shared_tables_ = one_start;
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
    // Sums the pass after the loop may read: none when the segment starts
    // a row and shares none with its neighbours (row-aligned planes).
    const bool store =
        column_[j] != 0 || prev_end_[j] >= a || a + R_ > row_[j + 1];
    const int planes = src_.planes();
    int32_t neg[kMaxPlanes * 17 * kMaxBatch];
    if (!store) {
      // Row-aligned: tap row g is row a + g, one look-up per block and
      // batch row, straight to y.
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
      LookUpBlock(j, g0, tables, store, split);
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
  // batch row, to split[(p * batch + b) * 32 + (0 | 16) + r] and, if
  // `store`, to Sums.
  void LookUpBlock(int64_t j, int64_t g0, const uint8_t* tables, bool store,
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
        if (store) {
          int32_t* out = Sums(p, j, g0, b);
          for (int64_t r = 0; r < rows; ++r) {
            out[2 * r * batch_] = before[r];
            out[2 * r * batch_ + 1] = after[r];
          }
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
  int64_t runs_per_segment_ = 1;
  bool shared_tables_ = false;
  int64_t row_[kMaxSegments + 1], column_[kMaxSegments],
      prev_end_[kMaxSegments];
  PooledArray<int32_t> sums_;
  const int8_t* xq_ = nullptr;
  float* y_ = nullptr;
  int64_t ldy_ = 0;
  const float* scale_ = nullptr;
  const int32_t* qsum_ = nullptr;
};

// Int8 activations: the decrypted row-major bits go to the int8 sign kernel
// (sum of the activations at set bits, exact integers) or, for small
// batches on AVX2, are byte-transposed in blocks of 16 rows for the LUT
// kernel, which returns the same integers. Per output
// y = scale_b * sum_p alpha_p * (sum_q - 2 * neg_p) + bias is evaluated
// here in the same order for every ISA and kernel, so all builds give
// bitwise identical results.
void Int8SignPath(const KernelTable& kt, const PlaneSource& src,
                  const LayerWeights& w, int64_t r0, int64_t r1, int64_t batch,
                  float* y, int64_t ldy, const int8_t* xq, const float* scale,
                  const int32_t* qsum) {
  const int64_t K = w.in_features, kw = CeilDiv(K, 64), Kp = kw * 64;
  const int q = src.planes();
  const bool lut = UseInt8Lut(kt, batch);
  // (Ternary layers run as two planes without views: w.planes is empty.)
  if (lut && Int8TransposedTapsPath::Takes(w, q, batch)) {
    Int8TransposedTapsPath(kt, src, w, batch, r0, r1)
        .Run(xq, y, ldy, scale, qsum);
    return;
  }
  const int64_t table_stride = LutI8TableBytes(kw);
  PooledArray<uint8_t> tables(lut ? batch * table_stride : 0);
  if (lut) {
    tbb::parallel_for(int64_t{0}, batch, [&](int64_t b) {
      kt.lut_i8_tables(xq + b * Kp, kw, tables.data() + b * table_stride);
    });
  }
  // The sign kernel's own activation layout, once per call (AVX2).
  const bool sliced = !lut && kt.bit_slice_i8 != nullptr;
  const int64_t xs = sliced ? BitSlicedI8Bytes(kw) : Kp;
  PooledArray<int8_t> x_sliced(sliced ? batch * xs : 0);
  if (sliced) {
    for (int64_t b = 0; b < batch; ++b) {
      kt.bit_slice_i8(xq + b * Kp, kw, x_sliced.data() + b * xs);
    }
  }
  const int8_t* x_sign = sliced ? x_sliced.data() : xq;
  // 32 KiB of decrypted bits per tile, as the FP32 sign path.
  const int64_t rows = r1 - r0;
  const int64_t rt = RowTile(rows, kw * 8 * q, int64_t{32} << 10, lut ? 16 : 8,
                             256, 4 * Threads());
  constexpr int64_t kBatchChunk = 64;
  ForEachRowTile(r0, r1, rt, [&](Scratch& s, int64_t o0, int64_t n) {
    uint64_t* bits;
    float* alpha;
    DecryptTile(src, q, o0, n, kw, s, &bits, &alpha);
    int32_t* neg = Grow(s.idots, n * kBatchChunk);
    float* acc = Grow(s.acc, n * kBatchChunk);
    uint8_t* t16 = lut ? Grow(s.bytes, LutI8TransposedBytes(kw)) : nullptr;
    const uint8_t* t16_in = t16;
    for (int64_t b0 = 0; b0 < batch; b0 += kBatchChunk) {
      const int64_t nb = std::min(kBatchChunk, batch - b0);
      for (int p = 0; p < q; ++p) {
        const uint64_t* pb = bits + p * n * kw;
        if (lut) {
          int32_t dot16[16];
          for (int64_t r = 0; r < n; r += 16) {
            const int64_t valid = std::min<int64_t>(16, n - r);
            kt.transpose_bytes16(pb + r * kw, kw, valid, kw, t16);
            for (int64_t b = 0; b < nb; ++b) {
              kt.lut_i8(&t16_in, 1, kw, tables.data() + (b0 + b) * table_stride,
                        dot16);
              for (int64_t i = 0; i < valid; ++i) {
                neg[(r + i) * nb + b] = dot16[i];
              }
            }
          }
        } else {
          kt.sign_dot_i8(pb, kw, n, x_sign + b0 * xs, xs, nb, kw, neg, nb);
        }
        Int8AccumulatePlane(neg, alpha + p * n, qsum + b0, n, nb, p == 0, acc);
      }
      StoreInt8Rows(acc, o0, n, b0, nb, scale, w.bias, y, ldy);
    }
  });
}

int LutVectors(const KernelTable& kt, int64_t batch, int requested) {
  if (requested == 1 || requested == 2 || requested == 4) return requested;
  if (batch <= kt.lanes) return 1;
  if (batch <= 2 * kt.lanes || kt.lanes >= 16) return 2;
  return 4;
}

void LutPath(const KernelTable& kt, const PlaneSource& src,
             const LayerWeights& w, int64_t r0, int64_t r1, const float* x,
             int64_t batch, float* y, int64_t ldy, int lut_vectors) {
  const int64_t K = w.in_features, kw = CeilDiv(K, 64), Kp = kw * 64;
  const int q = src.planes();
  const int64_t lanes = LutVectors(kt, batch, lut_vectors) * kt.lanes;
  const int64_t tiles_b = CeilDiv(batch, lanes);
  // Activations transposed to [batch tile][k][lane], zero padded in both k
  // and lanes, so a table entry for 4 inputs is 4 vector loads away.
  PooledArray<float> xt(tiles_b * Kp * lanes);
  std::fill(xt.begin(), xt.end(), 0.0f);
  constexpr int64_t kTransposeBlock = 256;
  const int64_t kblocks = CeilDiv(K, kTransposeBlock);
  tbb::parallel_for(int64_t{0}, tiles_b * kblocks, [&](int64_t i) {
    const int64_t bt = i / kblocks, k0 = (i % kblocks) * kTransposeBlock;
    const int64_t k1 = std::min(K, k0 + kTransposeBlock);
    float* dst = xt.data() + bt * Kp * lanes;
    for (int64_t l = 0; l < lanes && bt * lanes + l < batch; ++l) {
      const float* src_row = x + (bt * lanes + l) * K;
      for (int64_t k = k0; k < k1; ++k) dst[k * lanes + l] = src_row[k];
    }
  });
  // Tables cover `chunk` words of K at a time and are rebuilt for every row
  // tile, so tiles are large (up to 256 KiB of bits) to amortise them; the
  // chunk keeps one table within ~32 KiB of L1.
  const int64_t chunk = std::max<int64_t>(1, 32 / lanes);
  const int64_t rows = r1 - r0;
  const int64_t rt =
      RowTile(rows, kw * 8 * q, int64_t{256} << 10, 16, 512, 2 * Threads());
  ForEachRowTile(r0, r1, rt, [&](Scratch& s, int64_t o0, int64_t n) {
    uint64_t* bits;
    float* alpha;
    DecryptTile(src, q, o0, n, kw, s, &bits, &alpha);
    float* table = Grow(s.table, chunk * 16 * 16 * lanes);
    float* acc = Grow(s.acc, n * lanes);
    for (int64_t bt = 0; bt < tiles_b; ++bt) {
      std::fill(acc, acc + n * lanes, 0.0f);
      const float* xb = xt.data() + bt * Kp * lanes;
      for (int64_t c = 0; c < kw; c += chunk) {
        const int64_t cw = std::min(chunk, kw - c);
        kt.lut_build(xb + c * 64 * lanes, cw * 64, lanes, table);
        for (int p = 0; p < q; ++p) {
          kt.lut_gemm(bits + p * n * kw + c, kw, n, cw, table, lanes,
                      alpha + p * n, acc);
        }
      }
      const int64_t nb = std::min(lanes, batch - bt * lanes);
      for (int64_t r = 0; r < n; ++r) {
        const float bias = w.bias ? w.bias[o0 + r] : 0.0f;
        for (int64_t l = 0; l < nb; ++l) {
          y[(bt * lanes + l) * ldy + o0 + r] = acc[r * lanes + l] + bias;
        }
      }
    }
  });
}

}  // namespace

bool QuantizeActivationsInt8(const float* x, int64_t batch, int64_t k,
                             int64_t q_stride, int8_t* q, float* scale,
                             int32_t* sum, KernelIsa isa) {
  const PixelKernelTable& pk = GetPixelKernelTable(isa);
  bool finite = true;
  for (int64_t b = 0; b < batch; ++b) {
    const float* xb = x + b * k;
    int8_t* qb = q + b * q_stride;
    uint32_t amax_bits;
    bool negative;
    pk.int8_range(xb, k, &amax_bits, &negative);
    if (amax_bits >= 0x7f800000u) {
      finite = false;
      continue;
    }
    float amax;
    std::memcpy(&amax, &amax_bits, 4);
    int32_t total = 0;
    if (amax_bits == 0) {
      std::fill(qb, qb + k, int8_t{0});
      scale[b] = 0.0f;
    } else if (amax >= 1e-30f) {
      total = pk.int8_quantize_row(xb, k, 127.0f / amax, qb);
      scale[b] = amax / 127.0f;
    } else {
      // Tiny rows: 127 / amax would overflow float (and 0 * Inf is NaN).
      const double inv = 127.0 / amax;
      for (int64_t i = 0; i < k; ++i) {
        const double t = static_cast<double>(xb[i]) * inv;
        const int v =
            static_cast<int>((t + 6755399441055744.0) - 6755399441055744.0);
        qb[i] = static_cast<int8_t>(v);
        total += v;
      }
      scale[b] = static_cast<float>(amax / 127.0);
    }
    std::fill(qb + k, qb + q_stride, int8_t{0});
    sum[b] = total;
  }
  return finite;
}

BinaryMethod ChooseMethod(KernelIsa isa, int64_t batch, int64_t out_features,
                          int64_t in_features,
                          ActivationPrecision activations) {
  if (activations == ActivationPrecision::kInt8 &&
      (batch <= kInt8MaxBatch ||
       (isa == KernelIsa::kAvx512 && HasAvx512Vnni()))) {
    return BinaryMethod::kInt8Sign;
  }
  return ChooseMethod(isa, batch, out_features, in_features);
}

BinaryMethod ChooseMethod(KernelIsa isa, int64_t batch, int64_t out_features,
                          int64_t in_features) {
  (void)out_features;
  (void)in_features;
  // Measured on 4096x4096 (docs/performance.md): with AVX-512 the VPERMPS
  // row-LUT beats the k-mask sign path at every small batch; the batch LUT
  // wins once a batch tile fills a vector. Without VPERMPS-wide shuffles the
  // sign path is the small-batch kernel.
  if (batch >= 16) return BinaryMethod::kLut;
  return isa == KernelIsa::kAvx512 ? BinaryMethod::kLutRows
                                   : BinaryMethod::kSignFma;
}

const char* Int8KernelName(KernelIsa isa, int64_t batch) {
  const KernelTable& kt = GetKernelTable(isa);
  if (UseInt8Lut(kt, batch)) return "avx2_lut";
  return kt.sign_dot_i8_name;
}

const char* MethodName(BinaryMethod method) {
  switch (method) {
    case BinaryMethod::kAuto:
      return "auto";
    case BinaryMethod::kSignFma:
      return "sign_fma";
    case BinaryMethod::kLut:
      return "lut";
    case BinaryMethod::kLutRows:
      return "lut_rows";
    case BinaryMethod::kInt8Sign:
      return "int8_sign";
  }
  return "unknown";
}

void BinaryCodedGemm(const LayerWeights& w, int64_t row_begin, int64_t row_end,
                     const float* x, int64_t batch, float* y, int64_t ldy,
                     const GemmOptions& options) {
  if (row_end <= row_begin || batch <= 0) return;
  const KernelTable& kt = GetKernelTable(options.isa);
  const PlaneSource src(w, options.isa, options.decrypt_nanos);
  BinaryMethod method = options.method;
  if (method == BinaryMethod::kAuto) {
    method = ChooseMethod(options.isa, batch, w.out_features, w.in_features,
                          options.activations);
  }
  if (method == BinaryMethod::kInt8Sign) {
    const int64_t K = w.in_features, Kp = RoundUp(K, 64);
    PooledArray<int8_t> xq(batch * Kp);
    PooledArray<float> scale(batch);
    PooledArray<int32_t> qsum(batch);
    bool finite = true;
    if (batch == 1) {
      finite = QuantizeActivationsInt8(x, 1, K, Kp, xq.data(), scale.data(),
                                       qsum.data(), options.isa);
    } else {
      PooledArray<char> ok(batch);
      tbb::parallel_for(int64_t{0}, batch, [&](int64_t b) {
        ok[b] = QuantizeActivationsInt8(x + b * K, 1, K, Kp, xq.data() + b * Kp,
                                        scale.data() + b, qsum.data() + b,
                                        options.isa);
      });
      finite = std::all_of(ok.begin(), ok.end(), [](char c) { return c; });
    }
    if (finite) {
      Int8SignPath(kt, src, w, row_begin, row_end, batch, y, ldy, xq.data(),
                   scale.data(), qsum.data());
      return;
    }
    // Inf/NaN inputs: the FP32 kernels propagate them as IEEE arithmetic
    // does; a scale of Inf would turn every output into NaN.
    method = ChooseMethod(options.isa, batch, w.out_features, w.in_features);
  }
  if (method == BinaryMethod::kLut) {
    LutPath(kt, src, w, row_begin, row_end, x, batch, y, ldy,
            options.lut_vectors);
  } else if (method == BinaryMethod::kLutRows) {
    LutRowsPath(kt, src, w, row_begin, row_end, x, batch, y, ldy);
  } else {
    SignFmaPath(kt, src, w, row_begin, row_end, x, batch, y, ldy);
  }
}

void DenseGemm(const LayerWeights& w, int64_t row_begin, int64_t row_end,
               const float* x, int64_t batch, float* y, int64_t ldy,
               const GemmOptions& options) {
  if (row_end <= row_begin || batch <= 0) return;
  const KernelTable& kt = GetKernelTable(options.isa);
  const int64_t K = w.in_features, rows = row_end - row_begin;
  const int64_t rt =
      RowTile(rows, K * 4, int64_t{128} << 10, 4, 256, 4 * Threads());
  constexpr int64_t kBatchChunk = 64;
  ForEachRowTile(
      row_begin, row_end, rt, [&](Scratch& s, int64_t o0, int64_t n) {
        float* dot = Grow(s.dots, n * kBatchChunk);
        for (int64_t b0 = 0; b0 < batch; b0 += kBatchChunk) {
          const int64_t nb = std::min(kBatchChunk, batch - b0);
          kt.dense_dot(w.dense + o0 * K, K, n, x + b0 * K, K, nb, K, dot, nb);
          for (int64_t r = 0; r < n; ++r) {
            const float bias = w.bias ? w.bias[o0 + r] : 0.0f;
            for (int64_t b = 0; b < nb; ++b) {
              y[(b0 + b) * ldy + o0 + r] = dot[r * nb + b] + bias;
            }
          }
        }
      });
}

void TernaryGxnorGemm(const LayerWeights& w, const uint64_t* act_nonzero,
                      const uint64_t* act_sign, int64_t batch, float* y,
                      KernelIsa isa) {
  const int64_t O = w.out_features;
  if (O <= 0 || batch <= 0) return;
  const KernelTable& kt = GetKernelTable(isa);
  const TernaryView& t = w.ternary;
  const int64_t words = t.words_per_row;
  const int64_t rt =
      RowTile(O, words * 16, int64_t{64} << 10, 4, 256, 4 * Threads());
  ForEachRowTile(0, O, rt, [&](Scratch& s, int64_t o0, int64_t n) {
    int32_t* dot = Grow(s.idots, n * batch);
    kt.gxnor(t.nonzero_mask + o0 * words, t.sign + o0 * words, n, words,
             act_nonzero, act_sign, batch, dot);
    for (int64_t r = 0; r < n; ++r) {
      const float scale = t.scales[o0 + r];
      const float bias = w.bias ? w.bias[o0 + r] : 0.0f;
      for (int64_t b = 0; b < batch; ++b) {
        y[b * O + o0 + r] =
            scale * static_cast<float>(dot[r * batch + b]) + bias;
      }
    }
  });
}

}  // namespace flexor
