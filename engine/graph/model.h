// A compiled, immutable, thread-safe model: the validated graph of a model
// file with its weights viewed in place. Run() may be called concurrently.
#ifndef FLEXOR_ENGINE_GRAPH_MODEL_H_
#define FLEXOR_ENGINE_GRAPH_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/format/model_file.h"
#include "engine/kernels/matmul.h"

namespace flexor {

class Operator;

// Per-run choices (the model's serving config).
struct RunOptions {
  KernelPath path = KernelPath::kAuto;
  MatmulOptions matmul;  // activation precision of bit-coded layers
  // Mixed precision: one entry per compiled step (Model::StepActivations),
  // replacing matmul.activations for that step; empty: matmul.activations
  // everywhere. A view, so that copying options never allocates: the
  // caller keeps the vector alive while runs use it.
  absl::Span<const ActivationPrecision> step_activations;
};

// The most activation and scratch memory one Run may use: a request that
// needs more is refused before anything is allocated.
inline constexpr int64_t kMaxRunActivationBytes = int64_t{4} << 30;

struct ModelStats {
  int64_t file_bytes = 0;               // whole file (header + payload)
  int64_t compressed_weight_bytes = 0;  // bits + scales of weight layers
  int64_t dense_fp32_bytes = 0;         // same layers' weights as dense FP32
  int64_t num_weights = 0;              // weights in Dense/Conv2d layers
  double bits_per_weight = 0;           // over quantized (non-float) layers
  int num_layers = 0;                   // Dense + Conv2d
};

class Model {
 public:
  // Opens (ModelFile::Open with `access`), validates and compiles. Errors
  // name the model, node and field.
  static absl::StatusOr<std::shared_ptr<const Model>> Load(
      const std::string& path, ModelFileAccess access = ModelFileAccess::kCopy);
  static absl::StatusOr<std::shared_ptr<const Model>> Compile(
      std::shared_ptr<const ModelFile> file);

  ~Model();

  const ModelFile& file() const { return *file_; }
  const std::string& name() const { return file_->name(); }
  const model::v1::ValueInfo& input() const {
    return file_->header().inputs(0);
  }
  const model::v1::ValueInfo& output() const {
    return file_->header().outputs(0);
  }
  int64_t input_size() const { return input_size_; }    // per sample
  int64_t output_size() const { return output_size_; }  // per sample
  const ModelStats& stats() const { return stats_; }

  // input [batch, input_size] -> output [batch, output_size]. Intra-op
  // parallelism uses oneTBB in the caller's current task arena. Activations
  // live in one buffer leased from BufferPool::Global() at offsets planned at
  // compile time, so after warm-up a run allocates nothing. Errors:
  // INVALID_ARGUMENT for a bad batch, RESOURCE_EXHAUSTED when the batch
  // needs more than kMaxRunActivationBytes or the memory is not there.
  absl::Status Run(const float* input, int64_t batch, float* output,
                   KernelPath path = KernelPath::kAuto) const;
  absl::Status Run(const float* input, int64_t batch, float* output,
                   const RunOptions& options) const;

  // Bytes of activations and scratch one run of `batch` samples uses in an
  // arena of `threads` threads (what the server budgets per request).
  int64_t ActivationBytes(int64_t batch, int threads) const;

  // Bytes of weight layouts the kernels have built from the stored weights
  // so far (Operator::DerivedWeightBytes), resident on top of
  // stats().compressed_weight_bytes; read it after a warm-up run with the
  // serving precision.
  int64_t DerivedWeightBytes() const;

  // Per-step timings of one run (flexorctl model bench --profile).
  struct StepProfile {
    std::string name;      // node name(s), fused ones joined by '+'
    std::string describe;  // Operator::Describe()
    int64_t macs_per_sample = 0;
    double seconds = 0;
    // Of which decrypting weights (summed over threads, so with several
    // threads it can exceed the wall time `seconds`).
    double decrypt_seconds = 0;
  };
  absl::Status RunProfiled(const float* input, int64_t batch, float* output,
                           std::vector<StepProfile>* profile,
                           const RunOptions& options = RunOptions()) const;

  // RunOptions::step_activations for `base` with `layers` (by graph node
  // name) set apart. A fused step takes the precision of its weight layer.
  // Errors: a name that is not a Dense or Conv2d node of this model.
  absl::StatusOr<std::vector<ActivationPrecision>> StepActivations(
      ActivationPrecision base,
      const std::vector<LayerActivations>& layers) const;

  // Names of the Dense and Conv2d layers, in execution order (what
  // StepActivations accepts); with `quantized_only`, those whose weights
  // are not float32 (where the activation precision matters).
  std::vector<std::string> WeightLayerNames(bool quantized_only = false) const;

  // Human-readable description: graph, codecs, shapes, sizes (inspect).
  std::string Describe() const;

 private:
  Model() = default;
  absl::Status RunSteps(const float* input, int64_t batch, float* output,
                        const RunOptions& options,
                        std::vector<StepProfile>* profile) const;

  std::shared_ptr<const ModelFile> file_;
  // Inline vectors: a step's inputs and shape fit in the Step itself, so a
  // resident model does not pay two heap blocks per step (with thousands of
  // small models loaded, such fixed costs add up to a share of their files).
  struct Step {
    std::unique_ptr<Operator> op;
    std::string name;                       // fused nodes joined by '+'
    absl::InlinedVector<int, 2> inputs;     // storages read
    int output = 0;                         // storage written
    absl::InlinedVector<int64_t, 3> shape;  // per-sample output (Describe)
  };
  std::vector<Step> steps_;
  // Storages: 0 is the caller's input, output_storage_ the caller's output
  // buffer; every other one sits at offset_[s] * batch floats in the run's
  // leased buffer (per-sample offsets scale with the batch, so one plan
  // serves every batch size).
  std::vector<int64_t> offset_;
  int64_t arena_floats_per_sample_ = 0;
  int output_storage_ = 0;
  int64_t input_size_ = 0;
  int64_t output_size_ = 0;
  ModelStats stats_;
};

}  // namespace flexor

#endif  // FLEXOR_ENGINE_GRAPH_MODEL_H_
