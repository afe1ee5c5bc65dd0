// Non-owning view of one layer's weight matrix W [O, K] in any codec, pointing
// into a model file's payload. This is what every matmul kernel consumes.
#ifndef FLEXOR_ENGINE_KERNELS_LAYER_WEIGHTS_H_
#define FLEXOR_ENGINE_KERNELS_LAYER_WEIGHTS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/codec/xor_network.h"

namespace flexor {

enum class WeightCodecKind { kFloat32, kBinary, kTernary };

struct TransposedTaps;  // transposed_taps.h

// One binary-coded plane: W_p[o,k] = scales[o] * (1 - 2 * bit(o*K + k)),
// bits decrypted from `stored` through `net` in the canonical layout.
struct BinaryPlaneView {
  const float* scales = nullptr;     // [O]
  const uint64_t* stored = nullptr;  // [net.n_in][words_per_vector]
  int64_t words_per_vector = 0;
  int64_t slices = 0;  // S: ceil(O*K / net.n_out), or row-aligned
  XorNetwork net;
  // The taps in the int8 LUT kernel's transposed layout, when its segments
  // start on row boundaries and the ISA has that kernel
  // (AttachTransposedTaps); null otherwise. Owned, shared by copies.
  std::shared_ptr<const TransposedTaps> transposed;
};

struct TernaryView {
  const uint64_t* nonzero_mask = nullptr;  // [O][words_per_row]
  const uint64_t* sign = nullptr;          // [O][words_per_row]
  const float* scales = nullptr;           // [O]
  int64_t words_per_row = 0;               // ceil(K / 64)
};

struct LayerWeights {
  WeightCodecKind kind = WeightCodecKind::kFloat32;
  int64_t out_features = 0;             // O
  int64_t in_features = 0;              // K
  const float* dense = nullptr;         // kFloat32: [O, K] row-major
  std::vector<BinaryPlaneView> planes;  // kBinary: q planes
  TernaryView ternary;                  // kTernary
  const float* bias = nullptr;          // [O] or null

  // Bytes of weight payload (bits + scales) this layer keeps resident.
  int64_t CompressedBytes() const;
  // Bits per weight of the codec (32 for float, sum of n_in/n_out per plane).
  double BitsPerWeight() const;
};

// Dequantizes W to dense float [O*K] row-major (reference path, tests).
std::vector<float> DequantizeReference(const LayerWeights& w);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_LAYER_WEIGHTS_H_
