// Shape-preserving and per-channel operators: InputScale, BatchNorm, ReLU,
// Flatten, Add, Softmax, Ternarize.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/ops/operator.h"

namespace flexor {

namespace mv1 = model::v1;

namespace {

// y = x * scale[c] + shift[c] over [C, inner] samples (InputScale, BN).
class ChannelAffineOp : public Operator {
 public:
  ChannelAffineOp(std::string kind, std::vector<float> scale,
                  std::vector<float> shift, int64_t channels, int64_t inner)
      : kind_(std::move(kind)),
        scale_(scale.begin(), scale.end()),
        shift_(shift.begin(), shift.end()),
        channels_(channels),
        inner_(inner) {}
  void Run(absl::Span<const float* const> inputs, int64_t batch, float* output,
           const RunContext&) const override {
    const bool per_channel = scale_.size() > 1;
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t c = 0; c < channels_; ++c) {
        const float a = scale_[per_channel ? c : 0];
        const float b = shift_[per_channel ? c : 0];
        const int64_t base = (n * channels_ + c) * inner_;
        for (int64_t i = 0; i < inner_; ++i) {
          output[base + i] = inputs[0][base + i] * a + b;
        }
      }
    }
  }
  bool FoldInto(Operator& producer) const override {
    return producer.FuseEpilogue(scale_, shift_, false);
  }
  std::string Describe() const override {
    return absl::StrFormat("%s (%d channel%s)", kind_, scale_.size(),
                           scale_.size() == 1 ? "" : "s");
  }

 private:
  std::string kind_;
  // One value (InputScale's usual form) stays inline: no heap blocks for
  // the op's lifetime (a loaded model's fixed memory).
  absl::InlinedVector<float, 1> scale_, shift_;
  int64_t channels_, inner_;
};

class UnaryOp : public Operator {
 public:
  enum Kind { kRelu, kCopy, kTernarize };
  UnaryOp(Kind kind, int64_t size, float threshold, std::string name)
      : kind_(kind),
        size_(size),
        threshold_(threshold),
        name_(std::move(name)) {}
  void Run(absl::Span<const float* const> inputs, int64_t batch, float* output,
           const RunContext&) const override {
    const float* x = inputs[0];
    const int64_t n = batch * size_;
    switch (kind_) {
      case kRelu:
        for (int64_t i = 0; i < n; ++i) output[i] = std::max(x[i], 0.0f);
        break;
      case kCopy:
        std::memcpy(output, x, sizeof(float) * n);
        break;
      case kTernarize:
        for (int64_t i = 0; i < n; ++i) {
          output[i] =
              x[i] > threshold_ ? 1.0f : (x[i] < -threshold_ ? -1.0f : 0.0f);
        }
        break;
    }
  }
  bool FoldInto(Operator& producer) const override {
    return kind_ == kRelu && producer.FuseEpilogue({}, {}, true);
  }
  bool IsAlias() const override { return kind_ == kCopy; }
  std::string Describe() const override { return name_; }

 private:
  Kind kind_;
  int64_t size_;
  float threshold_;
  std::string name_;
};

class AddOp : public Operator {
 public:
  explicit AddOp(int64_t size) : size_(size) {}
  void Run(absl::Span<const float* const> inputs, int64_t batch, float* output,
           const RunContext&) const override {
    for (int64_t i = 0; i < batch * size_; ++i) {
      output[i] = inputs[0][i] + inputs[1][i];
    }
  }
  std::string Describe() const override { return "Add"; }

 private:
  int64_t size_;
};

// Softmax over the last axis.
class SoftmaxOp : public Operator {
 public:
  SoftmaxOp(int64_t rows, int64_t width) : rows_(rows), width_(width) {}
  void Run(absl::Span<const float* const> inputs, int64_t batch, float* output,
           const RunContext&) const override {
    for (int64_t r = 0; r < batch * rows_; ++r) {
      const float* x = inputs[0] + r * width_;
      float* y = output + r * width_;
      const float max = *std::max_element(x, x + width_);
      float sum = 0;
      for (int64_t i = 0; i < width_; ++i) sum += y[i] = std::exp(x[i] - max);
      for (int64_t i = 0; i < width_; ++i) y[i] /= sum;
    }
  }
  std::string Describe() const override { return "Softmax"; }

