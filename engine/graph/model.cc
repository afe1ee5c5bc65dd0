#include "engine/graph/model.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <new>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/ops/operator.h"
#include "engine/runtime/buffer_pool.h"
#include "tbb/task_arena.h"

namespace flexor {

namespace mv1 = model::v1;

Model::~Model() = default;

absl::StatusOr<std::shared_ptr<const Model>> Model::Load(
    const std::string& path, ModelFileAccess access) {
  absl::StatusOr<std::shared_ptr<const ModelFile>> file =
      ModelFile::Open(path, access);
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
    return error("inputs[0].shape",
                 absl::StrCat(ShapeString(input_shape), " has more than ",
                              kMaxActivationElements, " elements"));
  }
  if (header.nodes_size() == 0) return error("nodes", "graph is empty");
  const std::string& output_name = header.outputs(0).name();

  // How many nodes read each value: a BatchNorm/ReLU is folded into the
  // layer before it only when it is that value's sole reader.
  absl::flat_hash_map<std::string, int> readers;
  for (const mv1::Node& node : header.nodes()) {
    for (const std::string& in : node.inputs()) ++readers[in];
  }

  std::shared_ptr<Model> model(new Model());
  model->file_ = file;
  // Values are named tensors; storages are the buffers behind them (a
  // Flatten or a folded op maps its output name to its input's storage).
  struct Value {
    int storage;
    Shape shape;
    bool ternary;  // every element in {-1, 0, +1} (from Ternarize)
  };
  absl::flat_hash_map<std::string, Value> values;
  values[input.name()] = {0, input_shape, false};
  std::vector<int64_t> storage_size = {NumElements(input_shape)};
  // Storage s > 0 is written by step s - 1; last_reader[s] is its last
  // reading step.
  std::vector<int> last_reader = {-1};
  // The newest name of the last step's output: only an op reading exactly
  // that name may fold into the step (not one reading an older name or a
  // Flatten alias of it).
  std::string head_of_last_step;

  for (int i = 0; i < header.nodes_size(); ++i) {
    const mv1::Node& node = header.nodes(i);
    const std::string where =
        absl::StrCat("nodes[", i, "] '", node.name(), "'");
    if (node.name().empty()) return error(where, "node has no name");
    std::vector<Shape> in_shapes;
    std::vector<int> in_storages;
    for (const std::string& in : node.inputs()) {
      auto it = values.find(in);
      if (it == values.end()) {
        return error(where, absl::StrCat("input '", in,
                                         "' is not produced by an earlier "
                                         "node or the graph input"));
      }
      in_storages.push_back(it->second.storage);
      in_shapes.push_back(it->second.shape);
    }
    if (node.output().empty() || values.contains(node.output())) {
      return error(where, absl::StrCat("output '", node.output(),
                                       "' must be a new, non-empty name"));
    }
    const bool ternary_input =
        !in_storages.empty() && values[node.inputs(0)].ternary;
    absl::StatusOr<CompiledOp> op =
        CompileOperator(node, *file, in_shapes, ternary_input);
    if (!op.ok()) return error(where, op.status().message());
    const int64_t size = NumElements(op->output_shape);
    if (size <= 0 || size > kMaxActivationElements) {
      return error(where,
                   absl::StrCat("output shape ", ShapeString(op->output_shape),
                                " is empty or has more than ",
                                kMaxActivationElements, " elements"));
    }
    const bool ternary_output =
        node.has_ternarize() || (node.has_flatten() && ternary_input);

    // (An alias of the graph input itself stays a copy: the caller's input
    // buffer can never be the output.)
    if (op->op->IsAlias() && in_storages[0] != 0) {
      values[node.output()] = {in_storages[0], op->output_shape,
                               ternary_output};
      continue;
    }
    // Fold into the previous step when it produced this node's only input
    // and nobody else (nor the graph output) sees the unfolded value.
    if (in_storages.size() == 1 && !model->steps_.empty() &&
        model->steps_.back().output == in_storages[0] &&
        head_of_last_step == node.inputs(0) && readers[node.inputs(0)] == 1 &&
        node.inputs(0) != output_name &&
        op->op->FoldInto(*model->steps_.back().op)) {
      absl::StrAppend(&model->steps_.back().name, "+", node.name());
      head_of_last_step = node.output();
      values[node.output()] = {in_storages[0], op->output_shape,
                               ternary_output};
      continue;
    }
    // A residual Add of the previous step's output (seen by nobody else) and
    // an earlier value: the producer adds the other operand as it stores
    // (ResNet blocks), reading it as its second input.
    if (node.op_case() == mv1::Node::kAdd && in_storages.size() == 2 &&
        !model->steps_.empty() && in_shapes[0] == in_shapes[1]) {
      const int last = model->steps_.back().output;
      const int mine = node.inputs(0) == head_of_last_step ? 0 : 1;
      const std::string& head = node.inputs(mine);
      const int other = in_storages[1 - mine];
      if (head == head_of_last_step && in_storages[mine] == last &&
          other != last && readers[head] == 1 && head != output_name &&
          model->steps_.back().op->FuseResidualAdd()) {
        Step& producer = model->steps_.back();
        producer.inputs.push_back(other);
        absl::StrAppend(&producer.name, "+", node.name());
        head_of_last_step = node.output();
        values[node.output()] = {last, op->output_shape, false};
        continue;
      }
    }
    Step step;
    step.name = node.name();
    step.inputs.assign(in_storages.begin(), in_storages.end());
    step.output = static_cast<int>(storage_size.size());
    step.op = std::move(op->op);
    step.shape.assign(op->output_shape.begin(), op->output_shape.end());
    storage_size.push_back(size);
    last_reader.push_back(-1);
    values[node.output()] = {step.output, op->output_shape, ternary_output};
    head_of_last_step = node.output();
    model->steps_.push_back(std::move(step));
  }
  // The vector grew by doubling: return the spare capacity (no reserve up
  // front: a hostile header may declare millions of nodes).
  model->steps_.shrink_to_fit();
  for (int s = 0; s < static_cast<int>(model->steps_.size()); ++s) {
    for (int in : model->steps_[s].inputs) last_reader[in] = s;
  }

