#include "trainer/models.h"

#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "trainer/fashion_mnist.h"

namespace flexor::trainer {
namespace {

std::vector<float> ToFloats(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(),
                            c.data_ptr<float>() + c.numel());
}

}  // namespace

absl::StatusOr<Arch> ParseArch(absl::string_view name) {
  if (name == "mlp") return Arch::kMlp;
  if (name == "lenet") return Arch::kLeNet;
  if (name == "resnet") return Arch::kResNet;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown arch '", name, "'; expected mlp, lenet or resnet"));
}

std::string ArchName(Arch arch) {
  switch (arch) {
    case Arch::kMlp:
      return "mlp";
    case Arch::kLeNet:
      return "lenet";
    case Arch::kResNet:
      return "resnet";
  }
  return "unknown";
}

ArchConfig DefaultArchConfig(Arch arch) {
  ArchConfig config;
  config.arch = arch;
  config.float_first_layer = arch != Arch::kMlp;
  config.float_last_layer = true;
  return config;
}

// ----------------------------------------------------------------- exporter

GraphExporter::GraphExporter(ModelWriter* writer, bool fold_batchnorm)
    : writer_(writer), fold_batchnorm_(fold_batchnorm) {}

std::string GraphExporter::Input() {
  writer_->AddInput("image", {1, kImageSide, kImageSide},
                    /*accepts_uint8=*/true);
  return "image";
}

std::string GraphExporter::InputScale(const std::string& in, double scale,
                                      double shift) {
  model::v1::Node* node = writer_->AddNode("input_scale", {in}, "input_scale");
  node->mutable_input_scale()->add_scale(static_cast<float>(scale));
  node->mutable_input_scale()->add_shift(static_cast<float>(shift));
  return node->output();
}

GraphExporter::ChannelAffine GraphExporter::BatchNormAffine(
    const torch::Tensor& weight, const torch::Tensor& bias,
    const torch::Tensor& running_mean, const torch::Tensor& running_var,
    double eps) {
  torch::NoGradGuard no_grad;
  torch::Tensor scale = weight / torch::sqrt(running_var + eps);
  torch::Tensor shift = bias - running_mean * scale;
  return {ToFloats(scale), ToFloats(shift)};
}

std::string GraphExporter::WeightLayer(
    const std::string& name, const std::string& in, ExportedWeights weights,
    const torch::Tensor& bias, const ChannelAffine* bn,
    model::v1::WeightCodec* codec, model::v1::Node* node) {
  const int64_t out_features = weights.out_features;
  std::vector<float> bias_values;
  if (bias.defined()) bias_values = ToFloats(bias);
  std::string output = node->output();
  if (bn != nullptr && fold_batchnorm_) {
    // BN(Wx + b) = (g*W) x + (g*b + shift).
    weights.ScaleOutputChannels(bn->scale);
    if (bias_values.empty()) bias_values.assign(out_features, 0.0f);
    for (int64_t o = 0; o < out_features; ++o) {
      bias_values[o] = bias_values[o] * bn->scale[o] + bn->shift[o];
    }
  }
  weights.Write(*writer_, codec, name);
  std::string bias_name;
  if (!bias_values.empty()) {
    bias_name = writer_->AddFloat(name + "/bias", {out_features}, bias_values);
  }
  if (node->has_dense()) {
    node->mutable_dense()->set_bias(bias_name);
  } else {
    node->mutable_conv2d()->set_bias(bias_name);
  }
  if (bn != nullptr && !fold_batchnorm_) {
    const std::string bn_name = name + "_bn";
    model::v1::Node* bn_node = writer_->AddNode(bn_name, {output}, bn_name);
    bn_node->mutable_batch_norm()->set_scale(
        writer_->AddFloat(bn_name + "/scale", {out_features}, bn->scale));
    bn_node->mutable_batch_norm()->set_shift(
        writer_->AddFloat(bn_name + "/shift", {out_features}, bn->shift));
    output = bn_name;
  }
  return output;
}

