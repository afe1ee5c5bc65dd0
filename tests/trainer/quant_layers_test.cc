// Unit tests of the trainer's quantized layers: the XOR network in the sign
// domain and its surrogate gradient, the canonical bit layout of the export,
// and the least-squares 2-bit code.
#include "trainer/quant_layers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/codec/bit_layout.h"
#include "engine/codec/xor_network.h"

namespace flexor::trainer {
namespace {

QuantConfig FlexorConfig(int n_in, int n_out, int n_tap, int planes) {
  QuantConfig config;
  config.method = QuantMethod::kFlexor;
  config.n_in = n_in;
  config.n_out = n_out;
  config.n_tap = n_tap;
  config.planes = planes;
  config.xor_seed = 7;
  config.latent_init_std = 0.1;
  return config;
}

torch::Tensor TapsOf(const XorNetwork& net) {
  std::vector<int64_t> taps;
  for (uint64_t row : net.rows) {
    for (int t = 0; t < net.n_in; ++t) {
      if ((row >> t) & 1u) taps.push_back(t);
    }
  }
  return torch::tensor(taps, torch::kInt64);
}

TEST(XorSignTest, ForwardIsXorOfStoredBits) {
  torch::manual_seed(1);
  const QuantConfig config = FlexorConfig(6, 10, 3, 1);
  absl::StatusOr<XorNetwork> net = MakeXorNetwork(config);
  ASSERT_TRUE(net.ok()) << net.status();
  torch::Tensor latent = torch::randn({6, 33});
  latent[2][5] = 0.0;  // sign(0) = +1
  torch::Tensor y = XorSign(latent, TapsOf(*net), 3, 10.0, false);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{10, 33}));
  for (int j = 0; j < 10; ++j) {
    for (int s = 0; s < 33; ++s) {
      int parity = 0;
      for (int t = 0; t < 6; ++t) {
        if ((net->rows[j] >> t) & 1u) parity ^= latent[t][s].item<float>() < 0;
      }
      EXPECT_EQ(y[j][s].item<float>(), parity ? -1.0f : 1.0f);
    }
  }
}

TEST(XorSignTest, ExactVariantMatchesAutogradOfTanhProduct) {
  torch::manual_seed(2);
  const QuantConfig config = FlexorConfig(5, 9, 3, 1);
  absl::StatusOr<XorNetwork> net = MakeXorNetwork(config);
  ASSERT_TRUE(net.ok()) << net.status();
  const torch::Tensor taps = TapsOf(*net);
  const double s_tanh = 4.0;
  torch::Tensor latent = (torch::randn({5, 17}) * 0.3).requires_grad_(true);
  torch::Tensor upstream = torch::randn({9, 17});
  (XorSign(latent, taps, 3, s_tanh, true) * upstream).sum().backward();
  torch::Tensor ours = latent.grad().clone();

  torch::Tensor reference_latent = latent.detach().clone().requires_grad_(true);
  torch::Tensor smooth = torch::tanh(s_tanh * reference_latent)
                             .index_select(0, taps)
                             .view({9, 3, 17})
                             .prod(1);
  (smooth * upstream).sum().backward();
  EXPECT_TRUE(torch::allclose(ours, reference_latent.grad(), 1e-4, 1e-5));
}

TEST(XorSignTest, PaperVariantUsesSignsOfOtherTaps) {
  torch::manual_seed(3);
  const QuantConfig config = FlexorConfig(4, 6, 2, 1);
  absl::StatusOr<XorNetwork> net = MakeXorNetwork(config);
  ASSERT_TRUE(net.ok()) << net.status();
  const double s_tanh = 10.0;
  torch::Tensor latent = (torch::randn({4, 3}) * 0.1).requires_grad_(true);
  torch::Tensor upstream = torch::randn({6, 3});
  (XorSign(latent, TapsOf(*net), 2, s_tanh, false) * upstream).sum().backward();
  for (int t = 0; t < 4; ++t) {
    for (int s = 0; s < 3; ++s) {
      const double x = latent[t][s].item<double>();
      const double d = s_tanh * (1 - std::pow(std::tanh(s_tanh * x), 2));
      double expected = 0;
      for (int j = 0; j < 6; ++j) {
        if (!((net->rows[j] >> t) & 1u)) continue;
        double others = 1;
        for (int u = 0; u < 4; ++u) {
          if (u != t && ((net->rows[j] >> u) & 1u)) {
            others *= latent[u][s].item<double>() < 0 ? -1 : 1;
          }
        }
        expected += upstream[j][s].item<double>() * d * others;
      }
      EXPECT_NEAR(latent.grad()[t][s].item<double>(), expected, 1e-4);
    }
  }
}

