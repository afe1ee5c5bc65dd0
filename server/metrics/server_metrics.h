// The server's Prometheus metrics (docs/metrics.md) and their pull exposer.
// Per model-version series live exactly as long as some loaded version object
// references them (VersionMetrics handles are reference counted), so a swap
// never leaves a dangling series and unloaded versions disappear.
//
// What one loaded version costs a scrape is a choice (issue 14, "Many
// models per server"): by default a version has its request counters (one
// series per status code seen, created on first use) and its file size;
// latency and batch-size histograms, in-flight requests and weight sizes
// are counted in label-free server-wide series. Versions of models chosen
// with --per-model-histograms (or `metrics { per_model_histograms: true }`
// in their config.pbtxt) get their own series of those too ("detail"),
// histograms created on their first observation.
#ifndef FLEXOR_SERVER_METRICS_SERVER_METRICS_H_
#define FLEXOR_SERVER_METRICS_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/common/memory_trimmer.h"

namespace flexor::server {

class ServerMetrics;

// Sizes of one loaded model version, exported as gauges.
struct ModelSizeInfo {
  int64_t file_bytes = 0;
  int64_t compressed_weight_bytes = 0;
  // Layouts the kernels built from the weights at warm-up
  // (Model::DerivedWeightBytes), resident on top of the compressed ones.
  int64_t kernel_layout_bytes = 0;
  int64_t dense_fp32_bytes = 0;
  double bits_per_weight = 0;
};

// Which models get per-model histograms by default (--per-model-histograms).
struct PerModelHistograms {
  enum class Mode { kNone, kAll, kListed };
  Mode mode = Mode::kNone;
  absl::flat_hash_set<std::string> models;  // kListed

  // "none", "all" or a comma list of model names.
  static absl::StatusOr<PerModelHistograms> Parse(absl::string_view text);
  bool Selects(const std::string& model) const {
    return mode == Mode::kAll ||
           (mode == Mode::kListed && models.contains(model));
  }
};

// The series of one (model, version). Thread-safe; recording is lock-free
// except the first time a status code (or, with detail, a histogram) is
// used.
class VersionMetrics {
 public:
  VersionMetrics(const VersionMetrics&) = delete;
  VersionMetrics& operator=(const VersionMetrics&) = delete;

  // `code` is a gRPC status code (0..16).
  void RecordRequest(int code, double seconds);
  void RecordQueue(double seconds) { Histogram(kQueue).Observe(seconds); }
  void RecordCompute(double seconds) { Histogram(kCompute).Observe(seconds); }
  // A sampled execution's time decrypting weights (server-wide series).
  void RecordDecrypt(double seconds);
  void RecordBatch(int64_t samples) {
    Histogram(kBatch).Observe(static_cast<double>(samples));
  }
  // Own series with detail, else the server-wide one.
  prometheus::Gauge& in_flight() { return *in_flight_; }
  // Whether this version has its own histograms (detail series).
  bool detail() const { return detail_; }

 private:
  friend class ServerMetrics;
  enum Kind { kRequest = 0, kQueue = 1, kCompute = 2, kBatch = 3 };
  VersionMetrics(ServerMetrics* owner, std::string key, bool detail)
      : owner_(owner), key_(std::move(key)), detail_(detail) {}
  ~VersionMetrics() = default;
  // The histogram of `kind`: with detail this version's own (created on
  // first use), else the server-wide one.
  prometheus::Histogram& Histogram(Kind kind);

  // {model, version}, rebuilt from key_ when a series is added (not kept:
  // a std::map of two strings is two heap blocks per loaded version).
  prometheus::Labels Labels() const;

  ServerMetrics* owner_;
  std::string key_;  // model "\n" version
  const bool detail_;
  ModelSizeInfo sizes_;
  std::array<std::atomic<prometheus::Counter*>, 17> requests_{};
  std::array<std::atomic<prometheus::Histogram*>, 4> histograms_{};
  prometheus::Gauge* in_flight_ = nullptr;
  prometheus::Gauge* file_bytes_ = nullptr;
  // Detail only (otherwise added to the server-wide sums).
  prometheus::Gauge* compressed_bytes_ = nullptr;
  prometheus::Gauge* kernel_layout_bytes_ = nullptr;
  prometheus::Gauge* dense_bytes_ = nullptr;
  prometheus::Gauge* bits_per_weight_ = nullptr;
};

class ServerMetrics {
 public:
  explicit ServerMetrics(PerModelHistograms per_model = {});
  ~ServerMetrics();

