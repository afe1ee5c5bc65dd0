// Fashion-MNIST from Debian's dataset-fashion-mnist package: the four IDX
// files (.gz) are read directly with zlib.
#ifndef FLEXOR_TRAINER_FASHION_MNIST_H_
#define FLEXOR_TRAINER_FASHION_MNIST_H_

#include <torch/torch.h>

#include <string>

#include "absl/status/statusor.h"

namespace flexor::trainer {

inline constexpr char kDefaultFashionMnistDir[] =
    "/usr/share/datasets/fashion-mnist";
inline constexpr int kImageSide = 28;
inline constexpr int kNumClasses = 10;

struct ImageSet {
  torch::Tensor pixels;  // uint8 [N, 28, 28], raw 0..255
  torch::Tensor labels;  // int64 [N]
  int64_t size() const { return labels.size(0); }
};

struct FashionMnist {
  ImageSet train;
  ImageSet test;
};

// Reads <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz. Errors name
// the file and what is wrong with it.
absl::StatusOr<FashionMnist> LoadFashionMnist(const std::string& dir);

// Class names, index = label.
const std::vector<std::string>& FashionMnistLabels();

}  // namespace flexor::trainer

#endif  // FLEXOR_TRAINER_FASHION_MNIST_H_
