#include "engine/kernels/layer_weights.h"

#include "engine/codec/bit_layout.h"
#include "engine/kernels/codec_traits.h"

namespace flexor {

int64_t LayerWeights::CompressedBytes() const {
  return CodecTraits(kind).compressed_bytes(*this);
}

double LayerWeights::BitsPerWeight() const {
  return CodecTraits(kind).bits_per_weight(*this);
}

std::vector<float> DequantizeReference(const LayerWeights& w) {
  const int64_t O = w.out_features, K = w.in_features;
  std::vector<float> out(static_cast<size_t>(O * K), 0.0f);
  switch (w.kind) {
    case WeightCodecKind::kFloat32:
      out.assign(w.dense, w.dense + O * K);
      break;
    case WeightCodecKind::kBinary:
      for (const BinaryPlaneView& p : w.planes) {
        const std::vector<uint64_t> bits = DecryptReference(
            p.net, p.stored, p.words_per_vector, O * K, p.slices);
        for (int64_t o = 0; o < O; ++o) {
          for (int64_t k = 0; k < K; ++k) {
            const bool neg = GetBit(bits.data(), o * K + k);
            out[o * K + k] += neg ? -p.scales[o] : p.scales[o];
          }
        }
      }
      break;
    case WeightCodecKind::kTernary: {
      const TernaryView& t = w.ternary;
      for (int64_t o = 0; o < O; ++o) {
        for (int64_t k = 0; k < K; ++k) {
          if (!GetBit(t.nonzero_mask + o * t.words_per_row, k)) continue;
          const bool neg = GetBit(t.sign + o * t.words_per_row, k);
          out[o * K + k] = neg ? -t.scales[o] : t.scales[o];
        }
      }
      break;
    }
  }
  return out;
}

}  // namespace flexor
