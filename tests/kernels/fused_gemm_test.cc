// Fused decrypt + GEMM (every ISA and method) against the scalar reference on
// awkward shapes, plus thread-count independence.
#include "engine/kernels/fused_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "engine/kernels/matmul.h"
#include "engine/kernels/reference_kernels.h"
#include "engine/kernels/ternary_gxnor.h"
#include "engine/kernels/transposed_taps.h"
#include "gtest/gtest.h"
#include "tbb/task_arena.h"
#include "tests/kernels/kernel_test_util.h"

namespace flexor {
namespace {

using testing_util::NetSpec;
using testing_util::RandomBinaryLayer;
using testing_util::RandomDenseLayer;
using testing_util::RandomTernaryLayer;
using testing_util::RandomVector;
using testing_util::SupportedIsas;
using testing_util::Tolerances;

struct Shape {
  int64_t O, K;
};
const Shape kShapes[] = {{1, 1},    {1, 77},   {37, 1},   {5, 64},
                         {33, 200}, {130, 64}, {67, 129}, {300, 65}};
const int64_t kBatches[] = {1, 2, 5, 8, 17, 33, 257};
const NetSpec kNets[] = {
    {1, 1, 1}, {4, 4, 1}, {16, 20, 2}, {12, 20, 3}, {8, 20, 2}};

void ExpectNear(const std::vector<float>& got, const std::vector<float>& want,
                const std::vector<double>& tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << " index " << i;
    ASSERT_LE(std::fabs(static_cast<double>(got[i]) - want[i]), tol[i])
        << what << " index " << i << " got " << got[i] << " want " << want[i];
  }
}

using Param = std::tuple<KernelIsa, BinaryMethod>;

class FusedGemmTest : public ::testing::TestWithParam<Param> {
 protected:
  GemmOptions Options(int lut_vectors = 0) const {
    GemmOptions o;
    o.isa = std::get<0>(GetParam());
    o.method = std::get<1>(GetParam());
    o.lut_vectors = lut_vectors;
    return o;
  }
};

TEST_P(FusedGemmTest, BinaryMatchesReference) {
  uint64_t seed = 1;
  for (int q : {1, 2}) {
    for (const NetSpec& spec : kNets) {
      for (Shape s : kShapes) {
        const auto layer = RandomBinaryLayer(s.O, s.K, q, spec, ++seed);
        for (int64_t batch : kBatches) {
          const auto x = RandomVector(batch * s.K, ++seed);
          std::vector<float> want(batch * s.O), got(batch * s.O, NAN);
          MatmulReference(layer->w, x.data(), batch, want.data());
          BinaryCodedGemm(layer->w, 0, s.O, x.data(), batch, got.data(), s.O,
                          Options());
          ExpectNear(
              got, want, Tolerances(layer->w, x.data(), batch),
              testing::PrintToString(std::make_tuple(
                  q, spec.n_in, spec.n_out, spec.n_tap, s.O, s.K, batch)));
        }
      }
    }
  }
}

TEST_P(FusedGemmTest, LutBatchTilesOfEveryWidth) {
  const auto layer = RandomBinaryLayer(45, 130, 2, {16, 20, 2}, 9);
  for (int nv : {1, 2, 4}) {
    for (int64_t batch : {1, 3, 40, 70}) {
      const auto x = RandomVector(batch * 130, batch);
      std::vector<float> want(batch * 45), got(batch * 45, NAN);
      MatmulReference(layer->w, x.data(), batch, want.data());
      BinaryCodedGemm(layer->w, 0, 45, x.data(), batch, got.data(), 45,
                      Options(nv));
      ExpectNear(got, want, Tolerances(layer->w, x.data(), batch),
                 "nv " + std::to_string(nv));
    }
  }
}

TEST_P(FusedGemmTest, RowRangeWritesOnlyItsColumns) {
  const auto layer = RandomBinaryLayer(50, 96, 1, {16, 20, 2}, 5);
  const int64_t batch = 9;
  const auto x = RandomVector(batch * 96, 6);
  std::vector<float> want(batch * 50);
  MatmulReference(layer->w, x.data(), batch, want.data());
  std::vector<float> got(batch * 50, -7.0f);
  BinaryCodedGemm(layer->w, 10, 31, x.data(), batch, got.data(), 50, Options());
  const auto tol = Tolerances(layer->w, x.data(), batch);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t o = 0; o < 50; ++o) {
      const float g = got[b * 50 + o];
      if (o < 10 || o >= 31) {
        EXPECT_EQ(g, -7.0f);
      } else {
        EXPECT_LE(std::fabs(g - want[b * 50 + o]), tol[b * 50 + o]);
      }
    }
  }
}

