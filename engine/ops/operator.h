// Graph operators. Each node of a model file compiles into one Operator:
// all validation (tensors, shapes, codecs) happens at compile time, so Run()
// cannot fail on a compiled model.
#ifndef FLEXOR_ENGINE_OPS_OPERATOR_H_
#define FLEXOR_ENGINE_OPS_OPERATOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/format/model_file.h"
#include "engine/kernels/layer_weights.h"
#include "engine/kernels/matmul.h"
#include "proto/model.pb.h"

namespace flexor {

// Per-sample shape of an activation (NCHW without N).
using Shape = std::vector<int64_t>;
int64_t NumElements(const Shape& shape);
std::string ShapeString(const Shape& shape);

// A compiled model must not ask for absurd activations (hostile files).
inline constexpr int64_t kMaxActivationElements = int64_t{1} << 26;

class Operator {
 public:
  virtual ~Operator() = default;
  // inputs[i] points at [batch, size of input i]; output at [batch, size].
  virtual void Run(absl::Span<const float* const> inputs, int64_t batch,
                   float* output, KernelPath path) const = 0;
  // The weight matrix of Dense/Conv2d layers, null for the others.
  virtual const LayerWeights* weights() const { return nullptr; }
  // One line: kind, configuration and codec.
  virtual std::string Describe() const = 0;
};

struct CompiledOp {
  std::unique_ptr<Operator> op;
  Shape output_shape;
};

// Validates `node` against the file's tensors and its input shapes. Errors
// are INVALID_ARGUMENT naming the field and the reason (the caller adds the
// model and node names).
// `input_is_ternary` tells that every value of the first input is in
// {-1, 0, +1} (it comes from Ternarize), so a ternary Dense layer may use the
// gated-XNOR popcount kernel.
absl::StatusOr<CompiledOp> CompileOperator(const model::v1::Node& node,
                                           const ModelFile& file,
                                           const std::vector<Shape>& inputs,
                                           bool input_is_ternary = false);

// Per-kind compilers (one file each).
absl::StatusOr<CompiledOp> CompileDense(const model::v1::Node& node,
                                        const ModelFile& file,
                                        const std::vector<Shape>& inputs,
                                        bool input_is_ternary);
absl::StatusOr<CompiledOp> CompileConv2d(const model::v1::Node& node,
                                         const ModelFile& file,
                                         const std::vector<Shape>& inputs);
absl::StatusOr<CompiledOp> CompilePool(const model::v1::Node& node,
                                       const ModelFile& file,
                                       const std::vector<Shape>& inputs);
absl::StatusOr<CompiledOp> CompileElementwise(const model::v1::Node& node,
                                              const ModelFile& file,
                                              const std::vector<Shape>& inputs);

// Looks up `name` and checks its dtype and shape; `field` names the op field
// in errors.
absl::StatusOr<TensorView> GetTensor(const ModelFile& file,
                                     const std::string& name,
                                     model::v1::DType dtype, const Shape& shape,
                                     const std::string& field);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_OPS_OPERATOR_H_
