#include "engine/codec/xor_network.h"

#include <bitset>

#include "gtest/gtest.h"

namespace flexor {
namespace {

TEST(XorNetworkTest, GeneratedRowsHaveTapsInRangeAndAreDistinct) {
  for (int n_tap : {1, 2, 3}) {
    for (auto [n_in, n_out] :
         {std::pair{16, 20}, {12, 20}, {8, 20}, {5, 7}, {40, 64}, {3, 3}}) {
      if (n_tap > n_in || ((n_tap == 1) != (n_in == n_out))) continue;
      SCOPED_TRACE(testing::Message()
                   << n_in << "/" << n_out << " tap " << n_tap);
      absl::StatusOr<XorNetwork> net =
          GenerateXorNetwork(n_in, n_out, n_tap, 7);
      ASSERT_TRUE(net.ok()) << net.status();
      EXPECT_TRUE(ValidateXorNetwork(*net).ok());
      ASSERT_EQ(net->rows.size(), static_cast<size_t>(n_out));
      for (uint64_t row : net->rows) {
        EXPECT_EQ(std::bitset<64>(row).count(), static_cast<size_t>(n_tap));
        EXPECT_LT(row, uint64_t{1} << n_in);
      }
    }
  }
}

TEST(XorNetworkTest, RankIsTheMaximumTheTapCountAllows) {
  // Even tap counts: at most n_in - 1 (DESIGN.md); odd: full rank n_in.
  EXPECT_EQ(Gf2Rank(*GenerateXorNetwork(16, 20, 2, 1)), 15);
  EXPECT_EQ(Gf2Rank(*GenerateXorNetwork(12, 20, 2, 1)), 11);
  EXPECT_EQ(Gf2Rank(*GenerateXorNetwork(8, 20, 2, 3)), 7);
  EXPECT_EQ(Gf2Rank(*GenerateXorNetwork(16, 20, 3, 1)), 16);
  EXPECT_EQ(Gf2Rank(XorNetwork::Identity(20)), 20);
}

TEST(XorNetworkTest, SameSeedSameNetworkDifferentSeedDifferentNetwork) {
  const XorNetwork a = *GenerateXorNetwork(16, 20, 2, 42);
  const XorNetwork b = *GenerateXorNetwork(16, 20, 2, 42);
  const XorNetwork c = *GenerateXorNetwork(16, 20, 2, 43);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_NE(a.rows, c.rows);
}

TEST(XorNetworkTest, GenerationRejectsImpossibleRequests) {
  EXPECT_FALSE(GenerateXorNetwork(0, 20, 2, 1).ok());
  EXPECT_FALSE(GenerateXorNetwork(21, 20, 2, 1).ok());
  EXPECT_FALSE(GenerateXorNetwork(16, 65, 2, 1).ok());
  EXPECT_FALSE(GenerateXorNetwork(4, 20, 2, 1).ok());  // C(4,2) = 6 < 20
  EXPECT_FALSE(GenerateXorNetwork(4, 4, 5, 1).ok());
}

TEST(XorNetworkTest, ValidationNamesTheProblem) {
  XorNetwork net = XorNetwork::Identity(4);
  net.n_out = 5;
  net.rows.push_back(1);  // repeats row 0
  absl::Status s = ValidateXorNetwork(net);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("repeats"), std::string::npos) << s;

  net = XorNetwork::Identity(4);
  net.rows[2] = uint64_t{1} << 4;  // tap 4 >= n_in
  s = ValidateXorNetwork(net);
  EXPECT_NE(s.message().find("n_in"), std::string::npos) << s;

  net = XorNetwork::Identity(4);
  net.rows[1] = 0;
  EXPECT_NE(ValidateXorNetwork(net).message().find("no taps"),
            std::string::npos);

  net = XorNetwork::Identity(4);
  net.rows.pop_back();
  EXPECT_NE(ValidateXorNetwork(net).message().find("rows"), std::string::npos);

  net = XorNetwork::Identity(4);
  net.n_in = 5;  // n_in > n_out
  EXPECT_FALSE(ValidateXorNetwork(net).ok());
}

}  // namespace
}  // namespace flexor