std::string GraphExporter::Conv(const std::string& name, const std::string& in,
                                FleXORConv2dImpl& conv,
                                torch::nn::BatchNorm2dImpl* bn) {
  model::v1::Node* node = writer_->AddNode(name, {in}, name);
  model::v1::Conv2dOp* op = node->mutable_conv2d();
  const Conv2dShape& shape = conv.shape();
  op->set_in_channels(shape.in_channels);
  op->set_out_channels(shape.out_channels);
  op->set_kernel_h(shape.kernel);
  op->set_kernel_w(shape.kernel);
  op->set_stride_h(shape.stride);
  op->set_stride_w(shape.stride);
  op->set_pad_h(shape.padding);
  op->set_pad_w(shape.padding);
  op->set_groups(1);
  ChannelAffine affine;
  if (bn != nullptr) {
    affine = BatchNormAffine(bn->weight, bn->bias, bn->running_mean,
                             bn->running_var, bn->options.eps());
  }
  return WeightLayer(name, in, conv.weight()->Export(), conv.bias(),
                     bn != nullptr ? &affine : nullptr, op->mutable_weights(),
                     node);
}

std::string GraphExporter::Dense(const std::string& name, const std::string& in,
                                 FleXORLinearImpl& dense,
                                 torch::nn::BatchNorm1dImpl* bn) {
  model::v1::Node* node = writer_->AddNode(name, {in}, name);
  model::v1::DenseOp* op = node->mutable_dense();
  op->set_in_features(dense.in_features());
  op->set_out_features(dense.out_features());
  ChannelAffine affine;
  if (bn != nullptr) {
    affine = BatchNormAffine(bn->weight, bn->bias, bn->running_mean,
                             bn->running_var, bn->options.eps());
  }
  return WeightLayer(name, in, dense.weight()->Export(), dense.bias(),
                     bn != nullptr ? &affine : nullptr, op->mutable_weights(),
                     node);
}

std::string GraphExporter::Relu(const std::string& name,
                                const std::string& in) {
  model::v1::Node* node = writer_->AddNode(name, {in}, name);
  node->mutable_relu();
  return name;
}

std::string GraphExporter::MaxPool(const std::string& name,
                                   const std::string& in, int kernel,
                                   int stride) {
  model::v1::Node* node = writer_->AddNode(name, {in}, name);
  model::v1::Pool2dOp* op = node->mutable_pool2d();
  op->set_kind(model::v1::Pool2dOp::MAX);
  op->set_kernel_h(kernel);
  op->set_kernel_w(kernel);
  op->set_stride_h(stride);
  op->set_stride_w(stride);
  return name;
}

std::string GraphExporter::Flatten(const std::string& name,
                                   const std::string& in) {
  writer_->AddNode(name, {in}, name)->mutable_flatten();
  return name;
}

std::string GraphExporter::Add(const std::string& name, const std::string& a,
                               const std::string& b) {
  writer_->AddNode(name, {a, b}, name)->mutable_add();
  return name;
}

std::string GraphExporter::GlobalAvgPool(const std::string& name,
                                         const std::string& in) {
  writer_->AddNode(name, {in}, name)->mutable_global_avg_pool();
  return name;
}

void GraphExporter::SoftmaxOutput(const std::string& in) {
  writer_->AddNode("softmax", {in}, "probabilities")->mutable_softmax();
  writer_->AddOutput("probabilities", {kNumClasses});
}

// --------------------------------------------------------------- classifier

int64_t Classifier::quantized_weight_count() const {
  int64_t count = 0;
  for (const QuantizedWeight& w : weight_layers_) {
    if (w->is_quantized()) count += w->num_weights();
  }
  return count;
}

int64_t Classifier::weight_count() const {
  int64_t count = 0;
  for (const QuantizedWeight& w : weight_layers_) count += w->num_weights();
  return count;
}