  auto out_it = values.find(output_name);
  if (out_it == values.end() || out_it->second.storage == 0) {
    return error("outputs[0]", absl::StrCat("'", output_name,
                                            "' is not produced by any node"));
  }
  const Shape declared(header.outputs(0).shape().begin(),
                       header.outputs(0).shape().end());
  if (declared != out_it->second.shape) {
    return error("outputs[0].shape",
                 absl::StrCat("declared ", ShapeString(declared),
                              " but the graph produces ",
                              ShapeString(out_it->second.shape)));
  }
  model->output_storage_ = out_it->second.storage;
  model->input_size_ = storage_size[0];
  model->output_size_ = storage_size[model->output_storage_];

  // Buffer plan: storages live from their writer to their last reader;
  // place the largest first at the lowest offset that overlaps no storage
  // alive at the same time (sizes rounded to 64 bytes per sample, so every
  // offset * batch stays aligned).
  const int num_storages = static_cast<int>(storage_size.size());
  model->offset_.assign(num_storages, -1);
  std::vector<int> order;
  for (int s = 1; s < num_storages; ++s) {
    if (s != model->output_storage_) order.push_back(s);
  }
  auto rounded = [&](int s) { return (storage_size[s] + 15) / 16 * 16; };
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return rounded(a) > rounded(b); });
  auto first_of = [](int s) { return s - 1; };
  auto end_of = [&](int s) { return std::max(last_reader[s], first_of(s)); };
  std::vector<int> placed;
  for (int s : order) {
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (int t : placed) {
      if (first_of(t) <= end_of(s) && first_of(s) <= end_of(t)) {
        busy.push_back({model->offset_[t], model->offset_[t] + rounded(t)});
      }
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& [b, e] : busy) {
      if (offset + rounded(s) <= b) break;
      offset = std::max(offset, e);
    }
    model->offset_[s] = offset;
    model->arena_floats_per_sample_ =
        std::max(model->arena_floats_per_sample_, offset + rounded(s));
    placed.push_back(s);
  }
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
  // Nobody else holds the file (Model::Load, the server's loader): the
  // compiled model no longer needs its graph and tensor table. The file was
  // created non-const (ModelFile's factories), so the cast is defined.
  file.reset();
  if (model->file_.use_count() == 1) {
    const_cast<ModelFile*>(model->file_.get())->ReleaseGraph();
  }
  return std::shared_ptr<const Model>(std::move(model));
}

namespace {
// A fused step is named after its nodes joined by '+', the weight layer
// first.
absl::string_view LayerOf(const std::string& step_name) {
  return absl::string_view(step_name).substr(0, step_name.find('+'));
}
}  // namespace

std::vector<std::string> Model::WeightLayerNames(bool quantized_only) const {
  std::vector<std::string> names;
  for (const Step& step : steps_) {
    const LayerWeights* w = step.op->weights();
    if (w != nullptr &&
        !(quantized_only && w->kind == WeightCodecKind::kFloat32)) {
      names.emplace_back(LayerOf(step.name));
    }
  }
  return names;
}

absl::StatusOr<std::vector<ActivationPrecision>> Model::StepActivations(
    ActivationPrecision base,
    const std::vector<LayerActivations>& layers) const {
  std::vector<ActivationPrecision> out(steps_.size(), base);
  for (const LayerActivations& layer : layers) {
    auto it = std::find_if(steps_.begin(), steps_.end(), [&](const Step& s) {
      return s.op->weights() != nullptr && LayerOf(s.name) == layer.layer;
    });
    if (it == steps_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", name(), "' has no Dense or Conv2d layer '", layer.layer,
          "' (its layers: ", absl::StrJoin(WeightLayerNames(), ", "), ")"));
    }
    out[it - steps_.begin()] = layer.precision;
  }
  return out;
}

int64_t Model::DerivedWeightBytes() const {
  int64_t bytes = 0;
  for (const Step& step : steps_) bytes += step.op->DerivedWeightBytes();
  return bytes;
}