  // Starts the HTTP exposer ("/metrics") on host:port; port 0 picks one.
  absl::Status StartExposer(const std::string& host, int port);
  int exposer_port() const { return exposer_port_; }
  prometheus::Registry& registry() { return *registry_; }

  // Series for one loaded version. Two live loads of the same (model,
  // version), e.g. a reload while the old copy drains, share the series
  // (the first one's detail choice holds until both are freed).
  // `per_model_histograms`: the model's config.pbtxt choice; nullopt: the
  // server's --per-model-histograms.
  std::shared_ptr<VersionMetrics> ForVersion(
      const std::string& model, const std::string& version,
      const ModelSizeInfo& sizes,
      std::optional<bool> per_model_histograms = std::nullopt);

  // Requests that never reached a loaded version (unknown model, server
  // shutting down): counted under model="", version="".
  void RecordUnresolvedRequest(int code);
  void RecordLoad(const std::string& model, bool success);
  void RecordUnload(const std::string& model, bool success);
  void SetModelsLoaded(int models, int versions);

  // Memory budget (--memory-budget; server-wide series, no model label, so
  // that 100,000 registered models do not make 100,000 series): loads on
  // demand and their duration, evictions, requests that found their model
  // resident (hit) or waited for a load (miss), resident bytes vs budget.
  void RecordColdLoad(double seconds, bool success);
  void RecordEviction() { evictions_->Increment(); }
  void RecordResidency(bool hit) { (hit ? hits_ : misses_)->Increment(); }
  void SetResidency(int64_t resident_bytes, int64_t budget_bytes);

  // Returns freed heap memory to the kernel shortly (MemoryTrimmer): after
  // scrapes (done by the exposer itself) and after unloads and evictions.
  void RequestMemoryTrim(int64_t freed_bytes = 0) {
    trimmer_->Request(freed_bytes);
  }
  MemoryTrimmer& memory_trimmer() { return *trimmer_; }
  const MemoryTrimmer& memory_trimmer() const { return *trimmer_; }

 private:
  friend class VersionMetrics;
  // Deleter of VersionMetrics handles: removes the series, then the entry.
  void Release(VersionMetrics* metrics);

  // First, so that it outlives the exposer and collector that use it.
  const std::unique_ptr<MemoryTrimmer> trimmer_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  int exposer_port_ = 0;
  const PerModelHistograms per_model_;

  prometheus::Family<prometheus::Counter>* requests_total_;
  // Request, queue, compute duration and batch size (VersionMetrics::Kind).
  std::array<prometheus::Family<prometheus::Histogram>*, 4> histograms_;
  // Their label-free server-wide series.
  std::array<prometheus::Histogram*, 4> server_histograms_;
  prometheus::Histogram* decrypt_duration_;
  prometheus::Family<prometheus::Gauge>* in_flight_;
  prometheus::Family<prometheus::Gauge>* file_bytes_;
  prometheus::Family<prometheus::Gauge>* compressed_bytes_;
  prometheus::Family<prometheus::Gauge>* kernel_layout_bytes_;
  prometheus::Family<prometheus::Gauge>* dense_bytes_;
  prometheus::Family<prometheus::Gauge>* bits_per_weight_;
  // Successful loads and unloads are label-free (result only): per model name
  // they would grow without bound on a server whose models come and go
  // (ModelMesh); failures keep the model label.
  prometheus::Family<prometheus::Counter>* loads_total_;
  prometheus::Family<prometheus::Counter>* unloads_total_;
  prometheus::Gauge* models_loaded_;
  prometheus::Gauge* versions_loaded_;
  // Memory budget series (RecordColdLoad ...).
  prometheus::Counter* cold_loads_ok_;
  prometheus::Counter* cold_loads_failed_;
  prometheus::Histogram* cold_load_duration_;
  prometheus::Counter* evictions_;
  prometheus::Counter* hits_;
  prometheus::Counter* misses_;
  prometheus::Gauge* resident_bytes_;
  prometheus::Gauge* budget_bytes_;
  // Label-free: in flight and weight sizes over versions without detail.
  prometheus::Gauge* server_in_flight_;
  prometheus::Gauge* server_compressed_bytes_;
  prometheus::Gauge* server_kernel_layout_bytes_;
  prometheus::Gauge* server_dense_bytes_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<VersionMetrics>> live_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_METRICS_SERVER_METRICS_H_