double Classifier::bits_per_quantized_weight() const {
  double bits = 0;
  int64_t count = 0;
  for (const QuantizedWeight& w : weight_layers_) {
    if (!w->is_quantized()) continue;
    bits += w->stored_bits_per_weight() * w->num_weights();
    count += w->num_weights();
  }
  return count == 0 ? 32.0 : bits / count;
}

void Classifier::SetTanhScale(double s_tanh) {
  for (QuantizedWeight& w : weight_layers_) w->set_s_tanh(s_tanh);
}

void Classifier::ClipLatentBits(double clip) {
  for (QuantizedWeight& w : weight_layers_) w->ClipLatent(clip);
}

void Classifier::ApplyDiscreteTransitions() {
  for (QuantizedWeight& w : weight_layers_) w->ApplyDiscreteTransition();
}

absl::Status Classifier::SyncNetworks() {
  for (QuantizedWeight& w : weight_layers_) {
    absl::Status status = w->SyncNetworkFromBuffers();
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

torch::Tensor Classifier::NormalizeInput(
    const torch::Tensor& raw_images) const {
  // Exactly the exported InputScale: x * scale + shift in float32.
  const float scale = static_cast<float>(1.0 / (255.0 * kPixelStd));
  const float shift = static_cast<float>(-kPixelMean / kPixelStd);
  return raw_images * scale + shift;
}

QuantConfig Classifier::LayerConfig(bool keep_float) const {
  QuantConfig config = config_.quant;
  if (keep_float) config.method = QuantMethod::kFloat32;
  return config;
}

namespace {

// 784 -> hidden -> hidden -> 10, Dense + BatchNorm + ReLU.
class Mlp : public Classifier {
 public:
  Mlp(const ArchConfig& config, const XorNetwork& net) {
    config_ = config;
    net_ = net;
    const int hidden = config.mlp_hidden;
    fc1_ = register_module(
        "fc1", FleXORLinear(kImageSide * kImageSide, hidden, false,
                            LayerConfig(config.float_first_layer), net));
    bn1_ = register_module("bn1", torch::nn::BatchNorm1d(hidden));
    fc2_ = register_module(
        "fc2", FleXORLinear(hidden, hidden, false, LayerConfig(false), net));
    bn2_ = register_module("bn2", torch::nn::BatchNorm1d(hidden));
    fc3_ = register_module(
        "fc3", FleXORLinear(hidden, kNumClasses, true,
                            LayerConfig(config.float_last_layer), net));
    Track(fc1_->weight());
    Track(fc2_->weight());
    Track(fc3_->weight());
  }

  torch::Tensor forward(const torch::Tensor& raw_images) override {
    torch::Tensor x = NormalizeInput(raw_images).flatten(1);
    x = torch::relu(bn1_(fc1_(x)));
    x = torch::relu(bn2_(fc2_(x)));
    return fc3_(x);
  }

  void Export(GraphExporter& e) override {
    std::string x = e.InputScale(e.Input(), 1.0 / (255.0 * kPixelStd),
                                 -kPixelMean / kPixelStd);
    x = e.Flatten("flatten", x);
    x = e.Relu("relu1", e.Dense("fc1", x, *fc1_, bn1_.get()));
    x = e.Relu("relu2", e.Dense("fc2", x, *fc2_, bn2_.get()));
    e.SoftmaxOutput(e.Dense("fc3", x, *fc3_, nullptr));
  }

 private:
  FleXORLinear fc1_{nullptr}, fc2_{nullptr}, fc3_{nullptr};
  torch::nn::BatchNorm1d bn1_{nullptr}, bn2_{nullptr};
};

// LeNet-5 style (as in the FleXOR paper): 32C5-MP2-64C5-MP2-512FC-10.
class LeNet : public Classifier {
 public:
  LeNet(const ArchConfig& config, const XorNetwork& net) {
    config_ = config;
    net_ = net;
    conv1_ = register_module(
        "conv1", FleXORConv2d(Conv2dShape{1, 32, 5, 1, 0}, false,
                              LayerConfig(config.float_first_layer), net));
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(32));
    conv2_ =
        register_module("conv2", FleXORConv2d(Conv2dShape{32, 64, 5, 1, 0},
                                              false, LayerConfig(false), net));
    bn2_ = register_module("bn2", torch::nn::BatchNorm2d(64));
    fc1_ = register_module(
        "fc1", FleXORLinear(64 * 4 * 4, 512, false, LayerConfig(false), net));
    bn3_ = register_module("bn3", torch::nn::BatchNorm1d(512));
    fc2_ = register_module(
        "fc2", FleXORLinear(512, kNumClasses, true,
                            LayerConfig(config.float_last_layer), net));
    Track(conv1_->weight());
    Track(conv2_->weight());
    Track(fc1_->weight());
    Track(fc2_->weight());
  }

  torch::Tensor forward(const torch::Tensor& raw_images) override {
    torch::Tensor x = NormalizeInput(raw_images);
    x = torch::max_pool2d(torch::relu(bn1_(conv1_(x))), 2, 2);
    x = torch::max_pool2d(torch::relu(bn2_(conv2_(x))), 2, 2);
    x = torch::relu(bn3_(fc1_(x.flatten(1))));
    return fc2_(x);
  }

  void Export(GraphExporter& e) override {
    std::string x = e.InputScale(e.Input(), 1.0 / (255.0 * kPixelStd),
                                 -kPixelMean / kPixelStd);
    x = e.Relu("relu1", e.Conv("conv1", x, *conv1_, bn1_.get()));
    x = e.MaxPool("pool1", x, 2, 2);
    x = e.Relu("relu2", e.Conv("conv2", x, *conv2_, bn2_.get()));
    x = e.MaxPool("pool2", x, 2, 2);
    x = e.Flatten("flatten", x);
    x = e.Relu("relu3", e.Dense("fc1", x, *fc1_, bn3_.get()));
    e.SoftmaxOutput(e.Dense("fc2", x, *fc2_, nullptr));
  }

 private:
  FleXORConv2d conv1_{nullptr}, conv2_{nullptr};
  FleXORLinear fc1_{nullptr}, fc2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  torch::nn::BatchNorm1d bn3_{nullptr};
};

// Basic residual block: conv3x3-BN-ReLU-conv3x3-BN (+ shortcut) - ReLU.
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in_channels, int64_t out_channels, int64_t stride,
                 const QuantConfig& config, const XorNetwork& net) {
    conv1_ = register_module(
        "conv1",
        FleXORConv2d(Conv2dShape{in_channels, out_channels, 3, stride, 1},
                     false, config, net));
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(out_channels));
    conv2_ = register_module(
        "conv2", FleXORConv2d(Conv2dShape{out_channels, out_channels, 3, 1, 1},
                              false, config, net));
    bn2_ = register_module("bn2", torch::nn::BatchNorm2d(out_channels));
    if (stride != 1 || in_channels != out_channels) {
      shortcut_ = register_module(
          "shortcut",
          FleXORConv2d(Conv2dShape{in_channels, out_channels, 1, stride, 0},
                       false, config, net));
      shortcut_bn_ =
          register_module("shortcut_bn", torch::nn::BatchNorm2d(out_channels));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = torch::relu(bn1_(conv1_(x)));
    y = bn2_(conv2_(y));
    torch::Tensor skip = shortcut_ ? shortcut_bn_(shortcut_(x)) : x;
    return torch::relu(y + skip);
  }

  std::string Export(GraphExporter& e, const std::string& name,
                     const std::string& in) {
    std::string y = e.Relu(name + "_relu1",
                           e.Conv(name + "_conv1", in, *conv1_, bn1_.get()));
    y = e.Conv(name + "_conv2", y, *conv2_, bn2_.get());
    std::string skip = in;
    if (shortcut_) {
      skip = e.Conv(name + "_shortcut", in, *shortcut_, shortcut_bn_.get());
    }
    return e.Relu(name + "_relu2", e.Add(name + "_add", y, skip));
  }

  void TrackInto(std::vector<QuantizedWeight>& layers) {
    layers.push_back(conv1_->weight());
    layers.push_back(conv2_->weight());
    if (shortcut_) layers.push_back(shortcut_->weight());
  }

 private:
  FleXORConv2d conv1_{nullptr}, conv2_{nullptr}, shortcut_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, shortcut_bn_{nullptr};
};
TORCH_MODULE(BasicBlock);

