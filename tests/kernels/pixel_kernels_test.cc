// The pixel-tiled convolution kernels (im2col, dense FMA, epilogue store)
// of every supported ISA against plain scalar code, on awkward shapes:
// pieces split at tile boundaries, padding, strides 1-3, runs of 1..40.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "engine/kernels/conv_gemm.h"
#include "engine/kernels/int8_conv.h"
#include "engine/kernels/microkernels.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace flexor {
namespace {

using testing_util::RandomVector;
using testing_util::SupportedIsas;

struct Geometry {
  int64_t C, H, W, k, stride, pad;
};

// The im2col plan of geometry g with k_rows rows (or channel groups) per
// tile; pieces must outlive it.
Im2colPlan PlanFor(const Geometry& g, int64_t k_rows, int64_t lanes,
                   int64_t pixels, const std::vector<Im2colPiece>& pieces) {
  Im2colPlan plan;
  plan.channels = g.C;
  plan.height = g.H;
  plan.width = g.W;
  plan.kernel_h = plan.kernel_w = g.k;
  plan.stride_h = plan.stride_w = g.stride;
  plan.pad_h = plan.pad_w = g.pad;
  plan.k = g.C * g.k * g.k;
  plan.k_rows = k_rows;
  plan.lanes = lanes;
  plan.tiles = (pixels + lanes - 1) / lanes;
  plan.pieces = pieces.data();
  plan.num_pieces = static_cast<int64_t>(pieces.size());
  return plan;
}

class PixelKernelTest : public ::testing::TestWithParam<KernelIsa> {
 protected:
  const PixelKernelTable& pt() const { return GetPixelKernelTable(GetParam()); }
};

TEST_P(PixelKernelTest, Im2colMatchesDirectIndexing) {
  const int64_t lanes = 2 * GetKernelTable(GetParam()).lanes;
  for (const Geometry& g :
       {Geometry{1, 28, 28, 5, 1, 0}, Geometry{32, 12, 12, 5, 1, 0},
        Geometry{16, 28, 28, 3, 1, 1}, Geometry{16, 28, 28, 3, 2, 1},
        Geometry{16, 28, 28, 1, 2, 0}, Geometry{3, 9, 7, 3, 2, 1},
        Geometry{2, 40, 37, 4, 3, 2}, Geometry{5, 13, 11, 3, 1, 2},
        Geometry{4, 1, 50, 1, 1, 0}, Geometry{3, 33, 35, 2, 2, 0}}) {
    const int64_t Ho = (g.H + 2 * g.pad - g.k) / g.stride + 1;
    const int64_t Wo = (g.W + 2 * g.pad - g.k) / g.stride + 1;
    const int64_t P = Ho * Wo, K = g.C * g.k * g.k;
    const std::vector<Im2colPiece> pieces = PlanIm2colPieces(Ho, Wo, lanes);
    // Bit-coded layout: K rounded up to 64, plus a spare row.
    const Im2colPlan plan =
        PlanFor(g, (K + 63) / 64 * 64 + 1, lanes, P, pieces);
    const std::vector<float> x = RandomVector(g.C * g.H * g.W, K + P);
    std::vector<float> cols(plan.tiles * plan.k_rows * lanes + kPixelColsSlack,
                            12345.0f);
    std::vector<float> work(Im2colWorkFloats(plan) + 1, 777.0f);
    pt().im2col(plan, x.data(), cols.data(), work.data());
    for (int64_t p = 0; p < P; ++p) {
      const int64_t oy = p / Wo, ox = p % Wo;
      const float* tile = cols.data() + (p / lanes) * plan.k_rows * lanes;
      for (int64_t k = 0; k < plan.k_rows - 1; ++k) {
        float want = 0.0f;
        if (k < K) {
          const int64_t c = k / (g.k * g.k), ky = (k / g.k) % g.k, kx = k % g.k;
          const int64_t iy = oy * g.stride + ky - g.pad;
          const int64_t ix = ox * g.stride + kx - g.pad;
          if (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W) {
            want = x[(c * g.H + iy) * g.W + ix];
          }
        }
        ASSERT_EQ(tile[k * lanes + p % lanes], want)
            << "C" << g.C << " H" << g.H << " W" << g.W << " k" << g.k << " s"
            << g.stride << " pad" << g.pad << ": pixel " << p << " row " << k;
      }
    }
  }
}

// Rows kk of a gathered operand at base + offs[kk], scattered over a
// bigger buffer in a shuffled order (as the implicit GEMM reads them).
std::vector<int64_t> ShuffledOffsets(int64_t rows, int64_t lanes,
                                     uint64_t seed) {
  std::vector<int64_t> offs(rows);
  for (int64_t i = 0; i < rows; ++i) offs[i] = i * (lanes + 3) + 1;
  std::shuffle(offs.begin(), offs.end(), std::mt19937_64(seed));
  return offs;
}

TEST_P(PixelKernelTest, DenseKnMatchesScalarDot) {
  const int64_t kl = GetKernelTable(GetParam()).lanes;
  for (int64_t lanes : {kl, 2 * kl}) {
    for (int64_t rows : {1, 3, 8, 11, 13, 32}) {
      for (int64_t k : {1, 5, 25, 70}) {
        const std::vector<float> w = RandomVector(rows * (k + 3), rows + k);
        const std::vector<float> x = RandomVector(k * (lanes + 3) + 1, k);
        const std::vector<int64_t> offs = ShuffledOffsets(k, lanes, k + rows);
        std::vector<float> y(rows * lanes, -1.0f);
        pt().dense_kn(w.data(), k + 3, rows, k, x.data(), offs.data(), lanes,
                      y.data());
        // Null offsets: consecutive rows, the same numbers.
        std::vector<float> packed(k * lanes), y2(rows * lanes, -2.0f);
        for (int64_t i = 0; i < k; ++i) {
          std::copy(x.begin() + offs[i], x.begin() + offs[i] + lanes,
                    packed.begin() + i * lanes);
        }
        pt().dense_kn(w.data(), k + 3, rows, k, packed.data(), nullptr, lanes,
                      y2.data());
        ASSERT_EQ(y2, y) << "rows " << rows << " k " << k;
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t l = 0; l < lanes; ++l) {
            double want = 0, mag = 0;
            for (int64_t i = 0; i < k; ++i) {
              const double t = double{w[r * (k + 3) + i]} * x[offs[i] + l];
              want += t;
              mag += std::abs(t);
            }
            ASSERT_NEAR(y[r * lanes + l], want, 1e-6 * (k + 1) * (mag + 1))
                << "rows " << rows << " k " << k << " lanes " << lanes;
          }
        }
      }
    }
  }
}

