#include "bench/torch_net.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/kernels/layer_weights.h"
#include "engine/ops/weight_loader.h"

namespace flexor::bench {

namespace mv1 = model::v1;

namespace {

torch::Tensor FloatTensor(const ModelFile& file, const std::string& name,
                          int64_t n) {
  absl::StatusOr<TensorView> t = file.tensor(name);
  if (!t.ok() || t->info->dtype() != mv1::FLOAT32) return {};
  return torch::from_blob(const_cast<float*>(t->as<float>()), {n},
                          torch::kFloat32)
      .clone();
}

// Dense weights [O, K] (dequantized) and bias [O] of a Dense/Conv2d node.
absl::Status LoadWeights(const ModelFile& file, const mv1::WeightCodec& codec,
                         const std::string& bias, int64_t O, int64_t K,
                         torch::Tensor* weight, torch::Tensor* bias_out) {
  absl::StatusOr<LayerWeights> w = LoadLayerWeights(codec, bias, O, K, file);
  if (!w.ok()) return w.status();
  std::vector<float> dense = DequantizeReference(*w);
  *weight = torch::from_blob(dense.data(), {O, K}, torch::kFloat32).clone();
  if (w->bias != nullptr) {
    *bias_out =
        torch::from_blob(const_cast<float*>(w->bias), {O}, torch::kFloat32)
            .clone();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TorchNet> TorchNet::FromModelFile(
    std::shared_ptr<const ModelFile> file) {
  TorchNet net;
  net.file_ = file;
  for (const mv1::Node& node : file->header().nodes()) {
    Step step{&node, {}, {}, {}, {}};
    if (node.has_dense()) {
      const mv1::DenseOp& d = node.dense();
      absl::Status s =
          LoadWeights(*file, d.weights(), d.bias(), d.out_features(),
                      d.in_features(), &step.weight, &step.bias);
      if (!s.ok()) return s;
    } else if (node.has_conv2d()) {
      const mv1::Conv2dOp& c = node.conv2d();
      const int64_t groups = c.groups() == 0 ? 1 : c.groups();
      const int64_t cg = c.in_channels() / groups;
      absl::Status s = LoadWeights(
          *file, c.weights(), c.bias(), c.out_channels(),
          cg * c.kernel_h() * c.kernel_w(), &step.weight, &step.bias);
      if (!s.ok()) return s;
      step.weight =
          step.weight.view({c.out_channels(), cg, c.kernel_h(), c.kernel_w()});
    } else if (node.has_batch_norm()) {
      absl::StatusOr<TensorView> t = file->tensor(node.batch_norm().scale());
      if (!t.ok()) return t.status();
      const int64_t C = t->info->shape(0);
      step.scale =
          FloatTensor(*file, node.batch_norm().scale(), C).view({1, C, 1, 1});
      step.shift =
          FloatTensor(*file, node.batch_norm().shift(), C).view({1, C, 1, 1});
    } else if (node.has_input_scale()) {
      const auto& is = node.input_scale();
      std::vector<float> a(is.scale().begin(), is.scale().end());
      std::vector<float> b(is.shift().begin(), is.shift().end());
      const int64_t C = static_cast<int64_t>(a.size());
      step.scale = torch::tensor(a).view({1, C, 1, 1});
      step.shift = torch::tensor(b).view({1, C, 1, 1});
    } else if (node.has_ternarize()) {
      return absl::UnimplementedError("Ternarize has no FP32 counterpart");
    }
    net.steps_.push_back(std::move(step));
  }
  return net;
}

torch::Tensor TorchNet::Forward(const torch::Tensor& input) const {
  std::map<std::string, torch::Tensor> values;
  const mv1::ValueInfo& in = file_->header().inputs(0);
  std::vector<int64_t> shape = {input.size(0)};
  shape.insert(shape.end(), in.shape().begin(), in.shape().end());
  values[in.name()] = input.view(shape);
  for (const Step& step : steps_) {
    const mv1::Node& node = *step.node;
    const torch::Tensor& x = values.at(node.inputs(0));
    torch::Tensor y;
    if (node.has_dense()) {
      y = torch::linear(x, step.weight, step.bias);
    } else if (node.has_conv2d()) {
      const mv1::Conv2dOp& c = node.conv2d();
      y = torch::conv2d(x, step.weight, step.bias,
                        {std::max<int64_t>(c.stride_h(), 1),
                         std::max<int64_t>(c.stride_w(), 1)},
                        {c.pad_h(), c.pad_w()}, {1, 1},
                        std::max<int64_t>(c.groups(), 1));
    } else if (node.has_batch_norm() || node.has_input_scale()) {
      const bool per_sample_vector = x.dim() == 2;
      torch::Tensor a = step.scale, b = step.shift;
      if (per_sample_vector) {
        a = a.view({1, -1});
        b = b.view({1, -1});
      }
      y = x * a + b;
    } else if (node.has_relu()) {
      y = torch::relu(x);
    } else if (node.has_pool2d()) {
      const mv1::Pool2dOp& p = node.pool2d();
      const int64_t sh = p.stride_h() ? p.stride_h() : p.kernel_h();
      const int64_t sw = p.stride_w() ? p.stride_w() : p.kernel_w();
      y = p.kind() == mv1::Pool2dOp::MAX
              ? torch::max_pool2d(x, {p.kernel_h(), p.kernel_w()}, {sh, sw},
                                  {p.pad_h(), p.pad_w()})
              : torch::avg_pool2d(x, {p.kernel_h(), p.kernel_w()}, {sh, sw},
                                  {p.pad_h(), p.pad_w()});
    } else if (node.has_global_avg_pool()) {
      y = x.mean({2, 3});
    } else if (node.has_flatten()) {
      y = x.flatten(1);
    } else if (node.has_add()) {
      y = x + values.at(node.inputs(1));
    } else if (node.has_softmax()) {
      y = torch::softmax(x, -1);
    }
    values[node.output()] = y;
  }
  return values.at(file_->header().outputs(0).name());
}

}  // namespace flexor::bench
