#include "engine/kernels/conv_gemm.h"

#include <algorithm>

#include "engine/kernels/codec_traits.h"
#include "engine/kernels/microkernels.h"
#include "engine/kernels/scoped_nanos.h"

namespace flexor {
namespace {

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Words of K per table chunk: one chunk's tables ([16 groups per word][16
// entries][lanes]) stay within ~32 KiB of L1 while every row reads them.
int64_t ChunkWords(int64_t lanes) { return std::max<int64_t>(1, 32 / lanes); }

}  // namespace

std::vector<Im2colPiece> PlanIm2colPieces(int64_t out_h, int64_t out_w,
                                          int64_t lanes) {
  std::vector<Im2colPiece> pieces;
  for (int64_t oy = 0; oy < out_h; ++oy) {
    for (int64_t ox = 0; ox < out_w;) {
      const int64_t p = oy * out_w + ox, lane = p % lanes;
      const int64_t len = std::min(out_w - ox, lanes - lane);
      pieces.push_back({static_cast<int32_t>(oy), static_cast<int32_t>(ox),
                        static_cast<int32_t>(len),
                        static_cast<int32_t>(p / lanes),
                        static_cast<int32_t>(lane)});
      ox += len;
    }
  }
  return pieces;
}

int64_t PixelLanes(KernelIsa isa) { return 2 * GetKernelTable(isa).lanes; }

int64_t ReadRows(const LayerWeights& w) {
  return w.kind == WeightCodecKind::kFloat32 ? w.in_features
                                             : CeilDiv(w.in_features, 64) * 64;
}

// One spare row: a safety margin for whole-vector writes at a tile's end.
int64_t ColsRows(const LayerWeights& w) { return ReadRows(w) + 1; }

PixelOutput DenseOutputRuns(int64_t pixels, int64_t lanes) {
  (void)lanes;
  PixelOutput out;
  out.pixels = pixels;
  return out;
}

PixelOutput WideOutputRuns(int64_t out_h, int64_t out_w, int64_t wp,
                           int64_t lanes) {
  (void)lanes;
  PixelOutput out;
  out.out_h = out_h;
  out.out_w = out_w;
  out.wp = wp;
  return out;
}

bool PrefersDequantized(const LayerWeights& w) {
  return w.kind != WeightCodecKind::kFloat32 &&
         w.out_features <= kMaxDequantizedRows &&
         w.out_features * w.in_features <= kMaxDequantizedWeights;
}

int64_t PreparedWeightsFloats(const LayerWeights& w) {
  const int q = CodecTraits(w.kind).planes(w);
  const int64_t kw = CeilDiv(w.in_features, 64);
  // bits (2 floats a word) and alphas, then the dense copy if any.
  return q * w.out_features * (2 * kw + 1) +
         (PrefersDequantized(w) ? w.out_features * w.in_features : 0);
}

PreparedWeights PrepareWeights(const LayerWeights& w, float* scratch,
                               KernelIsa isa,
                               std::atomic<int64_t>* decrypt_nanos,
                               bool dense_copy) {
  const WeightCodecTraits& traits = CodecTraits(w.kind);
  PreparedWeights p;
  p.planes = traits.planes(w);
  if (p.planes == 0) return p;
  const ScopedNanos timer(decrypt_nanos);  // profiling, when asked for
  const int64_t O = w.out_features, kw = CeilDiv(w.in_features, 64);
  uint64_t* bits = reinterpret_cast<uint64_t*>(scratch);
  float* alpha = scratch + 2 * p.planes * O * kw;
  for (int q = 0; q < p.planes; ++q) {
    traits.plane_rows(w, q, 0, O, bits + q * O * kw, isa);
    traits.plane_alphas(w, q, 0, O, alpha + q * O);
  }
  p.bits = bits;
  p.alpha = alpha;
  if (dense_copy && PrefersDequantized(w)) {
    // W[o, k] = sum_q alpha[q][o] * (1 - 2 * bit): few rows, so the FMA
    // kernel over a dense copy beats look-up tables built for few rows.
    const int64_t K = w.in_features;
    float* dense = alpha + p.planes * O;
    for (int64_t o = 0; o < O; ++o) {
      float* row = dense + o * K;
      std::fill(row, row + K, 0.0f);
      for (int q = 0; q < p.planes; ++q) {
        const uint64_t* b = bits + (q * O + o) * kw;
        const float a = alpha[q * O + o];
        for (int64_t k = 0; k < K; ++k) {
          row[k] += ((b[k >> 6] >> (k & 63)) & 1) ? -a : a;
        }
      }
    }
    p.dense = dense;
  }
  return p;
}

int64_t PixelGemmScratchFloats(const LayerWeights& w, KernelIsa isa) {
  const int64_t lanes = PixelLanes(isa);
  int64_t floats = w.out_features * lanes;  // accumulators
  if (w.kind != WeightCodecKind::kFloat32) {
    floats += ChunkWords(lanes) * 16 * 16 * lanes;  // tables
  }
  return floats;
}

void PixelGemm(const LayerWeights& w, const PreparedWeights& prepared,
               const PixelSource& source, const PixelOutput& output, int64_t P,
               int64_t tile_begin, int64_t tile_end,
               const ChannelEpilogue& epilogue, float* y, float* work,
               KernelIsa isa, int64_t row_begin, int64_t row_end,
               const float* residual) {
  const int64_t O = w.out_features, K = w.in_features;
  const int64_t o0 = row_begin, o1 = row_end < 0 ? O : row_end, n = o1 - o0;
  const int64_t lanes = PixelLanes(isa);
  const PixelKernelTable& pt = GetPixelKernelTable(isa);
  float* acc = work;  // [n][lanes]
  const float* scale = epilogue.scale ? epilogue.scale + o0 : nullptr;
  const float* shift = epilogue.shift ? epilogue.shift + o0 : nullptr;
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const float* base = source.base + tile * source.tile_step;
    const int64_t* offs = source.row_offsets;
    if (w.kind == WeightCodecKind::kFloat32 || prepared.dense != nullptr) {
      const float* dense = prepared.dense ? prepared.dense : w.dense;
      pt.dense_kn(dense + o0 * K, K, n, K, base, offs, lanes, acc);
    } else {
      const KernelTable& kt = GetKernelTable(isa);
      const int64_t kw = CeilDiv(K, 64), chunk = ChunkWords(lanes);
      float* table = acc + n * lanes;
      std::fill(acc, acc + n * lanes, 0.0f);
      for (int64_t c = 0; c < kw; c += chunk) {
        const int64_t cw = std::min(chunk, kw - c);
        if (offs != nullptr) {
          pt.lut_build_rows(base, offs + c * 64, cw * 64, lanes, table);
        } else {
          pt.lut_build_rows(base + c * 64 * lanes, nullptr, cw * 64, lanes,
                            table);
        }
        for (int q = 0; q < prepared.planes; ++q) {
          kt.lut_gemm(prepared.bits + (q * O + o0) * kw + c, kw, n, cw, table,
                      lanes, prepared.alpha + q * O + o0, acc);
        }
      }
    }
    output.ForEachRun(tile, lanes, [&](const PixelRun& run) {
      if (output.pixel_major) {
        pt.store_tile_transposed(acc + run.lane, lanes, n, run.len, scale,
                                 shift, epilogue.relu, y + run.dst * P + o0, P);
      } else {
        pt.store_tile(acc + run.lane, lanes, n, run.len, scale, shift,
                      epilogue.relu, y + run.dst + o0 * P, P,
                      residual ? residual + run.dst + o0 * P : nullptr);
      }
    });
  }
}

}  // namespace flexor
