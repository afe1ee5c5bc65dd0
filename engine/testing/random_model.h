// Builds models with random weights for tests, benchmarks and the demo
// repository: the same architectures the trainer produces, in any codec.
#ifndef FLEXOR_ENGINE_TESTING_RANDOM_MODEL_H_
#define FLEXOR_ENGINE_TESTING_RANDOM_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace flexor {

enum class RandomArch { kMlp, kLeNet, kResNet };

struct RandomModelSpec {
  std::string name = "random";
  RandomArch arch = RandomArch::kLeNet;
  // "fp32", "binary1", "binary2", "ternary", "flexor".
  std::string method = "flexor";
  int n_in = 16;  // FleXOR only
  int n_out = 20;
  int n_tap = 2;
  int planes = 1;  // binary/FleXOR planes q
  // Width multiplier for the hidden layers (MLP hidden = 64 * width).
  int width = 1;
  uint64_t seed = 1;
  // Class names written to the metadata (classification tests).
  std::vector<std::string> labels;
};

// Serialized model file bytes. The model takes [1, 28, 28] images (pixels
// 0..255, FP32 or UINT8) and outputs 10 softmax probabilities.
absl::StatusOr<std::string> BuildRandomModel(const RandomModelSpec& spec);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_TESTING_RANDOM_MODEL_H_
