// Reference decryption against an independent, naive GF(2) matrix-vector
// product computed from a dense 0/1 copy of M.
#include <random>
#include <vector>

#include "engine/codec/bit_layout.h"
#include "engine/codec/xor_network.h"
#include "gtest/gtest.h"

namespace flexor {
namespace {

struct Case {
  int n_in, n_out, n_tap;
  int64_t n;
};

// y = M x over GF(2) for one slice, M as a dense matrix of 0/1 entries.
std::vector<int> NaiveGf2MatVec(const std::vector<std::vector<int>>& m,
                                const std::vector<int>& x) {
  std::vector<int> y(m.size(), 0);
  for (size_t j = 0; j < m.size(); ++j) {
    for (size_t t = 0; t < x.size(); ++t) y[j] = (y[j] + m[j][t] * x[t]) % 2;
  }
  return y;
}

class DecryptTest : public testing::TestWithParam<Case> {};

TEST_P(DecryptTest, MatchesNaiveGf2Product) {
  const Case c = GetParam();
  std::mt19937_64 rng(c.n * 31 + c.n_in);
  XorNetwork net = c.n_in == c.n_out && c.n_tap == 1
                       ? XorNetwork::Identity(c.n_in)
                       : *GenerateXorNetwork(c.n_in, c.n_out, c.n_tap, rng());
  std::vector<std::vector<int>> m(c.n_out, std::vector<int>(c.n_in));
  for (int j = 0; j < c.n_out; ++j) {
    for (int t = 0; t < c.n_in; ++t) m[j][t] = (net.rows[j] >> t) & 1;
  }
  EncryptedBits enc = MakeEncryptedBits(c.n, net);
  std::vector<std::vector<int>> x(enc.slices, std::vector<int>(c.n_in));
  for (int64_t s = 0; s < enc.slices; ++s) {
    for (int t = 0; t < c.n_in; ++t) {
      x[s][t] = static_cast<int>(rng() & 1);
      SetBit(enc.words.data() + t * enc.words_per_vector, s, x[s][t]);
    }
  }
  const std::vector<uint64_t> bits =
      DecryptReference(net, enc.words.data(), enc.words_per_vector, c.n);
  ASSERT_EQ(bits.size(), static_cast<size_t>(WordsForBits(c.n)));
  for (int64_t s = 0; s < enc.slices; ++s) {
    const std::vector<int> y = NaiveGf2MatVec(m, x[s]);
    for (int j = 0; j < c.n_out; ++j) {
      const int64_t i = j * enc.slices + s;  // canonical strided layout
      if (i >= c.n) continue;                // padding weights
      ASSERT_EQ(GetBit(bits.data(), i), y[j] == 1)
          << "weight " << i << " slice " << s << " bit " << j;
    }
  }
  // Bits past n stay zero.
  for (int64_t i = c.n; i < static_cast<int64_t>(bits.size()) * 64; ++i) {
    ASSERT_FALSE(GetBit(bits.data(), i));
  }
}

INSTANTIATE_TEST_SUITE_P(
    AwkwardSizes, DecryptTest,
    testing::Values(Case{16, 20, 2, 1}, Case{16, 20, 2, 19},
                    Case{16, 20, 2, 20}, Case{16, 20, 2, 21},
                    Case{16, 20, 2, 1283}, Case{12, 20, 2, 64 * 20 + 7},
                    Case{8, 20, 2, 100000}, Case{16, 20, 3, 4097},
                    Case{5, 7, 2, 333}, Case{40, 64, 3, 64 * 64 * 3 + 1},
                    Case{1, 1, 1, 77}, Case{20, 20, 1, 999},
                    Case{64, 64, 1, 130}, Case{63, 64, 2, 12345}));

TEST(BitLayoutTest, PlainCodingIsRowMajorBits) {
  std::vector<uint8_t> bits(131);
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = (i * 7 + 3) % 5 == 0;
  const EncryptedBits enc = EncodePlain(bits);
  const std::vector<uint64_t> out = DecryptReference(
      XorNetwork::Plain(), enc.words.data(), enc.words_per_vector, 131);
  for (size_t i = 0; i < bits.size(); ++i) {
    EXPECT_EQ(GetBit(out.data(), i), bits[i] == 1) << i;
  }
}

}  // namespace
}  // namespace flexor
