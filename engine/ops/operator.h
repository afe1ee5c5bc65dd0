// Graph operators. Each node of a model file compiles into one Operator:
// all validation (tensors, shapes, codecs) happens at compile time, so Run()
// cannot fail on a compiled model.
#ifndef FLEXOR_ENGINE_OPS_OPERATOR_H_
#define FLEXOR_ENGINE_OPS_OPERATOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/format/model_file.h"
#include "engine/kernels/layer_weights.h"
#include "engine/kernels/matmul.h"
#include "proto/model.pb.h"

namespace flexor {

// Per-sample shape of an activation (NCHW without N).
using Shape = std::vector<int64_t>;
// Product of the dimensions; kShapeOverflow when it does not fit in int64,
// -1 when a dimension is negative. Callers compare the result with a limit,
// so an overflowing shape is always "too large", never a wrapped small size.
inline constexpr int64_t kShapeOverflow = INT64_MAX;
int64_t NumElements(const Shape& shape);
std::string ShapeString(const Shape& shape);

// A compiled model must not ask for absurd activations (hostile files).
inline constexpr int64_t kMaxActivationElements = int64_t{1} << 26;

// What a step gets besides its inputs and output.
struct RunContext {
  KernelPath path = KernelPath::kAuto;
  MatmulOptions matmul;  // for Dense layers
  // ScratchFloats(batch, threads) floats, 64-byte aligned, uninitialised,
  // owned by the run (never shared with a concurrent run).
  float* scratch = nullptr;
  // Concurrency of the caller's task arena (sizes per-thread scratch).
  int threads = 1;
};

// Per-output-channel post-processing that Dense and Conv2d apply as they
// write their output: y = y * scale[o] + shift[o], then max(y, 0) if relu.
// A BatchNorm or ReLU that follows such a layer is folded into it at compile
// time (Operator::FoldInto), so it costs no extra pass over the activations.
struct Epilogue {
  std::vector<float> scale;  // empty: 1
  std::vector<float> shift;  // empty: 0
  // A residual Add folded in: y += the op's second input (same layout as
  // y), after scale/shift and before the ReLU.
  bool residual = false;
  bool relu = false;
  bool empty() const {
    return scale.empty() && shift.empty() && !residual && !relu;
  }
  // Appends "then y * then_scale + then_shift, then ReLU if then_relu"
  // (scale/shift: empty, one value or `channels` values). False when it
  // cannot be expressed (an affine step after a ReLU or a residual Add).
  bool Compose(absl::Span<const float> then_scale,
               absl::Span<const float> then_shift, bool then_relu,
               int64_t channels);
  // Appends "then + residual": false after a ReLU (max() first, then the
  // sum, is not what the fused store computes).
  bool ComposeResidual();
  // Applies to y[(b * channels + o) * inner + i], i < inner; `residual`
  // (laid out as y) is required when the epilogue has one.
  void Apply(float* y, int64_t batch, int64_t channels, int64_t inner,
             const float* residual = nullptr) const;
};

class Operator {
 public:
  virtual ~Operator() = default;
  // inputs[i] points at [batch, size of input i]; output at [batch, size].
  // Never reads or writes outside those and ctx.scratch.
  virtual void Run(absl::Span<const float* const> inputs, int64_t batch,
                   float* output, const RunContext& ctx) const = 0;
  // Scratch this op needs for a run of `batch` samples in an arena of
  // `threads` threads.
  virtual int64_t ScratchFloats(int64_t batch, int threads) const {
    (void)batch;
    (void)threads;
    return 0;
  }
  // Dense and Conv2d: takes over a following per-channel op (see Epilogue).
  // False when it cannot (other ops, or an order it cannot express).
  virtual bool FuseEpilogue(absl::Span<const float> scale,
                            absl::Span<const float> shift, bool relu) {
    (void)scale;
    (void)shift;
    (void)relu;
    return false;
  }
  // Conv2d: takes over the residual Add that follows it; the Add's other
  // operand then comes as inputs[1] (see Epilogue::residual). False when it
  // cannot (other ops, or a ReLU already fused).
  virtual bool FuseResidualAdd() { return false; }
  // BatchNorm and ReLU: fold this op into `producer`, which computed its
  // only input. True when folded (the step then disappears).
  virtual bool FoldInto(Operator& producer) const {
    (void)producer;
    return false;
  }
  // Flatten: the output is the input's memory under another shape.
  virtual bool IsAlias() const { return false; }
  // The weight matrix of Dense/Conv2d layers, null for the others.
  virtual const LayerWeights* weights() const { return nullptr; }
  // One line: kind, configuration and codec.
  virtual std::string Describe() const = 0;
  // Multiply-adds per sample (0 for ops without weights): profiling.
  virtual int64_t MacsPerSample() const { return 0; }
  // Bytes of weight layouts the kernels built from the stored weights so
  // far (Dense: the FleXOR taps kept transposed for the AVX2 int8 look-up,
  // built on the first int8 run); not part of ModelStats.
  virtual int64_t DerivedWeightBytes() const { return 0; }
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
