// How a binary-coded layer's activations enter the dot products. Shared by
// the operator-facing Matmul options and the kernel-level GemmOptions; the
// names below are the wire form (server flag, config.pbtxt, tools).
#ifndef FLEXOR_ENGINE_KERNELS_ACTIVATION_PRECISION_H_
#define FLEXOR_ENGINE_KERNELS_ACTIVATION_PRECISION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace flexor {

enum class ActivationPrecision {
  // Exact FP32 activations (only the summation order differs from the
  // double-precision reference). The default.
  kFloat32,
  // Each activation row is quantised to int8 with one scale per row
  // (scale = max|x| / 127, round to nearest even); the dot products with the
  // +-1 weights are then exact integer sums. Error per output:
  //   |y - y_exact| <= scale / 2 * sum_k |W[o, k]|  (+ float rounding),
  // see docs/performance.md. Used for small batches (where it is several
  // times faster); larger batches keep the FP32 kernels. Convolutions with
  // one binary plane quantise each sample's input (int8_conv.h).
  kInt8,
  // Convolutions as kInt8, with a second int8 digit holding what rounding
  // to the first left (two integer passes, about 16 bits): the error bound
  // is kInt8's divided by 254, at about 1.5x kInt8's time. For models whose
  // predictions move under kInt8 (a ResNet trained here: 99.65% top-1
  // agreement with FP32 in kInt8, 100% in kInt16). Dense layers run FP32.
  kInt16,
};

// "fp32", "int8", "int16".
const char* ActivationPrecisionName(ActivationPrecision precision);
// The inverse of ActivationPrecisionName (lower case only).
absl::StatusOr<ActivationPrecision> ParseActivationPrecision(
    absl::string_view text);

// A layer (model graph node) whose activations differ from the model's
// precision: mixed precision, e.g. int16 for the one layer whose int8
// rounding moves predictions and int8 everywhere else (docs/performance.md).
struct LayerActivations {
  std::string layer;
  ActivationPrecision precision = ActivationPrecision::kFloat32;
  bool operator==(const LayerActivations& o) const {
    return layer == o.layer && precision == o.precision;
  }
};

// "layer=precision[,layer=precision...]" (empty text: none), e.g.
// "block1_conv1=int16". Errors name the bad entry; a layer named twice is
// an error. Whether the layers exist is checked against a compiled model
// (Model::StepActivations).
absl::StatusOr<std::vector<LayerActivations>> ParseLayerActivations(
    absl::string_view text);
// The inverse of ParseLayerActivations.
std::string LayerActivationsString(const std::vector<LayerActivations>& list);
// For people (tools, logs): "int8", or "int8 (block1_conv1=int16)".
std::string ActivationsLabel(ActivationPrecision base,
                             const std::vector<LayerActivations>& layers);

// Whether convolutions quantise their inputs (kInt8 or kInt16).
inline bool QuantizesConvInputs(ActivationPrecision precision) {
  return precision != ActivationPrecision::kFloat32;
}

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_ACTIVATION_PRECISION_H_
