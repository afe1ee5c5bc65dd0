#include "engine/graph/model.h"

#include <cstring>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/ops/operator.h"

namespace flexor {

namespace mv1 = model::v1;

Model::~Model() = default;

absl::StatusOr<std::shared_ptr<const Model>> Model::Load(
    const std::string& path) {
  absl::StatusOr<std::shared_ptr<const ModelFile>> file = ModelFile::Open(path);
  if (!file.ok()) return file.status();
  return Compile(*std::move(file));
}

absl::StatusOr<std::shared_ptr<const Model>> Model::Compile(
    std::shared_ptr<const ModelFile> file) {
  const mv1::ModelHeader& header = file->header();
  auto error = [&](absl::string_view where, absl::string_view reason) {
    return absl::InvalidArgumentError(absl::StrCat("model '", file->name(),
                                                   "' (", file->source(),
                                                   "): ", where, ": ", reason));
  };
  if (header.inputs_size() != 1 || header.outputs_size() != 1) {
    return error("graph", absl::StrCat("needs exactly one input and one "
                                       "output, has ",
                                       header.inputs_size(), " and ",
                                       header.outputs_size()));
  }
  const mv1::ValueInfo& input = header.inputs(0);
  Shape input_shape(input.shape().begin(), input.shape().end());
  if (input.name().empty() || input.dtype() != mv1::FLOAT32 ||
      input_shape.empty()) {
    return error("inputs[0]", "needs a name, dtype FLOAT32 and a shape");
  }
  for (int64_t d : input_shape) {
    if (d <= 0 || d > kMaxActivationElements) {
      return error("inputs[0].shape", "dimensions must be positive");
    }
  }
  if (NumElements(input_shape) > kMaxActivationElements) {
    return error("inputs[0].shape", "too many elements");
  }
  if (header.nodes_size() == 0) return error("nodes", "graph is empty");

  std::shared_ptr<Model> model(new Model());
  model->file_ = file;
  absl::flat_hash_map<std::string, int> slot_of;
  slot_of[input.name()] = 0;
  std::vector<Shape> slot_shapes = {input_shape};
  std::vector<int> last_reader = {-1};
  std::vector<bool> slot_ternary = {false};  // values all in {-1, 0, +1}

  for (int i = 0; i < header.nodes_size(); ++i) {
    const mv1::Node& node = header.nodes(i);
    const std::string where =
        absl::StrCat("nodes[", i, "] '", node.name(), "'");
    if (node.name().empty()) return error(where, "node has no name");
    Step step;
    step.name = node.name();
    std::vector<Shape> in_shapes;
    for (const std::string& in : node.inputs()) {
      auto it = slot_of.find(in);
      if (it == slot_of.end()) {
        return error(where, absl::StrCat("input '", in,
                                         "' is not produced by an earlier "
                                         "node or the graph input"));
      }
      step.inputs.push_back(it->second);
      in_shapes.push_back(slot_shapes[it->second]);
      last_reader[it->second] = i;
    }
    if (node.output().empty() || slot_of.contains(node.output())) {
      return error(where, absl::StrCat("output '", node.output(),
                                       "' must be a new, non-empty name"));
    }
    const bool ternary_input =
        !step.inputs.empty() && slot_ternary[step.inputs[0]];
    absl::StatusOr<CompiledOp> op =
        CompileOperator(node, *file, in_shapes, ternary_input);
    if (!op.ok()) return error(where, op.status().message());
    const int64_t size = NumElements(op->output_shape);
    if (size <= 0 || size > kMaxActivationElements) {
      return error(where,
                   absl::StrCat("output shape ", ShapeString(op->output_shape),
                                " is empty or too large"));
    }
    step.op = std::move(op->op);
    step.output = static_cast<int>(slot_shapes.size());
    slot_of[node.output()] = step.output;
    slot_shapes.push_back(op->output_shape);
    last_reader.push_back(-1);
    slot_ternary.push_back(node.has_ternarize() ||
                           (node.has_flatten() && ternary_input));
    model->steps_.push_back(std::move(step));
  }

  const mv1::ValueInfo& output = header.outputs(0);
  auto out_it = slot_of.find(output.name());
  if (out_it == slot_of.end() || out_it->second == 0) {
    return error("outputs[0]", absl::StrCat("'", output.name(),
                                            "' is not produced by any node"));
  }
  const Shape declared(output.shape().begin(), output.shape().end());
  if (declared != slot_shapes[out_it->second]) {
    return error("outputs[0].shape",
                 absl::StrCat("declared ", ShapeString(declared),
                              " but the graph produces ",
                              ShapeString(slot_shapes[out_it->second])));
  }
  model->output_slot_ = out_it->second;
  for (size_t slot = 1; slot < last_reader.size(); ++slot) {
    if (last_reader[slot] >= 0 &&
        static_cast<int>(slot) != model->output_slot_) {
      model->steps_[last_reader[slot]].release.push_back(
          static_cast<int>(slot));
    }
  }
  for (const Shape& s : slot_shapes)
    model->slot_sizes_.push_back(NumElements(s));
  model->slot_shapes_ = slot_shapes;
  model->input_size_ = model->slot_sizes_[0];
  model->output_size_ = model->slot_sizes_[model->output_slot_];

  ModelStats& stats = model->stats_;
  stats.file_bytes = static_cast<int64_t>(file->file_size());
  double quantized_bits = 0;
  int64_t quantized_weights = 0;
  for (const Step& step : model->steps_) {
    const LayerWeights* w = step.op->weights();
    if (w == nullptr) continue;
    const int64_t n = w->out_features * w->in_features;
    ++stats.num_layers;
    stats.num_weights += n;
    stats.compressed_weight_bytes += w->CompressedBytes();
    stats.dense_fp32_bytes += n * static_cast<int64_t>(sizeof(float));
    if (w->kind != WeightCodecKind::kFloat32) {
      quantized_weights += n;
      quantized_bits += w->BitsPerWeight() * static_cast<double>(n);
    }
  }
  stats.bits_per_weight =
      quantized_weights > 0 ? quantized_bits / quantized_weights : 32.0;
  return std::shared_ptr<const Model>(std::move(model));
}

absl::Status Model::Run(const float* input, int64_t batch, float* output,
                        KernelPath path) const {
  if (batch <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", name(), "': batch must be positive, got ", batch));
  }
  if (batch > kMaxActivationElements / slot_sizes_[0]) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", name(), "': batch ", batch, " is too large"));
  }
  std::vector<std::vector<float>> slots(slot_sizes_.size());
  std::vector<const float*> in_ptrs;
  for (const Step& step : steps_) {
    in_ptrs.clear();
    for (int s : step.inputs) {
      in_ptrs.push_back(s == 0 ? input : slots[s].data());
    }
    std::vector<float>& out = slots[step.output];
    out.resize(static_cast<size_t>(batch * slot_sizes_[step.output]));
    step.op->Run(in_ptrs, batch, out.data(), path);
    for (int s : step.release) std::vector<float>().swap(slots[s]);
  }
  std::memcpy(output, slots[output_slot_].data(),
              sizeof(float) * batch * output_size_);
  return absl::OkStatus();
}

