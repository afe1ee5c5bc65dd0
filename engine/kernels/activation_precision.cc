#include "engine/kernels/activation_precision.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace flexor {

const char* ActivationPrecisionName(ActivationPrecision precision) {
  switch (precision) {
    case ActivationPrecision::kInt8:
      return "int8";
    case ActivationPrecision::kInt16:
      return "int16";
    case ActivationPrecision::kFloat32:
      break;
  }
  return "fp32";
}

absl::StatusOr<ActivationPrecision> ParseActivationPrecision(
    absl::string_view text) {
  for (ActivationPrecision p :
       {ActivationPrecision::kFloat32, ActivationPrecision::kInt8,
        ActivationPrecision::kInt16}) {
    if (text == ActivationPrecisionName(p)) return p;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "activation precision '", text, "' is not fp32, int8 or int16"));
}

}  // namespace flexor
