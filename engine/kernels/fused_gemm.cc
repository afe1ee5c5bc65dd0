#include "engine/kernels/fused_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "engine/kernels/codec_traits.h"
#include "engine/kernels/decrypt.h"
#include "engine/kernels/gemm_support.h"
#include "engine/kernels/microkernels.h"
#include "engine/kernels/scoped_nanos.h"
#include "engine/kernels/transposed_taps_gemm.h"
#include "engine/runtime/buffer_pool.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"
#include "tbb/task_arena.h"

namespace flexor {
namespace {

using gemm_support::CeilDiv;
using gemm_support::Grow;
using gemm_support::Int8AccumulatePlane;
using gemm_support::LocalScratch;
using gemm_support::PlaneSource;
using gemm_support::RoundUp;
using gemm_support::Scratch;
using gemm_support::StoreInt8Rows;
using gemm_support::Threads;

// Row tile size: rows * row_bytes of decrypted bits fit `budget` bytes, and
// there are at least `min_tiles` tiles when the layer is big enough.
int64_t RowTile(int64_t rows, int64_t row_bytes, int64_t budget, int64_t lo,
                int64_t hi, int64_t min_tiles) {
  int64_t rt = std::clamp(budget / std::max<int64_t>(row_bytes, 1), lo, hi);
  rt = std::min(rt, RoundUp(CeilDiv(rows, min_tiles), lo));
  return std::max(lo, rt / lo * lo);
}

// Runs body(scratch, o0, n) for the row tiles [o0, o0 + n) of [r0, r1),
// tiles of rt rows spread over the TBB arena; each task gets its thread's
// scratch buffers.
template <typename Body>
void ForEachRowTile(int64_t r0, int64_t r1, int64_t rt, const Body& body) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, CeilDiv(r1 - r0, rt), 1),
                    [&](const tbb::blocked_range<int64_t>& range) {
                      Scratch& s = LocalScratch();
                      for (int64_t t = range.begin(); t < range.end(); ++t) {
                        const int64_t o0 = r0 + t * rt;
                        body(s, o0, std::min(rt, r1 - o0));
                      }
                    });
}

// Decrypts rows [o0, o0 + n) of all q planes into the thread's scratch:
// bits [q][n][kw] words and alphas [q][n].
void DecryptTile(const PlaneSource& src, int q, int64_t o0, int64_t n,
                 int64_t kw, Scratch& s, uint64_t** bits, float** alpha) {
  *bits = Grow(s.bits, q * n * kw);
  *alpha = Grow(s.alpha, q * n);
  for (int p = 0; p < q; ++p) {
    src.Rows(p, o0, n, *bits + p * n * kw);
    src.Alphas(p, o0, n, *alpha + p * n);
  }
}