TEST_P(FusedGemmTest, TernaryAsTwoBinaryPlanesMatchesReference) {
  uint64_t seed = 100;
  for (Shape s : kShapes) {
    const auto layer = RandomTernaryLayer(s.O, s.K, ++seed);
    for (int64_t batch : {1, 8, 33, 257}) {
      const auto x = RandomVector(batch * s.K, ++seed);
      std::vector<float> want(batch * s.O), got(batch * s.O, NAN);
      MatmulReference(layer->w, x.data(), batch, want.data());
      BinaryCodedGemm(layer->w, 0, s.O, x.data(), batch, got.data(), s.O,
                      Options());
      ExpectNear(got, want, Tolerances(layer->w, x.data(), batch),
                 "ternary O " + std::to_string(s.O) + " K " +
                     std::to_string(s.K) + " batch " + std::to_string(batch));
    }
  }
}

TEST_P(FusedGemmTest, ResultsDoNotDependOnThreadCount) {
  const auto layer = RandomBinaryLayer(700, 300, 2, {16, 20, 2}, 3);
  for (int64_t batch : {1, 40}) {
    const auto x = RandomVector(batch * 300, 4);
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2, 3}) {
      tbb::task_arena arena(threads);
      std::vector<float> y(batch * 700);
      arena.execute([&] {
        BinaryCodedGemm(layer->w, 0, 700, x.data(), batch, y.data(), 700,
                        Options());
      });
      results.push_back(std::move(y));
    }
    // Bitwise identical: every output is summed in the same order.
    EXPECT_EQ(0, std::memcmp(results[0].data(), results[1].data(),
                             results[0].size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(results[0].data(), results[2].data(),
                             results[0].size() * sizeof(float)));
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllIsasAndMethods, FusedGemmTest,
    ::testing::Combine(::testing::ValuesIn(SupportedIsas()),
                       ::testing::Values(BinaryMethod::kSignFma,
                                         BinaryMethod::kLut,
                                         BinaryMethod::kLutRows,
                                         BinaryMethod::kAuto)),
    [](const auto& info) {
      return std::string(IsaName(std::get<0>(info.param))) + "_" +
             MethodName(std::get<1>(info.param));
    });

// ------------------------------------------------------------ int8 path

// Error bound of the int8 activation path (activation_precision.h): with
// x = scale * q + e, |e| <= scale / 2, the integer dot products are exact,
// so |y_int8 - y| <= scale_b / 2 * sum_k |W[o, k]|, plus the float
// rounding of the FP32 epilogue and reference (Tolerances). The factor
// 1.001 covers the rounding of scale and 1/scale (< 1e-4 relative).
std::vector<double> Int8Bounds(const LayerWeights& w, const float* x,
                               int64_t batch) {
  const std::vector<float> dense = DequantizeReference(w);
  const int64_t O = w.out_features, K = w.in_features;
  std::vector<double> tol = Tolerances(w, x, batch);
  for (int64_t b = 0; b < batch; ++b) {
    double amax = 0;
    for (int64_t k = 0; k < K; ++k) {
      amax = std::max(amax, std::fabs(static_cast<double>(x[b * K + k])));
    }
    const double scale = amax / 127;
    for (int64_t o = 0; o < O; ++o) {
      double l1 = 0;
      for (int64_t k = 0; k < K; ++k) l1 += std::fabs(dense[o * K + k]);
      tol[b * O + o] += 1.001 * 0.5 * scale * l1;
    }
  }
  return tol;
}

GemmOptions Int8Options(KernelIsa isa) {
  GemmOptions o;
  o.isa = isa;
  o.method = BinaryMethod::kInt8Sign;
  o.activations = ActivationPrecision::kInt8;
  return o;
}

class Int8PathTest : public ::testing::TestWithParam<KernelIsa> {};

