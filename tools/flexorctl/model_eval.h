// `flexorctl model eval FILE --images=IDX --labels=IDX`: test accuracy of a
// model file in-process, and with --activations=int8/int16 the top-1 agreement
// of the int8-activation path with the exact FP32 path and their largest output
// difference (the numbers docs/performance.md reports per model).
#ifndef FLEXOR_TOOLS_FLEXORCTL_MODEL_EVAL_H_
#define FLEXOR_TOOLS_FLEXORCTL_MODEL_EVAL_H_

#include <string>

#include "absl/status/status.h"
#include "engine/kernels/activation_precision.h"

namespace flexor::tools {

absl::Status ModelEval(const std::string& path, const std::string& images,
                       const std::string& labels,
                       ActivationPrecision activations, bool json);

}  // namespace flexor::tools

#endif  // FLEXOR_TOOLS_FLEXORCTL_MODEL_EVAL_H_
