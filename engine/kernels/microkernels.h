// Micro-kernels behind Matmul, one table of function pointers per ISA. Each
// table comes from the same templates (microkernels_impl.h) instantiated in a
// translation unit compiled with that ISA's flags, so the portable build and
// the SIMD builds compute the same thing in the same summation order, and
// tests/kernels compares every entry of every table with plain scalar code.
#ifndef FLEXOR_ENGINE_KERNELS_MICROKERNELS_H_
#define FLEXOR_ENGINE_KERNELS_MICROKERNELS_H_

#include <algorithm>
#include <cstdint>

#include "engine/codec/xor_width.h"
#include "engine/kernels/cpu_features.h"

namespace flexor {

// Word-wide FleXOR decryption of one output segment D = XOR_t taps[t] (words
// at index >= words_per_vector read as 0), then a funnel shift:
//   out[m] = bits [64 * (first_word + m) + shift, +64) of D,  m < num_words,
// shift in [0, 64). The shift is what lets a row that starts mid-word be
// written word-aligned.
// num_taps <= kMaxXorWidth.
using DecryptWordsFn = void (*)(const uint64_t* const* taps, int num_taps,
                                int64_t words_per_vector, int64_t first_word,
                                int shift, int64_t num_words, uint64_t* out);

// Sign-mask path: for r < rows, b < batch
//   dot[r * dot_stride + b] = sum_{k < 64 * k_words} s(r, k) * x[b * x_stride +
//   k]
// with s = +1 for bit 0 and -1 for bit 1 of bits[r * bit_stride] (LSB first).
// x rows must be readable (zero padded) up to 64 * k_words.
using SignDotFn = void (*)(const uint64_t* bits, int64_t bit_stride,
                           int64_t rows, const float* x, int64_t x_stride,
                           int64_t batch, int64_t k_words, float* dot,
                           int64_t dot_stride);

// Look-up-table path over groups of 4 inputs and a tile of `lanes` batch
// columns (lanes a multiple of KernelTable::lanes).
// LutBuild: xt is [k][lanes] (transposed activations, k a multiple of 4);
//   table[g][p][l] = sum_{i<4} (bit i of p ? -1 : +1) * xt[4g + i][l].
using LutBuildFn = void (*)(const float* xt, int64_t k, int64_t lanes,
                            float* table);
// LutGemm: for r < rows, l < lanes
//   acc[r * lanes + l] += alpha[r] * sum_{g < 16 k_words} table[g][nib(r,
//   g)][l]
// with nib(r, g) = bits 4g..4g+3 of row r (bits + r * bit_stride).
using LutGemmFn = void (*)(const uint64_t* bits, int64_t bit_stride,
                           int64_t rows, int64_t k_words, const float* table,
                           int64_t lanes, const float* alpha, float* acc);

// Row-LUT path (T-MAC style, small batches): one 16-entry table of signed
// partial sums per group of 4 inputs of ONE activation row, looked up for 16
// weight rows at once (AVX-512: the nibbles of 16 rows index a VPERMPS).
//   bits16: a block of 16 rows transposed to [k_words][16] words (the
//           driver transposes each decrypted tile once for all batch rows);
//   table:  [16 * k_words][16] floats, table[g][p] as in LutBuild;
//   dot[r] = sum_g table[g][nib(r, g)], r < 16; even and odd groups are
//   summed separately and added at the end (the same order in every build).
using LutRowsFn = void (*)(const uint64_t* bits16, int64_t k_words,
                           const float* table, float* dot);

// Row-LUT input layout: one block of 16 rows of `bits` (row r at
// bits + r * bit_stride, k_words words each) transposed to
// out[m * 16 + r] = word m of row r, m < k_words; rows >= `rows` are zero.
using Transpose16Fn = void (*)(const uint64_t* bits, int64_t bit_stride,
                               int64_t rows, int64_t k_words, uint64_t* out);

// Int8 LUT path (T-MAC style; AVX2 small batches). Weights are read in
// 32-byte column chunks, LutI8Chunks(k_words) per row (the last one zero
// padded); three steps:
// LutI8Tables: for one quantised activation row xq (64 * k_words int8,
//   zero padded), per 4-input group g and pattern p < 16 the sum
//   e_g[p] = 512 + sum of xq[4g + i] over the set bits i of p, which lies in
//   [0, 1020]; stored split as e & 31 and e >> 5 so that a byte lane sums 8
//   look-ups without carrying. Per chunk cc, byte column c < 16 and nibble
//   n < 2: 32 bytes of e & 31, then 32 bytes of e >> 5, with lane 0 (bytes
//   0-15, indexed by p) for group 2 (32 cc + c) + n and lane 1 for group
//   2 (32 cc + 16 + c) + n. LutI8TableBytes(k_words) bytes in all.
// TransposeBytes16: a block of 16 rows of `bits` (row r at bits + r *
//   bit_stride, k_words words) to
//   out[(cc * 16 + c) * 32 + 16 * h + r] = byte 32 cc + 16 h + c of row r,
//   zero for r >= rows and for bytes past the row (LutI8TransposedBytes).
// LutI8: neg[r], r < 16, = sum of the activations at the set bits of row r:
//   the sum of the looked-up e_g[nibble g of row r] minus 512 per group,
//   the same integers as SignDotI8 returns. The rows are the XOR of
//   num_inputs >= 1 transposed blocks t16[i] (the same layout): one block is
//   a transposed decrypted tile; several are FleXOR taps kept transposed,
//   which decrypts inside the kernel (XOR commutes with the transpose) when
//   a plane's segments start on row boundaries.
inline int64_t LutI8Chunks(int64_t k_words) { return (k_words + 3) / 4; }
// The row byte that lane h of transposed vector (cc, c) holds, and the
// 4-input group nibble n of it indexes (the tables' layout follows it).
inline int64_t LutI8Byte(int64_t cc, int64_t c, int64_t h) {
  return 32 * cc + 16 * h + c;
}
inline int64_t LutI8Group(int64_t cc, int64_t c, int64_t h, int64_t n) {
  return 2 * LutI8Byte(cc, c, h) + n;
}
inline int64_t LutI8TableBytes(int64_t k_words) {
  return LutI8Chunks(k_words) * 16 * 2 * 64;
}
inline int64_t LutI8TransposedBytes(int64_t k_words) {
  return LutI8Chunks(k_words) * 16 * 32;
}
using LutI8TablesFn = void (*)(const int8_t* xq, int64_t k_words,
                               uint8_t* tables);
using TransposeBytes16Fn = void (*)(const uint64_t* bits, int64_t bit_stride,
                                    int64_t rows, int64_t k_words,
                                    uint8_t* out);
using LutI8Fn = void (*)(const uint8_t* const* t16, int num_inputs,
                         int64_t k_words, const uint8_t* tables, int32_t* neg);

// Dense FP32: dot[r * dot_stride + b] = sum_{k<K} w[r * w_stride + k] *
// x[b * x_stride + k].
using DenseDotFn = void (*)(const float* w, int64_t w_stride, int64_t rows,
                            const float* x, int64_t x_stride, int64_t batch,
                            int64_t k, float* dot, int64_t dot_stride);

// Gated XNOR: dot[r * batch + b] = popcount(m & ~d) - popcount(m & d) over
// `words` words, m = w_nz[r] & a_nz[b], d = w_sign[r] ^ a_sign[b].
using GxnorFn = void (*)(const uint64_t* w_nz, const uint64_t* w_sign,
                         int64_t rows, int64_t words, const uint64_t* a_nz,
                         const uint64_t* a_sign, int64_t batch, int32_t* dot);

// Int8 sign path: for r < rows, b < batch
//   neg[r * neg_stride + b] = sum of xq[b * x_stride + k] over the set bits
//   k < 64 * k_words of row r (bits + r * bit_stride, LSB first).
// With sum_x = sum_k xq[k], the +-1 dot product is sum_x - 2 * neg. Integer
// math throughout, so every build returns identical values. xq rows must be
// readable (zero padded) up to 64 * k_words; any int8 value is allowed and
// K may be up to 2^22 without overflow.
using SignDotI8Fn = void (*)(const uint64_t* bits, int64_t bit_stride,
                             int64_t rows, const int8_t* xq, int64_t x_stride,
                             int64_t batch, int64_t k_words, int32_t* neg,
                             int64_t neg_stride);

// Bit-sliced int8 activations, the layout some SignDotI8 kernels read
// (AVX2: one shift and AND per 32 weights instead of a byte shuffle):
// per chunk c of 256 inputs and bit position b < 8, 32 bytes
//   out[256 c + 32 b + j] = x[256 c + 8 j + b]   (j < 32),
// so byte j of a 32-byte load of weight bits meets the inputs of its bit b
// in byte j of vector b. ceil(k_words / 4) chunks; inputs at or beyond
// 64 * k_words are zero.
using BitSliceI8Fn = void (*)(const int8_t* x, int64_t k_words, int8_t* out);
inline int64_t BitSlicedI8Bytes(int64_t k_words) {
  return (k_words + 3) / 4 * 256;
}

struct KernelTable {
  KernelIsa isa;
  int lanes;  // floats per vector register
  DecryptWordsFn decrypt_words;
  // The same words, stored past the caches (non-temporal): for outputs
  // larger than the caches that are not read back at once (DecryptPlane).
  DecryptWordsFn decrypt_words_streaming;
  SignDotFn sign_dot;
  LutBuildFn lut_build;
  LutGemmFn lut_gemm;
  LutRowsFn lut_rows;
  DenseDotFn dense_dot;
  GxnorFn gxnor;
  SignDotI8Fn sign_dot_i8;
  // Null: sign_dot_i8 reads xq as plain rows. Otherwise each row of xq is
  // this function's output (BitSlicedI8Bytes apart at least).
  BitSliceI8Fn bit_slice_i8;
  Transpose16Fn transpose16;
  // Null where the ISA has no int8 LUT kernel (the int8 path then uses
  // sign_dot_i8 for every batch).
  LutI8TablesFn lut_i8_tables;
  TransposeBytes16Fn transpose_bytes16;
  LutI8Fn lut_i8;
  const char* sign_dot_i8_name;  // which implementation (logs, benchmark)
};

// Pixel-tiled kernels (convolution as GEMM over output pixels, see
// conv_gemm.h). Activations come as rows of `lanes` pixels (1 or 2
// vectors), row kk at base + offs[kk]: rows of the (padded) input itself
// (implicit GEMM); offs == nullptr: consecutive rows base + kk * lanes (an
// im2col tile, a transposed batch). Dense FP32:
//   y[r * lanes + l] = sum_{kk < k} w[r * w_stride + kk] * (base + offs[kk])[l]
using DenseKnFn = void (*)(const float* w, int64_t w_stride, int64_t rows,
                           int64_t k, const float* base, const int64_t* offs,
                           int64_t lanes, float* y);
// LutBuild (above) with input row 4g + i at base + offs[4g + i].
using LutBuildRowsFn = void (*)(const float* base, const int64_t* offs,
                                int64_t k, int64_t lanes, float* table);

// im2col into the pixel-tiled layout: a run of output pixels of one output
// row that lands in one tile, pixels [p, p + len) = row oy, columns
// [ox, ox + len), lanes [lane, lane + len) of tile `tile`.
struct Im2colPiece {
  int32_t oy, ox, len, tile, lane;
};
struct Im2colPlan {
  int64_t channels, height, width;  // input [C, H, W]
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  int64_t k;       // C * kernel_h * kernel_w (rows with data)
  int64_t k_rows;  // rows per tile (k, or more: zero rows, one spare)
  int64_t lanes, tiles;
  const Im2colPiece* pieces = nullptr;  // every output pixel exactly once
  int64_t num_pieces = 0;
};
// cols[tile][row][lane] = x[c][oy * sh + ky - ph][ox * sw + kx - pw] (0
// outside) for row = (c * kh + ky) * kw + kx; rows k..k_rows are zero, lanes
// past the last pixel are left as they are. cols needs kPixelColsSlack
// floats after the last tile (whole-vector writes of zeros). `work` holds
// Im2colWorkFloats(plan) floats (the zero-padded input when padding).
inline constexpr int64_t kPixelColsSlack = 16;
inline int64_t Im2colWorkFloats(const Im2colPlan& p) {
  if (p.pad_h == 0 && p.pad_w == 0) return 0;
  return p.channels * (p.height + 2 * p.pad_h) * (p.width + 2 * p.pad_w);
}
using Im2colFn = void (*)(const Im2colPlan& plan, const float* x, float* cols,
                          float* work);
// padded[c][y][x] = the input under a zero border of pad_h / pad_w.
using PadInputFn = void (*)(const Im2colPlan& plan, const float* x,
                            float* padded);
// y[o * ldy + i] = f(acc[o * lanes + i]) for o < rows, i < n (n <= lanes),
// f(v) = v * scale[o] + shift[o] (1 / 0 when null), plus res[o * ldy + i]
// when res is not null (a fused residual Add), then max(., 0) if relu.
using StoreTileFn = void (*)(const float* acc, int64_t lanes, int64_t rows,
                             int64_t n, const float* scale, const float* shift,
                             bool relu, float* y, int64_t ldy,
                             const float* res);
// The same from int32 sums (the int8 kernels), converted to float first;
// scale and shift are required.
using StoreTileI32Fn = void (*)(const int32_t* acc, int64_t lanes, int64_t rows,
                                int64_t n, const float* scale,
                                const float* shift, bool relu, float* y,
                                int64_t ldy, const float* res);

// y[i * ldy + o] = f(acc[o * lanes + i]): the same, stored pixel-major.
using StoreTileTransposedFn = void (*)(const float* acc, int64_t lanes,
                                       int64_t rows, int64_t n,
                                       const float* scale, const float* shift,
                                       bool relu, float* y, int64_t ldy);
// cols[t][k][l] = x[(t * lanes + l) * k_in + k] for k < k_in, 0 for
// k_in <= k < rows, lanes past `batch` left as they are: a [batch, k_in]
// row-major matrix as pixel tiles (Dense layers run over batch "pixels").
using TransposeToTilesFn = void (*)(const float* x, int64_t batch, int64_t k_in,
                                    int64_t rows, int64_t lanes, float* cols);

// Int8 pixel kernels (convolutions with ActivationPrecision::kInt8, see
// int8_conv.h). Activations are u8 in "C4" layout: the bytes of 4 channels
// interleaved per pixel, so one 32-bit word holds (channel group, pixel);
// weights are s8 in {-1, 0, 1} (one binary plane; its scale is applied
// after the sum), 4 per (row, channel group) in the same channel order.
//   acc[r * lanes + l] = sum_{g < groups} sum_{i < 4}
//       w[r * w_stride + 4 g + i] * byte i of x_g[l]
// x_g = base + offs[g] (32-bit words), or base + g * lanes when offs is
// null (an int8 im2col tile). Exact integer sums: every ISA gives the same
// result. |w| <= 1 is what lets the AVX2 kernel sum 64 groups in 16 bits.
// With low_digit_shift (the second digit of ActivationPrecision::kInt16, x
// holding the low digits) acc holds the high digit's sums on entry and gets
//   acc[r * lanes + l] = 254 * acc[r * lanes + l] + sum - low_digit_shift[r]
// in int32 (the caller checks Int8TwoDigitsFit): the digits are combined in
// the kernel's store, not in a pass of their own.
using Int8KnFn = void (*)(const int8_t* w, int64_t w_stride, int64_t rows,
                          int64_t groups, const uint32_t* base,
                          const int64_t* offs, int64_t lanes, int32_t* acc,
                          const int32_t* low_digit_shift);
// Scans n floats: *amax_bits = max |x| as bits, *negative = some x < 0
// (-0 excluded). Inf/NaN show as *amax_bits >= 0x7f800000.
using Int8RangeFn = void (*)(const float* x, int64_t n, uint32_t* amax_bits,
                             bool* negative);
// q[i] = round_to_nearest_even(x[i] * inv) for i < k, given
// |x[i] * inv| <= 127 (1 + 2^-22); returns sum_i q[i]. The per-row int8
// quantiser of the matmul int8 path (QuantizeActivationsInt8).
using Int8QuantizeRowFn = int32_t (*)(const float* x, int64_t k, float inv,
                                      int8_t* q);
// padded[c4][y + pad_h][x + pad_w] = the 4 bytes u(x[4 c4 + i][y][x]),
// u(v) = clamp(round_to_nearest_even(v * inv) + zero, 0, 255), channels
// >= C as `zero`; every other word (border) is left as it is. Planes are
// hp x wp words. When `low` is not null it gets the second digit
// (ActivationPrecision::kInt16) at the same positions:
// low(v) = round(254 * (t - round(t))) + kInt8LowZero, t = v * inv, so that
// v ~ (u(v) - zero + (low(v) - kInt8LowZero) / 254) / inv; channels >= C
// as kInt8LowZero.
constexpr uint32_t kInt8LowZero = 128;
using Int8QuantizeC4Fn = void (*)(const Im2colPlan& plan, const float* x,
                                  float inv, int32_t zero, uint32_t* padded,
                                  uint32_t* low);
// cols[tile][g][lane] = padded[c4][oy * sh + ky][ox * sw + kx] for g = (c4 *
// kh + ky) * kw + kx and every piece of plan (int8 explicit im2col over the
// already padded C4 input, planes (height + 2 pad_h) x (width + 2 pad_w)).
// plan.k_rows is the number of groups per tile.
using Int8Im2colFn = void (*)(const Im2colPlan& plan, const uint32_t* padded,
                              uint32_t* cols);
// w8[o * ws + (c4 * taps + t) * 4 + i] = 1 - 2 * bit k of row o, k = (4 c4 +
// i) * taps + t, and 0 for channels 4 c4 + i >= channels; bits are rows of
// kw 64-bit words; row_sums[o] = the sum of row o's weights (its K = channels
// x taps bits: clear ones count +1, set ones -1), for the zero-point
// correction. May write up to 64 bytes past a row's last group.
using Int8PackWeightsFn = void (*)(const uint64_t* bits, int64_t kw,
                                   int64_t rows, int64_t channels, int64_t taps,
                                   int8_t* w8, int64_t ws, int32_t* row_sums);

// 2x2 max pooling, stride 2, no padding, of `planes` planes of h x w into
// (h / 2) x (w / 2) (odd last rows / columns dropped, as in PyTorch).
using MaxPool2x2Fn = void (*)(const float* x, int64_t planes, int64_t h,
                              int64_t w, float* y);

struct PixelKernelTable {
  KernelIsa isa;
  int lanes;  // floats per vector register
  DenseKnFn dense_kn;
  LutBuildRowsFn lut_build_rows;
  Im2colFn im2col;
  PadInputFn pad_input;
  StoreTileFn store_tile;
  StoreTileTransposedFn store_tile_transposed;
  TransposeToTilesFn transpose_to_tiles;
  Int8KnFn int8_kn;
  const char* int8_kn_name;  // which implementation (logs, benchmark)
  Int8RangeFn int8_range;
  Int8QuantizeRowFn int8_quantize_row;
  Int8QuantizeC4Fn int8_quantize_c4;
  Int8Im2colFn int8_im2col;
  Int8PackWeightsFn int8_pack_weights;
  MaxPool2x2Fn max_pool_2x2;
  StoreTileI32Fn store_tile_i32;
};
const PixelKernelTable& GetPixelKernelTable(KernelIsa isa);
const PixelKernelTable& ScalarPixelKernelTable();
const PixelKernelTable& Avx2PixelKernelTable();
const PixelKernelTable& Avx512PixelKernelTable();

// The table for `isa`; isa must be supported (IsaSupported).
const KernelTable& GetKernelTable(KernelIsa isa);

// Per-ISA tables (defined in kernels_<isa>.cc).
const KernelTable& ScalarKernelTable();
const KernelTable& Avx2KernelTable();
const KernelTable& Avx512KernelTable();

// The portable int8 sign kernel (the reference the SIMD ones are tested
// against bit for bit), and the AVX2 one (also used by AVX-512 CPUs without
// VNNI). Defined in kernels_scalar.cc / kernels_avx2.cc.
void BitSliceI8Portable(const int8_t* x, int64_t k_words, int8_t* out);
void SignDotI8Portable(const uint64_t* bits, int64_t bit_stride, int64_t rows,
                       const int8_t* xq, int64_t x_stride, int64_t batch,
                       int64_t k_words, int32_t* neg, int64_t neg_stride);
void Transpose16Portable(const uint64_t* bits, int64_t bit_stride, int64_t rows,
                         int64_t k_words, uint64_t* out);
void LutI8TablesPortable(const int8_t* xq, int64_t k_words, uint8_t* tables);
void TransposeBytes16Portable(const uint64_t* bits, int64_t bit_stride,
                              int64_t rows, int64_t k_words, uint8_t* out);
void LutI8Portable(const uint8_t* const* t16, int num_inputs, int64_t k_words,
                   const uint8_t* tables, int32_t* neg);
void SignDotI8Avx2(const uint64_t* bits, int64_t bit_stride, int64_t rows,
                   const int8_t* xq, int64_t x_stride, int64_t batch,
                   int64_t k_words, int32_t* neg, int64_t neg_stride);
// The int8 pixel kernel: portable reference (kernels_scalar.cc), AVX2
// (VPMADDUBSW, 16-bit sums flushed every 64 groups; also used by AVX-512
// CPUs without VNNI) and AVX-512 VNNI (VPDPBUSD).
void Int8KnPortable(const int8_t* w, int64_t w_stride, int64_t rows,
                    int64_t groups, const uint32_t* base, const int64_t* offs,
                    int64_t lanes, int32_t* acc,
                    const int32_t* low_digit_shift);
void Int8KnAvx2(const int8_t* w, int64_t w_stride, int64_t rows, int64_t groups,
                const uint32_t* base, const int64_t* offs, int64_t lanes,
                int32_t* acc, const int32_t* low_digit_shift);
void Int8KnAvx512Vnni(const int8_t* w, int64_t w_stride, int64_t rows,
                      int64_t groups, const uint32_t* base, const int64_t* offs,
                      int64_t lanes, int32_t* acc,
                      const int32_t* low_digit_shift);
// Int8PackWeightsFn of the AVX-512 build, and the VBMI one
// (kernels_avx512_vbmi.cc, only called when the CPU has AVX512_VBMI), which
// expands a channel group's signs with two byte permutes for up to 32 taps
// and leaves larger kernels to the former.
void Int8PackWeightsAvx512(const uint64_t* bits, int64_t kw, int64_t rows,
                           int64_t channels, int64_t taps, int8_t* w8,
                           int64_t ws, int32_t* row_sums);
void Int8PackWeightsAvx512Vbmi(const uint64_t* bits, int64_t kw, int64_t rows,
                               int64_t channels, int64_t taps, int8_t* w8,
                               int64_t ws, int32_t* row_sums);
// AVX-512 VNNI version (kernels_avx512_vnni.cc); only called when the CPU
// has AVX512_VNNI.
void SignDotI8Avx512Vnni(const uint64_t* bits, int64_t bit_stride, int64_t rows,
                         const int8_t* xq, int64_t x_stride, int64_t batch,
                         int64_t k_words, int32_t* neg, int64_t neg_stride);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_MICROKERNELS_H_