TEST_P(Int8PathTest, WithinQuantisationBoundAndBitExactWithPortable) {
  uint64_t seed = 500;
  // On AVX2 every batch here takes the LUT kernel; {19, 4500} runs it past
  // one 32-vector flush of its 16-bit sums.
  const Shape shapes[] = {{1, 1},    {1, 77},    {37, 1},
                          {5, 64},   {33, 200},  {67, 129},
                          {300, 65}, {45, 2100}, {19, 4500}};
  for (int q : {1, 2}) {
    for (const NetSpec& spec : kNets) {
      for (Shape s : shapes) {
        const auto layer = RandomBinaryLayer(s.O, s.K, q, spec, ++seed);
        for (int64_t batch : {1, 2, 3, 4, 5, 8, 9, 15, 17}) {
          const auto x = RandomVector(batch * s.K, ++seed);
          std::vector<float> want(batch * s.O), got(batch * s.O, NAN),
              portable(batch * s.O, NAN);
          MatmulReference(layer->w, x.data(), batch, want.data());
          BinaryCodedGemm(layer->w, 0, s.O, x.data(), batch, got.data(), s.O,
                          Int8Options(GetParam()));
          BinaryCodedGemm(layer->w, 0, s.O, x.data(), batch, portable.data(),
                          s.O, Int8Options(KernelIsa::kScalar));
          const std::string what = testing::PrintToString(std::make_tuple(
              q, spec.n_in, spec.n_out, spec.n_tap, s.O, s.K, batch));
          ExpectNear(got, want, Int8Bounds(layer->w, x.data(), batch), what);
          // Integer dot products and one shared epilogue: bit for bit.
          ASSERT_EQ(0, std::memcmp(got.data(), portable.data(),
                                   got.size() * sizeof(float)))
              << what;
        }
      }
    }
  }
}

TEST_P(Int8PathTest, TernaryWithinBound) {
  uint64_t seed = 600;
  for (Shape s : kShapes) {
    const auto layer = RandomTernaryLayer(s.O, s.K, ++seed);
    for (int64_t batch : {1, 7, 16}) {
      const auto x = RandomVector(batch * s.K, ++seed);
      std::vector<float> want(batch * s.O), got(batch * s.O, NAN);
      MatmulReference(layer->w, x.data(), batch, want.data());
      BinaryCodedGemm(layer->w, 0, s.O, x.data(), batch, got.data(), s.O,
                      Int8Options(GetParam()));
      ExpectNear(got, want, Int8Bounds(layer->w, x.data(), batch), "ternary");
    }
  }
}

TEST_P(Int8PathTest, ExactWhenActivationsAreSmallIntegers) {
  // Activations already on the int8 grid (max |x| = 127, so scale = 1):
  // quantisation is lossless and only float rounding may remain. A kernel
  // that drops or double-counts any weight fails this.
  const auto layer = RandomBinaryLayer(77, 1000, 2, {16, 20, 2}, 31);
  const int64_t batch = 6, K = 1000;
  std::mt19937_64 rng(32);
  std::vector<float> x(batch * K);
  for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 255) - 127);
  for (int64_t b = 0; b < batch; ++b) x[b * K + b] = 127.f;
  std::vector<float> want(batch * 77), got(batch * 77, NAN);
  MatmulReference(layer->w, x.data(), batch, want.data());
  BinaryCodedGemm(layer->w, 0, 77, x.data(), batch, got.data(), 77,
                  Int8Options(GetParam()));
  ExpectNear(got, want, Tolerances(layer->w, x.data(), batch), "integers");
}

