// Convolutions with int8 activations (ActivationPrecision::kInt8): the pixel
// GEMM of conv_gemm.h over u8 activations and s8 weights, summed exactly in
// 32-bit integers (VPDPBUSD with AVX-512 VNNI, VPMADDUBSW with AVX2).
//
// Weights: a layer with one binary plane has W[o, k] = alpha[o] * s[o, k],
// s = +-1, so the signs are exact in s8 and alpha is applied after the sum.
// Activations: each sample's input is quantised once, per tensor, to u8 with
// x ~ scale * (u - zero): zero = 0 and scale = max / 255 for inputs without
// negative values (the usual case after ReLU), zero = 128 and scale =
// max |x| / 127 otherwise. Inputs holding Inf/NaN run the FP32 path. The
// error of an output is at most scale / 2 * sum_k |W[o, k]| (rounding each
// input to the nearest level), checked by tests/kernels/int8_conv_test.cc.
//
// The quantised input is stored in "C4" layout, [ceil(C / 4)][Hp][Wp] 32-bit
// words of 4 channels, so that for a kernel tap the 4 bytes VPDPBUSD sums
// together are one word, and a row of wide pixels (implicit GEMM) is one
// contiguous run of words. Weights are expanded per call to the same (channel
// group, tap, channel) order.
#ifndef FLEXOR_ENGINE_KERNELS_INT8_CONV_H_
#define FLEXOR_ENGINE_KERNELS_INT8_CONV_H_

#include <atomic>
#include <cstdint>

#include "engine/kernels/conv_gemm.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/layer_weights.h"
#include "engine/kernels/microkernels.h"

namespace flexor {

// Whether a convolution with these weights can run with int8 activations:
// bit-coded with one binary plane.
bool Int8ConvSupported(const LayerWeights& w);

// Channel groups of a [channels, taps] kernel in the C4 order.
inline int64_t Int8Groups(int64_t channels, int64_t taps) {
  return (channels + 3) / 4 * taps;
}

// One call's weights, expanded from the decrypted bits.
struct Int8Weights {
  const int8_t* w = nullptr;  // [O][stride] in (group, channel) order
  int64_t stride = 0;         // bytes per row
  int64_t groups = 0;
  const float* alpha = nullptr;     // [O]
  const int32_t* rowsum = nullptr;  // [O]: sum of the row's s8 weights
};
// Floats of scratch PrepareInt8Weights needs.
int64_t Int8WeightsFloats(const LayerWeights& w, int64_t channels,
                          int64_t taps);
// Expands the bits PrepareWeights decrypted (one plane) into s8 weights.
// Adds its time to *decrypt_nanos when given (profiling).
Int8Weights PrepareInt8Weights(const LayerWeights& w,
                               const PreparedWeights& prepared,
                               int64_t channels, int64_t taps, float* scratch,
                               KernelIsa isa,
                               std::atomic<int64_t>* decrypt_nanos = nullptr);

// How one sample was quantised: x ~ scale * (u - zero), where u is the
// byte (one digit) or 254 * high byte + low byte (two digits).
struct Int8Activations {
  float scale = 0.0f;
  int32_t zero = 0;
};
// Quantises one sample x [C, H, W] of `plan` into `padded`: the C4 planes
// (H + 2 pad_h) x (W + 2 pad_w), then `tail_words` more words, with the
// border and the tail at the zero point. With `low` (same size), also the
// second digit of ActivationPrecision::kInt16 (microkernels.h). Returns
// false (padded unspecified) when x holds Inf or NaN.
bool QuantizeToC4(const Im2colPlan& plan, const float* x, uint32_t* padded,
                  int64_t tail_words, Int8Activations* q,
                  KernelIsa isa = SelectedIsa(), uint32_t* low = nullptr);

// Whether a layer whose rows sum `k` bytes (4 per channel group) can take
// two digits: 254 * high + low sums of up to 255 * 255 * k fit in int32.
inline bool Int8TwoDigitsFit(int64_t k) {
  return k <= (int64_t{1} << 31) / 65025;
}

// Floats of per-thread scratch Int8PixelGemm needs for O output rows.
int64_t Int8PixelGemmScratchFloats(int64_t out_rows, KernelIsa isa);

// Where an int8 tile's rows are: row g of tile t at base + t * tile_step +
// offs[g] words (implicit GEMM over the padded C4 input), or at base + t *
// tile_step + g * lanes when offs is null (int8 im2col tiles).
struct Int8Source {
  const uint32_t* base = nullptr;
  const int64_t* row_offsets = nullptr;
  int64_t tile_step = 0;
  // Two digits (kInt16): the low digit's words, at the same offsets.
  const uint32_t* low_base = nullptr;
};

// Tiles [tile_begin, tile_end) of one sample into y (as PixelGemm, with the
// same runs and epilogue), all O rows. `work`: Int8PixelGemmScratchFloats.
void Int8PixelGemm(const Int8Weights& w, int64_t out_rows,
                   const Int8Activations& q, const Int8Source& source,
                   const PixelOutput& output, int64_t P, int64_t tile_begin,
                   int64_t tile_end, const ChannelEpilogue& epilogue, float* y,
                   float* work, KernelIsa isa = SelectedIsa(),
                   const float* residual = nullptr);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_INT8_CONV_H_
