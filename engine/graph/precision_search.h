// Choosing activation precisions on data: how far a precision choice moves
// a model's predictions from the exact FP32 path, and a search for the
// fewest layers to set apart in int16 (mixed precision) so that the top-1
// agreement reaches a target. Used by `flexorctl model eval` and by the
// trainer, which recommends a serving config for what it exports.
#ifndef FLEXOR_ENGINE_GRAPH_PRECISION_SEARCH_H_
#define FLEXOR_ENGINE_GRAPH_PRECISION_SEARCH_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/graph/model.h"
#include "engine/kernels/activation_precision.h"

namespace flexor {

// Samples `inputs` [n, model.input_size()] through `chosen` (one sample
// per run: the int8 kernels are picked per batch size, and batch 1 is what
// a lone request gets) and through the exact path (batches of 64).
struct Agreement {
  int64_t samples = 0;
  int64_t agree = 0;          // equal top-1 class
  int64_t correct = 0;        // top-1 == label (when labels are given)
  int64_t correct_exact = 0;  // the exact path's
  double max_diff = 0;        // largest |output difference|
  double percent() const {
    return samples > 0 ? 100.0 * static_cast<double>(agree) / samples : 0;
  }
};
absl::StatusOr<Agreement> CompareWithExact(const Model& model,
                                           const float* inputs,
                                           const int64_t* labels, int64_t n,
                                           const RunOptions& chosen);

struct PrecisionSearchOptions {
  ActivationPrecision base = ActivationPrecision::kInt8;
  std::vector<LayerActivations> start;  // already set apart
  // > 0: add the layer that helps most (in int16), one per round, until
  // the agreement reaches this percentage or no bit-coded layer is left.
  double target_agreement = 0;
  // Also (or with no target: only) one round trying every remaining layer.
  bool one_round = false;
};
struct PrecisionSearchResult {
  std::vector<LayerActivations> layers;  // start + what the search added
  Agreement agreement;                   // of `layers`
  bool reached = false;                  // agreement >= target
};
// Every evaluated variant is passed to `on_evaluated` (may be empty) as it
// is measured: the base first, then each candidate.
absl::StatusOr<PrecisionSearchResult> SearchLayerActivations(
    const Model& model, const float* inputs, const int64_t* labels, int64_t n,
    const PrecisionSearchOptions& options,
    const std::function<void(const std::vector<LayerActivations>&,
                             const Agreement&)>& on_evaluated = nullptr);

// The config.pbtxt lines (server/config/model_config.proto) that serve a
// model with `base` and `layers` set apart, e.g.
//   activation_precision: INT8
//   layer_activation_precision { layer: "block1_conv1" precision: INT16 }
std::string PrecisionConfigText(ActivationPrecision base,
                                const std::vector<LayerActivations>& layers);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_GRAPH_PRECISION_SEARCH_H_
