// Every entry of every supported ISA's kernel table against plain scalar
// code on random data of awkward sizes.
#include "engine/kernels/microkernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace flexor {
namespace {

using testing_util::RandomVector;
using testing_util::SupportedIsas;

std::vector<uint64_t> RandomWords(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> v(n);
  for (auto& w : v) w = rng();
  return v;
}

bool Bit(const uint64_t* words, int64_t i) {
  return (words[i >> 6] >> (i & 63)) & 1;
}

class MicrokernelTest : public ::testing::TestWithParam<KernelIsa> {
 protected:
  const KernelTable& kt() const { return GetKernelTable(GetParam()); }
};

// Both decryption entries (cached and streaming stores), with `out` at
// every word offset from a cache line, so the streaming one's alignment
// prologue and unaligned tails run.
TEST_P(MicrokernelTest, DecryptWordsMatchesScalarXorAndShift) {
  for (int num_taps : {1, 2, 3, 5}) {
    for (int64_t wpv : {1, 2, 9, 17, 40, 131}) {
      std::vector<std::vector<uint64_t>> vecs;
      std::vector<const uint64_t*> taps;
      for (int t = 0; t < num_taps; ++t) {
        vecs.push_back(RandomWords(wpv, 100 * t + wpv));
      }
      for (auto& v : vecs) taps.push_back(v.data());
      auto d = [&](int64_t w) {
        uint64_t r = 0;
        if (w < wpv)
          for (auto& v : vecs) r ^= v[w];
        return r;
      };
      for (const bool streaming : {false, true}) {
        const DecryptWordsFn fn =
            streaming ? kt().decrypt_words_streaming : kt().decrypt_words;
        for (int64_t w0 : {int64_t{0}, int64_t{1}, wpv - 1}) {
          for (int shift : {0, 1, 13, 63}) {
            for (int64_t offset : {0, 1, 3, 7}) {
              const int64_t n = wpv - w0 + 1;  // runs one word past the end
              alignas(64) static uint64_t buffer[160];
              uint64_t* out = buffer + offset;
              std::fill(buffer, buffer + 160, 0xdeadbeef);
              fn(taps.data(), num_taps, wpv, w0, shift, n, out);
              for (int64_t m = 0; m < n; ++m) {
                const uint64_t lo = d(w0 + m), hi = d(w0 + m + 1);
                const uint64_t want =
                    shift == 0 ? lo : (lo >> shift) | (hi << (64 - shift));
                ASSERT_EQ(out[m], want)
                    << "streaming " << streaming << " taps " << num_taps
                    << " wpv " << wpv << " w0 " << w0 << " shift " << shift
                    << " offset " << offset << " m " << m;
              }
              ASSERT_EQ(out[n], 0xdeadbeef) << "wrote past the end";
            }
          }
        }
      }
    }
  }
}

TEST_P(MicrokernelTest, SignDotMatchesScalar) {
  for (int64_t rows : {1, 3, 8, 13}) {
    for (int64_t batch : {1, 2, 5, 9}) {
      for (int64_t kw : {1, 3}) {
        const int64_t bs = kw + 1, xs = kw * 64 + 5;
        const auto bits = RandomWords(rows * bs, rows * 7 + batch);
        const auto x = RandomVector(batch * xs, batch * 3 + kw);
        std::vector<float> dot(rows * batch);
        kt().sign_dot(bits.data(), bs, rows, x.data(), xs, batch, kw,
                      dot.data(), batch);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t b = 0; b < batch; ++b) {
            double want = 0, mag = 0;
            for (int64_t k = 0; k < kw * 64; ++k) {
              const double xv = x[b * xs + k];
              want += Bit(bits.data() + r * bs, k) ? -xv : xv;
              mag += std::fabs(xv);
            }
            ASSERT_NEAR(dot[r * batch + b], want, 1e-6 * mag)
                << "rows " << rows << " batch " << batch << " r " << r << " b "
                << b;
          }
        }
      }
    }
  }
}

