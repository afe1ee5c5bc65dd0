// A compiled, immutable, thread-safe model: the validated graph of a model
// file with its weights viewed in place. Run() may be called concurrently.
#ifndef FLEXOR_ENGINE_GRAPH_MODEL_H_
#define FLEXOR_ENGINE_GRAPH_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/format/model_file.h"
#include "engine/kernels/matmul.h"

namespace flexor {

class Operator;

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
  // Opens, validates and compiles. Errors name the model, node and field.
  static absl::StatusOr<std::shared_ptr<const Model>> Load(
      const std::string& path);
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
  // parallelism uses oneTBB in the caller's current task arena.
  absl::Status Run(const float* input, int64_t batch, float* output,
                   KernelPath path = KernelPath::kAuto) const;

  // Human-readable description: graph, codecs, shapes, sizes (inspect).
  std::string Describe() const;

 private:
  Model() = default;
  std::shared_ptr<const ModelFile> file_;
  struct Step {
    std::unique_ptr<Operator> op;
    std::string name;
    std::vector<int> inputs;   // value slots read
    int output = 0;            // value slot written
    std::vector<int> release;  // slots whose last reader is this step
  };
  std::vector<Step> steps_;
  // Value slots: 0 is the graph input; step i writes slot i + 1.
  std::vector<int64_t> slot_sizes_;
  std::vector<std::vector<int64_t>> slot_shapes_;
  int output_slot_ = 0;
  int64_t input_size_ = 0;
  int64_t output_size_ = 0;
  ModelStats stats_;
};

}  // namespace flexor

#endif  // FLEXOR_ENGINE_GRAPH_MODEL_H_