TEST_P(PixelKernelTest, LutBuildRowsMatchesLutBuildOnGatheredRows) {
  const KernelTable& kt = GetKernelTable(GetParam());
  for (int64_t lanes : {int64_t{kt.lanes}, int64_t{2 * kt.lanes}}) {
    for (int64_t k : {64, 128}) {
      const std::vector<float> x = RandomVector(k * (lanes + 3) + 1, k);
      const std::vector<int64_t> offs = ShuffledOffsets(k, lanes, lanes + k);
      // The same rows, copied next to each other, through LutBuild.
      std::vector<float> xt(k * lanes);
      for (int64_t i = 0; i < k; ++i) {
        std::copy(x.begin() + offs[i], x.begin() + offs[i] + lanes,
                  xt.begin() + i * lanes);
      }
      std::vector<float> want(k / 4 * 16 * lanes), got(want.size(), 7.0f);
      kt.lut_build(xt.data(), k, lanes, want.data());
      pt().lut_build_rows(x.data(), offs.data(), k, lanes, got.data());
      ASSERT_EQ(got, want) << "k " << k << " lanes " << lanes;
      std::fill(got.begin(), got.end(), 7.0f);
      pt().lut_build_rows(xt.data(), nullptr, k, lanes, got.data());
      ASSERT_EQ(got, want) << "null offsets, k " << k << " lanes " << lanes;
    }
  }
}

TEST_P(PixelKernelTest, PadInputPutsAZeroBorderAroundTheInput) {
  for (int64_t pad : {0, 1, 3}) {
    Im2colPlan plan;
    plan.channels = 3;
    plan.height = 5;
    plan.width = 19;
    plan.pad_h = pad;
    plan.pad_w = pad + 1;
    const int64_t hp = 5 + 2 * pad, wp = 19 + 2 * (pad + 1);
    const std::vector<float> x = RandomVector(3 * 5 * 19, pad);
    std::vector<float> padded(3 * hp * wp + 1, 5.0f);
    pt().pad_input(plan, x.data(), padded.data());
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t y = 0; y < hp; ++y) {
        for (int64_t i = 0; i < wp; ++i) {
          const int64_t iy = y - pad, ix = i - (pad + 1);
          const float want = iy >= 0 && iy < 5 && ix >= 0 && ix < 19
                                 ? x[(c * 5 + iy) * 19 + ix]
                                 : 0.0f;
          ASSERT_EQ(padded[(c * hp + y) * wp + i], want);
        }
      }
    }
    EXPECT_EQ(padded.back(), 5.0f);  // nothing written past the end
  }
}