TEST_P(Int8PathTest, ResultsDoNotDependOnThreadCountOrRowRange) {
  const auto layer = RandomBinaryLayer(700, 300, 2, {16, 20, 2}, 3);
  // 70 and 130 cross the driver's 64-row batch chunks (large batches use
  // this path on AVX-512 VNNI).
  for (int64_t batch : {5, 70, 130}) {
    const auto x = RandomVector(batch * 300, 4 + batch);
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2, 3}) {
      tbb::task_arena arena(threads);
      std::vector<float> y(batch * 700);
      arena.execute([&] {
        BinaryCodedGemm(layer->w, 0, 700, x.data(), batch, y.data(), 700,
                        Int8Options(GetParam()));
      });
      results.push_back(std::move(y));
    }
    EXPECT_EQ(0, std::memcmp(results[0].data(), results[1].data(),
                             results[0].size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(results[0].data(), results[2].data(),
                             results[0].size() * sizeof(float)));
    std::vector<float> want(batch * 700);
    MatmulReference(layer->w, x.data(), batch, want.data());
    ExpectNear(results[0], want, Int8Bounds(layer->w, x.data(), batch),
               "batch " + std::to_string(batch));
    // A row range writes only its columns and the same values.
    std::vector<float> part(batch * 700, -7.0f);
    BinaryCodedGemm(layer->w, 123, 456, x.data(), batch, part.data(), 700,
                    Int8Options(GetParam()));
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t o = 0; o < 700; ++o) {
        const float w = o < 123 || o >= 456 ? -7.0f : results[0][b * 700 + o];
        ASSERT_EQ(part[b * 700 + o], w) << b << " " << o;
      }
    }
  }
}

TEST_P(Int8PathTest, NonFiniteInputsFallBackToFloat) {
  const auto layer = RandomBinaryLayer(40, 100, 1, {16, 20, 2}, 8);
  const int64_t batch = 3;
  auto x = RandomVector(batch * 100, 9);
  x[1 * 100 + 17] = NAN;
  x[2 * 100 + 3] = INFINITY;
  std::vector<float> got(batch * 40), fp32(batch * 40);
  BinaryCodedGemm(layer->w, 0, 40, x.data(), batch, got.data(), 40,
                  Int8Options(GetParam()));
  GemmOptions f;
  f.isa = GetParam();
  BinaryCodedGemm(layer->w, 0, 40, x.data(), batch, fp32.data(), 40, f);
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(fp32[i])) {
      ASSERT_TRUE(std::isnan(got[i])) << i;
    } else {
      ASSERT_EQ(got[i], fp32[i]) << i;
    }
  }
  for (int64_t o = 0; o < 40; ++o) {
    EXPECT_TRUE(std::isnan(got[40 + o]));
    EXPECT_FALSE(std::isfinite(got[80 + o]));
  }
}

// Taps kept transposed: the int8 LUT over them gives the decrypted-tile
// path's outputs bit for bit. Row-aligned segments (O a multiple of N_out
// gives S = (O / N_out) K) and segments starting mid-row: the split inside
// a 256-column chunk, on a chunk boundary (105 x 512: b_1 = 256) and in the
// last chunk; partial 16-row blocks at segment ends, K not a multiple of
// 64, two planes, plain and identity codes, batches past one chunk and row
// ranges that cut blocks.
TEST(Int8TransposedTapsTest, SameOutputsAsTheDecryptedTilePath) {
  if (!IsaSupported(KernelIsa::kAvx2)) GTEST_SKIP() << "no AVX2";
  struct Case {
    int64_t O, K;
    NetSpec spec;
    int q;
  };
  const Case cases[] = {{40, 100, {16, 20, 2}, 1},  {340, 256, {16, 20, 2}, 1},
                        {400, 130, {8, 10, 2}, 1},  {200, 64, {12, 20, 3}, 2},
                        {320, 512, {16, 20, 2}, 1}, {37, 77, {1, 1, 1}, 1},
                        {44, 65, {4, 4, 1}, 2},     {60, 1000, {16, 20, 4}, 1},
                        {64, 100, {16, 20, 2}, 1},  {105, 512, {8, 10, 2}, 1},
                        {333, 700, {12, 20, 3}, 2}, {97, 1031, {8, 10, 2}, 1},
                        {250, 4096, {8, 10, 2}, 1}, {41, 300, {5, 9, 2}, 1},
                        {1003, 300, {8, 10, 2}, 1}, {2603, 64, {8, 10, 2}, 1}};
  uint64_t seed = 900;
  for (const Case& c : cases) {
    const auto layer = RandomBinaryLayer(c.O, c.K, c.q, c.spec, ++seed);
    LayerWeights fast = layer->w;
    const std::string what = testing::PrintToString(
        std::make_tuple(c.O, c.K, c.spec.n_in, c.spec.n_out, c.q));
    // Any number of tap rows (by default only segments of 128 or more
    // that start mid-row take the path).
    ASSERT_TRUE(AttachTransposedTaps(fast, KernelIsa::kAvx2, 1)) << what;
    ASSERT_GT(fast.CompressedBytes(), layer->w.CompressedBytes()) << what;
    // 16 threads split segments into several runs of blocks (2603 x 64: 261
    // tap rows per segment, two runs).
    for (int threads : {2, 16}) {
      tbb::task_arena arena(threads);
      for (int64_t batch : {1, 3, 15, 16, 17}) {
        const auto x = RandomVector(batch * c.K, ++seed);
        for (const auto& [r0, r1] : {std::pair<int64_t, int64_t>{0, c.O},
                                     std::pair<int64_t, int64_t>{3, c.O - 2}}) {
          std::vector<float> want(batch * c.O, NAN), got(batch * c.O, NAN);
          GemmOptions o = Int8Options(KernelIsa::kAvx2);
          BinaryCodedGemm(layer->w, r0, r1, x.data(), batch, want.data(), c.O,
                          o);
          arena.execute([&] {
            BinaryCodedGemm(fast, r0, r1, x.data(), batch, got.data(), c.O, o);
          });
          ASSERT_EQ(0, std::memcmp(got.data(), want.data(),
                                   got.size() * sizeof(float)))
              << what << " threads " << threads << " batch " << batch
              << " rows " << r0 << "-" << r1;
        }
      }
    }
  }
}