// The exported bits, decrypted by the engine's reference decoder, give the
// weights the trainer computes with (canonical strided layout).
// Row-aligned slices: S = 53 (19 rounded up to K = 53).
TEST(QuantizedWeightTest, FlexorExportDecryptsToTrainerWeights) {
  torch::manual_seed(4);
  for (auto [planes, aligned] : {std::pair{1, false}, std::pair{2, false},
                                 std::pair{1, true}, std::pair{2, true}}) {
    QuantConfig config = FlexorConfig(12, 20, 2, planes);
    config.row_aligned_slices = aligned;
    const int64_t slices =
        aligned ? RowAlignedSliceCount(7 * 53, 20, 53) : SliceCount(7 * 53, 20);
    absl::StatusOr<XorNetwork> net = MakeXorNetwork(config);
    ASSERT_TRUE(net.ok()) << net.status();
    // 7 * 53 = 371 weights: not a multiple of N_out, S = 19 slices.
    QuantizedWeight weight(torch::randn({7, 53}), config, *net);
    const torch::Tensor trainer = weight->Forward().detach();
    const ExportedWeights exported = weight->Export();
    ASSERT_EQ(exported.planes.size(), static_cast<size_t>(planes));
    std::vector<float> decoded(7 * 53, 0.0f);
    for (const ModelWriter::Plane& plane : exported.planes) {
      EXPECT_EQ(plane.bits.slices, slices);
      const std::vector<uint64_t> bits =
          DecryptReference(plane.net, plane.bits.words.data(),
                           plane.bits.words_per_vector, 7 * 53, slices);
      for (int64_t i = 0; i < 7 * 53; ++i) {
        decoded[i] += plane.scales[i / 53] * (GetBit(bits.data(), i) ? -1 : 1);
      }
    }
    for (int64_t i = 0; i < 7 * 53; ++i) {
      EXPECT_FLOAT_EQ(decoded[i], trainer[i / 53][i % 53].item<float>()) << i;
    }
  }
}

// Row-aligned slices are for Dense layers: a convolution keeps the
// canonical S (its int8 kernels do not use them).
TEST(QuantizedWeightTest, RowAlignedSlicesOnlyForDenseLayers) {
  QuantConfig config = FlexorConfig(16, 20, 2, 1);
  config.row_aligned_slices = true;
  absl::StatusOr<XorNetwork> net = MakeXorNetwork(config);
  ASSERT_TRUE(net.ok()) << net.status();
  FleXORLinear linear(/*in_features=*/100, /*out_features=*/30, true, config,
                      *net);
  EXPECT_EQ(linear->weight()->Export().planes[0].bits.slices,
            RowAlignedSliceCount(30 * 100, 20, 100));
  Conv2dShape shape;
  shape.in_channels = 8;
  shape.out_channels = 16;
  shape.kernel = 5;
  FleXORConv2d conv(shape, true, config, *net);
  EXPECT_EQ(conv->weight()->Export().planes[0].bits.slices,
            SliceCount(16 * 200, 20));
}

TEST(QuantizedWeightTest, BaselineExportsMatchForward) {
  torch::manual_seed(5);
  for (QuantMethod method : {QuantMethod::kBinary1, QuantMethod::kBinary2Ls,
                             QuantMethod::kTernary, QuantMethod::kTernaryDst}) {
    QuantConfig config;
    config.method = method;
    QuantizedWeight weight(torch::randn({5, 31}) * 0.1, config,
                           XorNetwork::Plain());
    const torch::Tensor trainer = weight->Forward().detach();
    const ExportedWeights exported = weight->Export();
    for (int64_t i = 0; i < 5 * 31; ++i) {
      const int64_t o = i / 31;
      float value = 0;
      if (method == QuantMethod::kTernary ||
          method == QuantMethod::kTernaryDst) {
        value = exported.ternary_scales[o] * exported.ternary_values[i];
      } else {
        for (const ModelWriter::Plane& plane : exported.planes) {
          value += plane.scales[o] *
                   (GetBit(plane.bits.words.data(), i) ? -1.0f : 1.0f);
        }
      }
      EXPECT_NEAR(value, trainer[o][i % 31].item<float>(), 1e-6)
          << QuantMethodName(method) << " weight " << i;
    }
  }
}

TEST(LeastSquaresTwoBitTest, BeatsEveryOtherSplit) {
  torch::manual_seed(6);
  torch::Tensor w = torch::randn({3, 40});
  TwoBitCode code = LeastSquaresTwoBit(w);
  for (int o = 0; o < 3; ++o) {
    torch::Tensor row = w[o];
    auto error_of = [&](const torch::Tensor& high) {
      torch::Tensor m = row.abs();
      const double a =
          m.masked_select(high.logical_not()).mean().item<double>();
      const double b = m.masked_select(high).mean().item<double>();
      return (m - torch::where(high, torch::full_like(m, b),
                               torch::full_like(m, a)))
          .pow(2)
          .sum()
          .item<double>();
    };
    const double best = error_of(code.high[o]);
    torch::Tensor sorted = std::get<0>(row.abs().sort());
    for (int split = 1; split < 40; ++split) {
      torch::Tensor high = row.abs() >= sorted[split];
      EXPECT_LE(best, error_of(high) + 1e-6);
    }
    // v1 +- v2 are the two magnitude levels.
    const double v1 = code.v1[o].item<double>();
    const double v2 = code.v2[o].item<double>();
    EXPECT_GE(v1, v2);
    EXPECT_GE(v2, 0);
  }
}

}  // namespace
}  // namespace flexor::trainer
