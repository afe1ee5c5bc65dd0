// The codec traits table against the reference dequantisation: the binary
// planes every codec hands to the fused kernels must rebuild its weights.
#include "engine/kernels/codec_traits.h"

#include <cstdint>
#include <string>
#include <vector>

#include "engine/kernels/layer_weights.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace flexor {
namespace {

using testing_util::RandomBinaryLayer;
using testing_util::RandomDenseLayer;
using testing_util::RandomTernaryLayer;
using testing_util::SupportedIsas;

void ExpectPlanesRebuildWeights(const LayerWeights& w, KernelIsa isa,
                                const std::string& what) {
  const WeightCodecTraits& t = CodecTraits(w.kind);
  ASSERT_EQ(t.kind, w.kind);
  const int64_t O = w.out_features, K = w.in_features, kw = (K + 63) / 64;
  const std::vector<float> want = DequantizeReference(w);
  const int q = t.planes(w);
  ASSERT_GT(q, 0) << what;
  std::vector<double> got(static_cast<size_t>(O * K), 0.0);
  // Odd row ranges: the rows of a range start at bit 0 of their first word.
  for (int p = 0; p < q; ++p) {
    for (int64_t o0 = 0; o0 < O; o0 += 7) {
      const int64_t rows = std::min<int64_t>(7, O - o0);
      std::vector<uint64_t> bits(static_cast<size_t>(rows * kw));
      std::vector<float> alpha(static_cast<size_t>(rows));
      t.plane_rows(w, p, o0, rows, bits.data(), isa);
      t.plane_alphas(w, p, o0, rows, alpha.data());
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t k = 0; k < K; ++k) {
          const bool neg = (bits[r * kw + k / 64] >> (k % 64)) & 1;
          got[(o0 + r) * K + k] += neg ? -alpha[r] : alpha[r];
        }
      }
    }
  }
  for (int64_t i = 0; i < O * K; ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-6) << what << " index " << i;
  }
}

TEST(CodecTraitsTest, PlanesRebuildBinaryAndTernaryWeights) {
  for (KernelIsa isa : SupportedIsas()) {
    for (auto [O, K] :
         {std::pair<int64_t, int64_t>{1, 1}, {13, 77}, {20, 128}, {9, 200}}) {
      const auto b = RandomBinaryLayer(O, K, 2, {16, 20, 2}, O * 100 + K);
      ExpectPlanesRebuildWeights(b->w, isa, "binary");
      const auto t = RandomTernaryLayer(O, K, O * 100 + K + 1);
      ExpectPlanesRebuildWeights(t->w, isa, "ternary");
    }
  }
}

TEST(CodecTraitsTest, DenseHasNoPlanesAndSizesMatchTheLayout) {
  const auto d = RandomDenseLayer(5, 7, 1);
  EXPECT_EQ(CodecTraits(d->w.kind).planes(d->w), 0);
  EXPECT_EQ(d->w.BitsPerWeight(), 32.0);
  EXPECT_EQ(d->w.CompressedBytes(), 5 * 7 * 4);
  const auto t = RandomTernaryLayer(5, 70, 2);
  EXPECT_EQ(t->w.BitsPerWeight(), 2.0);
  EXPECT_EQ(t->w.CompressedBytes(), 2 * 5 * 2 * 8 + 5 * 4);
  const auto b = RandomBinaryLayer(10, 100, 2, {16, 20, 2}, 3);
  EXPECT_DOUBLE_EQ(b->w.BitsPerWeight(), 2 * 16.0 / 20.0);
  int64_t bytes = 0;
  for (const BinaryPlaneView& p : b->w.planes) {
    bytes += p.net.n_in * p.words_per_vector * 8 + 10 * 4;
  }
  EXPECT_EQ(b->w.CompressedBytes(), bytes);
  EXPECT_STREQ(CodecTraits(WeightCodecKind::kBinary).name, "binary");
}

}  // namespace
}  // namespace flexor
