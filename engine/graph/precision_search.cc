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

// The exact path's outputs [n, output_size] (batches of 64).
absl::StatusOr<std::vector<float>> ExactOutputs(const Model& model,
                                                const float* inputs,
                                                int64_t n) {
  const int64_t in = model.input_size(), out = model.output_size();
  constexpr int64_t kBatch = 64;
  std::vector<float> y(static_cast<size_t>(n * out));
  for (int64_t b0 = 0; b0 < n; b0 += kBatch) {
    const int64_t nb = std::min(kBatch, n - b0);
    absl::Status s =
        model.Run(inputs + b0 * in, nb, y.data() + b0 * out, RunOptions());
    if (!s.ok()) return s;
  }
  return y;
}

// `chosen` one sample per run against the exact outputs.
absl::StatusOr<Agreement> Compare(const Model& model, const float* inputs,
                                  const int64_t* labels, int64_t n,
                                  const RunOptions& chosen,
                                  const std::vector<float>& exact) {
  const int64_t in = model.input_size(), out = model.output_size();
  Agreement a;
  a.samples = n;
  std::vector<float> y(static_cast<size_t>(out));
  for (int64_t i = 0; i < n; ++i) {
    absl::Status s = model.Run(inputs + i * in, 1, y.data(), chosen);
    if (!s.ok()) return s;
    const float* e_row = exact.data() + i * out;
    const int64_t c = ArgMax(y.data(), out), e = ArgMax(e_row, out);
    if (labels != nullptr) {
      a.correct += c == labels[i];
      a.correct_exact += e == labels[i];
    }
    a.agree += c == e;
    for (int64_t j = 0; j < out; ++j) {
      a.max_diff = std::max<double>(a.max_diff, std::abs(y[j] - e_row[j]));
    }
  }
  return a;
}

}  // namespace

absl::StatusOr<Agreement> CompareWithExact(const Model& model,
                                           const float* inputs,
                                           const int64_t* labels, int64_t n,
                                           const RunOptions& chosen) {
  absl::StatusOr<std::vector<float>> exact = ExactOutputs(model, inputs, n);
  if (!exact.ok()) return exact.status();
  return Compare(model, inputs, labels, n, chosen, *exact);
}

absl::StatusOr<PrecisionSearchResult> SearchLayerActivations(
    const Model& model, const float* inputs, const int64_t* labels, int64_t n,
    const PrecisionSearchOptions& options,
    const std::function<void(const std::vector<LayerActivations>&,
                             const Agreement&)>& on_evaluated) {
  // The exact outputs do not change between variants: computed once.
  absl::StatusOr<std::vector<float>> exact = ExactOutputs(model, inputs, n);
  if (!exact.ok()) return exact.status();
  auto evaluate = [&](const std::vector<LayerActivations>& layers)
      -> absl::StatusOr<Agreement> {
    absl::StatusOr<std::vector<ActivationPrecision>> steps =
        model.StepActivations(options.base, layers);
    if (!steps.ok()) return steps.status();
    RunOptions chosen;
    chosen.matmul.activations = options.base;
    chosen.step_activations = *steps;
    absl::StatusOr<Agreement> a =
        Compare(model, inputs, labels, n, chosen, *exact);
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
