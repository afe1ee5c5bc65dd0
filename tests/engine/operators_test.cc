// Each operator and weight codec against a straightforward float reference
// written here from the dequantized weights, on random inputs.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "engine/codec/bit_layout.h"
#include "engine/format/model_writer.h"
#include "engine/graph/model.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/microkernels.h"
#include "engine/testing/random_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flexor {
namespace {

namespace mv1 = model::v1;

std::vector<float> RandomVector(size_t n, std::mt19937_64& rng, float lo = -1,
                                float hi = 1) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Writes weights of `method` into `codec`; returns the dense matrix they
// stand for, computed from the bits and scales.
std::vector<float> AddWeights(ModelWriter& w, mv1::WeightCodec* codec,
                              const std::string& prefix, int64_t O, int64_t K,
                              const std::string& method, std::mt19937_64& rng) {
  std::vector<float> dense(O * K, 0.0f);
  if (method == "fp32") {
    dense = RandomVector(O * K, rng);
    w.SetFloat32Weights(codec, prefix, O, K, dense);
  } else if (method == "ternary") {
    std::vector<int8_t> t(O * K);
    for (int8_t& v : t)
      v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
    const std::vector<float> scales = RandomVector(O, rng, 0.1f, 1.0f);
    for (int64_t i = 0; i < O * K; ++i) dense[i] = scales[i / K] * t[i];
    w.SetTernaryWeights(codec, prefix, O, K, t, scales);
  } else {
    // "plainQ" or "flexorQ_nin_nout_ntap", "..._aligned" for row-aligned
    // slices (BitPlane.slices).
    int q = 1, n_in = 1, n_out = 1, n_tap = 1;
    if (method.rfind("plain", 0) == 0) {
      q = method[5] - '0';
    } else {
      sscanf(method.c_str(), "flexor%d_%d_%d_%d", &q, &n_in, &n_out, &n_tap);
    }
    std::vector<ModelWriter::Plane> planes;
    for (int p = 0; p < q; ++p) {
      ModelWriter::Plane plane;
      plane.net = method.rfind("plain", 0) == 0
                      ? XorNetwork::Plain()
                      : *GenerateXorNetwork(n_in, n_out, n_tap, rng());
      const bool aligned = method.find("_aligned") != std::string::npos;
      plane.bits = MakeEncryptedBits(
          O * K, plane.net,
          aligned ? RowAlignedSliceCount(O * K, plane.net.n_out, K) : 0);
      for (int t = 0; t < plane.net.n_in; ++t) {
        for (int64_t s = 0; s < plane.bits.slices; ++s) {
          SetBit(plane.bits.words.data() + t * plane.bits.words_per_vector, s,
                 rng() & 1);
        }
      }
      plane.scales = RandomVector(O, rng, 0.1f, 1.0f);
      const std::vector<uint64_t> bits = DecryptReference(
          plane.net, plane.bits.words.data(), plane.bits.words_per_vector,
          O * K, plane.bits.slices);
      for (int64_t i = 0; i < O * K; ++i) {
        dense[i] +=
            GetBit(bits.data(), i) ? -plane.scales[i / K] : plane.scales[i / K];
      }
      planes.push_back(std::move(plane));
    }
    w.SetBinaryWeights(codec, prefix, planes);
  }
  return dense;
}

std::shared_ptr<const Model> CompileBytes(const std::string& bytes) {
  absl::StatusOr<std::shared_ptr<const ModelFile>> file =
      ModelFile::FromBytes(bytes, "op-test");
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return nullptr;
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Compile(*file);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

std::shared_ptr<const Model> Compile(const ModelWriter& w) {
  absl::StatusOr<std::string> bytes = w.Serialize();
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? CompileBytes(*bytes) : nullptr;
}

void ExpectNear(const std::vector<float>& got, const std::vector<double>& want,
                double rel = 1e-4) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], rel * (1.0 + std::abs(want[i]))) << "at " << i;
  }
}

// Runs with both kernel paths; both must match the reference.
void RunAndCompare(const Model& model, const std::vector<float>& x,
                   int64_t batch, const std::vector<double>& want) {
  for (KernelPath path : {KernelPath::kReference, KernelPath::kAuto}) {
    std::vector<float> y(batch * model.output_size());
    ASSERT_TRUE(model.Run(x.data(), batch, y.data(), path).ok());
    ExpectNear(y, want);
  }
}

class DenseCodecTest : public testing::TestWithParam<std::string> {};