TEST_P(PixelKernelTest, StoreTileAppliesTheEpilogueToExactlyNColumns) {
  const int64_t lanes = 2 * GetKernelTable(GetParam()).lanes, rows = 5;
  const std::vector<float> acc = RandomVector(rows * lanes, 3);
  std::vector<int32_t> acc_i32(rows * lanes);
  for (int64_t i = 0; i < rows * lanes; ++i) {
    acc_i32[i] = static_cast<int32_t>(acc[i] * 5000.0f);
  }
  const std::vector<float> scale = RandomVector(rows, 4);
  const std::vector<float> shift = RandomVector(rows, 5);
  // Tails of every length around the vector width (masked on AVX2/AVX-512).
  for (int64_t n : {int64_t{1}, int64_t{3}, lanes / 2 - 1, lanes / 2 + 1,
                    lanes - 1, lanes}) {
    for (bool relu : {false, true}) {
      // The FP32 store without and with an affine epilogue, then the int32
      // one (which always has one).
      for (int variant = 0; variant < 3; ++variant) {
        const bool affine = variant != 0, from_i32 = variant == 2;
        const int64_t ldy = lanes + 7;
        std::vector<float> y(rows * ldy, 99.0f);
        // The int32 store also adds a residual (a fused Add).
        const std::vector<float> res = RandomVector(rows * ldy, 6);
        if (from_i32) {
          pt().store_tile_i32(acc_i32.data(), lanes, rows, n, scale.data(),
                              shift.data(), relu, y.data(), ldy, res.data());
        } else {
          pt().store_tile(
              acc.data(), lanes, rows, n, affine ? scale.data() : nullptr,
              affine ? shift.data() : nullptr, relu, y.data(), ldy, nullptr);
        }
        for (int64_t o = 0; o < rows; ++o) {
          for (int64_t i = 0; i < ldy; ++i) {
            float want = 99.0f;
            if (i < n) {
              const float a = from_i32
                                  ? static_cast<float>(acc_i32[o * lanes + i])
                                  : acc[o * lanes + i];
              want = a * (affine ? scale[o] : 1.0f) +
                     (affine ? shift[o] : 0.0f) +
                     (from_i32 ? res[o * ldy + i] : 0.0f);
              if (relu) want = std::max(want, 0.0f);
            }
            ASSERT_NEAR(y[o * ldy + i], want, 1e-6f * (1 + std::abs(want)))
                << "variant " << variant << " n " << n << " o " << o << " i "
                << i;
          }
        }
      }
    }
  }
}

// The int8 pixel kernel of every ISA against the portable one, bit for bit:
// row counts off every register block, group counts across the AVX2
// kernel's 64-group 16-bit flush, rows read through offsets and in tiles,
// extreme bytes (0 and 255) and every weight value.
TEST_P(PixelKernelTest, Int8KnMatchesPortable) {
  const int64_t lanes = 2 * GetKernelTable(GetParam()).lanes;
  std::mt19937_64 rng(5);
  for (const int64_t rows : {1, 3, 4, 8, 13, 16, 37}) {
    for (const int64_t groups : {1, 7, 63, 64, 65, 150}) {
      const int64_t ws = 4 * groups + 4;
      std::vector<int8_t> w(rows * ws);
      for (int8_t& v : w)
        v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
      std::vector<uint32_t> x(groups * lanes + 3 * groups + lanes);
      for (uint32_t& v : x) {
        v = static_cast<uint32_t>(rng());
        if (rng() % 4 == 0) v = 0xffffffffu;  // the largest sums
      }
      std::vector<int64_t> offs(groups);
      for (int64_t g = 0; g < groups; ++g) offs[g] = 3 * g + (g * 7) % lanes;
      // The low digit's pass (kInt16) combines with what acc holds.
      std::vector<int32_t> high(rows * lanes), shift(rows);
      for (int32_t& v : high) v = static_cast<int32_t>(rng() % 100000);
      for (int32_t& v : shift)
        v = static_cast<int32_t>(rng() % 200001) - 100000;
      for (const bool use_offs : {false, true}) {
        for (const bool low_digit : {false, true}) {
          const int64_t* o = use_offs ? offs.data() : nullptr;
          const int32_t* s = low_digit ? shift.data() : nullptr;
          std::vector<int32_t> want = high, got = high;
          Int8KnPortable(w.data(), ws, rows, groups, x.data(), o, lanes,
                         want.data(), s);
          pt().int8_kn(w.data(), ws, rows, groups, x.data(), o, lanes,
                       got.data(), s);
          ASSERT_EQ(got, want)
              << pt().int8_kn_name << " rows " << rows << " groups " << groups
              << " offsets " << use_offs << " low digit " << low_digit;
        }
      }
    }
  }
}