TEST_P(MicrokernelTest, LutBuildAndGemmMatchScalar) {
  for (int nv : {1, 2, 4}) {
    const int64_t lanes = nv * kt().lanes;
    for (int64_t rows : {1, 2, 7, 9}) {
      for (int64_t kw : {1, 2}) {
        const int64_t k = 64 * kw, bs = kw + 2;
        const auto xt = RandomVector(k * lanes, lanes + rows);
        std::vector<float> table(k / 4 * 16 * lanes);
        kt().lut_build(xt.data(), k, lanes, table.data());
        for (int64_t g = 0; g < k / 4; ++g) {
          for (int p = 0; p < 16; ++p) {
            for (int64_t l = 0; l < lanes; ++l) {
              double want = 0;
              for (int i = 0; i < 4; ++i) {
                const double v = xt[(4 * g + i) * lanes + l];
                want += ((p >> i) & 1) ? -v : v;
              }
              ASSERT_NEAR(table[(g * 16 + p) * lanes + l], want, 1e-5);
            }
          }
        }
        const auto bits = RandomWords(rows * bs, 5 * rows + kw);
        const auto alpha = RandomVector(rows, 77);
        auto acc = RandomVector(rows * lanes, 78);
        const auto acc0 = acc;
        kt().lut_gemm(bits.data(), bs, rows, kw, table.data(), lanes,
                      alpha.data(), acc.data());
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t l = 0; l < lanes; ++l) {
            double dot = 0, mag = 0;
            for (int64_t kk = 0; kk < k; ++kk) {
              const double v = xt[kk * lanes + l];
              dot += Bit(bits.data() + r * bs, kk) ? -v : v;
              mag += std::fabs(v);
            }
            const double want = acc0[r * lanes + l] + alpha[r] * dot;
            ASSERT_NEAR(acc[r * lanes + l], want,
                        1e-6 * (mag * std::fabs(alpha[r]) + 1))
                << "nv " << nv << " rows " << rows << " r " << r << " l " << l;
          }
        }
      }
    }
  }
}

TEST_P(MicrokernelTest, LutRowsMatchesScalarBitForBit) {
  for (int64_t kw : {1, 2, 5}) {
    const auto bits16 = RandomWords(kw * 16, kw);
    const auto table = RandomVector(kw * 16 * 16, kw + 1);
    float dot[16], portable[16];
    kt().lut_rows(bits16.data(), kw, table.data(), dot);
    ScalarKernelTable().lut_rows(bits16.data(), kw, table.data(), portable);
    for (int r = 0; r < 16; ++r) {
      double want = 0, mag = 0;
      for (int64_t g = 0; g < kw * 16; ++g) {
        const int nib = (bits16[(g / 16) * 16 + r] >> (4 * (g % 16))) & 15;
        want += table[g * 16 + nib];
        mag += std::fabs(table[g * 16 + nib]);
      }
      ASSERT_NEAR(dot[r], want, 1e-6 * mag) << "kw " << kw << " r " << r;
      // Same summation order in every build.
      ASSERT_EQ(dot[r], portable[r]);
    }
  }
}

TEST_P(MicrokernelTest, DenseDotMatchesScalar) {
  for (int64_t rows : {1, 5, 8}) {
    for (int64_t batch : {1, 3, 6}) {
      for (int64_t k : {1, 15, 16, 17, 100}) {
        const auto w = RandomVector(rows * (k + 1), rows + k);
        const auto x = RandomVector(batch * (k + 2), batch + k);
        std::vector<float> dot(rows * batch);
        kt().dense_dot(w.data(), k + 1, rows, x.data(), k + 2, batch, k,
                       dot.data(), batch);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t b = 0; b < batch; ++b) {
            double want = 0, mag = 0;
            for (int64_t kk = 0; kk < k; ++kk) {
              const double p = static_cast<double>(w[r * (k + 1) + kk]) *
                               x[b * (k + 2) + kk];
              want += p;
              mag += std::fabs(p);
            }
            ASSERT_NEAR(dot[r * batch + b], want, 1e-6 * mag + 1e-12);
          }
        }
      }
    }
  }
}

