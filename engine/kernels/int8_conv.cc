#include "engine/kernels/int8_conv.h"

#include <algorithm>
#include <cstring>

#include "engine/kernels/codec_traits.h"
#include "engine/kernels/scoped_nanos.h"

namespace flexor {
namespace {

// Rows of s8 weights start on 64-byte boundaries (whole-vector loads).
int64_t WeightStride(int64_t groups) { return (4 * groups + 63) / 64 * 64; }

int64_t Floats(int64_t bytes) { return (bytes + 63) / 64 * 16; }

}  // namespace

bool Int8ConvSupported(const LayerWeights& w) {
  return w.kind != WeightCodecKind::kFloat32 &&
         CodecTraits(w.kind).planes(w) == 1;
}

int64_t Int8WeightsFloats(const LayerWeights& w, int64_t channels,
                          int64_t taps) {
  const int64_t O = w.out_features;
  // 64 bytes of slack: the packing kernels write whole vectors.
  return Floats(O * WeightStride(Int8Groups(channels, taps)) + 64) +
         Floats(O * 4);
}

Int8Weights PrepareInt8Weights(const LayerWeights& w,
                               const PreparedWeights& prepared,
                               int64_t channels, int64_t taps, float* scratch,
                               KernelIsa isa,
                               std::atomic<int64_t>* decrypt_nanos) {
  const ScopedNanos timer(decrypt_nanos);
  const int64_t O = w.out_features, kw = (w.in_features + 63) / 64;
  Int8Weights out;
  out.groups = Int8Groups(channels, taps);
  out.stride = WeightStride(out.groups);
  int8_t* w8 = reinterpret_cast<int8_t*>(scratch);
  int32_t* rowsum =
      reinterpret_cast<int32_t*>(scratch + Floats(O * out.stride + 64));
  GetPixelKernelTable(isa).int8_pack_weights(prepared.bits, kw, O, channels,
                                             taps, w8, out.stride, rowsum);
  out.w = w8;
  out.alpha = prepared.alpha;
  out.rowsum = rowsum;
  return out;
}

bool QuantizeToC4(const Im2colPlan& plan, const float* x, uint32_t* padded,
                  int64_t tail_words, Int8Activations* q, KernelIsa isa,
                  uint32_t* low) {
  const PixelKernelTable& pt = GetPixelKernelTable(isa);
  uint32_t amax_bits = 0;
  bool negative = false;
  pt.int8_range(x, plan.channels * plan.height * plan.width, &amax_bits,
                &negative);
  if (amax_bits >= 0x7f800000u) return false;
  float amax;
  std::memcpy(&amax, &amax_bits, 4);
  // Levels: 255 above zero without negative inputs, +-127 around 128 with.
  const float levels = negative ? 127.0f : 255.0f;
  q->zero = negative ? 128 : 0;
  // Tiny maxima would overflow levels / amax; treat them as zero (their
  // outputs are bias + O(1e-30)).
  const bool zero_input = !(amax >= 1e-30f);
  q->scale = zero_input ? 0.0f : amax / levels;
  const float inv = zero_input ? 0.0f : levels / amax;
  const int64_t hp = plan.height + 2 * plan.pad_h;
  const int64_t wp = plan.width + 2 * plan.pad_w;
  const int64_t words = (plan.channels + 3) / 4 * hp * wp;
  // The border and the tail (only those: the quantiser writes every
  // interior word) hold the zero point.
  auto fill_border = [&](uint32_t* dst, uint32_t zero_byte) {
    const uint32_t z = zero_byte * 0x01010101u;
    if (plan.pad_h != 0 || plan.pad_w != 0) {
      for (int64_t c4 = 0; c4 < (plan.channels + 3) / 4; ++c4) {
        uint32_t* plane = dst + c4 * hp * wp;
        std::fill(plane, plane + plan.pad_h * wp, z);
        for (int64_t y = plan.pad_h; y < hp - plan.pad_h; ++y) {
          std::fill(plane + y * wp, plane + y * wp + plan.pad_w, z);
          std::fill(plane + y * wp + wp - plan.pad_w, plane + (y + 1) * wp, z);
        }
        std::fill(plane + (hp - plan.pad_h) * wp, plane + hp * wp, z);
      }
    }
    std::fill(dst + words, dst + words + tail_words, z);
  };
  fill_border(padded, static_cast<uint32_t>(q->zero));
  if (low != nullptr) fill_border(low, kInt8LowZero);
  pt.int8_quantize_c4(plan, x, inv, q->zero, padded, low);
  if (low != nullptr) {
    // One number per input: 254 * high + low, in steps of scale / 254.
    q->scale /= 254.0f;
    q->zero = 254 * q->zero + static_cast<int32_t>(kInt8LowZero);
  }
  return true;
}

int64_t Int8PixelGemmScratchFloats(int64_t out_rows, KernelIsa isa) {
  const int64_t lanes = PixelLanes(isa);
  // int32 accumulators, then the combined scale and shift, then the low
  // digit's integer shift (kInt16).
  return out_rows * lanes + 3 * ((out_rows + 15) / 16 * 16);
}

void Int8PixelGemm(const Int8Weights& w, int64_t out_rows,
                   const Int8Activations& q, const Int8Source& source,
                   const PixelOutput& output, int64_t P, int64_t tile_begin,
                   int64_t tile_end, const ChannelEpilogue& epilogue, float* y,
                   float* work, KernelIsa isa, const float* residual) {
  const int64_t O = out_rows, lanes = PixelLanes(isa);
  const PixelKernelTable& pt = GetPixelKernelTable(isa);
  int32_t* acc = reinterpret_cast<int32_t*>(work);
  float* scale = work + O * lanes;
  float* shift = scale + (O + 15) / 16 * 16;
  int32_t* low_digit_shift =
      reinterpret_cast<int32_t*>(shift + (O + 15) / 16 * 16);
  // y = epilogue(scale_q * alpha[o] * (acc - zero * rowsum[o])). With two
  // digits the zero point is taken off in int32, exactly: the sums reach
  // past 2^24, where float would round away the low digit.
  const bool two_digits = source.low_base != nullptr;
  for (int64_t o = 0; o < O; ++o) {
    const float m = q.scale * w.alpha[o];
    const float s = epilogue.scale ? epilogue.scale[o] : 1.0f;
    const float b = epilogue.shift ? epilogue.shift[o] : 0.0f;
    scale[o] = m * s;
    shift[o] = two_digits ? b
                          : b - static_cast<float>(q.zero) *
                                    static_cast<float>(w.rowsum[o]) * m * s;
    low_digit_shift[o] = two_digits ? q.zero * w.rowsum[o] : 0;
  }
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    pt.int8_kn(w.w, w.stride, O, w.groups,
               source.base + tile * source.tile_step, source.row_offsets, lanes,
               acc, nullptr);
    if (two_digits) {
      // The low digits' pass combines both digits in its store.
      pt.int8_kn(w.w, w.stride, O, w.groups,
                 source.low_base + tile * source.tile_step, source.row_offsets,
                 lanes, acc, low_digit_shift);
    }
    output.ForEachRun(tile, lanes, [&](const PixelRun& run) {
      pt.store_tile_i32(acc + run.lane, lanes, O, run.len, scale, shift,
                        epilogue.relu, y + run.dst, P,
                        residual ? residual + run.dst : nullptr);
    });
  }
}

}  // namespace flexor
