// `flexorctl model bench FILE`: in-process latency and throughput of one
// model file per batch size (no server, no RPC), with an optional per-layer
// profile from Model::RunProfiled.
#ifndef FLEXOR_TOOLS_FLEXORCTL_MODEL_BENCH_H_
#define FLEXOR_TOOLS_FLEXORCTL_MODEL_BENCH_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/kernels/activation_precision.h"

namespace flexor::tools {

struct ModelBenchOptions {
  std::vector<int> batches = {1, 8, 32, 128};
  int threads = 1;  // size of the tbb::task_arena the model runs in
  bool profile = false;
  absl::Duration min_time = absl::Seconds(1);  // per batch size
  bool json = false;
  ActivationPrecision activations = ActivationPrecision::kFloat32;
  std::vector<LayerActivations> layer_activations;  // mixed precision
};

absl::Status ModelBench(const std::string& path,
                        const ModelBenchOptions& options);

}  // namespace flexor::tools

#endif  // FLEXOR_TOOLS_FLEXORCTL_MODEL_BENCH_H_
