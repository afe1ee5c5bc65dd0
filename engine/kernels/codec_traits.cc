#include "engine/kernels/codec_traits.h"

#include <algorithm>

#include "engine/kernels/decrypt.h"
#include "engine/kernels/transposed_taps.h"

namespace flexor {
namespace {

int64_t ScaleBytes(const LayerWeights& w) {
  return w.out_features * static_cast<int64_t>(sizeof(float));
}

// ---------------------------------------------------------------- float32

int DensePlanes(const LayerWeights&) { return 0; }
void NoRows(const LayerWeights&, int, int64_t, int64_t, uint64_t*, KernelIsa) {}
void NoAlphas(const LayerWeights&, int, int64_t, int64_t, float*) {}
double DenseBits(const LayerWeights&) { return 32.0; }
int64_t DenseBytes(const LayerWeights& w) {
  return w.out_features * w.in_features * static_cast<int64_t>(sizeof(float));
}

// ----------------------------------------------------------------- binary

int BinaryPlanes(const LayerWeights& w) {
  return static_cast<int>(w.planes.size());
}
void BinaryRows(const LayerWeights& w, int p, int64_t o0, int64_t rows,
                uint64_t* out, KernelIsa isa) {
  DecryptRows(w.planes[static_cast<size_t>(p)], w.in_features, o0, rows, out,
              isa);
}
void BinaryAlphas(const LayerWeights& w, int p, int64_t o0, int64_t rows,
                  float* out) {
  const float* s = w.planes[static_cast<size_t>(p)].scales + o0;
  std::copy(s, s + rows, out);
}
double BinaryBits(const LayerWeights& w) {
  double bits = 0;
  for (const BinaryPlaneView& p : w.planes) bits += p.net.bits_per_weight();
  return bits;
}
int64_t BinaryBytes(const LayerWeights& w) {
  int64_t bytes = 0;
  for (const BinaryPlaneView& p : w.planes) {
    bytes += p.net.n_in * p.words_per_vector * 8 + ScaleBytes(w);
    if (p.transposed != nullptr) {
      bytes += static_cast<int64_t>(p.transposed->bytes.size());
    }
  }
  return bytes;
}

// ---------------------------------------------------------------- ternary

// Two planes: w = a/2 * (B0 + B1) with B0 = sign and B1 = sign where the
// weight is non-zero, -sign where it is zero (bit1 = sign ^ ~nonzero). Bits
// past K in the last word may be set; every kernel pairs them with zero
// (padded) activations.
int TernaryPlanes(const LayerWeights&) { return 2; }
void TernaryRows(const LayerWeights& w, int p, int64_t o0, int64_t rows,
                 uint64_t* out, KernelIsa) {
  const TernaryView& t = w.ternary;
  const int64_t kw = (w.in_features + 63) / 64;
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t* sign = t.sign + (o0 + r) * t.words_per_row;
    const uint64_t* nz = t.nonzero_mask + (o0 + r) * t.words_per_row;
    uint64_t* o = out + r * kw;
    if (p == 0) {
      for (int64_t i = 0; i < kw; ++i) o[i] = sign[i];
    } else {
      for (int64_t i = 0; i < kw; ++i) o[i] = sign[i] ^ ~nz[i];
    }
  }
}
void TernaryAlphas(const LayerWeights& w, int, int64_t o0, int64_t rows,
                   float* out) {
  for (int64_t r = 0; r < rows; ++r) out[r] = 0.5f * w.ternary.scales[o0 + r];
}
double TernaryBits(const LayerWeights&) { return 2.0; }
int64_t TernaryBytes(const LayerWeights& w) {
  return 2 * w.out_features * w.ternary.words_per_row * 8 + ScaleBytes(w);
}

// Indexed by WeightCodecKind.
const WeightCodecTraits kTraits[] = {
    {WeightCodecKind::kFloat32, "float32", DensePlanes, NoRows, NoAlphas,
     DenseBits, DenseBytes},
    {WeightCodecKind::kBinary, "binary", BinaryPlanes, BinaryRows, BinaryAlphas,
     BinaryBits, BinaryBytes},
    {WeightCodecKind::kTernary, "ternary", TernaryPlanes, TernaryRows,
     TernaryAlphas, TernaryBits, TernaryBytes},
};

}  // namespace

const WeightCodecTraits& CodecTraits(WeightCodecKind kind) {
  return kTraits[static_cast<int>(kind)];
}

}  // namespace flexor