// Only where segments hold a row at least (S >= K, so a row meets at most
// two segments) and the ISA has the LUT kernel.
TEST(Int8TransposedTapsTest, OnlyForSegmentsOfARowOrMoreAndTheIsaHasTheLut) {
  const auto short_segments = RandomBinaryLayer(5, 100, 1, {16, 20, 2}, 1);
  ASSERT_LT(short_segments->w.planes[0].slices, 100);
  LayerWeights w = short_segments->w;
  EXPECT_FALSE(AttachTransposedTaps(w, KernelIsa::kAvx2));
  EXPECT_EQ(w.planes[0].transposed, nullptr);
  const auto aligned = RandomBinaryLayer(40, 100, 1, {16, 20, 2}, 2);
  for (KernelIsa isa : {KernelIsa::kScalar, KernelIsa::kAvx512}) {
    if (!IsaSupported(isa)) continue;
    LayerWeights v = aligned->w;
    EXPECT_FALSE(AttachTransposedTaps(v, isa)) << IsaName(isa);
  }
  // Segments that start mid-row: only with kMinSplitTapRows tap rows.
  const auto few_rows = RandomBinaryLayer(1003, 300, 1, {8, 10, 2}, 4);
  ASSERT_NE(few_rows->w.planes[0].slices % 300, 0);
  LayerWeights f = few_rows->w;
  EXPECT_FALSE(AttachTransposedTaps(f, KernelIsa::kAvx2));
  EXPECT_TRUE(AttachTransposedTaps(f, KernelIsa::kAvx2, 100));
  const auto many_rows = RandomBinaryLayer(1303, 100, 1, {8, 10, 2}, 5);
  LayerWeights m = many_rows->w;
  EXPECT_TRUE(AttachTransposedTaps(m, KernelIsa::kAvx2));
  const auto dense = RandomDenseLayer(40, 100, 3);
  LayerWeights d = dense->w;
  EXPECT_FALSE(AttachTransposedTaps(d, KernelIsa::kAvx2));
}

INSTANTIATE_TEST_SUITE_P(AllIsas, Int8PathTest,
                         ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& info) {
                           return std::string(IsaName(info.param));
                         });

