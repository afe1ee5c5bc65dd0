#include "engine/ops/operator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace flexor {

namespace mv1 = model::v1;

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    // Saturate instead of wrapping: a hostile shape whose product wraps to a
    // small number would otherwise pass every size check downstream.
    if (__builtin_mul_overflow(n, d, &n)) return kShapeOverflow;
  }
  return n;
}

void Epilogue::Apply(float* y, int64_t batch, int64_t channels, int64_t inner,
                     const float* res) const {
  if (empty()) return;
  if (residual) {
    // Reference and grouped paths only (the kernels fuse it into the store).
    const float* a = scale.empty() ? nullptr : scale.data();
    const float* t = shift.empty() ? nullptr : shift.data();
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t c = 0; c < channels; ++c) {
        const float ac = a ? a[c] : 1.0f, tc = t ? t[c] : 0.0f;
        const int64_t base = (b * channels + c) * inner;
        for (int64_t i = 0; i < inner; ++i) {
          const float v = y[base + i] * ac + tc + res[base + i];
          y[base + i] = relu ? std::max(v, 0.0f) : v;
        }
      }
    }
    return;
  }
  const float* a = scale.empty() ? nullptr : scale.data();
  const float* t = shift.empty() ? nullptr : shift.data();
  if (inner == 1) {
    // Dense outputs [batch][channels]: loops over channels, which the
    // compiler vectorises (one pass per variant, no per-element branches).
    for (int64_t b = 0; b < batch; ++b) {
      float* v = y + b * channels;
      if (a != nullptr) {
        for (int64_t c = 0; c < channels; ++c) v[c] *= a[c];
      }
      if (t != nullptr) {
        for (int64_t c = 0; c < channels; ++c) v[c] += t[c];
      }
      if (relu) {
        for (int64_t c = 0; c < channels; ++c) v[c] = std::max(v[c], 0.0f);
      }
    }
    return;
  }
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < channels; ++c) {
      const float ac = a ? a[c] : 1.0f, tc = t ? t[c] : 0.0f;
      float* v = y + (b * channels + c) * inner;
      if (relu) {
        for (int64_t i = 0; i < inner; ++i)
          v[i] = std::max(v[i] * ac + tc, 0.0f);
      } else {
        for (int64_t i = 0; i < inner; ++i) v[i] = v[i] * ac + tc;
      }
    }
  }
}

bool Epilogue::Compose(absl::Span<const float> then_scale,
                       absl::Span<const float> then_shift, bool then_relu,
                       int64_t channels) {
  const bool affine = !then_scale.empty() || !then_shift.empty();
  // max() does not commute with scale; the store adds the residual last.
  if (affine && (relu || residual)) return false;
  auto at = [](absl::Span<const float> v, int64_t c, float def) {
    return v.empty() ? def : v[v.size() == 1 ? 0 : c];
  };
  if (affine) {
    std::vector<float> new_scale(channels), new_shift(channels);
    for (int64_t c = 0; c < channels; ++c) {
      const float a = at(then_scale, c, 1.0f);
      new_scale[c] = (scale.empty() ? 1.0f : scale[c]) * a;
      new_shift[c] =
          (shift.empty() ? 0.0f : shift[c]) * a + at(then_shift, c, 0.0f);
    }
    scale = std::move(new_scale);
    shift = std::move(new_shift);
  }
  relu = relu || then_relu;
  return true;
}

bool Epilogue::ComposeResidual() {
  if (relu || residual) return false;
  residual = true;
  return true;
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
