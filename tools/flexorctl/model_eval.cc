#include "tools/flexorctl/model_eval.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <iostream>
#include <optional>
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
  const int64_t n = x->items();
  // One variant: the given precision with `layers` set apart; printed.
  auto evaluate = [&](const std::vector<LayerActivations>& layers)
      -> absl::StatusOr<Agreement> {
    absl::StatusOr<std::vector<ActivationPrecision>> steps =
        model.StepActivations(options.activations, layers);
    if (!steps.ok()) return steps.status();
    RunOptions chosen;
    chosen.matmul.activations = options.activations;
    chosen.step_activations = *steps;
    absl::StatusOr<Agreement> a = Compare(model, *x, *y, chosen);
    if (a.ok()) {
      Print(model, PrecisionLabel(options.activations, layers), n, *a,
            options.json);
    }
    return a;
  };
  std::vector<LayerActivations> current = options.layer_activations;
  absl::StatusOr<Agreement> base = evaluate(current);
  if (!base.ok()) return base.status();
  const double target = options.target_agreement;
  int64_t agree = base->agree;
  // --sensitivity: one round, every remaining bit-coded layer alone in
  // int16 on top of the given list. --target_agreement: rounds until the
  // target is met, each keeping the layer that helped most (greedy).
  bool rounds = options.sensitivity || 100.0 * agree / n < target;
  while (rounds) {
    std::optional<LayerActivations> best;
    Agreement best_agreement;
    for (const std::string& layer :
         model.WeightLayerNames(/*quantized_only=*/true)) {
      if (std::any_of(current.begin(), current.end(),
                      [&](const auto& l) { return l.layer == layer; })) {
        continue;  // already set apart
      }
      std::vector<LayerActivations> v = current;
      v.push_back({layer, ActivationPrecision::kInt16});
      absl::StatusOr<Agreement> a = evaluate(v);
      if (!a.ok()) return a.status();
      if (!best.has_value() || a->agree > best_agreement.agree ||
          (a->agree == best_agreement.agree &&
           a->max_diff < best_agreement.max_diff)) {
        best = v.back();
        best_agreement = *a;
      }
    }
    if (target <= 0 || !best.has_value()) break;
    current.push_back(*best);
    agree = best_agreement.agree;
    rounds = 100.0 * agree / n < target;
  }
  if (target > 0 && options.json) {
    std::cout << absl::StrFormat(
        "{\"target_agreement\": %.3f, \"reached\": %s, "
        "\"top1_agreement\": %.3f, \"activations\": \"%s\", "
        "\"layer_activation_precision\": \"%s\"}\n",
        target, 100.0 * agree / n >= target ? "true" : "false",
        100.0 * agree / n, ActivationPrecisionName(options.activations),
        LayerActivationsString(current));
  } else if (target > 0) {
    const bool met = 100.0 * agree / n >= target;
    std::cout << absl::StrFormat(
        "%s %.3f%% agreement with %s (target %.3f%%)%s\n",
        met ? "recommended:" : "target not reached:", 100.0 * agree / n,
        PrecisionLabel(options.activations, current), target,
        met ? "; config.pbtxt:" : "");
    if (met) {
      std::string upper = ActivationPrecisionName(options.activations);
      for (char& c : upper) c = static_cast<char>(std::toupper(c));
      std::cout << "  activation_precision: " << upper << "\n";
      for (const LayerActivations& l : current) {
        std::string p = ActivationPrecisionName(l.precision);
        for (char& c : p) c = static_cast<char>(std::toupper(c));
        std::cout << "  layer_activation_precision { layer: \"" << l.layer
                  << "\" precision: " << p << " }\n";
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace flexor::tools
