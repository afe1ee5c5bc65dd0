// Word-wide decryption (every ISA) against the bit-by-bit DecryptReference.
#include <cstdint>
#include <vector>

#include "engine/codec/bit_layout.h"
#include "engine/kernels/decrypt.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace flexor {
namespace {

using testing_util::NetSpec;
using testing_util::RandomBinaryLayer;
using testing_util::SupportedIsas;

const NetSpec kNets[] = {{1, 1, 1},  {4, 4, 1}, {16, 20, 2}, {12, 20, 3},
                         {8, 20, 2}, {5, 9, 2}, {30, 40, 3}};

class FastDecryptTest : public ::testing::TestWithParam<KernelIsa> {};

TEST_P(FastDecryptTest, RangesRowsAndPlaneMatchReference) {
  const KernelIsa isa = GetParam();
  struct Shape {
    int64_t O, K;
  };
  for (const NetSpec& spec : kNets) {
    for (Shape s : {Shape{1, 1}, Shape{1, 77}, Shape{37, 1}, Shape{13, 64},
                    Shape{33, 200}, Shape{130, 129}, Shape{64, 1024}}) {
      const auto layer = RandomBinaryLayer(s.O, s.K, 1, spec, s.O * 31 + s.K);
      const BinaryPlaneView& plane = layer->w.planes[0];
      const int64_t n = s.O * s.K;
      const std::vector<uint64_t> ref =
          DecryptReference(plane.net, plane.stored, plane.words_per_vector, n);
      SCOPED_TRACE(testing::Message()
                   << "net " << spec.n_in << "/" << spec.n_out << "/"
                   << spec.n_tap << " O " << s.O << " K " << s.K);
      // Whole plane, tiled.
      std::vector<uint64_t> all(WordsForBits(n) + 1, ~uint64_t{0});
      DecryptPlane(plane, n, all.data(), isa);
      for (int64_t i = 0; i < WordsForBits(n); ++i) ASSERT_EQ(all[i], ref[i]);
      // Arbitrary ranges, crossing segment boundaries.
      for (int64_t first : {int64_t{0}, int64_t{1}, n / 3, n - 1}) {
        for (int64_t count : {int64_t{1}, int64_t{63}, int64_t{64}, int64_t{65},
                              n / 2 + 7, n}) {
          if (first + count > n || count <= 0) continue;
          std::vector<uint64_t> out(WordsForBits(count), ~uint64_t{0});
          DecryptRange(plane, first, count, out.data(), isa);
          for (int64_t i = 0; i < WordsForBits(count) * 64; ++i) {
            const bool want = i < count && GetBit(ref.data(), first + i);
            ASSERT_EQ(GetBit(out.data(), i), want)
                << "first " << first << " count " << count << " bit " << i;
          }
        }
      }
      // Row tiles: every row starts at bit 0 of its first word.
      const int64_t row_words = WordsForBits(s.K);
      for (int64_t r0 : {int64_t{0}, s.O / 2}) {
        const int64_t rows = s.O - r0;
        std::vector<uint64_t> out(rows * row_words, ~uint64_t{0});
        DecryptRows(plane, s.K, r0, rows, out.data(), isa);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t k = 0; k < row_words * 64; ++k) {
            const bool want = k < s.K && GetBit(ref.data(), (r0 + r) * s.K + k);
            ASSERT_EQ(GetBit(out.data() + r * row_words, k), want)
                << "row " << r0 + r << " k " << k;
          }
        }
      }
    }
  }
}

// A plane past DecryptPlane's streaming threshold (1 MiB of output), with
// segments starting mid-word.
TEST_P(FastDecryptTest, LargePlaneMatchesReference) {
  const KernelIsa isa = GetParam();
  for (const NetSpec& spec : {NetSpec{8, 10, 2}, NetSpec{12, 20, 3}}) {
    const int64_t O = 1031, K = 8209, n = O * K;
    ASSERT_GT(n / 8, int64_t{1} << 20);
    const auto layer = RandomBinaryLayer(O, K, 1, spec, spec.n_out);
    const BinaryPlaneView& plane = layer->w.planes[0];
    const std::vector<uint64_t> ref =
        DecryptReference(plane.net, plane.stored, plane.words_per_vector, n);
    // Tiles end on the output's cache lines: other word offsets from a line
    // give other tile boundaries.
    for (int64_t offset : {0, 1, 5}) {
      std::vector<uint64_t> all(WordsForBits(n) + offset + 1, ~uint64_t{0});
      uint64_t* out = all.data() + offset;
      DecryptPlane(plane, n, out, isa);
      for (int64_t i = 0; i < WordsForBits(n); ++i) {
        ASSERT_EQ(out[i], ref[i]) << "net " << spec.n_in << "/" << spec.n_out
                                  << " offset " << offset << " word " << i;
      }
      EXPECT_EQ(out[WordsForBits(n)], ~uint64_t{0}) << "wrote past the end";
      if (offset > 0) EXPECT_EQ(out[-1], ~uint64_t{0}) << "wrote before";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, FastDecryptTest,
                         ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& info) {
                           return std::string(IsaName(info.param));
                         });

}  // namespace
}  // namespace flexor