TEST(QuantizeActivationsInt8Test, ScaleRoundingPaddingAndSums) {
  // max |x| = 127 -> scale 1: ties round to even, padding is zero.
  const float x[2][5] = {{127.f, 0.5f, 1.5f, -2.5f, -3.4f},
                         {0.f, 0.f, 0.f, 0.f, 0.f}};
  int8_t q[2][8];
  float scale[2];
  int32_t sum[2];
  ASSERT_TRUE(QuantizeActivationsInt8(&x[0][0], 2, 5, 8, &q[0][0], scale, sum));
  EXPECT_EQ(scale[0], 1.0f);
  const int8_t want[8] = {127, 0, 2, -2, -3, 0, 0, 0};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(q[0][i], want[i]) << i;
  EXPECT_EQ(sum[0], 127 + 2 - 2 - 3);
  EXPECT_EQ(scale[1], 0.0f);
  EXPECT_EQ(sum[1], 0);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(q[1][i], 0);
  // Any scale: every element within scale / 2 and the max maps to +-127.
  const auto v = RandomVector(999, 5);
  std::vector<int8_t> qv(1024);
  float s;
  int32_t total;
  ASSERT_TRUE(
      QuantizeActivationsInt8(v.data(), 1, 999, 1024, qv.data(), &s, &total));
  int32_t check = 0, extreme = 0;
  for (int i = 0; i < 999; ++i) {
    EXPECT_LE(std::fabs(v[i] - s * qv[i]), 0.5001 * s) << i;
    check += qv[i];
    extreme = std::max(extreme, std::abs(static_cast<int32_t>(qv[i])));
  }
  EXPECT_EQ(check, total);
  EXPECT_EQ(extreme, 127);
  // Tiny rows (127 / max|x| overflows float; denormals): finite, exact
  // signs, max maps to 127.
  const float tiny[4] = {1e-38f, -3e-39f, 0.f, 2e-45f};
  ASSERT_TRUE(QuantizeActivationsInt8(tiny, 1, 4, 64, qv.data(), &s, &total));
  EXPECT_TRUE(std::isfinite(s));
  EXPECT_GT(s, 0.f);
  EXPECT_EQ(qv[0], 127);
  EXPECT_EQ(qv[1], -38);  // -3e-39 / (1e-38 / 127) = -38.1
  EXPECT_EQ(qv[2], 0);
  EXPECT_EQ(qv[3], 0);
  const float bad[3] = {1.f, NAN, 2.f};
  EXPECT_FALSE(QuantizeActivationsInt8(bad, 1, 3, 64, qv.data(), &s, &total));
}

TEST(Int8AutoTest, AutoUsesInt8OnlyForSmallBatchesWhenAllowed) {
  for (KernelIsa isa : SupportedIsas()) {
    EXPECT_EQ(ChooseMethod(isa, 1, 100, 100, ActivationPrecision::kInt8),
              BinaryMethod::kInt8Sign);
    EXPECT_EQ(
        ChooseMethod(isa, kInt8MaxBatch, 100, 100, ActivationPrecision::kInt8),
        BinaryMethod::kInt8Sign);
    // Larger batches: int8 only where VPDPBUSD makes it the faster kernel.
    const bool vnni = isa == KernelIsa::kAvx512 && HasAvx512Vnni();
    EXPECT_EQ(ChooseMethod(isa, kInt8MaxBatch + 1, 100, 100,
                           ActivationPrecision::kInt8),
              vnni ? BinaryMethod::kInt8Sign
                   : ChooseMethod(isa, kInt8MaxBatch + 1, 100, 100));
    EXPECT_EQ(ChooseMethod(isa, 128, 100, 100, ActivationPrecision::kInt8),
              vnni ? BinaryMethod::kInt8Sign : BinaryMethod::kLut);
    EXPECT_NE(ChooseMethod(isa, 1, 100, 100, ActivationPrecision::kFloat32),
              BinaryMethod::kInt8Sign);
  }
  for (KernelIsa isa : SupportedIsas()) {
    const std::string name = Int8KernelName(isa, 1);
    if (isa == KernelIsa::kAvx2) {
      // The LUT kernel at every int8 batch.
      EXPECT_EQ(name, "avx2_lut");
      EXPECT_EQ(std::string(Int8KernelName(isa, kInt8MaxBatch)), "avx2_lut");
    }
    if (isa == KernelIsa::kScalar) EXPECT_EQ(name, "portable");
    if (isa == KernelIsa::kAvx512) {
      EXPECT_EQ(name, HasAvx512Vnni() ? "avx512_vnni" : "avx2_maddubs");
    }
  }
  // Matmul with int8 options runs the int8 path (same bits as the kernel
  // called directly); without options it stays FP32 (unless the process
  // default was changed by FLEXOR_ACTIVATION_PRECISION).
  const auto layer = RandomBinaryLayer(50, 300, 1, {16, 20, 2}, 12);
  const auto x = RandomVector(3 * 300, 13);
  std::vector<float> via_matmul(150), direct(150), fp32(150), plain(150);
  MatmulOptions mo;
  mo.activations = ActivationPrecision::kInt8;
  Matmul(layer->w, x.data(), 3, via_matmul.data(), KernelPath::kAuto, mo);
  GemmOptions go;
  go.activations = ActivationPrecision::kInt8;
  BinaryCodedGemm(layer->w, 0, 50, x.data(), 3, direct.data(), 50, go);
  EXPECT_EQ(0, std::memcmp(via_matmul.data(), direct.data(), 150 * 4));
  BinaryCodedGemm(layer->w, 0, 50, x.data(), 3, fp32.data(), 50);
  Matmul(layer->w, x.data(), 3, plain.data(), KernelPath::kAuto,
         MatmulOptions());
  EXPECT_EQ(0, std::memcmp(plain.data(), fp32.data(), 150 * 4));
  EXPECT_NE(0, std::memcmp(direct.data(), fp32.data(), 150 * 4));
}

