#include "engine/kernels/activation_precision.h"

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

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

absl::StatusOr<std::vector<LayerActivations>> ParseLayerActivations(
    absl::string_view text) {
  std::vector<LayerActivations> out;
  if (text.empty()) return out;
  absl::flat_hash_set<absl::string_view> seen;
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    const std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(entry, absl::MaxSplits('=', 1));
    if (kv.first.empty() || kv.second.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer activations entry '", entry,
                       "' is not layer=precision (e.g. block1_conv1=int16)"));
    }
    absl::StatusOr<ActivationPrecision> precision =
        ParseActivationPrecision(kv.second);
    if (!precision.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer '", kv.first, "': ", precision.status().message()));
    }
    if (!seen.insert(kv.first).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer '", kv.first, "' is named twice"));
    }
    out.push_back({std::string(kv.first), *precision});
  }
  return out;
}

std::string LayerActivationsString(const std::vector<LayerActivations>& list) {
  return absl::StrJoin(list, ",", [](std::string* out, const auto& l) {
    absl::StrAppend(out, l.layer, "=", ActivationPrecisionName(l.precision));
  });
}

std::string ActivationsLabel(ActivationPrecision base,
                             const std::vector<LayerActivations>& layers) {
  std::string label = ActivationPrecisionName(base);
  if (!layers.empty()) {
    absl::StrAppend(&label, " (", LayerActivationsString(layers), ")");
  }
  return label;
}

}  // namespace flexor