// Int8 quantisation into the C4 layout and the int8 im2col against direct
// indexing, with channel counts that are not a multiple of 4.
TEST_P(PixelKernelTest, Int8QuantizeAndIm2colMatchDirectIndexing) {
  const int64_t lanes = 2 * GetKernelTable(GetParam()).lanes;
  for (const Geometry& g :
       {Geometry{5, 13, 11, 3, 1, 2}, Geometry{16, 28, 28, 3, 2, 1},
        Geometry{7, 9, 10, 1, 2, 0}, Geometry{4, 12, 12, 5, 1, 0},
        // Rows longer than a vector: whole and masked stride-2 copies.
        Geometry{3, 9, 70, 3, 2, 1}, Geometry{2, 5, 77, 2, 1, 0}}) {
    const int64_t Ho = (g.H + 2 * g.pad - g.k) / g.stride + 1;
    const int64_t Wo = (g.W + 2 * g.pad - g.k) / g.stride + 1;
    const int64_t P = Ho * Wo, hp = g.H + 2 * g.pad, wp = g.W + 2 * g.pad;
    const int64_t c4n = (g.C + 3) / 4, groups = c4n * g.k * g.k;
    const std::vector<Im2colPiece> pieces = PlanIm2colPieces(Ho, Wo, lanes);
    const Im2colPlan plan = PlanFor(g, groups, lanes, P, pieces);
    std::vector<float> x = RandomVector(g.C * g.H * g.W, P);
    x[0] = 2.0f;  // clamps at 255 with zero point 128
    const float inv = 90.0f;
    // Both zero points: 128, and 0, where negative inputs clamp at 0.
    const int32_t zero = g.C % 2 == 0 ? 0 : 128;
    std::vector<uint32_t> padded(c4n * hp * wp, 0xdeadbeefu);
    // One digit, then two (kInt16): the high digit must not change.
    std::vector<uint32_t> padded2 = padded, low = padded;
    pt().int8_quantize_c4(plan, x.data(), inv, zero, padded.data(), nullptr);
    pt().int8_quantize_c4(plan, x.data(), inv, zero, padded2.data(),
                          low.data());
    EXPECT_EQ(padded, padded2) << pt().int8_kn_name;
    auto byte = [&](int64_t c, int64_t y, int64_t xx) -> uint32_t {
      if (c >= g.C) return zero;
      const float t = std::nearbyint(x[(c * g.H + y) * g.W + xx] * inv);
      return static_cast<uint32_t>(
          std::clamp(static_cast<int32_t>(t) + zero, 0, 255));
    };
    // What rounding left, in 1/254 levels around kInt8LowZero.
    auto low_byte = [&](int64_t c, int64_t y, int64_t xx) -> uint32_t {
      if (c >= g.C) return kInt8LowZero;
      const float t = x[(c * g.H + y) * g.W + xx] * inv;
      const float rest = t - std::nearbyint(t);
      return static_cast<uint32_t>(
          static_cast<int32_t>(std::nearbyint(rest * 254.0f)) + 128);
    };
    for (int64_t c4 = 0; c4 < c4n; ++c4) {
      for (int64_t y = 0; y < g.H; ++y) {
        for (int64_t xx = 0; xx < g.W; ++xx) {
          uint32_t want = 0, want_low = 0;
          for (int i = 0; i < 4; ++i) {
            want |= byte(4 * c4 + i, y, xx) << (8 * i);
            want_low |= low_byte(4 * c4 + i, y, xx) << (8 * i);
          }
          const int64_t at = (c4 * hp + y + g.pad) * wp + xx + g.pad;
          ASSERT_EQ(padded[at], want)
              << pt().int8_kn_name << " C" << g.C << " (" << c4 << "," << y
              << "," << xx << ")";
          ASSERT_EQ(low[at], want_low)
              << pt().int8_kn_name << " low digit C" << g.C << " (" << c4 << ","
              << y << "," << xx << ")";
        }
      }
    }
    std::vector<uint32_t> cols(plan.tiles * groups * lanes, 0u);
    pt().int8_im2col(plan, padded.data(), cols.data());
    for (int64_t p = 0; p < P; ++p) {
      const int64_t oy = p / Wo, ox = p % Wo;
      for (int64_t gr = 0; gr < groups; ++gr) {
        const int64_t c4 = gr / (g.k * g.k), ky = (gr / g.k) % g.k,
                      kx = gr % g.k;
        const uint32_t want =
            padded[(c4 * hp + oy * g.stride + ky) * wp + ox * g.stride + kx];
        ASSERT_EQ(cols[((p / lanes) * groups + gr) * lanes + p % lanes], want)
            << "pixel " << p << " group " << gr;
      }
    }
  }
}

