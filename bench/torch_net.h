// The network of an engine model file, rebuilt as plain FP32 libtorch ops
// (conv2d, linear, max_pool2d, ...) with the weights dequantized: the
// baseline users would otherwise deploy, for the peer benchmark.
#ifndef FLEXOR_BENCH_TORCH_NET_H_
#define FLEXOR_BENCH_TORCH_NET_H_

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/format/model_file.h"

namespace flexor::bench {

class TorchNet {
 public:
  static absl::StatusOr<TorchNet> FromModelFile(
      std::shared_ptr<const ModelFile> file);
  // input [batch, input shape...] -> graph output [batch, ...].
  torch::Tensor Forward(const torch::Tensor& input) const;

 private:
  struct Step {
    const model::v1::Node* node;
    torch::Tensor weight, bias, scale, shift;  // as the op needs
  };
  std::shared_ptr<const ModelFile> file_;
  std::vector<Step> steps_;
};

}  // namespace flexor::bench

#endif  // FLEXOR_BENCH_TORCH_NET_H_
