// One loaded model version: immutable after loading and shared by reference
// count. Requests hold a reference while they run, so a swap or an unload
// never pulls a model from under a request; the version (its mapped file,
// its queue, its metric series) is freed when the last reference drops.
#ifndef FLEXOR_SERVER_REGISTRY_SERVABLE_H_
#define FLEXOR_SERVER_REGISTRY_SERVABLE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/graph/model.h"
#include "server/batching/batch_queue.h"
#include "server/config/model_config.h"
#include "server/metrics/server_metrics.h"
#include "server/registry/repository.h"

namespace flexor::server {

// Cumulative counters behind the ModelStatistics RPC (Triton's layout). As in
// Triton, queue and compute durations count successful requests only; a
// failed request adds to `fail` alone.
class ServableStats {
 public:
  struct Duration {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> ns{0};
    void Add(absl::Duration d) {
      count.fetch_add(1, std::memory_order_relaxed);
      ns.fetch_add(static_cast<uint64_t>(absl::ToInt64Nanoseconds(d)),
                   std::memory_order_relaxed);
    }
  };
  // Per executed batch size: executions, and the time to prepare the
  // inputs (the requests' decoding), run the model and encode the outputs of
  // those executions.
  struct BatchEntry {
    uint64_t count = 0;
    uint64_t input_ns = 0;
    uint64_t compute_ns = 0;
    uint64_t output_ns = 0;
  };

  Duration success, fail, queue, compute_input, compute_infer, compute_output;
  std::atomic<uint64_t> inference_count{0};  // samples
  std::atomic<uint64_t> execution_count{0};  // batches
  std::atomic<uint64_t> last_inference_ms{0};

  void RecordBatch(int64_t samples, absl::Duration compute);
  // One successful request's share of the batch of `batch_samples` it ran
  // in (recorded after that batch's RecordBatch).
  void RecordBatchIo(int64_t batch_samples, absl::Duration input,
                     absl::Duration output);
  std::map<int64_t, BatchEntry> BatchStats() const;

 private:
  mutable absl::Mutex mu_;
  std::map<int64_t, BatchEntry> batches_ ABSL_GUARDED_BY(mu_);
};

class ServableVersion {
 public:
  ServableVersion(std::string name, int64_t version,
                  std::shared_ptr<const Model> model, ModelConfig config,
                  FileIdentity identity,
                  std::shared_ptr<VersionMetrics> metrics,
                  int64_t decrypt_sample_period = 0,
                  std::vector<ActivationPrecision> step_activations = {});
  ServableVersion(const ServableVersion&) = delete;
  ServableVersion& operator=(const ServableVersion&) = delete;

  const std::string& name() const { return name_; }
  int64_t version() const { return version_; }
  const Model& model() const { return *model_; }
  const ModelConfig& config() const { return config_; }
  const FileIdentity& identity() const { return identity_; }
  VersionMetrics& metrics() const { return *metrics_; }
  ServableStats& stats() const { return stats_; }
  BatchQueue* queue() const { return &queue_; }

 private:
  const std::string name_;
  const int64_t version_;
  const std::shared_ptr<const Model> model_;
  const ModelConfig config_;
  const FileIdentity identity_;
  const std::shared_ptr<VersionMetrics> metrics_;
  mutable ServableStats stats_;
  // Every decrypt_sample_period-th execution is profiled for the decryption
  // time metric (0: never).
  const int64_t decrypt_sample_period_;
  mutable std::atomic<int64_t> executions_{0};
  // Mixed precision (config layer_activation_precision): one per compiled
  // step, viewed by run_options_; empty otherwise.
  const std::vector<ActivationPrecision> step_activations_;
  // The queue's runner reads these through `this`: captured by value they
  // would not fit std::function's inline buffer (one heap block more).
  const RunOptions run_options_;
  mutable BatchQueue queue_;
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_REGISTRY_SERVABLE_H_
