// `flexorctl model eval FILE --images=IDX --labels=IDX`: test accuracy of a
// model file in-process, and with --activations=int8/int16 the top-1 agreement
// of the int8-activation path with the exact FP32 path and their largest output
// difference (the numbers docs/performance.md reports per model). With
// --layer_activations some layers differ (mixed precision); --sensitivity
// adds one line per layer: the agreement with that layer alone in int16
// (how to find the layers that need it); --target_agreement=99.9 keeps
// adding the most helpful one until the agreement is reached and prints the
// config that does it.
#ifndef FLEXOR_TOOLS_FLEXORCTL_MODEL_EVAL_H_
#define FLEXOR_TOOLS_FLEXORCTL_MODEL_EVAL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/kernels/activation_precision.h"

namespace flexor::tools {

struct ModelEvalOptions {
  std::string images, labels;  // IDX files
  ActivationPrecision activations = ActivationPrecision::kFloat32;
  std::vector<LayerActivations> layer_activations;
  bool sensitivity = false;
  // > 0: set layers apart in int16, one at a time (the one that helps most
  // first), until the top-1 agreement reaches this percentage; prints the
  // config.pbtxt lines that do it.
  double target_agreement = 0;
  bool json = false;
};

absl::Status ModelEval(const std::string& path,
                       const ModelEvalOptions& options);

}  // namespace flexor::tools

#endif  // FLEXOR_TOOLS_FLEXORCTL_MODEL_EVAL_H_
