// Random layers in every codec for the kernel tests (owning storage plus a
// LayerWeights view into it).
#ifndef FLEXOR_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
#define FLEXOR_TESTS_KERNELS_KERNEL_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "engine/codec/bit_layout.h"
#include "engine/codec/xor_network.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/layer_weights.h"

namespace flexor {
namespace testing_util {

struct NetSpec {
  int n_in, n_out, n_tap;
};

inline XorNetwork MakeNet(const NetSpec& spec, uint64_t seed) {
  if (spec.n_in == spec.n_out && spec.n_tap == 1) {
    return XorNetwork::Identity(spec.n_in);
  }
  absl::StatusOr<XorNetwork> net =
      GenerateXorNetwork(spec.n_in, spec.n_out, spec.n_tap, seed);
  if (!net.ok()) std::abort();
  return *net;
}

// A layer plus the buffers it points into.
struct OwnedLayer {
  LayerWeights w;
  std::vector<std::vector<uint64_t>> stored;
  std::vector<std::vector<float>> scales;
  std::vector<float> dense, bias;
  std::vector<uint64_t> nz, sign;
};

inline std::unique_ptr<OwnedLayer> RandomBinaryLayer(int64_t O, int64_t K,
                                                     int q, const NetSpec& spec,
                                                     uint64_t seed,
                                                     bool with_bias = true) {
  auto l = std::make_unique<OwnedLayer>();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> scale(0.1f, 1.0f);
  l->w.kind = WeightCodecKind::kBinary;
  l->w.out_features = O;
  l->w.in_features = K;
  l->stored.resize(q);
  l->scales.resize(q);
  for (int p = 0; p < q; ++p) {
    BinaryPlaneView v;
    v.net = MakeNet(spec, seed + 17 * p);
    EncryptedBits bits = MakeEncryptedBits(O * K, v.net);
    // Random stored bits; canonical padding (bits >= S) stays zero.
    for (int t = 0; t < v.net.n_in; ++t) {
      for (int64_t s = 0; s < bits.slices; ++s) {
        if (rng() & 1)
          SetBit(bits.words.data() + t * bits.words_per_vector, s, true);
      }
    }
    l->stored[p] = std::move(bits.words);
    l->scales[p].resize(O);
    for (auto& a : l->scales[p]) a = scale(rng);
    v.stored = l->stored[p].data();
    v.words_per_vector = bits.words_per_vector;
    v.slices = bits.slices;
    v.scales = l->scales[p].data();
    l->w.planes.push_back(v);
  }
  if (with_bias) {
    l->bias.resize(O);
    for (auto& b : l->bias) b = scale(rng) - 0.5f;
    l->w.bias = l->bias.data();
  }
  return l;
}

inline std::unique_ptr<OwnedLayer> RandomTernaryLayer(int64_t O, int64_t K,
                                                      uint64_t seed) {
  auto l = std::make_unique<OwnedLayer>();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> scale(0.1f, 1.0f);
  const int64_t wpr = (K + 63) / 64;
  l->w.kind = WeightCodecKind::kTernary;
  l->w.out_features = O;
  l->w.in_features = K;
  l->nz.assign(O * wpr, 0);
  l->sign.assign(O * wpr, 0);
  for (int64_t o = 0; o < O; ++o) {
    for (int64_t k = 0; k < K; ++k) {
      const int v = static_cast<int>(rng() % 3);  // 0, +1, -1
      if (v != 0) SetBit(l->nz.data() + o * wpr, k, true);
      if (v == 2) SetBit(l->sign.data() + o * wpr, k, true);
    }
  }
  l->scales.resize(1);
  l->scales[0].resize(O);
  for (auto& a : l->scales[0]) a = scale(rng);
  l->bias.resize(O);
  for (auto& b : l->bias) b = scale(rng) - 0.5f;
  l->w.ternary.nonzero_mask = l->nz.data();
  l->w.ternary.sign = l->sign.data();
  l->w.ternary.scales = l->scales[0].data();
  l->w.ternary.words_per_row = wpr;
  l->w.bias = l->bias.data();
  return l;
}

inline std::unique_ptr<OwnedLayer> RandomDenseLayer(int64_t O, int64_t K,
                                                    uint64_t seed) {
  auto l = std::make_unique<OwnedLayer>();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  l->w.kind = WeightCodecKind::kFloat32;
  l->w.out_features = O;
  l->w.in_features = K;
  l->dense.resize(O * K);
  for (auto& v : l->dense) v = normal(rng);
  l->bias.resize(O);
  for (auto& b : l->bias) b = normal(rng);
  l->w.dense = l->dense.data();
  l->w.bias = l->bias.data();
  return l;
}

inline std::vector<float> RandomVector(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& f : v) f = normal(rng);
  return v;
}

// Float summation tolerance for y[b, o]: a few units of rounding per term of
// sum_k |W[o,k] x[b,k]| (the classic bound is K * eps * that sum; random
// data stays far below it, reordered sums too).
inline std::vector<double> Tolerances(const LayerWeights& w, const float* x,
                                      int64_t batch) {
  const std::vector<float> dense = DequantizeReference(w);
  const int64_t O = w.out_features, K = w.in_features;
  std::vector<double> tol(batch * O);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t o = 0; o < O; ++o) {
      double s = w.bias ? std::fabs(w.bias[o]) : 0.0;
      for (int64_t k = 0; k < K; ++k) {
        s += std::fabs(static_cast<double>(dense[o * K + k]) * x[b * K + k]);
      }
      tol[b * O + o] =
          8.0 * 1.2e-7 * std::sqrt(static_cast<double>(K) + 4) * s + 1e-30;
    }
  }
  return tol;
}

inline std::vector<KernelIsa> SupportedIsas() {
  std::vector<KernelIsa> isas;
  for (KernelIsa isa :
       {KernelIsa::kScalar, KernelIsa::kAvx2, KernelIsa::kAvx512}) {
    if (IsaSupported(isa)) isas.push_back(isa);
  }
  return isas;
}

}  // namespace testing_util
}  // namespace flexor

#endif  // FLEXOR_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
