// Convolution as a GEMM over output pixels: Y[O, P] = W[O, K] * X[K, P],
// written straight into NCHW order (no transpose), with the layer's
// per-channel epilogue (bias, folded BatchNorm, ReLU) applied on the way out.
//
// Pixels are processed in tiles of `lanes` (PixelLanes). Row k of tile t's
// activations is `lanes` floats at base + row_offsets[k] + t * tile_step:
//  - explicit im2col: base is the pixel-tiled column buffer written by the
//    im2col kernel ([tile][ColsRows][lanes]), offsets k * lanes;
//  - implicit GEMM (stride 1): base is the zero-padded input itself and the
//    tiles run over "wide" pixels q = oy * Wp + ox, ox < Wp (the padded
//    width): row (c, ky, kx) of a tile is the input at c * Hp * Wp + ky * Wp
//    + kx + q, contiguous. Outputs at ox >= Wo are computed and dropped,
//    (kernel_w - 1) / Wp of the work, and no im2col copy is made at all.
// Which tile lanes are real outputs, and where they go, is a list of runs
// per tile. Float weights use a broadcast + FMA kernel; binary/ternary
// weights are decrypted once per call and use BiQGEMM-style look-up tables
// over the pixel lanes (microkernels.h).
#ifndef FLEXOR_ENGINE_KERNELS_CONV_GEMM_H_
#define FLEXOR_ENGINE_KERNELS_CONV_GEMM_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/layer_weights.h"
#include "engine/kernels/microkernels.h"

namespace flexor {

struct ChannelEpilogue {
  const float* scale = nullptr;  // [O] or null (1)
  const float* shift = nullptr;  // [O] or null (0); includes the bias
  bool relu = false;
};

// Pixels per tile for `isa` (two vectors).
int64_t PixelLanes(KernelIsa isa);
// Activation rows the kernels read per tile: K for float weights, K rounded
// up to 64 for bit-coded ones (the rows past K must read zeros).
int64_t ReadRows(const LayerWeights& w);
// Rows of an explicit im2col tile (ReadRows plus a spare row).
int64_t ColsRows(const LayerWeights& w);

// The im2col runs of an Ho x Wo output: every output row split at tile
// boundaries (Im2colPlan::pieces).
std::vector<Im2colPiece> PlanIm2colPieces(int64_t out_h, int64_t out_w,
                                          int64_t lanes);

// Output lanes [lane, lane + len) of a tile go to y + dst (+ o * P).
struct PixelRun {
  int32_t lane = 0, len = 0;
  int64_t dst = 0;
};
// Where a tile's lanes go. Dense tiles (wp == 0): tile t is the one run of
// consecutive pixels [t * lanes, ...) below `pixels`. Wide tiles (implicit
// GEMM, wp > 0): lane l of tile t is wide pixel q = t * lanes + l of an
// out_h x wp grid, real where q % wp < out_w; its runs are the real
// stretches, cut at row ends. Runs are computed per tile, not stored: a
// compiled convolution keeps no per-tile tables.
struct PixelOutput {
  int64_t pixels = 0;                    // dense tiles
  int64_t out_h = 0, out_w = 0, wp = 0;  // wide tiles
  // false: y[o * P + p] (NCHW convolution output); true: y[p * P + o], the
  // [batch, O] output of a Dense layer run over batch "pixels" (P = O).
  bool pixel_major = false;
  int64_t tiles(int64_t lanes) const {
    const int64_t n = wp == 0 ? pixels : (out_h - 1) * wp + out_w;
    return (n + lanes - 1) / lanes;
  }
  // Calls store(run) for every run of tile `tile`.
  template <typename Store>
  void ForEachRun(int64_t tile, int64_t lanes, Store store) const {
    const int64_t q0 = tile * lanes;
    if (wp == 0) {
      store(
          PixelRun{0, static_cast<int32_t>(std::min(lanes, pixels - q0)), q0});
      return;
    }
    const int64_t q1 = std::min((out_h - 1) * wp + out_w, q0 + lanes);
    int64_t oy = q0 / wp, ox = q0 % wp;
    for (int64_t q = q0; q < q1; q = ++oy * wp, ox = 0) {
      if (ox >= out_w) continue;  // a dropped column: the next row
      const int64_t len = std::min(out_w - ox, q1 - q);
      store(PixelRun{static_cast<int32_t>(q - q0), static_cast<int32_t>(len),
                     oy * out_w + ox});
    }
  }
};
// Tiles of consecutive output pixels (explicit im2col).
PixelOutput DenseOutputRuns(int64_t pixels, int64_t lanes);
// Tiles of wide pixels q < (Ho - 1) * wp + Wo, real where q % wp < Wo.
PixelOutput WideOutputRuns(int64_t out_h, int64_t out_w, int64_t wp,
                           int64_t lanes);

struct PixelSource {
  const float* base = nullptr;
  // ReadRows(w) entries, or null: row k at base + k * lanes.
  const int64_t* row_offsets = nullptr;
  int64_t tile_step = 0;
};

// Bit-coded layers with at most this many output rows (and weights) run
// on a dense FP32 copy made per call: look-up tables are built per tile for
// all rows, and with few rows building them costs more than the FMAs they
// save (ResNet's 16- and 32-channel layers: 40 -> 24 us per 28x28 conv).
inline constexpr int64_t kMaxDequantizedRows = 32;
inline constexpr int64_t kMaxDequantizedWeights = int64_t{1} << 16;
bool PrefersDequantized(const LayerWeights& w);

// Decrypted weights shared by every tile and sample of one call.
struct PreparedWeights {
  const uint64_t* bits = nullptr;  // [q][O][ceil(K/64)] (bit-coded only)
  const float* alpha = nullptr;    // [q][O]
  const float* dense = nullptr;    // [O][K] when PrefersDequantized
  int planes = 0;
};
// Floats of scratch PrepareWeights needs (0 for float weights).
int64_t PreparedWeightsFloats(const LayerWeights& w);
// Decrypts every plane through the codec's traits (codec_traits.h); adds the
// time to *decrypt_nanos when given (profiling). Without `dense_copy` no
// dense copy is made (callers that only read the bits; PixelGemm then uses
// look-up tables for every layer).
PreparedWeights PrepareWeights(const LayerWeights& w, float* scratch,
                               KernelIsa isa = SelectedIsa(),
                               std::atomic<int64_t>* decrypt_nanos = nullptr,
                               bool dense_copy = true);

// Floats of per-thread scratch PixelGemm needs.
int64_t PixelGemmScratchFloats(const LayerWeights& w, KernelIsa isa);

// Tiles [tile_begin, tile_end) of one sample, output rows [row_begin,
// row_end) (-1: all), into y; with `residual` (laid out as y, NCHW only),
// y = relu?(epilogue without relu + residual). Sequential (the caller
// parallelises over tiles, row blocks or samples). `work`:
// PixelGemmScratchFloats floats of this thread.
void PixelGemm(const LayerWeights& w, const PreparedWeights& prepared,
               const PixelSource& source, const PixelOutput& output, int64_t P,
               int64_t tile_begin, int64_t tile_end,
               const ChannelEpilogue& epilogue, float* y, float* work,
               KernelIsa isa = SelectedIsa(), int64_t row_begin = 0,
               int64_t row_end = -1, const float* residual = nullptr);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_CONV_GEMM_H_