class DenseAndGxnorTest : public ::testing::TestWithParam<KernelIsa> {};

TEST_P(DenseAndGxnorTest, DenseMatchesReference) {
  GemmOptions options;
  options.isa = GetParam();
  uint64_t seed = 50;
  for (Shape s : kShapes) {
    const auto layer = RandomDenseLayer(s.O, s.K, ++seed);
    for (int64_t batch : {1, 5, 257}) {
      const auto x = RandomVector(batch * s.K, ++seed);
      std::vector<float> want(batch * s.O), got(batch * s.O, NAN);
      MatmulReference(layer->w, x.data(), batch, want.data());
      DenseGemm(layer->w, 0, s.O, x.data(), batch, got.data(), s.O, options);
      ExpectNear(got, want, Tolerances(layer->w, x.data(), batch), "dense");
    }
  }
}

TEST_P(DenseAndGxnorTest, GxnorMatchesReference) {
  uint64_t seed = 70;
  for (Shape s : kShapes) {
    const auto layer = RandomTernaryLayer(s.O, s.K, ++seed);
    for (int64_t batch : {1, 3, 257}) {
      // Ternary activations: another random ternary "layer" of batch rows.
      const auto act = RandomTernaryLayer(batch, s.K, ++seed);
      std::vector<float> want(batch * s.O), got(batch * s.O, NAN);
      TernaryGxnorReference(layer->w, act->nz.data(), act->sign.data(), batch,
                            want.data());
      TernaryGxnorGemm(layer->w, act->nz.data(), act->sign.data(), batch,
                       got.data(), GetParam());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_FLOAT_EQ(got[i], want[i]) << "index " << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, DenseAndGxnorTest,
                         ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& info) {
                           return std::string(IsaName(info.param));
                         });

TEST(MatmulTest, AutoPathMatchesReferenceForEveryCodec) {
  const auto binary = RandomBinaryLayer(77, 150, 2, {16, 20, 2}, 1);
  const auto ternary = RandomTernaryLayer(77, 150, 2);
  const auto dense = RandomDenseLayer(77, 150, 3);
  for (const LayerWeights* w : {&binary->w, &ternary->w, &dense->w}) {
    for (int64_t batch : {1, 32, 257}) {
      const auto x = RandomVector(batch * 150, batch);
      std::vector<float> want(batch * 77), got(batch * 77, NAN);
      Matmul(*w, x.data(), batch, want.data(), KernelPath::kReference);
      Matmul(*w, x.data(), batch, got.data(), KernelPath::kAuto);
      ExpectNear(got, want, Tolerances(*w, x.data(), batch), "matmul");
    }
  }
  const auto act = RandomTernaryLayer(5, 150, 9);
  std::vector<float> want(5 * 77), got(5 * 77);
  TernaryGxnor(ternary->w, act->nz.data(), act->sign.data(), 5, want.data(),
               KernelPath::kReference);
  TernaryGxnor(ternary->w, act->nz.data(), act->sign.data(), 5, got.data(),
               KernelPath::kAuto);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_FLOAT_EQ(got[i], want[i]);
  EXPECT_NE(std::string(SelectedKernelIsaName()), "");
}

}  // namespace
}  // namespace flexor