std::string Model::Describe() const {
  const mv1::Metadata& meta = file_->header().metadata();
  std::string out = absl::StrFormat(
      "model:        %s\nmethod:       %s\nsource:       %s\n", meta.name(),
      meta.method().empty() ? "(unset)" : meta.method(), file_->source());
  if (!meta.description().empty()) {
    absl::StrAppend(&out, "description:  ", meta.description(), "\n");
  }
  const Shape in(input().shape().begin(), input().shape().end());
  const Shape outs(output().shape().begin(), output().shape().end());
  absl::StrAppendFormat(&out, "input:        %s %s FLOAT32%s\n", input().name(),
                        ShapeString(in),
                        input().accepts_uint8() ? " (UINT8 accepted)" : "");
  absl::StrAppendFormat(&out, "output:       %s %s FLOAT32\n", output().name(),
                        ShapeString(outs));
  absl::StrAppend(&out, "graph:\n");
  for (const Step& step : steps_) {
    absl::StrAppendFormat(&out, "  %-12s %s -> %s\n", step.name,
                          step.op->Describe(),
                          ShapeString(slot_shapes_[step.output]));
  }
  absl::StrAppendFormat(
      &out,
      "weights:      %d in %d layers, %.3f bit/weight over quantized layers\n"
      "sizes:        file %d B, compressed weights %d B, dense FP32 "
      "equivalent %d B (%.1fx smaller)\n",
      stats_.num_weights, stats_.num_layers, stats_.bits_per_weight,
      stats_.file_bytes, stats_.compressed_weight_bytes,
      stats_.dense_fp32_bytes,
      stats_.compressed_weight_bytes > 0
          ? static_cast<double>(stats_.dense_fp32_bytes) /
                stats_.compressed_weight_bytes
          : 0.0);
  for (const auto& [key, value] : meta.provenance()) {
    absl::StrAppendFormat(&out, "provenance:   %s = %s\n", key, value);
  }
  return out;
}

}  // namespace flexor