int64_t Model::ActivationBytes(int64_t batch, int threads) const {
  if (batch <= 0) return 0;
  int64_t scratch = 0;
  for (const Step& step : steps_) {
    scratch = std::max(scratch, step.op->ScratchFloats(batch, threads));
  }
  int64_t floats = 0;
  if (__builtin_mul_overflow(arena_floats_per_sample_, batch, &floats) ||
      __builtin_add_overflow(floats, scratch, &floats) ||
      floats > INT64_MAX / static_cast<int64_t>(sizeof(float))) {
    return INT64_MAX;
  }
  return floats * static_cast<int64_t>(sizeof(float));
}

absl::Status Model::Run(const float* input, int64_t batch, float* output,
                        KernelPath path) const {
  RunOptions options;
  options.path = path;
  return RunSteps(input, batch, output, options, nullptr);
}

absl::Status Model::Run(const float* input, int64_t batch, float* output,
                        const RunOptions& options) const {
  return RunSteps(input, batch, output, options, nullptr);
}

absl::Status Model::RunProfiled(const float* input, int64_t batch,
                                float* output,
                                std::vector<StepProfile>* profile,
                                const RunOptions& options) const {
  profile->clear();
  return RunSteps(input, batch, output, options, profile);
}

absl::Status Model::RunSteps(const float* input, int64_t batch, float* output,
                             const RunOptions& options,
                             std::vector<StepProfile>* profile) const {
  if (batch <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", name(), "': batch must be positive, got ", batch));
  }
  if (!options.step_activations.empty() &&
      options.step_activations.size() != steps_.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", name(), "': ", options.step_activations.size(),
        " step activation precisions for ", steps_.size(), " steps"));
  }
  if (batch > kMaxActivationElements / input_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", name(), "': batch ", batch, " is too large"));
  }
  const int threads = tbb::this_task_arena::max_concurrency();
  const int64_t bytes = ActivationBytes(batch, threads);
  if (bytes > kMaxRunActivationBytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("model '", name(), "': batch ", batch, " needs ", bytes,
                     " bytes of activations, more than the limit of ",
                     kMaxRunActivationBytes, "; send smaller batches"));
  }
  // Kernels allocate (pool growth, TBB tasks): an allocation failure must
  // become an error status, never escape into a TBB task and abort.
  try {
    BufferPool::Lease lease = BufferPool::Global().Acquire(
        bytes / static_cast<int64_t>(sizeof(float)));
    float* base = lease.data();
    RunContext ctx;
    ctx.path = options.path;
    ctx.matmul = options.matmul;
    ctx.threads = threads;
    ctx.scratch = base + arena_floats_per_sample_ * batch;
    auto storage = [&](int s) -> float* {
      if (s == output_storage_) return output;
      return base + offset_[s] * batch;
    };
    absl::InlinedVector<const float*, 4> in_ptrs;
    const bool mixed = !options.step_activations.empty();
    for (size_t i = 0; i < steps_.size(); ++i) {
      const Step& step = steps_[i];
      if (mixed) ctx.matmul.activations = options.step_activations[i];
      in_ptrs.clear();
      for (int s : step.inputs) {
        in_ptrs.push_back(s == 0 ? input : storage(s));
      }
      if (profile == nullptr) {
        step.op->Run(in_ptrs, batch, storage(step.output), ctx);
        continue;
      }
      // Profiled: this step's decryption time on its own counter, added to
      // the caller's afterwards.
      std::atomic<int64_t> step_decrypt{0};
      RunContext step_ctx = ctx;
      step_ctx.matmul.decrypt_nanos = &step_decrypt;
      const auto start = std::chrono::steady_clock::now();
      step.op->Run(in_ptrs, batch, storage(step.output), step_ctx);
      const std::chrono::duration<double> took =
          std::chrono::steady_clock::now() - start;
      if (options.matmul.decrypt_nanos != nullptr) {
        options.matmul.decrypt_nanos->fetch_add(step_decrypt.load());
      }
      profile->push_back({step.name, step.op->Describe(),
                          step.op->MacsPerSample(), took.count(),
                          static_cast<double>(step_decrypt.load()) * 1e-9});
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "model '", name(), "': out of memory running a batch of ", batch));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("model '", name(), "': run failed: ", e.what()));
  }
  return absl::OkStatus();
}

std::string Model::Describe() const {
  // The kept header lacks the description and provenance once the graph is
  // released (ModelFile::ReleaseGraph): read them again from the file.
  const absl::StatusOr<mv1::Metadata> full = file_->FullMetadata();
  const mv1::Metadata& meta = full.ok() ? *full : file_->header().metadata();
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
  for (size_t i = 0; i < steps_.size(); ++i) {
    const Shape shape(steps_[i].shape.begin(), steps_[i].shape.end());
    absl::StrAppendFormat(&out, "  %-12s %s -> %s\n", steps_[i].name,
                          steps_[i].op->Describe(), ShapeString(shape));
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
