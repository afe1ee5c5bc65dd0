// Classifiers for 28x28 images built from FleXOR layers (an MLP, a LeNet-5
// style CNN and a small ResNet, all with BatchNorm), and their export to the
// engine's model format. Every model takes raw pixels (0..255, as a client
// has them); input normalisation is part of the model and of the exported
// graph (an InputScale node).
#ifndef FLEXOR_TRAINER_MODELS_H_
#define FLEXOR_TRAINER_MODELS_H_

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/format/model_writer.h"
#include "trainer/quant_layers.h"

namespace flexor::trainer {

enum class Arch { kMlp, kLeNet, kResNet };
absl::StatusOr<Arch> ParseArch(absl::string_view name);
std::string ArchName(Arch arch);

// Fashion-MNIST pixel statistics (of pixel / 255).
inline constexpr double kPixelMean = 0.2860;
inline constexpr double kPixelStd = 0.3530;

struct ArchConfig {
  Arch arch = Arch::kLeNet;
  QuantConfig quant;
  // Layers kept in float32 whatever the method.
  bool float_first_layer = true;
  bool float_last_layer = true;
  int mlp_hidden = 512;
};

// The configuration `flexor_train --arch=...` trains when no layer choice is
// given (--float_layers=auto): the convolutional nets keep their first and
// last layers in float32, as in the FleXOR paper (the first convolution holds
// under 1% of their weights); the MLP keeps only the last one, because its
// first layer holds 60% of its weights: kept in float32 it makes the file
// 17x larger (1.66 MB against 96.5 KB, for 0.4 points of test accuracy) and
// caps the engine's speed-up at what an FP32 GEMM allows.
ArchConfig DefaultArchConfig(Arch arch);

// Writes graph nodes for the layers of a classifier; values are named after
// the node that produces them.
class GraphExporter {
 public:
  GraphExporter(ModelWriter* writer, bool fold_batchnorm);

  std::string Input();  // the graph input "image" [1, 28, 28], UINT8 or FP32
  std::string InputScale(const std::string& in, double scale, double shift);
  std::string Conv(const std::string& name, const std::string& in,
                   FleXORConv2dImpl& conv, torch::nn::BatchNorm2dImpl* bn);
  std::string Dense(const std::string& name, const std::string& in,
                    FleXORLinearImpl& dense, torch::nn::BatchNorm1dImpl* bn);
  std::string Relu(const std::string& name, const std::string& in);
  std::string MaxPool(const std::string& name, const std::string& in,
                      int kernel, int stride);
  std::string Flatten(const std::string& name, const std::string& in);
  std::string Add(const std::string& name, const std::string& a,
                  const std::string& b);
  std::string GlobalAvgPool(const std::string& name, const std::string& in);
  // Softmax into the graph output "probabilities" [10].
  void SoftmaxOutput(const std::string& in);

 private:
  // BatchNorm as y = x * scale + shift (inference form).
  struct ChannelAffine {
    std::vector<float> scale;
    std::vector<float> shift;
  };
  static ChannelAffine BatchNormAffine(const torch::Tensor& weight,
                                       const torch::Tensor& bias,
                                       const torch::Tensor& running_mean,
                                       const torch::Tensor& running_var,
                                       double eps);
  // Folds `bn` (if any) into the weights and bias; else emits its node.
  std::string WeightLayer(const std::string& name, const std::string& in,
                          ExportedWeights weights, const torch::Tensor& bias,
                          const ChannelAffine* bn,
                          model::v1::WeightCodec* codec, model::v1::Node* node);

  ModelWriter* writer_;
  bool fold_batchnorm_;
};

class Classifier : public torch::nn::Module {
 public:
  // raw_images: float [N, 1, 28, 28], pixels 0..255. Returns logits [N, 10].
  virtual torch::Tensor forward(const torch::Tensor& raw_images) = 0;
  // Emits the whole graph, input to softmax output.
  virtual void Export(GraphExporter& exporter) = 0;

  // Every weight layer, in order, float ones included.
  const std::vector<QuantizedWeight>& weight_layers() const {
    return weight_layers_;
  }
  // Weights in quantized layers / all weights; bits per quantized weight.
  int64_t quantized_weight_count() const;
  int64_t weight_count() const;
  double bits_per_quantized_weight() const;
  void SetTanhScale(double s_tanh);
  void ClipLatentBits(double clip);
  void ApplyDiscreteTransitions();
  // After loading a checkpoint.
  absl::Status SyncNetworks();

 protected:
  torch::Tensor NormalizeInput(const torch::Tensor& raw_images) const;
  QuantConfig LayerConfig(bool keep_float) const;
  void Track(QuantizedWeight weight) { weight_layers_.push_back(weight); }

  ArchConfig config_;
  XorNetwork net_;

 private:
  std::vector<QuantizedWeight> weight_layers_;
};

absl::StatusOr<std::shared_ptr<Classifier>> MakeClassifier(
    const ArchConfig& config);

}  // namespace flexor::trainer

#endif  // FLEXOR_TRAINER_MODELS_H_