TEST_P(MicrokernelTest, GxnorMatchesScalar) {
  for (int64_t words : {1, 7, 8, 9, 20}) {
    const int64_t rows = 5, batch = 3;
    const auto wn = RandomWords(rows * words, 1 + words);
    const auto wsg = RandomWords(rows * words, 2 + words);
    const auto an = RandomWords(batch * words, 3 + words);
    const auto asg = RandomWords(batch * words, 4 + words);
    std::vector<int32_t> dot(rows * batch);
    kt().gxnor(wn.data(), wsg.data(), rows, words, an.data(), asg.data(), batch,
               dot.data());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = 0; b < batch; ++b) {
        int want = 0;
        for (int64_t i = 0; i < words * 64; ++i) {
          if (!Bit(wn.data() + r * words, i) || !Bit(an.data() + b * words, i))
            continue;
          want +=
              Bit(wsg.data() + r * words, i) == Bit(asg.data() + b * words, i)
                  ? 1
                  : -1;
        }
        ASSERT_EQ(dot[r * batch + b], want);
      }
    }
  }
}

// Activation rows in the layout the ISA's sign_dot_i8 reads: bit-sliced
// where it has bit_slice_i8 (rows a little further apart than needed),
// else as given.
std::vector<int8_t> KernelLayout(const KernelTable& kt,
                                 const std::vector<int8_t>& x, int64_t xs,
                                 int64_t batch, int64_t kw, int64_t* stride) {
  if (kt.bit_slice_i8 == nullptr) {
    *stride = xs;
    return x;
  }
  *stride = BitSlicedI8Bytes(kw) + 32;
  std::vector<int8_t> sliced(batch * *stride, 99);
  for (int64_t b = 0; b < batch; ++b) {
    kt.bit_slice_i8(x.data() + b * xs, kw, sliced.data() + b * *stride);
  }
  return sliced;
}

// The bit-sliced layout against its definition, on awkward lengths (the
// last chunk partly beyond the row is zero).
TEST_P(MicrokernelTest, BitSliceI8MatchesDefinition) {
  if (kt().bit_slice_i8 == nullptr) GTEST_SKIP() << "plain rows on this ISA";
  std::mt19937_64 rng(12);
  for (int64_t kw : {1, 2, 3, 4, 5, 7, 70}) {
    std::vector<int8_t> x(kw * 64);
    for (auto& v : x) v = static_cast<int8_t>(rng());
    std::vector<int8_t> out(BitSlicedI8Bytes(kw), 99);
    kt().bit_slice_i8(x.data(), kw, out.data());
    for (int64_t c = 0; c < BitSlicedI8Bytes(kw) / 256; ++c) {
      for (int b = 0; b < 8; ++b) {
        for (int j = 0; j < 32; ++j) {
          const int64_t i = 256 * c + 8 * j + b;
          ASSERT_EQ(out[256 * c + 32 * b + j], i < kw * 64 ? x[i] : 0)
              << "kw " << kw << " c " << c << " b " << b << " j " << j;
        }
      }
    }
  }
}

TEST_P(MicrokernelTest, SignDotI8MatchesPortableBitForBit) {
  // kw 33 and 70 cross the AVX2 kernel's 16-bit flush (every 32 words) and
  // end in a partial 4-word chunk;
  // rows and batches cover every register block and remainder.
  std::mt19937_64 rng(11);
  for (int64_t kw : {1, 2, 3, 4, 33, 70}) {
    for (int64_t rows : {1, 3, 4, 5, 8, 9, 13}) {
      for (int64_t batch : {1, 2, 3, 4, 5, 7, 8, 9, 17}) {
        const int64_t bs = kw + 1, xs = kw * 64 + 3;
        const auto bits = RandomWords(rows * bs, rng());
        std::vector<int8_t> x(batch * xs);
        for (auto& v : x) v = static_cast<int8_t>(rng());
        std::vector<int32_t> got(rows * batch, -1), portable(rows * batch, -2);
        int64_t xks = 0;
        const std::vector<int8_t> xk =
            KernelLayout(kt(), x, xs, batch, kw, &xks);
        kt().sign_dot_i8(bits.data(), bs, rows, xk.data(), xks, batch, kw,
                         got.data(), batch);
        SignDotI8Portable(bits.data(), bs, rows, x.data(), xs, batch, kw,
                          portable.data(), batch);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t b = 0; b < batch; ++b) {
            int32_t want = 0;
            for (int64_t k = 0; k < kw * 64; ++k) {
              if (Bit(bits.data() + r * bs, k)) want += x[b * xs + k];
            }
            ASSERT_EQ(portable[r * batch + b], want);
            ASSERT_EQ(got[r * batch + b], want)
                << "kw " << kw << " rows " << rows << " batch " << batch
                << " r " << r << " b " << b;
          }
        }
      }
    }
  }
}