// Two digits (kInt16): the low digit's pass gives 254 * high + low - shift
// exactly (computed here in int64, not by the portable kernel), with high
// sums near the int32 limit that Int8TwoDigitsFit allows.
TEST_P(PixelKernelTest, Int8KnCombinesDigitsExactly) {
  std::mt19937_64 rng(7);
  for (int64_t lanes : {int64_t{8}, int64_t{16}, int64_t{32}}) {
    for (int64_t rows : {1, 5, 16, 19}) {
      const int64_t groups = 37, ws = 4 * groups;
      const int64_t k = 33000;  // near the largest Int8TwoDigitsFit allows
      ASSERT_TRUE(Int8TwoDigitsFit(k));
      // Below 255 * k for the high sums: headroom for the zero point term.
      std::uniform_int_distribution<int32_t> high(0, 250 * k), rowsum(-k, k);
      std::vector<int32_t> acc(rows * lanes), shift(rows);
      for (auto& v : acc) v = high(rng);
      // 254 * 0 + 128: the zero point of non-negative inputs.
      for (auto& v : shift) v = 128 * rowsum(rng);
      std::vector<int8_t> w(rows * ws);
      for (int8_t& v : w)
        v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
      std::vector<uint32_t> x(groups * lanes);
      for (uint32_t& v : x) v = static_cast<uint32_t>(rng());
      std::vector<int32_t> got = acc;
      pt().int8_kn(w.data(), ws, rows, groups, x.data(), nullptr, lanes,
                   got.data(), shift.data());
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t l = 0; l < lanes; ++l) {
          int64_t low = 0;
          for (int64_t g = 0; g < groups; ++g) {
            for (int i = 0; i < 4; ++i) {
              low += w[r * ws + 4 * g + i] *
                     static_cast<int32_t>((x[g * lanes + l] >> (8 * i)) & 0xff);
            }
          }
          const int64_t i = r * lanes + l;
          ASSERT_EQ(got[i], 254 * int64_t{acc[i]} + low - shift[r])
              << pt().int8_kn_name << " row " << r << " lane " << l;
        }
      }
    }
  }
}

// The weight expansion into (channel group, tap, channel) order.
TEST_P(PixelKernelTest, Int8PackWeightsMatchesBits) {
  std::mt19937_64 rng(9);
  for (const auto& [rows, channels, taps] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{16, 16, 9},
                                                          {7, 5, 9},
                                                          {64, 32, 25},
                                                          {3, 6, 1},
                                                          {5, 3, 49},
                                                          {4, 7, 16},
                                                          {3, 10, 32},
                                                          {2, 4, 17},
                                                          {3, 9, 33}}) {
    const int64_t K = channels * taps, kw = (K + 63) / 64;
    std::vector<uint64_t> bits(rows * kw);
    for (uint64_t& b : bits) b = rng();
    const int64_t c4n = (channels + 3) / 4, ws = 4 * c4n * taps + 8;
    // The table's kernel, and on AVX-512 hosts also the non-VBMI one.
    std::vector<Int8PackWeightsFn> packs = {pt().int8_pack_weights};
    if (GetParam() == KernelIsa::kAvx512)
      packs.push_back(Int8PackWeightsAvx512);
    for (const Int8PackWeightsFn pack : packs) {
      std::vector<int8_t> w8(rows * ws + 64, 99);  // whole-vector writes
      std::vector<int32_t> sums(rows, -12345);
      pack(bits.data(), kw, rows, channels, taps, w8.data(), ws, sums.data());
      for (int64_t o = 0; o < rows; ++o) {
        int32_t sum = 0;
        for (int64_t c = 0; c < 4 * c4n; ++c) {
          for (int64_t t = 0; t < taps; ++t) {
            const int64_t k = c * taps + t;
            const int want =
                c >= channels
                    ? 0
                    : 1 - 2 * static_cast<int>(
                                  (bits[o * kw + k / 64] >> (k % 64)) & 1);
            ASSERT_EQ(w8[o * ws + ((c / 4) * taps + t) * 4 + c % 4], want)
                << "row " << o << " channel " << c << " tap " << t;
            sum += want;
          }
        }
        ASSERT_EQ(sums[o], sum) << "row sum " << o;
      }
    }
  }
}