TEST_P(DenseCodecTest, MatchesDenseFloatReference) {
  std::mt19937_64 rng(5);
  for (auto [O, K, batch] : {std::tuple{13, 37, 3},
                             {1, 1, 1},
                             {1, 300, 2},
                             {70, 1, 4},
                             {33, 129, 5},
                             // Batches that run as pixel tiles, tiles cut
                             // short, row blocks across threads.
                             {13, 37, 16},
                             {70, 129, 33},
                             {200, 64, 40},
                             {1, 300, 17},
                             // O a multiple of N_out = 20: FleXOR segments
                             // start on rows (taps kept transposed for the
                             // int8 LUT, with FLEXOR_KERNEL_ISA=avx2).
                             {40, 100, 1},
                             {40, 100, 3}}) {
    SCOPED_TRACE(testing::Message() << O << "x" << K << " batch " << batch);
    ModelWriter w("dense");
    w.AddInput("x", {K}, false);
    mv1::DenseOp* d = w.AddNode("fc", {"x"}, "y")->mutable_dense();
    d->set_in_features(K);
    d->set_out_features(O);
    const std::vector<float> bias = RandomVector(O, rng);
    d->set_bias(w.AddFloat("fc.bias", {O}, bias));
    const std::vector<float> dense =
        AddWeights(w, d->mutable_weights(), "fc", O, K, GetParam(), rng);
    w.AddOutput("y", {O});
    std::shared_ptr<const Model> model = Compile(w);
    ASSERT_NE(model, nullptr);
    const std::vector<float> x = RandomVector(batch * K, rng);
    std::vector<double> want(batch * O);
    for (int b = 0; b < batch; ++b) {
      for (int o = 0; o < O; ++o) {
        double acc = bias[o];
        for (int k = 0; k < K; ++k)
          acc += double{dense[o * K + k]} * x[b * K + k];
        want[b * O + o] = acc;
      }
    }
    RunAndCompare(*model, x, batch, want);
    if (GetParam() == "fp32") continue;
    // Int8 activations, quantised per sample with step max|x| / 127: each
    // output within step / 2 * sum_k |W[o, k]| of the exact one.
    RunOptions int8;
    int8.matmul.activations = ActivationPrecision::kInt8;
    std::vector<float> y(batch * O);
    ASSERT_TRUE(model->Run(x.data(), batch, y.data(), int8).ok());
    for (int b = 0; b < batch; ++b) {
      float amax = 0.0f;
      for (int k = 0; k < K; ++k) amax = std::max(amax, std::abs(x[b * K + k]));
      for (int o = 0; o < O; ++o) {
        double l1 = 0.0;
        for (int k = 0; k < K; ++k) l1 += std::abs(dense[o * K + k]);
        const double bound = amax / 127.0 / 2 * l1 * (1 + 1e-5) +
                             1e-4 * (1.0 + std::abs(want[b * O + o]));
        ASSERT_NEAR(y[b * O + o], want[b * O + o], bound)
            << "int8, sample " << b << " output " << o;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, DenseCodecTest,
                         testing::Values("fp32", "ternary", "plain1", "plain2",
                                         "flexor1_16_20_2", "flexor2_12_20_3",
                                         "flexor1_8_20_2", "flexor1_20_20_1",
                                         "flexor1_16_20_2_aligned",
                                         "flexor2_12_20_3_aligned"));

// BitPlane.slices: the canonical S (written as 0) or its round-up to a
// multiple of K; anything else is refused with the field and both values.
TEST(BitPlaneSlicesTest, OnlyCanonicalOrRowAlignedAreAccepted) {
  const int64_t O = 13, K = 37;  // canonical ceil(481 / 20) = 25, aligned 37
  std::mt19937_64 rng(8);
  const XorNetwork net = *GenerateXorNetwork(16, 20, 2, 3);
  for (int64_t slices : {int64_t{0}, int64_t{25}, int64_t{37}, int64_t{26},
                         int64_t{74}, int64_t{24}}) {
    SCOPED_TRACE(testing::Message() << "slices " << slices);
    ModelWriter w("slices");
    w.AddInput("x", {K}, false);
    mv1::DenseOp* d = w.AddNode("fc", {"x"}, "y")->mutable_dense();
    d->set_in_features(K);
    d->set_out_features(O);
    ModelWriter::Plane plane;
    plane.net = net;
    plane.bits = MakeEncryptedBits(O * K, net, slices);
    plane.scales = RandomVector(O, rng, 0.1f, 1.0f);
    w.SetBinaryWeights(d->mutable_weights(), "fc", {plane});
    w.AddOutput("y", {O});
    absl::StatusOr<std::string> bytes = w.Serialize();
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    absl::StatusOr<std::shared_ptr<const ModelFile>> file =
        ModelFile::FromBytes(*bytes, "slices");
    ASSERT_TRUE(file.ok()) << file.status();
    absl::StatusOr<std::shared_ptr<const Model>> model = Model::Compile(*file);
    if (slices == 0 || slices == 25 || slices == 37) {
      ASSERT_TRUE(model.ok()) << model.status();
      // inspect / --profile say which layout a layer has.
      EXPECT_EQ(absl::StrContains((*model)->Describe(), "row-aligned slices"),
                slices == 37);
    } else {
      ASSERT_FALSE(model.ok());
      EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(model.status().message()),
                  testing::HasSubstr("slices = " + std::to_string(slices) +
                                     ": expected 0, 25"));
    }
  }
}

struct ConvCase {
  int C, H, W, O, k, stride, pad, groups;
  std::string method;
};

void ExpectInt8WithinBound(const Model& model, const std::vector<float>& x,
                           int64_t batch, int64_t sample_in,
                           const std::vector<float>& dense, int64_t K,
                           const std::vector<float>& bias,
                           const std::vector<double>& want,
                           const std::string& method);

class ConvTest : public testing::TestWithParam<ConvCase> {};

TEST_P(ConvTest, MatchesDirectConvolution) {
  const ConvCase c = GetParam();
  std::mt19937_64 rng(11);
  const int K = c.C / c.groups * c.k * c.k;
  const int Ho = (c.H + 2 * c.pad - c.k) / c.stride + 1;
  const int Wo = (c.W + 2 * c.pad - c.k) / c.stride + 1;
  ModelWriter w("conv");
  w.AddInput("x", {c.C, c.H, c.W}, false);
  mv1::Conv2dOp* cv = w.AddNode("conv", {"x"}, "y")->mutable_conv2d();
  cv->set_in_channels(c.C);
  cv->set_out_channels(c.O);
  cv->set_kernel_h(c.k);
  cv->set_kernel_w(c.k);
  cv->set_stride_h(c.stride);
  cv->set_stride_w(c.stride);
  cv->set_pad_h(c.pad);
  cv->set_pad_w(c.pad);
  cv->set_groups(c.groups);
  const std::vector<float> bias = RandomVector(c.O, rng);
  cv->set_bias(w.AddFloat("conv.bias", {c.O}, bias));
  const std::vector<float> dense =
      AddWeights(w, cv->mutable_weights(), "conv", c.O, K, c.method, rng);
  w.AddOutput("y", {c.O, Ho, Wo});
  std::shared_ptr<const Model> model = Compile(w);
  ASSERT_NE(model, nullptr);
  for (const int batch : {1, 3, 2}) {
    // The last batch is non-negative (as after a ReLU): int8 uses 255 levels.
    const std::vector<float> x =
        RandomVector(batch * c.C * c.H * c.W, rng, batch == 2 ? 0.0f : -1.0f);
    std::vector<double> want(batch * c.O * Ho * Wo);
    const int cg = c.C / c.groups, og = c.O / c.groups;
    for (int n = 0; n < batch; ++n) {
      for (int o = 0; o < c.O; ++o) {
        const int g = o / og;
        for (int oy = 0; oy < Ho; ++oy) {
          for (int ox = 0; ox < Wo; ++ox) {
            double acc = bias[o];
            for (int ci = 0; ci < cg; ++ci) {
              for (int ky = 0; ky < c.k; ++ky) {
                for (int kx = 0; kx < c.k; ++kx) {
                  const int iy = oy * c.stride + ky - c.pad;
                  const int ix = ox * c.stride + kx - c.pad;
                  if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                  acc += double{dense[o * K + (ci * c.k + ky) * c.k + kx]} *
                         x[((n * c.C + g * cg + ci) * c.H + iy) * c.W + ix];
                }
              }
            }
            want[((n * c.O + o) * Ho + oy) * Wo + ox] = acc;
          }
        }
      }
    }
    RunAndCompare(*model, x, batch, want);
    ExpectInt8WithinBound(*model, x, batch, c.C * c.H * c.W, dense, K, bias,
                          want, c.method);
  }
}

// Int8 activations (int8_conv.h): each sample is quantised per tensor with
// step s = max|x| / 127 (max / 255 without negative inputs), so an output
// is off by at most s / 2 * sum_k |W[o, k]| (plus float rounding); with two
// digits (kInt16) the step is s / 254. Layers with one binary plane must
// really take that path: their outputs differ from the FP32 path's
// somewhere (int8: beyond float rounding; int16: at all).
void ExpectInt8WithinBound(const Model& model, const std::vector<float>& x,
                           int64_t batch, int64_t sample_in,
                           const std::vector<float>& dense, int64_t K,
                           const std::vector<float>& bias,
                           const std::vector<double>& want,
                           const std::string& method) {
  const int64_t O = static_cast<int64_t>(bias.size());
  const int64_t P = static_cast<int64_t>(want.size()) / (batch * O);
  std::vector<float> fp32(want.size());
  ASSERT_TRUE(model.Run(x.data(), batch, fp32.data()).ok());
  for (ActivationPrecision precision :
       {ActivationPrecision::kInt8, ActivationPrecision::kInt16}) {
    const bool two_digits = precision == ActivationPrecision::kInt16;
    const std::string what = method + " " + ActivationPrecisionName(precision);
    RunOptions options;
    options.matmul.activations = precision;
    std::vector<float> y(want.size());
    ASSERT_TRUE(model.Run(x.data(), batch, y.data(), options).ok());
    bool differs = false;
    for (int64_t n = 0; n < batch; ++n) {
      float amax = 0.0f;
      bool negative = false;
      for (int64_t i = 0; i < sample_in; ++i) {
        amax = std::max(amax, std::abs(x[n * sample_in + i]));
        negative |= x[n * sample_in + i] < 0.0f;
      }
      const double step =
          amax / (negative ? 127.0 : 255.0) / (two_digits ? 254.0 : 1.0);
      for (int64_t o = 0; o < O; ++o) {
        double l1 = 0.0;
        for (int64_t k = 0; k < K; ++k) l1 += std::abs(dense[o * K + k]);
        const double bound = step / 2 * l1 * (1 + 1e-5);
        for (int64_t p = 0; p < P; ++p) {
          const int64_t i = (n * O + o) * P + p;
          ASSERT_NEAR(y[i], want[i], bound + 1e-4 * (1.0 + std::abs(want[i])))
              << what << " sample " << n << " channel " << o << " pixel " << p;
          differs |= two_digits ? y[i] != fp32[i]
                                : std::abs(y[i] - want[i]) >
                                      1e-4 * (1.0 + std::abs(want[i]));
        }
      }
    }
    const bool one_plane =
        method == "plain1" || method.rfind("flexor1", 0) == 0;
    if (one_plane) EXPECT_TRUE(differs) << what << ": int8 path not taken";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvTest,
    testing::Values(ConvCase{3, 9, 7, 5, 3, 2, 1, 1, "flexor1_16_20_2"},
                    ConvCase{1, 28, 28, 6, 5, 1, 2, 1, "flexor1_16_20_2"},
                    ConvCase{4, 6, 6, 6, 3, 1, 0, 2, "plain2"},
                    ConvCase{2, 5, 5, 3, 1, 1, 0, 1, "fp32"},
                    ConvCase{3, 7, 8, 4, 3, 1, 1, 1, "ternary"},
                    // The shipped LeNet's and the trainer ResNet's layers:
                    // many pixel tiles, runs split at tile boundaries,
                    // padding, stride 2, 1x1 projections, K % 64 != 0.
                    ConvCase{1, 28, 28, 32, 5, 1, 0, 1, "fp32"},
                    ConvCase{32, 12, 12, 64, 5, 1, 0, 1, "flexor1_16_20_2"},
                    ConvCase{16, 28, 28, 16, 3, 1, 1, 1, "flexor1_16_20_2"},
                    ConvCase{16, 28, 28, 32, 3, 2, 1, 1, "flexor1_16_20_2"},
                    ConvCase{16, 28, 28, 32, 1, 2, 0, 1, "ternary"},
                    ConvCase{5, 13, 11, 7, 3, 1, 2, 1, "plain2"},
                    ConvCase{3, 30, 31, 9, 4, 3, 3, 1, "fp32"},
                    // Big enough (> 16 M multiply-adds) that batch 1
                    // spreads its tiles over the threads.
                    ConvCase{64, 32, 32, 64, 3, 1, 1, 1, "flexor1_16_20_2"},
                    // Channel counts that are not a multiple of 4 (the int8
                    // path's C4 groups), one-plane codecs, odd geometry.
                    ConvCase{5, 13, 11, 7, 3, 1, 2, 1, "plain1"},
                    ConvCase{7, 9, 10, 20, 3, 2, 1, 1, "flexor1_8_20_2"},
                    ConvCase{6, 17, 5, 33, 1, 1, 0, 1, "flexor1_20_20_1"},
                    ConvCase{2, 12, 12, 16, 5, 1, 0, 1, "plain1"}));

// Builds x -> op -> y with one node configured by `setup`.
template <typename Setup>
std::shared_ptr<const Model> OneNode(const std::vector<int64_t>& in,
                                     const std::vector<int64_t>& out,
                                     Setup setup) {
  ModelWriter w("op");
  w.AddInput("x", in, false);
  setup(w, w.AddNode("op", {"x"}, "y"));
  w.AddOutput("y", out);
  return Compile(w);
}

TEST(PoolTest, MaxAndAvgWithPaddingAndGlobalAvg) {
  std::mt19937_64 rng(3);
  const int C = 2, H = 7, W = 6, batch = 2;
  const std::vector<float> x = RandomVector(batch * C * H * W, rng);
  for (auto kind : {mv1::Pool2dOp::MAX, mv1::Pool2dOp::AVG}) {
    // kernel 3, stride 2, pad 1: Ho = (7 + 2 - 3) / 2 + 1 = 4, Wo = 3 + 1 = 3
    auto model = OneNode({C, H, W}, {C, 4, 3}, [&](ModelWriter&, mv1::Node* n) {
      mv1::Pool2dOp* p = n->mutable_pool2d();
      p->set_kind(kind);
      p->set_kernel_h(3);
      p->set_kernel_w(3);
      p->set_stride_h(2);
      p->set_stride_w(2);
      p->set_pad_h(1);
      p->set_pad_w(1);
    });
    ASSERT_NE(model, nullptr);
    std::vector<double> want;
    for (int nc = 0; nc < batch * C; ++nc) {
      for (int oy = 0; oy < 4; ++oy) {
        for (int ox = 0; ox < 3; ++ox) {
          double mx = -1e30, sum = 0;
          for (int ky = 0; ky < 3; ++ky) {
            for (int kx = 0; kx < 3; ++kx) {
              const int iy = oy * 2 + ky - 1, ix = ox * 2 + kx - 1;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              mx = std::max<double>(mx, x[nc * H * W + iy * W + ix]);
              sum += x[nc * H * W + iy * W + ix];
            }
          }
          want.push_back(kind == mv1::Pool2dOp::MAX ? mx : sum / 9.0);
        }
      }
    }
    RunAndCompare(*model, x, batch, want);
  }
  auto gap = OneNode({C, H, W}, {C}, [](ModelWriter&, mv1::Node* n) {
    n->mutable_global_avg_pool();
  });
  std::vector<double> want(batch * C, 0.0);
  for (int nc = 0; nc < batch * C; ++nc) {
    for (int i = 0; i < H * W; ++i) want[nc] += x[nc * H * W + i] / (H * W);
  }
  RunAndCompare(*gap, x, batch, want);
}

TEST(ElementwiseTest, InputScaleBatchNormReluTernarizeSoftmaxFlatten) {
  std::mt19937_64 rng(4);
  const int C = 3, H = 2, W = 5, batch = 3, S = C * H * W;
  const std::vector<float> x = RandomVector(batch * S, rng, -3, 3);
  const std::vector<float> scale = RandomVector(C, rng);
  const std::vector<float> shift = RandomVector(C, rng);
  std::vector<double> affine(batch * S), relu(batch * S), tern(batch * S);
  for (int i = 0; i < batch * S; ++i) {
    const int c = (i / (H * W)) % C;
    affine[i] = double{x[i]} * scale[c] + shift[c];
    relu[i] = std::max(0.0f, x[i]);
    tern[i] = x[i] > 0.5f ? 1 : (x[i] < -0.5f ? -1 : 0);
  }
  auto input_scale =
      OneNode({C, H, W}, {C, H, W}, [&](ModelWriter&, mv1::Node* n) {
        for (int c = 0; c < C; ++c) {
          n->mutable_input_scale()->add_scale(scale[c]);
          n->mutable_input_scale()->add_shift(shift[c]);
        }
      });
  RunAndCompare(*input_scale, x, batch, affine);
  auto bn = OneNode({C, H, W}, {C, H, W}, [&](ModelWriter& w, mv1::Node* n) {
    n->mutable_batch_norm()->set_scale(w.AddFloat("s", {C}, scale));
    n->mutable_batch_norm()->set_shift(w.AddFloat("b", {C}, shift));
  });
  RunAndCompare(*bn, x, batch, affine);
  auto r = OneNode({C, H, W}, {C, H, W},
                   [](ModelWriter&, mv1::Node* n) { n->mutable_relu(); });
  RunAndCompare(*r, x, batch, relu);
  auto t = OneNode({C, H, W}, {C, H, W}, [](ModelWriter&, mv1::Node* n) {
    n->mutable_ternarize()->set_threshold(0.5f);
  });
  RunAndCompare(*t, x, batch, tern);
  auto flat = OneNode({C, H, W}, {S},
                      [](ModelWriter&, mv1::Node* n) { n->mutable_flatten(); });
  RunAndCompare(*flat, x, batch, std::vector<double>(x.begin(), x.end()));
  auto softmax = OneNode({C, H, W}, {C, H, W}, [](ModelWriter&, mv1::Node* n) {
    n->mutable_softmax();
  });
  std::vector<double> sm(batch * S);
  for (int r0 = 0; r0 < batch * C * H; ++r0) {
    double sum = 0;
    for (int i = 0; i < W; ++i) sum += std::exp(double{x[r0 * W + i]});
    for (int i = 0; i < W; ++i)
      sm[r0 * W + i] = std::exp(double{x[r0 * W + i]}) / sum;
  }
  RunAndCompare(*softmax, x, batch, sm);
}

TEST(ElementwiseTest, ResidualAdd) {
  std::mt19937_64 rng(6);
  ModelWriter w("residual");
  w.AddInput("x", {4, 3}, false);
  w.AddNode("relu", {"x"}, "r")->mutable_relu();
  w.AddNode("add", {"x", "r"}, "y")->mutable_add();
  w.AddOutput("y", {4, 3});
  auto model = Compile(w);
  ASSERT_NE(model, nullptr);
  const std::vector<float> x = RandomVector(2 * 12, rng);
  std::vector<double> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = x[i] + std::max(0.0f, x[i]);
  RunAndCompare(*model, x, 2, want);
}

// A residual Add after a convolution is fused into its store (ResNet
// blocks) when the order allows it: conv -> add -> relu becomes one step in
// either operand order; a ReLU before the Add, or a BatchNorm after it, stays
// a separate step. Every variant matches the unfused arithmetic, FP32 and
// int8 (whose error here is well under 0.1).
TEST(ConvFusionTest, ResidualAddFusedIntoConvolution) {
  const int C = 6, H = 5, W = 21, K = C * 9;  // rows of whole vectors + tails
  enum Variant { kAddRelu, kSwappedAdd, kReluThenAdd, kAddThenBatchNorm };
  const std::vector<std::string> want_steps = {"conv+add+relu", "conv+add",
                                               "conv+relu", "conv+add"};
  for (int v = kAddRelu; v <= kAddThenBatchNorm; ++v) {
    std::mt19937_64 rng(20 + v);
    ModelWriter w("fusion");
    w.AddInput("x", {C, H, W}, false);
    mv1::Conv2dOp* cv = w.AddNode("conv", {"x"}, "c")->mutable_conv2d();
    cv->set_in_channels(C);
    cv->set_out_channels(C);
    cv->set_kernel_h(3);
    cv->set_kernel_w(3);
    cv->set_pad_h(1);
    cv->set_pad_w(1);
    const std::vector<float> bias = RandomVector(C, rng);
    cv->set_bias(w.AddFloat("conv.bias", {C}, bias));
    const std::vector<float> dense = AddWeights(
        w, cv->mutable_weights(), "conv", C, K, "flexor1_16_20_2", rng);
    const std::vector<float> bn_scale = RandomVector(C, rng, 0.5f, 1.5f);
    const std::vector<float> bn_shift = RandomVector(C, rng);
    std::string last;
    if (v == kAddRelu) {
      w.AddNode("add", {"c", "x"}, "a")->mutable_add();
      w.AddNode("relu", {"a"}, "y")->mutable_relu();
    } else if (v == kSwappedAdd) {
      w.AddNode("add", {"x", "c"}, "y")->mutable_add();
    } else if (v == kReluThenAdd) {
      w.AddNode("relu", {"c"}, "r")->mutable_relu();
      w.AddNode("add", {"r", "x"}, "y")->mutable_add();
    } else {
      w.AddNode("add", {"c", "x"}, "a")->mutable_add();
      mv1::Node* bn = w.AddNode("bn", {"a"}, "y");
      bn->mutable_batch_norm()->set_scale(w.AddFloat("s", {C}, bn_scale));
      bn->mutable_batch_norm()->set_shift(w.AddFloat("b", {C}, bn_shift));
    }
    w.AddOutput("y", {C, H, W});
    std::shared_ptr<const Model> model = Compile(w);
    ASSERT_NE(model, nullptr);
    const int batch = 3;
    const std::vector<float> x = RandomVector(batch * C * H * W, rng);
    std::vector<double> want(x.size());
    for (int n = 0; n < batch; ++n) {
      for (int o = 0; o < C; ++o) {
        for (int oy = 0; oy < H; ++oy) {
          for (int ox = 0; ox < W; ++ox) {
            double acc = bias[o];
            for (int c = 0; c < C; ++c) {
              for (int ky = 0; ky < 3; ++ky) {
                for (int kx = 0; kx < 3; ++kx) {
                  const int iy = oy + ky - 1, ix = ox + kx - 1;
                  if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                  acc += double{dense[o * K + (c * 3 + ky) * 3 + kx]} *
                         x[((n * C + c) * H + iy) * W + ix];
                }
              }
            }
            const size_t i = ((n * C + o) * H + oy) * W + ox;
            if (v == kAddRelu) {
              acc = std::max(acc + x[i], 0.0);
            } else if (v == kSwappedAdd) {
              acc += x[i];
            } else if (v == kReluThenAdd) {
              acc = std::max(acc, 0.0) + x[i];
            } else {
              acc = (acc + x[i]) * bn_scale[o] + bn_shift[o];
            }
            want[i] = acc;
          }
        }
      }
    }
    RunAndCompare(*model, x, batch, want);
    RunOptions int8;
    int8.matmul.activations = ActivationPrecision::kInt8;
    std::vector<float> y(want.size());
    ASSERT_TRUE(model->Run(x.data(), batch, y.data(), int8).ok());
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_NEAR(y[i], want[i], 0.1) << "variant " << v << " at " << i;
    }
    std::vector<Model::StepProfile> steps;
    ASSERT_TRUE(model->RunProfiled(x.data(), 1, y.data(), &steps).ok());
    ASSERT_FALSE(steps.empty());
    EXPECT_EQ(steps[0].name, want_steps[v]) << "variant " << v;
  }
}

// A sample holding Inf/NaN runs the exact FP32 path (IEEE propagation, as
// without int8), the other samples of the batch still run int8 (or int16).
TEST(ConvFusionTest, Int8SampleWithNanRunsFp32) {
  const int C = 8, H = 10, W = 10, O = 16, K = C * 9;
  std::mt19937_64 rng(31);
  ModelWriter w("nan");
  w.AddInput("x", {C, H, W}, false);
  mv1::Conv2dOp* cv = w.AddNode("conv", {"x"}, "y")->mutable_conv2d();
  cv->set_in_channels(C);
  cv->set_out_channels(O);
  cv->set_kernel_h(3);
  cv->set_kernel_w(3);
  cv->set_pad_h(1);
  cv->set_pad_w(1);
  AddWeights(w, cv->mutable_weights(), "conv", O, K, "flexor1_16_20_2", rng);
  w.AddOutput("y", {O, H, W});
  std::shared_ptr<const Model> model = Compile(w);
  ASSERT_NE(model, nullptr);
  const int64_t n = C * H * W, out = O * H * W;
  std::vector<float> x = RandomVector(2 * n, rng);
  x[5 * W + 5] = std::numeric_limits<float>::quiet_NaN();  // sample 0 only
  std::vector<float> exact(2 * out);
  ASSERT_TRUE(model->Run(x.data(), 2, exact.data()).ok());
  for (ActivationPrecision precision :
       {ActivationPrecision::kInt8, ActivationPrecision::kInt16}) {
    SCOPED_TRACE(ActivationPrecisionName(precision));
    std::vector<float> int8(2 * out);
    RunOptions options;
    options.matmul.activations = precision;
    ASSERT_TRUE(model->Run(x.data(), 2, int8.data(), options).ok());
    int nans = 0;
    for (int64_t i = 0; i < out; ++i) {
      ASSERT_EQ(std::isnan(exact[i]), std::isnan(int8[i])) << i;
      nans += std::isnan(exact[i]);
      // Exact arithmetic (look-up tables here, so the summation order may
      // differ from the default FP32 kernel).
      if (!std::isnan(exact[i])) {
        ASSERT_NEAR(exact[i], int8[i], 1e-5f * (1 + std::abs(exact[i]))) << i;
      }
    }
    EXPECT_GT(nans, 0);
    bool differs = false;  // sample 1 was quantised
    for (int64_t i = out; i < 2 * out; ++i) {
      ASSERT_FALSE(std::isnan(int8[i]));
      differs |= exact[i] != int8[i];
    }
    EXPECT_TRUE(differs);
  }
}

TEST(GxnorTest, TernaryActivationsTimesTernaryWeights) {
  std::mt19937_64 rng(8);
  for (auto [O, K, batch] : {std::tuple{7, 130, 3}, {1, 1, 1}, {5, 64, 2}}) {
    ModelWriter w("gxnor");
    w.AddInput("x", {K}, false);
    w.AddNode("tern", {"x"}, "t")->mutable_ternarize()->set_threshold(0.3f);
    mv1::DenseOp* d = w.AddNode("fc", {"t"}, "y")->mutable_dense();
    d->set_in_features(K);
    d->set_out_features(O);
    const std::vector<float> bias = RandomVector(O, rng);
    d->set_bias(w.AddFloat("fc.bias", {O}, bias));
    const std::vector<float> dense =
        AddWeights(w, d->mutable_weights(), "fc", O, K, "ternary", rng);
    w.AddOutput("y", {O});
    auto model = Compile(w);
    ASSERT_NE(model, nullptr);
    EXPECT_NE(model->Describe().find("gated-XNOR"), std::string::npos);
    const std::vector<float> x = RandomVector(batch * K, rng);
    std::vector<double> want(batch * O);
    for (int b = 0; b < batch; ++b) {
      for (int o = 0; o < O; ++o) {
        double acc = bias[o];
        for (int k = 0; k < K; ++k) {
          const float v = x[b * K + k];
          const int t = v > 0.3f ? 1 : (v < -0.3f ? -1 : 0);
          acc += double{dense[o * K + k]} * t;
        }
        want[b * O + o] = acc;
      }
    }
    RunAndCompare(*model, x, batch, want);
  }
}

// Weight layouts the kernels build (the taps kept transposed for the int8
// look-up) are counted once built, and only where the kernels use them: a
// CPU with the AVX2 LUT (the avx2/ run of this test on AVX-512 machines).
TEST(DerivedWeightsTest, TransposedTapsAreCountedAfterAnInt8Run) {
  RandomModelSpec spec;
  spec.arch = RandomArch::kMlp;
  spec.method = "binary1";  // one segment: every Dense layer qualifies
  absl::StatusOr<std::string> bytes = BuildRandomModel(spec);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<std::shared_ptr<const ModelFile>> file =
      ModelFile::FromBytes(*bytes, "derived");
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Compile(*file);
  ASSERT_TRUE(model.ok()) << model.status();
  const Model& m = **model;
  std::vector<float> in(4 * m.input_size(), 1.0f), out(4 * m.output_size());
  EXPECT_EQ(m.DerivedWeightBytes(), 0);
  ASSERT_TRUE(m.Run(in.data(), 1, out.data()).ok());
  EXPECT_EQ(m.DerivedWeightBytes(), 0) << "FP32 runs build nothing";
  RunOptions int8;
  int8.matmul.activations = ActivationPrecision::kInt8;
  ASSERT_TRUE(m.Run(in.data(), 1, out.data(), int8).ok());
  const int64_t derived = m.DerivedWeightBytes();
  if (GetKernelTable(SelectedIsa()).lut_i8 == nullptr) {
    EXPECT_EQ(derived, 0) << IsaName(SelectedIsa());
  } else {
    // About the stored bits again (blocks padded to 256 columns).
    EXPECT_GT(derived, m.stats().compressed_weight_bytes / 2);
    EXPECT_LT(derived, 2 * m.stats().compressed_weight_bytes);
  }
  ASSERT_TRUE(m.Run(in.data(), 4, out.data(), int8).ok());
  EXPECT_EQ(m.DerivedWeightBytes(), derived) << "built once";
}

TEST(GraphTest, RejectsBadBatchAndUnknownOp) {
  ModelWriter w("g");
  w.AddInput("x", {4}, false);
  w.AddNode("relu", {"x"}, "y")->mutable_relu();
  w.AddOutput("y", {4});
  auto model = Compile(w);
  std::vector<float> buf(8);
  EXPECT_EQ(model->Run(buf.data(), 0, buf.data()).code(),
            absl::StatusCode::kInvalidArgument);
  ModelWriter bad("g");
  bad.AddInput("x", {4}, false);
  bad.AddNode("nothing", {"x"}, "y");  // no op set
  bad.AddOutput("y", {4});
  auto file = ModelFile::FromBytes(*bad.Serialize(), "bad");
  ASSERT_TRUE(file.ok());
  absl::Status s = Model::Compile(*file).status();
  EXPECT_NE(s.message().find("nothing"), std::string::npos) << s;
}

// Mixed precision: RunOptions::step_activations from Model::StepActivations
// sets layers apart from the model's precision.
TEST(MixedPrecisionTest, StepActivationsSetLayersApart) {
  RandomModelSpec spec;
  spec.arch = RandomArch::kLeNet;
  spec.seed = 7;
  absl::StatusOr<std::string> bytes = BuildRandomModel(spec);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const std::shared_ptr<const Model> model = CompileBytes(*bytes);
  ASSERT_NE(model, nullptr);
  const Model& m = *model;
  const std::vector<std::string> layers = m.WeightLayerNames(true);
  ASSERT_EQ(layers,
            (std::vector<std::string>{"conv1", "conv2", "fc1", "fc2", "fc3"}));
  std::mt19937_64 rng(5);
  const int64_t batch = 3;
  const std::vector<float> x =
      RandomVector(batch * m.input_size(), rng, 0, 255);
  auto run = [&](ActivationPrecision base,
                 const std::vector<LayerActivations>& apart) {
    absl::StatusOr<std::vector<ActivationPrecision>> steps =
        m.StepActivations(base, apart);
    EXPECT_TRUE(steps.ok()) << steps.status();
    RunOptions options;
    options.matmul.activations = base;
    options.step_activations = *steps;
    std::vector<float> y(batch * m.output_size());
    EXPECT_TRUE(m.Run(x.data(), batch, y.data(), options).ok());
    return y;
  };
  const std::vector<float> y8 = run(ActivationPrecision::kInt8, {});
  const std::vector<float> y16 = run(ActivationPrecision::kInt16, {});
  ASSERT_NE(y8, y16);
  std::vector<LayerActivations> all8, all16;
  for (const std::string& l : layers) {
    all8.push_back({l, ActivationPrecision::kInt8});
    all16.push_back({l, ActivationPrecision::kInt16});
  }
  // Every layer set apart: the other precision, bit for bit.
  EXPECT_EQ(run(ActivationPrecision::kInt16, all8), y8);
  EXPECT_EQ(run(ActivationPrecision::kInt8, all16), y16);
  // One layer apart: neither.
  const std::vector<float> mixed =
      run(ActivationPrecision::kInt8, {{"conv2", ActivationPrecision::kInt16}});
  EXPECT_NE(mixed, y8);
  EXPECT_NE(mixed, y16);

  absl::StatusOr<std::vector<ActivationPrecision>> unknown = m.StepActivations(
      ActivationPrecision::kInt8, {{"normalize", ActivationPrecision::kInt16}});
  ASSERT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.status().message()),
              ::testing::HasSubstr("no Dense or Conv2d layer 'normalize'"));
  EXPECT_THAT(std::string(unknown.status().message()),
              ::testing::HasSubstr("conv1, conv2, fc1"));
  // A step list that does not fit the model is refused, not read past.
  const std::vector<ActivationPrecision> short_list(2,
                                                    ActivationPrecision::kInt8);
  RunOptions bad;
  bad.step_activations = short_list;
  std::vector<float> y(batch * m.output_size());
  EXPECT_EQ(m.Run(x.data(), batch, y.data(), bad).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MixedPrecisionTest, ParseLayerActivations) {
  absl::StatusOr<std::vector<LayerActivations>> parsed =
      ParseLayerActivations("block1_conv1=int16,fc=fp32");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, (std::vector<LayerActivations>{
                         {"block1_conv1", ActivationPrecision::kInt16},
                         {"fc", ActivationPrecision::kFloat32}}));
  EXPECT_EQ(LayerActivationsString(*parsed), "block1_conv1=int16,fc=fp32");
  EXPECT_EQ(ActivationsLabel(ActivationPrecision::kInt8, *parsed),
            "int8 (block1_conv1=int16,fc=fp32)");
  EXPECT_EQ(ActivationsLabel(ActivationPrecision::kInt16, {}), "int16");
  EXPECT_TRUE(ParseLayerActivations("")->empty());
  for (const char* bad : {"conv1", "=int8", "conv1=", "conv1=int4",
                          "conv1=int8,conv1=int16", "conv1=int8,"}) {
    EXPECT_EQ(ParseLayerActivations(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

}  // namespace
}  // namespace flexor