TEST_P(MicrokernelTest, Transpose16MatchesScalar) {
  for (int64_t kw : {1, 7, 8, 9, 16, 23}) {
    for (int64_t rows : {1, 5, 8, 9, 15, 16}) {
      const int64_t bs = kw + 3;
      const auto bits = RandomWords(rows * bs, kw * 100 + rows);
      std::vector<uint64_t> out(kw * 16, 0xdeadbeef);
      kt().transpose16(bits.data(), bs, rows, kw, out.data());
      for (int64_t m = 0; m < kw; ++m) {
        for (int64_t r = 0; r < 16; ++r) {
          ASSERT_EQ(out[m * 16 + r], r < rows ? bits[r * bs + m] : 0)
              << "kw " << kw << " rows " << rows << " m " << m << " r " << r;
        }
      }
    }
  }
}

TEST_P(MicrokernelTest, Int8LutMatchesSignKernelBitForBit) {
  // The portable pieces always; the ISA's own where its table has them.
  const LutI8TablesFn build =
      kt().lut_i8_tables ? kt().lut_i8_tables : LutI8TablesPortable;
  const TransposeBytes16Fn transpose = kt().transpose_bytes16
                                           ? kt().transpose_bytes16
                                           : TransposeBytes16Portable;
  const LutI8Fn lut = kt().lut_i8 ? kt().lut_i8 : LutI8Portable;
  std::mt19937_64 rng(21);
  // 1-5 words: a partial chunk; 40: more than one 32-vector flush; 260:
  // past the 65,535 a 16-bit sum holds over a whole row.
  for (int64_t kw : {1, 3, 4, 5, 9, 40, 260}) {
    for (int64_t rows : {1, 7, 15, 16}) {
      const int64_t bs = kw + 2;
      const auto bits = RandomWords(rows * bs, rng());
      const int64_t tbytes = LutI8TransposedBytes(kw);
      std::vector<uint8_t> t16(tbytes, 0xab), t16p(tbytes, 0xcd);
      transpose(bits.data(), bs, rows, kw, t16.data());
      TransposeBytes16Portable(bits.data(), bs, rows, kw, t16p.data());
      for (int64_t cc = 0; cc < LutI8Chunks(kw); ++cc) {
        for (int64_t c = 0; c < 16; ++c) {
          for (int64_t h = 0; h < 2; ++h) {
            const int64_t byte = 32 * cc + 16 * h + c;
            for (int64_t r = 0; r < 16; ++r) {
              const uint8_t want =
                  r < rows && byte < 8 * kw
                      ? static_cast<uint8_t>(bits[r * bs + byte / 8] >>
                                             (8 * (byte % 8)))
                      : 0;
              const int64_t at = (cc * 16 + c) * 32 + 16 * h + r;
              ASSERT_EQ(t16p[at], want);
              ASSERT_EQ(t16[at], want) << "kw " << kw << " rows " << rows
                                       << " byte " << byte << " r " << r;
            }
          }
        }
      }
      // Tables from extreme and random int8 (the padding past 64 kw inputs
      // must not be read: poison it).
      for (int mode = 0; mode < 3; ++mode) {
        std::vector<int8_t> x(kw * 64 + 256, 99);
        for (int64_t i = 0; i < kw * 64; ++i) {
          x[i] = mode == 0   ? int8_t{-128}
                 : mode == 1 ? int8_t{127}
                             : static_cast<int8_t>(rng());
        }
        std::vector<uint8_t> tables(LutI8TableBytes(kw), 0xee),
            tables_p(LutI8TableBytes(kw), 0x11);
        build(x.data(), kw, tables.data());
        LutI8TablesPortable(x.data(), kw, tables_p.data());
        ASSERT_EQ(tables, tables_p) << "kw " << kw << " mode " << mode;
        int32_t got[16], portable[16];
        const uint8_t* in = t16.data();
        const uint8_t* in_p = t16p.data();
        lut(&in, 1, kw, tables.data(), got);
        LutI8Portable(&in_p, 1, kw, tables_p.data(), portable);
        std::vector<int32_t> sign(rows);
        SignDotI8Portable(bits.data(), bs, rows, x.data(), kw * 64, 1, kw,
                          sign.data(), 1);
        for (int64_t r = 0; r < 16; ++r) {
          const int32_t want = r < rows ? sign[r] : 0;
          ASSERT_EQ(portable[r], want) << "kw " << kw << " r " << r;
          ASSERT_EQ(got[r], want) << "kw " << kw << " rows " << rows << " mode "
                                  << mode << " r " << r;
        }
      }
    }
  }
}

