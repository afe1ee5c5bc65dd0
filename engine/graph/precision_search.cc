#include "engine/graph/precision_search.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"

namespace flexor {
namespace {

int64_t ArgMax(const float* v, int64_t n) {
  return std::max_element(v, v + n) - v;
}

}  // namespace

absl::StatusOr<Agreement> CompareWithExact(const Model& model,
                                           const float* inputs,
                                           const int64_t* labels, int64_t n,
                                           const RunOptions& chosen) {
  const int64_t in = model.input_size(), out = model.output_size();
  constexpr int64_t kBatch = 64;
  const RunOptions exact;
  Agreement a;
  a.samples = n;
  std::vector<float> y_exact(kBatch * out), y_chosen(kBatch * out);
  for (int64_t b0 = 0; b0 < n; b0 += kBatch) {
    const int64_t nb = std::min(kBatch, n - b0);
    const float* x = inputs + b0 * in;
    for (int64_t i = 0; i < nb; ++i) {
      absl::Status s =
          model.Run(x + i * in, 1, y_chosen.data() + i * out, chosen);
      if (!s.ok()) return s;
    }
    absl::Status s = model.Run(x, nb, y_exact.data(), exact);
    if (!s.ok()) return s;
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t c = ArgMax(y_chosen.data() + i * out, out);
      const int64_t e = ArgMax(y_exact.data() + i * out, out);
      if (labels != nullptr) {
        a.correct += c == labels[b0 + i];
        a.correct_exact += e == labels[b0 + i];
      }
      a.agree += c == e;
      for (int64_t j = 0; j < out; ++j) {
        a.max_diff = std::max<double>(
            a.max_diff, std::abs(y_chosen[i * out + j] - y_exact[i * out + j]));
      }
    }
  }
  return a;
}

absl::StatusOr<PrecisionSearchResult> SearchLayerActivations(
    const Model& model, const float* inputs, const int64_t* labels, int64_t n,
    const PrecisionSearchOptions& options,
    const std::function<void(const std::vector<LayerActivations>&,
                             const Agreement&)>& on_evaluated) {
  auto evaluate = [&](const std::vector<LayerActivations>& layers)
      -> absl::StatusOr<Agreement> {
    absl::StatusOr<std::vector<ActivationPrecision>> steps =
        model.StepActivations(options.base, layers);
    if (!steps.ok()) return steps.status();
    RunOptions chosen;
    chosen.matmul.activations = options.base;
    chosen.step_activations = *steps;
    absl::StatusOr<Agreement> a =
        CompareWithExact(model, inputs, labels, n, chosen);
    if (a.ok() && on_evaluated) on_evaluated(layers, *a);
    return a;
  };
  PrecisionSearchResult result;
  result.layers = options.start;
  absl::StatusOr<Agreement> base = evaluate(result.layers);
  if (!base.ok()) return base.status();
  result.agreement = *base;
  const double target = options.target_agreement;
  auto reached = [&] { return result.agreement.percent() >= target; };
  bool more = options.one_round || (target > 0 && !reached());
  while (more) {
    std::optional<LayerActivations> best;
    Agreement best_agreement;
    for (const std::string& layer :
         model.WeightLayerNames(/*quantized_only=*/true)) {
      if (std::any_of(result.layers.begin(), result.layers.end(),
                      [&](const auto& l) { return l.layer == layer; })) {
        continue;  // already set apart
      }
      std::vector<LayerActivations> v = result.layers;
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
    result.layers.push_back(*best);
    result.agreement = best_agreement;
    more = !reached();
  }
  result.reached = target > 0 && reached();
  return result;
}

std::string PrecisionConfigText(ActivationPrecision base,
                                const std::vector<LayerActivations>& layers) {
  auto upper = [](ActivationPrecision p) {
    std::string name = ActivationPrecisionName(p);
    for (char& c : name) c = static_cast<char>(std::toupper(c));
    return name;
  };
  std::string text = absl::StrCat("activation_precision: ", upper(base), "\n");
  for (const LayerActivations& l : layers) {
    absl::StrAppend(&text, "layer_activation_precision { layer: \"", l.layer,
                    "\" precision: ", upper(l.precision), " }\n");
  }
  return text;
}

}  // namespace flexor