// Small ResNet for 28x28: stem 16C3, blocks 16 / 32 (s2) / 64 (s2), GAP, FC.
class ResNet : public Classifier {
 public:
  ResNet(const ArchConfig& config, const XorNetwork& net) {
    config_ = config;
    net_ = net;
    stem_ = register_module(
        "stem", FleXORConv2d(Conv2dShape{1, 16, 3, 1, 1}, false,
                             LayerConfig(config.float_first_layer), net));
    stem_bn_ = register_module("stem_bn", torch::nn::BatchNorm2d(16));
    const QuantConfig inner = LayerConfig(false);
    block1_ = register_module("block1", BasicBlock(16, 16, 1, inner, net));
    block2_ = register_module("block2", BasicBlock(16, 32, 2, inner, net));
    block3_ = register_module("block3", BasicBlock(32, 64, 2, inner, net));
    fc_ = register_module(
        "fc", FleXORLinear(64, kNumClasses, true,
                           LayerConfig(config.float_last_layer), net));
    std::vector<QuantizedWeight> layers = {stem_->weight()};
    block1_->TrackInto(layers);
    block2_->TrackInto(layers);
    block3_->TrackInto(layers);
    layers.push_back(fc_->weight());
    for (QuantizedWeight& w : layers) Track(w);
  }

