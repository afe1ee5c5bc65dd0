#include "tools/flexorctl/model_eval.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/graph/model.h"
#include "engine/graph/precision_search.h"
#include "tools/flexorctl/idx.h"

namespace flexor::tools {
namespace {

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
  const int64_t n = x->items();
  const std::vector<float> inputs(x->data.begin(), x->data.end());
  const std::vector<int64_t> labels(y->data.begin(), y->data.end());
  PrecisionSearchOptions search;
  search.base = options.activations;
  search.start = options.layer_activations;
  search.target_agreement = options.target_agreement;
  search.one_round = options.sensitivity;
  absl::StatusOr<PrecisionSearchResult> result = SearchLayerActivations(
      model, inputs.data(), labels.data(), n, search,
      [&](const std::vector<LayerActivations>& layers, const Agreement& a) {
        Print(model, ActivationsLabel(options.activations, layers), n, a,
              options.json);
      });
  if (!result.ok()) return result.status();
  const double target = options.target_agreement;
  if (target <= 0) return absl::OkStatus();
  const double agree = result->agreement.percent();
  if (options.json) {
    std::cout << absl::StrFormat(
        "{\"target_agreement\": %.3f, \"reached\": %s, "
        "\"top1_agreement\": %.3f, \"activations\": \"%s\", "
        "\"layer_activation_precision\": \"%s\"}\n",
        target, result->reached ? "true" : "false", agree,
        ActivationPrecisionName(options.activations),
        LayerActivationsString(result->layers));
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat(
      "%s %.3f%% agreement with %s (target %.3f%%)%s\n",
      result->reached ? "recommended:" : "target not reached:", agree,
      ActivationsLabel(options.activations, result->layers), target,
      result->reached ? "; config.pbtxt:" : "");
  if (result->reached) {
    std::cout << PrecisionConfigText(options.activations, result->layers);
  }
  return absl::OkStatus();
}

}  // namespace flexor::tools
