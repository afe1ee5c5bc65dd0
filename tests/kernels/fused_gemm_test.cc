// Fused decrypt + GEMM (every ISA and method) against the scalar reference on
// awkward shapes, plus thread-count independence.
#include "engine/kernels/fused_gemm.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "engine/kernels/matmul.h"
#include "engine/kernels/reference_kernels.h"
#include "engine/kernels/ternary_gxnor.h"
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