// 2x2/2 max pooling against direct indexing: widths around the 8- and
// 16-output vector steps, odd heights and widths (last row/column dropped).
TEST_P(PixelKernelTest, MaxPool2x2MatchesDirectIndexing) {
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{
           {24, 24}, {8, 8}, {5, 7}, {2, 66}, {3, 33}, {28, 28}, {1, 9}}) {
    const int64_t planes = 3, ho = h / 2, wo = w / 2;
    const std::vector<float> x = RandomVector(planes * h * w, h * 100 + w);
    std::vector<float> y(planes * ho * wo + 1, -7.0f);
    pt().max_pool_2x2(x.data(), planes, h, w, y.data());
    for (int64_t p = 0; p < planes; ++p) {
      for (int64_t oy = 0; oy < ho; ++oy) {
        for (int64_t ox = 0; ox < wo; ++ox) {
          const float* a = x.data() + (p * h + 2 * oy) * w + 2 * ox;
          const float want =
              std::max(std::max(a[0], a[1]), std::max(a[w], a[w + 1]));
          ASSERT_EQ(y[(p * ho + oy) * wo + ox], want)
              << h << "x" << w << " plane " << p << " (" << oy << "," << ox
              << ")";
        }
      }
    }
    EXPECT_EQ(y.back(), -7.0f) << "wrote past the output";
  }
}

// The matmul int8 row quantiser against round-half-even of the float
// product: lengths around the 8/16/32-value vector steps, values at exact
// .5 ties of both parities, the extremes +-127, and nothing written past k.
TEST_P(PixelKernelTest, Int8QuantizeRowRoundsHalfToEvenAndSums) {
  std::mt19937 rng(5);
  for (int64_t k : {0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 100, 257, 1000}) {
    std::vector<float> x = RandomVector(k, 100 + k);
    const float inv = 127.0f / 3.0f;
    for (int64_t i = 0; i < k; ++i) {
      switch (rng() % 4) {
        case 0:  // t = x * inv lands on or next to a .5 tie
          x[i] =
              (static_cast<float>(static_cast<int>(rng() % 254) - 127) + 0.5f) /
              inv;
          break;
        case 1:  // +-127, the ends of the range
          x[i] = rng() % 2 ? 3.0f : -3.0f;
          break;
        default:  // N(0, 1) within the row's range
          x[i] = std::clamp(x[i], -3.0f, 3.0f);
      }
    }
    std::vector<int8_t> q(k + 40, 99);
    const int32_t sum = pt().int8_quantize_row(x.data(), k, inv, q.data());
    int32_t want_sum = 0;
    for (int64_t i = 0; i < k; ++i) {
      const int want = static_cast<int>(std::nearbyint(x[i] * inv));
      ASSERT_EQ(q[i], want) << "k " << k << " i " << i << " x " << x[i];
      want_sum += want;
    }
    EXPECT_EQ(sum, want_sum) << "k " << k;
    for (int64_t i = k; i < k + 40; ++i) {
      ASSERT_EQ(q[i], 99) << "wrote past k = " << k;
    }
  }
  // Exact ties with a power-of-two scale: 0.5, 1.5, 2.5, -0.5, -2.5 go to
  // 0, 2, 2, 0, -2.
  const float ties[] = {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 126.5f, -126.5f};
  int8_t tq[7];
  EXPECT_EQ(pt().int8_quantize_row(ties, 7, 1.0f, tq),
            0 + 2 + 2 + 0 - 2 + 126 - 126);
  const int8_t want_ties[] = {0, 2, 2, 0, -2, 126, -126};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(tq[i], want_ties[i]) << ties[i];
}

INSTANTIATE_TEST_SUITE_P(AllIsas, PixelKernelTest,
                         ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& info) {
                           return std::string(IsaName(info.param));
                         });

}  // namespace
}  // namespace flexor
