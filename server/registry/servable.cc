#include "server/registry/servable.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace flexor::server {

namespace {
RunOptions RunOptionsOf(const ModelConfig& config,
                        const std::vector<ActivationPrecision>& steps) {
  RunOptions options;
  options.matmul.activations = config.activations;
  options.step_activations = steps;
  return options;
}
}  // namespace

void ServableStats::RecordBatch(int64_t samples, absl::Duration compute) {
  execution_count.fetch_add(1, std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  BatchEntry& entry = batches_[samples];
  ++entry.count;
  entry.compute_ns += static_cast<uint64_t>(absl::ToInt64Nanoseconds(compute));
}

void ServableStats::RecordBatchIo(int64_t batch_samples, absl::Duration input,
                                  absl::Duration output) {
  absl::MutexLock lock(&mu_);
  BatchEntry& entry = batches_[batch_samples];
  entry.input_ns += static_cast<uint64_t>(absl::ToInt64Nanoseconds(input));
  entry.output_ns += static_cast<uint64_t>(absl::ToInt64Nanoseconds(output));
}

std::map<int64_t, ServableStats::BatchEntry> ServableStats::BatchStats() const {
  absl::MutexLock lock(&mu_);
  return batches_;
}

ServableVersion::ServableVersion(
    std::string name, int64_t version, std::shared_ptr<const Model> model,
    ModelConfig config, FileIdentity identity,
    std::shared_ptr<VersionMetrics> metrics, int64_t decrypt_sample_period,
    std::vector<ActivationPrecision> step_activations)
    : name_(std::move(name)),
      version_(version),
      model_(std::move(model)),
      config_(std::move(config)),
      identity_(identity),
      metrics_(std::move(metrics)),
      decrypt_sample_period_(decrypt_sample_period),
      step_activations_(std::move(step_activations)),
      run_options_(RunOptionsOf(config_, step_activations_)),
      queue_(
          BatchQueue::Options{
              absl::StrCat("model '", name_, "' version ", version_),
              config_.max_batch_size, config_.dynamic_batching,
              config_.max_queue_delay, config_.max_queue_size,
              model_->input_size(), model_->output_size()},
          [this](const float* in, int64_t batch, float* out) {
            const RunOptions& options = run_options_;
            const bool sample =
                decrypt_sample_period_ > 0 &&
                executions_.fetch_add(1, std::memory_order_relaxed) %
                        decrypt_sample_period_ ==
                    0;
            if (!sample) return model_->Run(in, batch, out, options);
            std::atomic<int64_t> decrypt_nanos{0};
            RunOptions profiled = options;
            profiled.matmul.decrypt_nanos = &decrypt_nanos;
            absl::Status status = model_->Run(in, batch, out, profiled);
            if (status.ok()) {
              metrics_->RecordDecrypt(
                  static_cast<double>(decrypt_nanos.load()) * 1e-9);
            }
            return status;
          },
          [this](int64_t samples, absl::Duration compute) {
            metrics_->RecordBatch(samples);
            metrics_->RecordCompute(absl::ToDoubleSeconds(compute));
            stats_.RecordBatch(samples, compute);
          }) {}

}  // namespace flexor::server
