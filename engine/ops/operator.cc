#include "engine/ops/operator.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace flexor {

namespace mv1 = model::v1;

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const Shape& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<TensorView> GetTensor(const ModelFile& file,
                                     const std::string& name, mv1::DType dtype,
                                     const Shape& shape,
                                     const std::string& field) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": no tensor named"));
  }
  absl::StatusOr<TensorView> t = file.tensor(name);
  if (!t.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": tensor '", name, "' is not in the file"));
  }
  if (t->info->dtype() != dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": tensor '", name, "' has dtype ",
                     mv1::DType_Name(t->info->dtype()), ", expected ",
                     mv1::DType_Name(dtype)));
  }
  const Shape actual(t->info->shape().begin(), t->info->shape().end());
  if (actual != shape) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": tensor '", name, "' has shape ",
                     ShapeString(actual), ", expected ", ShapeString(shape)));
  }
  return t;
}

absl::StatusOr<CompiledOp> CompileOperator(const mv1::Node& node,
                                           const ModelFile& file,
                                           const std::vector<Shape>& inputs,
                                           bool input_is_ternary) {
  switch (node.op_case()) {
    case mv1::Node::kDense:
      return CompileDense(node, file, inputs, input_is_ternary);
    case mv1::Node::kConv2D:
      return CompileConv2d(node, file, inputs);
    case mv1::Node::kPool2D:
    case mv1::Node::kGlobalAvgPool:
      return CompilePool(node, file, inputs);
    case mv1::Node::kInputScale:
    case mv1::Node::kBatchNorm:
    case mv1::Node::kRelu:
    case mv1::Node::kFlatten:
    case mv1::Node::kAdd:
    case mv1::Node::kSoftmax:
    case mv1::Node::kTernarize:
      return CompileElementwise(node, file, inputs);
    case mv1::Node::OP_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("op: not set or unknown to this build");
}

}  // namespace flexor
