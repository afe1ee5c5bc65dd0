#include "engine/ops/weight_loader.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/codec/bit_layout.h"
#include "engine/ops/operator.h"

namespace flexor {

namespace mv1 = model::v1;

absl::StatusOr<LayerWeights> LoadLayerWeights(const mv1::WeightCodec& codec,
                                              const std::string& bias,
                                              int64_t out_features,
                                              int64_t in_features,
                                              const ModelFile& file) {
  LayerWeights w;
  w.out_features = out_features;
  w.in_features = in_features;
  const int64_t O = out_features, K = in_features;
  if (!bias.empty()) {
    absl::StatusOr<TensorView> t =
        GetTensor(file, bias, mv1::FLOAT32, {O}, "bias");
    if (!t.ok()) return t.status();
    w.bias = t->as<float>();
  }
  switch (codec.codec_case()) {
    case mv1::WeightCodec::kFloat32: {
      w.kind = WeightCodecKind::kFloat32;
      absl::StatusOr<TensorView> t =
          GetTensor(file, codec.float32().weights(), mv1::FLOAT32, {O, K},
                    "weights.float32.weights");
      if (!t.ok()) return t.status();
      w.dense = t->as<float>();
      return w;
    }
    case mv1::WeightCodec::kBinary: {
      w.kind = WeightCodecKind::kBinary;
      const auto& planes = codec.binary().planes();
      if (planes.empty() || planes.size() > kMaxBitPlanes) {
        return absl::InvalidArgumentError(
            absl::StrCat("weights.binary.planes: ", planes.size(),
                         " planes, expected 1 to ", kMaxBitPlanes));
      }
      for (int p = 0; p < planes.size(); ++p) {
        const mv1::BitPlane& plane = planes[p];
        const std::string field =
            absl::StrCat("weights.binary.planes[", p, "]");
        BinaryPlaneView view;
        view.net.n_in = static_cast<int>(plane.xor_().n_in());
        view.net.n_out = static_cast<int>(plane.xor_().n_out());
        view.net.rows.assign(plane.xor_().rows().begin(),
                             plane.xor_().rows().end());
        if (absl::Status s = ValidateXorNetwork(view.net); !s.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(field, ".", s.message()));
        }
        const int64_t canonical = SliceCount(O * K, view.net.n_out);
        const int64_t aligned = RowAlignedSliceCount(O * K, view.net.n_out, K);
        view.slices = canonical;
        if (plane.slices() != 0 &&
            plane.slices() != static_cast<uint64_t>(canonical)) {
          if (plane.slices() != static_cast<uint64_t>(aligned)) {
            return absl::InvalidArgumentError(absl::StrCat(
                field, ".slices = ", plane.slices(), ": expected 0, ",
                canonical, " (canonical, ceil(O*K / N_out)) or ", aligned,
                " (row-aligned: rounded up to a multiple of K = ", K, ")"));
          }
          view.slices = aligned;
        }
        view.words_per_vector = WordsForBits(view.slices);
        absl::StatusOr<TensorView> bits =
            GetTensor(file, plane.bits(), mv1::UINT64,
                      {view.net.n_in, view.words_per_vector}, field + ".bits");
        if (!bits.ok()) return bits.status();
        view.stored = bits->as<uint64_t>();
        absl::StatusOr<TensorView> scales = GetTensor(
            file, plane.scales(), mv1::FLOAT32, {O}, field + ".scales");
        if (!scales.ok()) return scales.status();
        view.scales = scales->as<float>();
        w.planes.push_back(std::move(view));
      }
      return w;
    }
    case mv1::WeightCodec::kTernary: {
      w.kind = WeightCodecKind::kTernary;
      const mv1::TernaryWeights& tw = codec.ternary();
      w.ternary.words_per_row = WordsForBits(K);
      const Shape bits_shape = {O, w.ternary.words_per_row};
      absl::StatusOr<TensorView> mask =
          GetTensor(file, tw.nonzero_mask(), mv1::UINT64, bits_shape,
                    "weights.ternary.nonzero_mask");
      if (!mask.ok()) return mask.status();
      absl::StatusOr<TensorView> sign = GetTensor(
          file, tw.sign(), mv1::UINT64, bits_shape, "weights.ternary.sign");
      if (!sign.ok()) return sign.status();
      absl::StatusOr<TensorView> scales = GetTensor(
          file, tw.scales(), mv1::FLOAT32, {O}, "weights.ternary.scales");
      if (!scales.ok()) return scales.status();
      w.ternary.nonzero_mask = mask->as<uint64_t>();
      w.ternary.sign = sign->as<uint64_t>();
      w.ternary.scales = scales->as<float>();
      return w;
    }
    case mv1::WeightCodec::CODEC_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("weights: no codec set");
}

std::string DescribeWeights(const LayerWeights& w) {
  switch (w.kind) {
    case WeightCodecKind::kFloat32:
      return "float32";
    case WeightCodecKind::kTernary:
      return "ternary (2 bit/w)";
    case WeightCodecKind::kBinary: {
      const XorNetwork& net = w.planes[0].net;
      if (net.n_in == net.n_out) {
        return absl::StrFormat("binary q=%d (%.2f bit/w)", w.planes.size(),
                               w.BitsPerWeight());
      }
      const bool row_aligned =
          w.planes[0].slices !=
          SliceCount(w.out_features * w.in_features, net.n_out);
      return absl::StrFormat(
          "flexor q=%d N_in/N_out=%d/%d rank %d (%.2f bit/w)%s",
          w.planes.size(), net.n_in, net.n_out, Gf2Rank(net), w.BitsPerWeight(),
          row_aligned ? ", row-aligned slices" : "");
    }
  }
  return "?";
}

}  // namespace flexor