// LutI8 over several transposed blocks reads their XOR: the sign kernel's
// integers for the XOR of the bit matrices (2 inputs: the templated loop; 3
// and 5: the run-time count).
TEST_P(MicrokernelTest, Int8LutXorsItsInputs) {
  const LutI8Fn lut = kt().lut_i8 ? kt().lut_i8 : LutI8Portable;
  std::mt19937_64 rng(33);
  for (int n : {2, 3, 5}) {
    for (int64_t kw : {1, 5, 40}) {
      for (int64_t rows : {9, 16}) {
        const int64_t tbytes = LutI8TransposedBytes(kw);
        std::vector<uint64_t> xored(rows * kw, 0);
        std::vector<std::vector<uint8_t>> blocks(n);
        std::vector<const uint8_t*> in(n);
        for (int i = 0; i < n; ++i) {
          const auto bits = RandomWords(rows * kw, rng());
          for (int64_t w = 0; w < rows * kw; ++w) xored[w] ^= bits[w];
          blocks[i].assign(tbytes, 0);
          TransposeBytes16Portable(bits.data(), kw, rows, kw, blocks[i].data());
          in[i] = blocks[i].data();
        }
        std::vector<int8_t> x(kw * 64);
        for (auto& v : x) v = static_cast<int8_t>(rng());
        std::vector<uint8_t> tables(LutI8TableBytes(kw));
        LutI8TablesPortable(x.data(), kw, tables.data());
        int32_t got[16], portable[16];
        lut(in.data(), n, kw, tables.data(), got);
        LutI8Portable(in.data(), n, kw, tables.data(), portable);
        std::vector<int32_t> sign(rows);
        SignDotI8Portable(xored.data(), kw, rows, x.data(), kw * 64, 1, kw,
                          sign.data(), 1);
        for (int64_t r = 0; r < 16; ++r) {
          const int32_t want = r < rows ? sign[r] : 0;
          ASSERT_EQ(portable[r], want) << n << " inputs, kw " << kw;
          ASSERT_EQ(got[r], want) << n << " inputs, kw " << kw << " r " << r;
        }
      }
    }
  }
}

TEST_P(MicrokernelTest, SignDotI8ExtremeValuesDoNotOverflow) {
  // Every bit set and every activation -128 (or 127): the largest sums any
  // 16-bit stage can see. 200 words = 12800 weights.
  const int64_t kw = 200, rows = 5, batch = 6;
  const std::vector<uint64_t> bits(rows * kw, ~uint64_t{0});
  for (int v : {-128, 127}) {
    const std::vector<int8_t> x(batch * kw * 64, static_cast<int8_t>(v));
    std::vector<int32_t> got(rows * batch);
    int64_t xks = 0;
    const std::vector<int8_t> xk =
        KernelLayout(kt(), x, kw * 64, batch, kw, &xks);
    kt().sign_dot_i8(bits.data(), kw, rows, xk.data(), xks, batch, kw,
                     got.data(), batch);
    for (int32_t g : got) ASSERT_EQ(g, v * kw * 64);
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, MicrokernelTest,
                         ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& info) {
                           return std::string(IsaName(info.param));
                         });

}  // namespace
}  // namespace flexor