  torch::Tensor forward(const torch::Tensor& raw_images) override {
    torch::Tensor x = torch::relu(stem_bn_(stem_(NormalizeInput(raw_images))));
    x = block3_(block2_(block1_(x)));
    return fc_(x.mean({2, 3}));
  }

  void Export(GraphExporter& e) override {
    std::string x = e.InputScale(e.Input(), 1.0 / (255.0 * kPixelStd),
                                 -kPixelMean / kPixelStd);
    x = e.Relu("stem_relu", e.Conv("stem", x, *stem_, stem_bn_.get()));
    x = block1_->Export(e, "block1", x);
    x = block2_->Export(e, "block2", x);
    x = block3_->Export(e, "block3", x);
    x = e.GlobalAvgPool("gap", x);
    e.SoftmaxOutput(e.Dense("fc", x, *fc_, nullptr));
  }

 private:
  FleXORConv2d stem_{nullptr};
  torch::nn::BatchNorm2d stem_bn_{nullptr};
  BasicBlock block1_{nullptr}, block2_{nullptr}, block3_{nullptr};
  FleXORLinear fc_{nullptr};
};

}  // namespace

absl::StatusOr<std::shared_ptr<Classifier>> MakeClassifier(
    const ArchConfig& config) {
  absl::StatusOr<XorNetwork> net = MakeXorNetwork(config.quant);
  if (!net.ok()) return net.status();
  switch (config.arch) {
    case Arch::kMlp:
      return std::shared_ptr<Classifier>(std::make_shared<Mlp>(config, *net));
    case Arch::kLeNet:
      return std::shared_ptr<Classifier>(std::make_shared<LeNet>(config, *net));
    case Arch::kResNet:
      return std::shared_ptr<Classifier>(
          std::make_shared<ResNet>(config, *net));
  }
  return absl::InvalidArgumentError("unknown arch");
}

}  // namespace flexor::trainer