 private:
  int64_t rows_, width_;
};

absl::StatusOr<std::vector<float>> ChannelVector(const ModelFile& file,
                                                 const std::string& name,
                                                 int64_t channels,
                                                 const std::string& field) {
  absl::StatusOr<TensorView> t =
      GetTensor(file, name, mv1::FLOAT32, {channels}, field);
  if (!t.ok()) return t.status();
  return std::vector<float>(t->as<float>(), t->as<float>() + channels);
}

}  // namespace

absl::StatusOr<CompiledOp> CompileElementwise(
    const mv1::Node& node, const ModelFile& file,
    const std::vector<Shape>& inputs) {
  const size_t want = node.op_case() == mv1::Node::kAdd ? 2 : 1;
  if (inputs.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inputs: ", inputs.size(), " inputs given, expected ", want));
  }
  const Shape& in = inputs[0];
  const int64_t size = NumElements(in);
  const int64_t channels = in.empty() ? 1 : in[0];
  const int64_t inner = channels == 0 ? 0 : size / channels;
  switch (node.op_case()) {
    case mv1::Node::kInputScale: {
      const mv1::InputScaleOp& cfg = node.input_scale();
      const int n = cfg.scale_size();
      if (n != cfg.shift_size() || (n != 1 && n != channels)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input_scale: scale and shift need 1 or ", channels,
            " (channel) entries each, got ", n, " and ", cfg.shift_size()));
      }
      return CompiledOp{
          std::make_unique<ChannelAffineOp>(
              "InputScale",
              std::vector<float>(cfg.scale().begin(), cfg.scale().end()),
              std::vector<float>(cfg.shift().begin(), cfg.shift().end()),
              channels, inner),
          in};
    }
    case mv1::Node::kBatchNorm: {
      absl::StatusOr<std::vector<float>> scale = ChannelVector(
          file, node.batch_norm().scale(), channels, "batch_norm.scale");
      if (!scale.ok()) return scale.status();
      absl::StatusOr<std::vector<float>> shift = ChannelVector(
          file, node.batch_norm().shift(), channels, "batch_norm.shift");
      if (!shift.ok()) return shift.status();
      return CompiledOp{
          std::make_unique<ChannelAffineOp>("BatchNorm", *std::move(scale),
                                            *std::move(shift), channels, inner),
          in};
    }
    case mv1::Node::kRelu:
      return CompiledOp{
          std::make_unique<UnaryOp>(UnaryOp::kRelu, size, 0.0f, "ReLU"), in};
    case mv1::Node::kFlatten:
      return CompiledOp{
          std::make_unique<UnaryOp>(UnaryOp::kCopy, size, 0.0f, "Flatten"),
          Shape{size}};
    case mv1::Node::kTernarize: {
      const float threshold = node.ternarize().threshold();
      if (!(threshold >= 0.0f) || !std::isfinite(threshold)) {
        return absl::InvalidArgumentError(
            "ternarize.threshold: must be finite and >= 0");
      }
      return CompiledOp{
          std::make_unique<UnaryOp>(
              UnaryOp::kTernarize, size, threshold,
              absl::StrFormat("Ternarize (threshold %g)", threshold)),
          in};
    }
    case mv1::Node::kAdd:
      if (inputs[0] != inputs[1]) {
        return absl::InvalidArgumentError(
            absl::StrCat("add: input shapes differ: ", ShapeString(inputs[0]),
                         " vs ", ShapeString(inputs[1])));
      }
      return CompiledOp{std::make_unique<AddOp>(size), in};
    case mv1::Node::kSoftmax: {
      if (in.empty() || in.back() <= 0) {
        return absl::InvalidArgumentError("softmax: input has no last axis");
      }
      return CompiledOp{
          std::make_unique<SoftmaxOp>(size / in.back(), in.back()), in};
    }
    default:
      return absl::InternalError("not an elementwise op");
  }
}

}  // namespace flexor