void SignFmaPath(const KernelTable& kt, const PlaneSource& src,
                 const LayerWeights& w, int64_t r0, int64_t r1, const float* x,
                 int64_t batch, float* y, int64_t ldy) {
  const int64_t K = w.in_features, kw = CeilDiv(K, 64), Kp = kw * 64;
  const int q = src.planes();
  // The kernel reads whole words of x: pad rows when K is not a multiple of
  // 64 (zeros meet the zero tail bits of the decrypted rows).
  PooledArray<float> padded(Kp != K ? batch * Kp : 0);
  const float* xp = x;
  int64_t xs = K;
  if (Kp != K) {
    std::fill(padded.begin(), padded.end(), 0.0f);
    for (int64_t b = 0; b < batch; ++b) {
      std::copy(x + b * K, x + (b + 1) * K, padded.data() + b * Kp);
    }
    xp = padded.data();
    xs = Kp;
  }
  // About 32 KiB of decrypted bits per tile: they stay in L1/L2 while the
  // tile is consumed, and small tiles balance the threads well.
  const int64_t rows = r1 - r0;
  const int64_t rt =
      RowTile(rows, kw * 8 * q, int64_t{32} << 10, 8, 256, 4 * Threads());
  constexpr int64_t kBatchChunk = 64;
  ForEachRowTile(r0, r1, rt, [&](Scratch& s, int64_t o0, int64_t n) {
    uint64_t* bits;
    float* alpha;
    DecryptTile(src, q, o0, n, kw, s, &bits, &alpha);
    float* dot = Grow(s.dots, n * kBatchChunk);
    float* acc = Grow(s.acc, n * kBatchChunk);
    for (int64_t b0 = 0; b0 < batch; b0 += kBatchChunk) {
      const int64_t nb = std::min(kBatchChunk, batch - b0);
      for (int p = 0; p < q; ++p) {
        kt.sign_dot(bits + p * n * kw, kw, n, xp + b0 * xs, xs, nb, kw, dot,
                    nb);
        for (int64_t r = 0; r < n; ++r) {
          const float a = alpha[p * n + r];
          for (int64_t b = 0; b < nb; ++b) {
            const float v = a * dot[r * nb + b];
            acc[r * nb + b] = p == 0 ? v : acc[r * nb + b] + v;
          }
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        const float bias = w.bias ? w.bias[o0 + r] : 0.0f;
        for (int64_t b = 0; b < nb; ++b) {
          y[(b0 + b) * ldy + o0 + r] = acc[r * nb + b] + bias;
        }
      }
    }
  });
}

void LutRowsPath(const KernelTable& kt, const PlaneSource& src,
                 const LayerWeights& w, int64_t r0, int64_t r1, const float* x,
                 int64_t batch, float* y, int64_t ldy) {
  const int64_t K = w.in_features, kw = CeilDiv(K, 64);
  const int q = src.planes();
  // One table per activation row: [16 kw groups][16 entries], built once per
  // call and shared by every row tile (padding inputs are zero).
  const int64_t groups = kw * 16;
  PooledArray<float> tables(batch * groups * 16);
  tbb::parallel_for(int64_t{0}, batch, [&](int64_t b) {
    const float* xb = x + b * K;
    for (int64_t g = 0; g < groups; ++g) {
      float v[4];
      for (int i = 0; i < 4; ++i) {
        const int64_t k = 4 * g + i;
        v[i] = k < K ? xb[k] : 0.0f;
      }
      // Same formula as LutBuild: (+-x0 +-x1) + (+-x2 +-x3).
      const float s01 = v[0] + v[1], d01 = v[0] - v[1];
      const float s23 = v[2] + v[3], d23 = v[2] - v[3];
      const float p01[4] = {s01, -d01, d01, -s01};
      const float p23[4] = {s23, -d23, d23, -s23};
      float* t = tables.data() + (b * groups + g) * 16;
      for (int p = 0; p < 16; ++p) t[p] = p01[p & 3] + p23[p >> 2];
    }
  });
  const int64_t rows = r1 - r0;
  const int64_t rt =
      RowTile(rows, kw * 8 * q, int64_t{32} << 10, 16, 256, 4 * Threads());
  ForEachRowTile(r0, r1, rt, [&](Scratch& s, int64_t o0, int64_t n) {
    const int64_t blocks = CeilDiv(n, 16);
    uint64_t* bits = Grow(s.bits, n * kw + q * blocks * 16 * kw);
    uint64_t* t16 = bits + n * kw;
    float* alpha = Grow(s.alpha, q * n);
    for (int p = 0; p < q; ++p) {
      src.Rows(p, o0, n, bits);
      src.Alphas(p, o0, n, alpha + p * n);
      // Transpose to [block][k word][16 rows] for the 16-row kernel,
      // once per tile for every activation row (in registers, 8x8 words at
      // a time, where the ISA has a kernel for it).
      uint64_t* tp = t16 + p * blocks * 16 * kw;
      for (int64_t blk = 0; blk < blocks; ++blk) {
        kt.transpose16(bits + blk * 16 * kw, kw,
                       std::min<int64_t>(16, n - blk * 16), kw,
                       tp + blk * 16 * kw);
      }
    }
    float* acc = Grow(s.acc, blocks * 16);
    float dot[16];
    for (int64_t b = 0; b < batch; ++b) {
      const float* table = tables.data() + b * groups * 16;
      for (int p = 0; p < q; ++p) {
        const uint64_t* tp = t16 + p * blocks * 16 * kw;
        for (int64_t blk = 0; blk < blocks; ++blk) {
          kt.lut_rows(tp + blk * 16 * kw, kw, table, dot);
          for (int64_t r = 0; r < 16 && blk * 16 + r < n; ++r) {
            const int64_t i = blk * 16 + r;
            const float v = alpha[p * n + i] * dot[r];
            acc[i] = p == 0 ? v : acc[i] + v;
          }
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        y[b * ldy + o0 + r] = acc[r] + (w.bias ? w.bias[o0 + r] : 0.0f);
      }
    }
  });
}

// Whether the int8 path uses the LUT kernel (where the ISA has one, AVX2;
// see kInt8LutMaxBatch).
bool UseInt8Lut(const KernelTable& kt, int64_t batch) {
  static const int64_t max_batch = [] {
    const char* env = std::getenv("FLEXOR_INT8_LUT_MAX_BATCH");
    return env ? std::atoll(env) : int64_t{kInt8LutMaxBatch};
  }();
  return kt.lut_i8 != nullptr && batch <= max_batch;
}

// Int8 activations: the decrypted row-major bits go to the int8 sign kernel
// (sum of the activations at set bits, exact integers) or, for small
// batches on AVX2, are byte-transposed in blocks of 16 rows for the LUT
// kernel, which returns the same integers. Per output
// y = scale_b * sum_p alpha_p * (sum_q - 2 * neg_p) + bias is evaluated
// here in the same order for every ISA and kernel, so all builds give
// bitwise identical results.
void Int8SignPath(const KernelTable& kt, const PlaneSource& src,
                  const LayerWeights& w, int64_t r0, int64_t r1, int64_t batch,
                  float* y, int64_t ldy, const int8_t* xq, const float* scale,
                  const int32_t* qsum) {
  const int64_t K = w.in_features, kw = CeilDiv(K, 64), Kp = kw * 64;
  const int q = src.planes();
  const bool lut = UseInt8Lut(kt, batch);
  // (Ternary layers run as two planes without views: w.planes is empty.)
  if (lut && TransposedTapsGemmTakes(w, q, batch)) {
    Int8TransposedTapsGemm(kt, src, w, r0, r1, batch, xq, y, ldy, scale, qsum);
    return;
  }
  const int64_t table_stride = LutI8TableBytes(kw);
  PooledArray<uint8_t> tables(lut ? batch * table_stride : 0);
  if (lut) {
    tbb::parallel_for(int64_t{0}, batch, [&](int64_t b) {
      kt.lut_i8_tables(xq + b * Kp, kw, tables.data() + b * table_stride);
    });
  }
  // The sign kernel's own activation layout, once per call (AVX2).
  const bool sliced = !lut && kt.bit_slice_i8 != nullptr;
  const int64_t xs = sliced ? BitSlicedI8Bytes(kw) : Kp;
  PooledArray<int8_t> x_sliced(sliced ? batch * xs : 0);
  if (sliced) {
    for (int64_t b = 0; b < batch; ++b) {
      kt.bit_slice_i8(xq + b * Kp, kw, x_sliced.data() + b * xs);
    }
  }
  const int8_t* x_sign = sliced ? x_sliced.data() : xq;
  // 32 KiB of decrypted bits per tile, as the FP32 sign path.
  const int64_t rows = r1 - r0;
  const int64_t rt = RowTile(rows, kw * 8 * q, int64_t{32} << 10, lut ? 16 : 8,
                             256, 4 * Threads());
  constexpr int64_t kBatchChunk = 64;
  ForEachRowTile(r0, r1, rt, [&](Scratch& s, int64_t o0, int64_t n) {
    uint64_t* bits;
    float* alpha;
    DecryptTile(src, q, o0, n, kw, s, &bits, &alpha);
    int32_t* neg = Grow(s.idots, n * kBatchChunk);
    float* acc = Grow(s.acc, n * kBatchChunk);
    uint8_t* t16 = lut ? Grow(s.bytes, LutI8TransposedBytes(kw)) : nullptr;
    const uint8_t* t16_in = t16;
    for (int64_t b0 = 0; b0 < batch; b0 += kBatchChunk) {
      const int64_t nb = std::min(kBatchChunk, batch - b0);
      for (int p = 0; p < q; ++p) {
        const uint64_t* pb = bits + p * n * kw;
        if (lut) {
          int32_t dot16[16];
          for (int64_t r = 0; r < n; r += 16) {
            const int64_t valid = std::min<int64_t>(16, n - r);
            kt.transpose_bytes16(pb + r * kw, kw, valid, kw, t16);
            for (int64_t b = 0; b < nb; ++b) {
              kt.lut_i8(&t16_in, 1, kw, tables.data() + (b0 + b) * table_stride,
                        dot16);
              for (int64_t i = 0; i < valid; ++i) {
                neg[(r + i) * nb + b] = dot16[i];
              }
            }
          }
        } else {
          kt.sign_dot_i8(pb, kw, n, x_sign + b0 * xs, xs, nb, kw, neg, nb);
        }
        Int8AccumulatePlane(neg, alpha + p * n, qsum + b0, n, nb, p == 0, acc);
      }
      StoreInt8Rows(acc, o0, n, b0, nb, scale, w.bias, y, ldy);
    }
  });
}

int LutVectors(const KernelTable& kt, int64_t batch, int requested) {
  if (requested == 1 || requested == 2 || requested == 4) return requested;
  if (batch <= kt.lanes) return 1;
  if (batch <= 2 * kt.lanes || kt.lanes >= 16) return 2;
  return 4;
}

void LutPath(const KernelTable& kt, const PlaneSource& src,
             const LayerWeights& w, int64_t r0, int64_t r1, const float* x,
             int64_t batch, float* y, int64_t ldy, int lut_vectors) {
  const int64_t K = w.in_features, kw = CeilDiv(K, 64), Kp = kw * 64;
  const int q = src.planes();
  const int64_t lanes = LutVectors(kt, batch, lut_vectors) * kt.lanes;
  const int64_t tiles_b = CeilDiv(batch, lanes);
  // Activations transposed to [batch tile][k][lane], zero padded in both k
  // and lanes, so a table entry for 4 inputs is 4 vector loads away.
  PooledArray<float> xt(tiles_b * Kp * lanes);
  std::fill(xt.begin(), xt.end(), 0.0f);
  constexpr int64_t kTransposeBlock = 256;
  const int64_t kblocks = CeilDiv(K, kTransposeBlock);
  tbb::parallel_for(int64_t{0}, tiles_b * kblocks, [&](int64_t i) {
    const int64_t bt = i / kblocks, k0 = (i % kblocks) * kTransposeBlock;
    const int64_t k1 = std::min(K, k0 + kTransposeBlock);
    float* dst = xt.data() + bt * Kp * lanes;
    for (int64_t l = 0; l < lanes && bt * lanes + l < batch; ++l) {
      const float* src_row = x + (bt * lanes + l) * K;
      for (int64_t k = k0; k < k1; ++k) dst[k * lanes + l] = src_row[k];
    }
  });
  // Tables cover `chunk` words of K at a time and are rebuilt for every row
  // tile, so tiles are large (up to 256 KiB of bits) to amortise them; the
  // chunk keeps one table within ~32 KiB of L1.
  const int64_t chunk = std::max<int64_t>(1, 32 / lanes);
  const int64_t rows = r1 - r0;
  const int64_t rt =
      RowTile(rows, kw * 8 * q, int64_t{256} << 10, 16, 512, 2 * Threads());
  ForEachRowTile(r0, r1, rt, [&](Scratch& s, int64_t o0, int64_t n) {
    uint64_t* bits;
    float* alpha;
    DecryptTile(src, q, o0, n, kw, s, &bits, &alpha);
    float* table = Grow(s.table, chunk * 16 * 16 * lanes);
    float* acc = Grow(s.acc, n * lanes);
    for (int64_t bt = 0; bt < tiles_b; ++bt) {
      std::fill(acc, acc + n * lanes, 0.0f);
      const float* xb = xt.data() + bt * Kp * lanes;
      for (int64_t c = 0; c < kw; c += chunk) {
        const int64_t cw = std::min(chunk, kw - c);
        kt.lut_build(xb + c * 64 * lanes, cw * 64, lanes, table);
        for (int p = 0; p < q; ++p) {
          kt.lut_gemm(bits + p * n * kw + c, kw, n, cw, table, lanes,
                      alpha + p * n, acc);
        }
      }
      const int64_t nb = std::min(lanes, batch - bt * lanes);
      for (int64_t r = 0; r < n; ++r) {
        const float bias = w.bias ? w.bias[o0 + r] : 0.0f;
        for (int64_t l = 0; l < nb; ++l) {
          y[(bt * lanes + l) * ldy + o0 + r] = acc[r * lanes + l] + bias;
        }
      }
    }
  });
}

}  // namespace

bool QuantizeActivationsInt8(const float* x, int64_t batch, int64_t k,
                             int64_t q_stride, int8_t* q, float* scale,
                             int32_t* sum, KernelIsa isa) {
  const PixelKernelTable& pk = GetPixelKernelTable(isa);
  bool finite = true;
  for (int64_t b = 0; b < batch; ++b) {
    const float* xb = x + b * k;
    int8_t* qb = q + b * q_stride;
    uint32_t amax_bits;
    bool negative;
    pk.int8_range(xb, k, &amax_bits, &negative);
    if (amax_bits >= 0x7f800000u) {
      finite = false;
      continue;
    }
    float amax;
    std::memcpy(&amax, &amax_bits, 4);
    int32_t total = 0;
    if (amax_bits == 0) {
      std::fill(qb, qb + k, int8_t{0});
      scale[b] = 0.0f;
    } else if (amax >= 1e-30f) {
      total = pk.int8_quantize_row(xb, k, 127.0f / amax, qb);
      scale[b] = amax / 127.0f;
    } else {
      // Tiny rows: 127 / amax would overflow float (and 0 * Inf is NaN).
      const double inv = 127.0 / amax;
      for (int64_t i = 0; i < k; ++i) {
        const double t = static_cast<double>(xb[i]) * inv;
        const int v =
            static_cast<int>((t + 6755399441055744.0) - 6755399441055744.0);
        qb[i] = static_cast<int8_t>(v);
        total += v;
      }
      scale[b] = static_cast<float>(amax / 127.0);
    }
    std::fill(qb + k, qb + q_stride, int8_t{0});
    sum[b] = total;
  }
  return finite;
}

BinaryMethod ChooseMethod(KernelIsa isa, int64_t batch, int64_t out_features,
                          int64_t in_features,
                          ActivationPrecision activations) {
  if (activations == ActivationPrecision::kInt8 &&
      (batch <= kInt8MaxBatch ||
       (isa == KernelIsa::kAvx512 && HasAvx512Vnni()))) {
    return BinaryMethod::kInt8Sign;
  }
  return ChooseMethod(isa, batch, out_features, in_features);
}

BinaryMethod ChooseMethod(KernelIsa isa, int64_t batch, int64_t out_features,
                          int64_t in_features) {
  (void)out_features;
  (void)in_features;
  // Measured on 4096x4096 (docs/performance.md): with AVX-512 the VPERMPS
  // row-LUT beats the k-mask sign path at every small batch; the batch LUT
  // wins once a batch tile fills a vector. Without VPERMPS-wide shuffles the
  // sign path is the small-batch kernel.
  if (batch >= 16) return BinaryMethod::kLut;
  return isa == KernelIsa::kAvx512 ? BinaryMethod::kLutRows
                                   : BinaryMethod::kSignFma;
}

const char* Int8KernelName(KernelIsa isa, int64_t batch) {
  const KernelTable& kt = GetKernelTable(isa);
  if (UseInt8Lut(kt, batch)) return "avx2_lut";
  return kt.sign_dot_i8_name;
}

const char* MethodName(BinaryMethod method) {
  switch (method) {
    case BinaryMethod::kAuto:
      return "auto";
    case BinaryMethod::kSignFma:
      return "sign_fma";
    case BinaryMethod::kLut:
      return "lut";
    case BinaryMethod::kLutRows:
      return "lut_rows";
    case BinaryMethod::kInt8Sign:
      return "int8_sign";
  }
  return "unknown";
}

void BinaryCodedGemm(const LayerWeights& w, int64_t row_begin, int64_t row_end,
                     const float* x, int64_t batch, float* y, int64_t ldy,
                     const GemmOptions& options) {
  if (row_end <= row_begin || batch <= 0) return;
  const KernelTable& kt = GetKernelTable(options.isa);
  const PlaneSource src(w, options.isa, options.decrypt_nanos);
  BinaryMethod method = options.method;
  if (method == BinaryMethod::kAuto) {
    method = ChooseMethod(options.isa, batch, w.out_features, w.in_features,
                          options.activations);
  }
  if (method == BinaryMethod::kInt8Sign) {
    const int64_t K = w.in_features, Kp = RoundUp(K, 64);
    PooledArray<int8_t> xq(batch * Kp);
    PooledArray<float> scale(batch);
    PooledArray<int32_t> qsum(batch);
    bool finite = true;
    if (batch == 1) {
      finite = QuantizeActivationsInt8(x, 1, K, Kp, xq.data(), scale.data(),
                                       qsum.data(), options.isa);
    } else {
      PooledArray<char> ok(batch);
      tbb::parallel_for(int64_t{0}, batch, [&](int64_t b) {
        ok[b] = QuantizeActivationsInt8(x + b * K, 1, K, Kp, xq.data() + b * Kp,
                                        scale.data() + b, qsum.data() + b,
                                        options.isa);
      });
      finite = std::all_of(ok.begin(), ok.end(), [](char c) { return c; });
    }
    if (finite) {
      Int8SignPath(kt, src, w, row_begin, row_end, batch, y, ldy, xq.data(),
                   scale.data(), qsum.data());
      return;
    }
    // Inf/NaN inputs: the FP32 kernels propagate them as IEEE arithmetic
    // does; a scale of Inf would turn every output into NaN.
    method = ChooseMethod(options.isa, batch, w.out_features, w.in_features);
  }
  if (method == BinaryMethod::kLut) {
    LutPath(kt, src, w, row_begin, row_end, x, batch, y, ldy,
            options.lut_vectors);
  } else if (method == BinaryMethod::kLutRows) {
    LutRowsPath(kt, src, w, row_begin, row_end, x, batch, y, ldy);
  } else {
    SignFmaPath(kt, src, w, row_begin, row_end, x, batch, y, ldy);
  }
}

void DenseGemm(const LayerWeights& w, int64_t row_begin, int64_t row_end,
               const float* x, int64_t batch, float* y, int64_t ldy,
               const GemmOptions& options) {
  if (row_end <= row_begin || batch <= 0) return;
  const KernelTable& kt = GetKernelTable(options.isa);
  const int64_t K = w.in_features, rows = row_end - row_begin;
  const int64_t rt =
      RowTile(rows, K * 4, int64_t{128} << 10, 4, 256, 4 * Threads());
  constexpr int64_t kBatchChunk = 64;
  ForEachRowTile(
      row_begin, row_end, rt, [&](Scratch& s, int64_t o0, int64_t n) {
        float* dot = Grow(s.dots, n * kBatchChunk);
        for (int64_t b0 = 0; b0 < batch; b0 += kBatchChunk) {
          const int64_t nb = std::min(kBatchChunk, batch - b0);
          kt.dense_dot(w.dense + o0 * K, K, n, x + b0 * K, K, nb, K, dot, nb);
          for (int64_t r = 0; r < n; ++r) {
            const float bias = w.bias ? w.bias[o0 + r] : 0.0f;
            for (int64_t b = 0; b < nb; ++b) {
              y[(b0 + b) * ldy + o0 + r] = dot[r * nb + b] + bias;
            }
          }
        }
      });
}

void TernaryGxnorGemm(const LayerWeights& w, const uint64_t* act_nonzero,
                      const uint64_t* act_sign, int64_t batch, float* y,
                      KernelIsa isa) {
  const int64_t O = w.out_features;
  if (O <= 0 || batch <= 0) return;
  const KernelTable& kt = GetKernelTable(isa);
  const TernaryView& t = w.ternary;
  const int64_t words = t.words_per_row;
  const int64_t rt =
      RowTile(O, words * 16, int64_t{64} << 10, 4, 256, 4 * Threads());
  ForEachRowTile(0, O, rt, [&](Scratch& s, int64_t o0, int64_t n) {
    int32_t* dot = Grow(s.idots, n * batch);
    kt.gxnor(t.nonzero_mask + o0 * words, t.sign + o0 * words, n, words,
             act_nonzero, act_sign, batch, dot);
    for (int64_t r = 0; r < n; ++r) {
      const float scale = t.scales[o0 + r];
      const float bias = w.bias ? w.bias[o0 + r] : 0.0f;
      for (int64_t b = 0; b < batch; ++b) {
        y[b * O + o0 + r] =
            scale * static_cast<float>(dot[r * batch + b]) + bias;
      }
    }
  });
}

}  // namespace flexor
