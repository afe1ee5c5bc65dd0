#include "tools/flexorctl/model_eval.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/graph/model.h"
#include "tools/flexorctl/idx.h"

namespace flexor::tools {
namespace {

int64_t ArgMax(const float* v, int64_t n) {
  return std::max_element(v, v + n) - v;
}

}  // namespace

namespace {

struct Agreement {
  int64_t correct = 0, correct_exact = 0, agree = 0;
  double max_diff = 0;
};

// The test set through the exact path (batches of 64) and through
// `chosen` (batch 1: the int8 kernels are chosen per batch size).
absl::StatusOr<Agreement> Compare(const Model& model, const IdxTensor& x,
                                  const IdxTensor& y,
                                  const RunOptions& chosen) {
  const int64_t n = x.items(), in = model.input_size(),
                out = model.output_size();
  constexpr int64_t kBatch = 64;
  const RunOptions exact;
  Agreement a;
  std::vector<float> batch_in(kBatch * in), y_exact(kBatch * out),
      y_chosen(kBatch * out);
  for (int64_t b0 = 0; b0 < n; b0 += kBatch) {
    const int64_t nb = std::min(kBatch, n - b0);
    for (int64_t i = 0; i < nb * in; ++i) {
      batch_in[i] = static_cast<float>(x.data[b0 * in + i]);
    }
    for (int64_t i = 0; i < nb; ++i) {
      absl::Status s = model.Run(batch_in.data() + i * in, 1,
                                 y_chosen.data() + i * out, chosen);
      if (!s.ok()) return s;
    }
    absl::Status s = model.Run(batch_in.data(), nb, y_exact.data(), exact);
    if (!s.ok()) return s;
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t label = y.data[b0 + i];
      const int64_t c = ArgMax(y_chosen.data() + i * out, out);
      const int64_t e = ArgMax(y_exact.data() + i * out, out);
      a.correct += c == label;
      a.correct_exact += e == label;
      a.agree += c == e;
      for (int64_t j = 0; j < out; ++j) {
        a.max_diff = std::max<double>(
            a.max_diff, std::abs(y_chosen[i * out + j] - y_exact[i * out + j]));
      }
    }
  }
  return a;
}

void Print(const Model& model, const std::string& precision, int64_t n,
           const Agreement& a, bool json) {
  // One set of values, two spellings (JSON for scripts, a line for people).
  constexpr absl::string_view kJson =
      "{\"model\": \"%s\", \"activations\": \"%s\", \"samples\": %d, "
      "\"accuracy\": %.2f, \"fp32_accuracy\": %.2f, \"top1_agreement\": "
      "%.3f, \"max_abs_output_diff\": %.3g}\n";
  constexpr absl::string_view kText =
      "model %s, %s activations, %d samples (batch 1): accuracy %.2f%% "
      "(fp32 path, batch 64: %.2f%%), top-1 agreement with fp32 %.3f%%, "
      "max |output difference| %.3g\n";
  const auto format =
      json ? absl::ParsedFormat<'s', 's', 'd', 'f', 'f', 'f', 'g'>::New(kJson)
           : absl::ParsedFormat<'s', 's', 'd', 'f', 'f', 'f', 'g'>::New(kText);
  std::cout << absl::StrFormat(
      *format, model.name(), precision, n, 100.0 * a.correct / n,
      100.0 * a.correct_exact / n, 100.0 * a.agree / n, a.max_diff);
}

// "int8" or "int8 (block1_conv1=int16)".
std::string PrecisionLabel(ActivationPrecision base,
                           const std::vector<LayerActivations>& layers) {
  std::string label = ActivationPrecisionName(base);
  if (!layers.empty()) {
    absl::StrAppend(&label, " (", LayerActivationsString(layers), ")");
  }
  return label;
}

}  // namespace

absl::Status ModelEval(const std::string& path,
                       const ModelEvalOptions& options) {
  if (options.images.empty() || options.labels.empty()) {
    return absl::InvalidArgumentError(
        "model eval needs --images and --labels (IDX files)");
  }
  absl::StatusOr<std::shared_ptr<const Model>> loaded = Model::Load(path);
  if (!loaded.ok()) return loaded.status();
  const Model& model = **loaded;
  absl::StatusOr<IdxTensor> x = ReadIdx(options.images);
  if (!x.ok()) return x.status();
  absl::StatusOr<IdxTensor> y = ReadIdx(options.labels);
  if (!y.ok()) return y.status();
  if (x->item_size() != model.input_size() || y->items() != x->items()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model takes ", model.input_size(),
                     " values per sample; the "
                     "images have ",
                     x->item_size(), " and there are ", x->items(),
                     " images for ", y->items(), " labels"));
  }
  // Each variant: the layer list, then (for --sensitivity) the same with
  // one more layer in int16.
  std::vector<std::vector<LayerActivations>> variants = {
      options.layer_activations};
  if (options.sensitivity) {
    for (const std::string& layer :
         model.WeightLayerNames(/*quantized_only=*/true)) {
      std::vector<LayerActivations> v = options.layer_activations;
      auto it = std::find_if(v.begin(), v.end(),
                             [&](const auto& l) { return l.layer == layer; });
      if (it != v.end()) continue;  // already set apart
      v.push_back({layer, ActivationPrecision::kInt16});
      variants.push_back(std::move(v));
    }
  }
  for (const std::vector<LayerActivations>& layers : variants) {
    absl::StatusOr<std::vector<ActivationPrecision>> steps =
        model.StepActivations(options.activations, layers);
    if (!steps.ok()) return steps.status();
    RunOptions chosen;
    chosen.matmul.activations = options.activations;
    chosen.step_activations = *steps;
    absl::StatusOr<Agreement> a = Compare(model, *x, *y, chosen);
    if (!a.ok()) return a.status();
    Print(model, PrecisionLabel(options.activations, layers), x->items(), *a,
          options.json);
  }
  return absl::OkStatus();
}

}  // namespace flexor::tools
