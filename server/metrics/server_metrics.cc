#include "server/metrics/server_metrics.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/metrics/process_collector.h"
#include "server/registry/repository.h"

namespace flexor::server {
namespace {

// 50 us .. 10 s: request and queue latencies of a CPU model server.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
  return *buckets;
}

// 1 us .. 100 ms: weight decryption of one execution (microseconds for a
// small model, milliseconds for a large batch of a big one).
const prometheus::Histogram::BucketBoundaries& DecryptBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      1e-6,   2.5e-6, 5e-6, 1e-5,   2.5e-5, 5e-5, 1e-4,
      2.5e-4, 5e-4,   1e-3, 2.5e-3, 1e-2,   1e-1};
  return *buckets;
}

const prometheus::Histogram::BucketBoundaries& BatchBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
  return *buckets;
}

// Status-code label values ("OK", "NOT_FOUND", ...), gRPC's canonical names.
std::string CodeName(int code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

const prometheus::Histogram::BucketBoundaries& BucketsOf(int kind) {
  return kind == 3 ? BatchBuckets() : LatencyBuckets();
}

}  // namespace

absl::StatusOr<PerModelHistograms> PerModelHistograms::Parse(
    absl::string_view text) {
  PerModelHistograms out;
  if (text == "none" || text.empty()) return out;
  if (text == "all") {
    out.mode = Mode::kAll;
    return out;
  }
  out.mode = Mode::kListed;
  for (absl::string_view name : absl::StrSplit(text, ',')) {
    if (absl::Status s = ModelRepository::ValidateModelName(name); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--per-model-histograms (none, all or a comma list of model "
          "names): ",
          s.message()));
    }
    out.models.insert(std::string(name));
  }
  return out;
}

prometheus::Labels VersionMetrics::Labels() const {
  // The version (a number) follows the last newline.
  const size_t newline = key_.rfind('\n');
  return {{"model", key_.substr(0, newline)},
          {"version", key_.substr(newline + 1)}};
}

prometheus::Histogram& VersionMetrics::Histogram(Kind kind) {
  prometheus::Histogram* h = histograms_[kind].load(std::memory_order_acquire);
  if (h != nullptr) return *h;
  absl::MutexLock lock(&owner_->mu_);
  h = histograms_[kind].load(std::memory_order_relaxed);
  if (h == nullptr) {
    h = &owner_->histograms_[kind]->Add(Labels(), BucketsOf(kind));
    histograms_[kind].store(h, std::memory_order_release);
  }
  return *h;
}

void VersionMetrics::RecordRequest(int code, double seconds) {
  if (code < 0 || code > 16) code = 2;
  prometheus::Counter* counter =
      requests_[code].load(std::memory_order_acquire);
  if (counter == nullptr) {
    prometheus::Labels labels = Labels();
    labels["code"] = CodeName(code);
    // Family::Add returns the existing series for identical labels.
    counter = &owner_->requests_total_->Add(labels);
    requests_[code].store(counter, std::memory_order_release);
  }
  counter->Increment();
  Histogram(kRequest).Observe(seconds);
}

void VersionMetrics::RecordDecrypt(double seconds) {
  owner_->decrypt_duration_->Observe(seconds);
}

ServerMetrics::ServerMetrics(PerModelHistograms per_model)
    : trimmer_(std::make_unique<MemoryTrimmer>()),
      registry_(std::make_shared<prometheus::Registry>()),
      process_collector_(std::make_shared<ProcessCollector>(trimmer_.get())),
      per_model_(std::move(per_model)) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  requests_total_ =
      &BuildCounter()
           .Name("flexor_inference_requests_total")
           .Help("ModelInfer requests by model, version and gRPC status code.")
           .Register(*registry_);
  histograms_[VersionMetrics::kRequest] =
      &BuildHistogram()
           .Name("flexor_inference_request_duration_seconds")
           .Help(
               "ModelInfer time in the server, from the handler's start to "
               "the response, in seconds.")
           .Register(*registry_);
  histograms_[VersionMetrics::kQueue] =
      &BuildHistogram()
           .Name("flexor_inference_queue_duration_seconds")
           .Help(
               "Time a request waited in the model's batching queue, in "
               "seconds.")
           .Register(*registry_);
  histograms_[VersionMetrics::kCompute] =
      &BuildHistogram()
           .Name("flexor_inference_compute_duration_seconds")
           .Help(
               "Time of one model execution (fused decrypt + GEMM over the "
               "whole batch), in seconds.")
           .Register(*registry_);
  decrypt_duration_ =
      &BuildHistogram()
           .Name("flexor_inference_decrypt_duration_seconds")
           .Help(
               "Time spent decrypting compressed weights (XOR-gate networks) "
               "during one model execution, summed over threads, in seconds; "
               "sampled (--decrypt-sample-rate), all models together.")
           .Register(*registry_)
           .Add({}, DecryptBuckets());
  histograms_[VersionMetrics::kBatch] =
      &BuildHistogram()
           .Name("flexor_inference_batch_size")
           .Help("Samples per model execution (dynamic batching).")
           .Register(*registry_);
  in_flight_ = &BuildGauge()
                    .Name("flexor_inference_requests_in_flight")
                    .Help("ModelInfer requests accepted and not yet answered.")
                    .Register(*registry_);
  file_bytes_ = &BuildGauge()
                     .Name("flexor_model_file_bytes")
                     .Help(
                         "Size of the loaded model file (header + payload), "
                         "held in memory, in bytes.")
                     .Register(*registry_);
  compressed_bytes_ =
      &BuildGauge()
           .Name("flexor_model_compressed_weight_bytes")
           .Help(
               "Resident bytes of the compressed weight payload (bits + "
               "scales) of the loaded version.")
           .Register(*registry_);
  kernel_layout_bytes_ =
      &BuildGauge()
           .Name("flexor_model_kernel_layout_bytes")
           .Help(
               "Resident bytes of weight layouts the kernels built from the "
               "compressed weights at warm-up (FleXOR taps kept transposed "
               "for the AVX2 int8 look-up), on top of "
               "flexor_model_compressed_weight_bytes.")
           .Register(*registry_);
  dense_bytes_ = &BuildGauge()
                      .Name("flexor_model_dense_fp32_equivalent_bytes")
                      .Help("Bytes the same weights would take as dense FP32.")
                      .Register(*registry_);
  bits_per_weight_ = &BuildGauge()
                          .Name("flexor_model_weight_bitwidth")
                          .Help(
                              "Stored bits per weight (fractional with FleXOR) "
                              "over the model's "
                              "quantized layers.")
                          .Register(*registry_);
  loads_total_ = &BuildCounter()
                      .Name("flexor_model_loads_total")
                      .Help(
                          "Model load attempts by model and result "
                          "(success, failure).")
                      .Register(*registry_);
  unloads_total_ = &BuildCounter()
                        .Name("flexor_model_unloads_total")
                        .Help("Model unloads by model and result.")
                        .Register(*registry_);
  models_loaded_ = &BuildGauge()
                        .Name("flexor_models_loaded")
                        .Help("Models with at least one version ready.")
                        .Register(*registry_)
                        .Add({});
  versions_loaded_ = &BuildGauge()
                          .Name("flexor_model_versions_loaded")
                          .Help("Model versions ready to serve.")
                          .Register(*registry_)
                          .Add({});
  for (int kind = 0; kind < 4; ++kind) {
    server_histograms_[kind] = &histograms_[kind]->Add({}, BucketsOf(kind));
  }
  server_in_flight_ = &in_flight_->Add({});
  server_compressed_bytes_ = &compressed_bytes_->Add({});
  server_kernel_layout_bytes_ = &kernel_layout_bytes_->Add({});
  server_dense_bytes_ = &dense_bytes_->Add({});
  auto& cold_loads = BuildCounter()
                         .Name("flexor_model_cold_loads_total")
                         .Help(
                             "Loads on demand under --memory-budget (a "
                             "request for a registered model that was not "
                             "resident), by result.")
                         .Register(*registry_);
  cold_loads_ok_ = &cold_loads.Add({{"result", "success"}});
  cold_loads_failed_ = &cold_loads.Add({{"result", "failure"}});
  cold_load_duration_ =
      &BuildHistogram()
           .Name("flexor_model_cold_load_duration_seconds")
           .Help(
               "Time of one load on demand (read, validate, compile, "
               "warm up), in seconds.")
           .Register(*registry_)
           .Add({}, prometheus::Histogram::BucketBoundaries{
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2,
                        0.5, 1, 2, 5, 10});
  evictions_ = &BuildCounter()
                    .Name("flexor_model_evictions_total")
                    .Help(
                        "Models evicted (least recently used) to stay "
                        "within --memory-budget.")
                    .Register(*registry_)
                    .Add({});
  auto& residency = BuildCounter()
                        .Name("flexor_model_residency_requests_total")
                        .Help(
                            "Requests under --memory-budget by whether their "
                            "model was resident (hit) or had to be loaded "
                            "(miss).")
                        .Register(*registry_);
  hits_ = &residency.Add({{"result", "hit"}});
  misses_ = &residency.Add({{"result", "miss"}});
  resident_bytes_ = &BuildGauge()
                         .Name("flexor_model_resident_bytes")
                         .Help(
                             "Bytes charged to --memory-budget by resident "
                             "versions (file + fixed cost per version).")
                         .Register(*registry_)
                         .Add({});
  budget_bytes_ = &BuildGauge()
                       .Name("flexor_memory_budget_bytes")
                       .Help("--memory-budget (0: none).")
                       .Register(*registry_)
                       .Add({});
}

ServerMetrics::~ServerMetrics() = default;

absl::Status ServerMetrics::StartExposer(const std::string& host, int port) {
  try {
    // Several threads and a request timeout: one client that opens a
    // connection and never finishes its request must not blind every
    // scrape (CivetWeb serves one connection per thread).
    exposer_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", absl::StrCat(host, ":", port), "num_threads", "4",
        "request_timeout_ms", "5000"});
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", host,
                                               ":", port, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(process_collector_);
  std::vector<int> ports = exposer_->GetListeningPorts();
  exposer_port_ = ports.empty() ? port : ports.front();
  return absl::OkStatus();
}

std::shared_ptr<VersionMetrics> ServerMetrics::ForVersion(
    const std::string& model, const std::string& version,
    const ModelSizeInfo& sizes, std::optional<bool> per_model_histograms) {
  const std::string key = absl::StrCat(model, "\n", version);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto it = live_.find(key);
      if (it == live_.end()) break;
      if (std::shared_ptr<VersionMetrics> alive = it->second.lock()) {
        return alive;
      }
    }
    // The last handle is being released: its deleter holds or awaits mu_
    // and erases the entry; wait for it so the series are recreated fresh.
    std::this_thread::yield();
  }
  const bool detail = per_model_histograms.value_or(per_model_.Selects(model));
  absl::MutexLock lock(&mu_);
  auto* raw = new VersionMetrics(this, key, detail);
  raw->sizes_ = sizes;
  const prometheus::Labels l = raw->Labels();
  raw->file_bytes_ = &file_bytes_->Add(l);
  raw->file_bytes_->Set(static_cast<double>(sizes.file_bytes));
  if (detail) {
    raw->in_flight_ = &in_flight_->Add(l);
    raw->compressed_bytes_ = &compressed_bytes_->Add(l);
    raw->kernel_layout_bytes_ = &kernel_layout_bytes_->Add(l);
    raw->dense_bytes_ = &dense_bytes_->Add(l);
    raw->bits_per_weight_ = &bits_per_weight_->Add(l);
    raw->compressed_bytes_->Set(
        static_cast<double>(sizes.compressed_weight_bytes));
    raw->kernel_layout_bytes_->Set(
        static_cast<double>(sizes.kernel_layout_bytes));
    raw->dense_bytes_->Set(static_cast<double>(sizes.dense_fp32_bytes));
    raw->bits_per_weight_->Set(sizes.bits_per_weight);
  } else {
    raw->in_flight_ = server_in_flight_;
    for (int kind = 0; kind < 4; ++kind) {
      raw->histograms_[kind].store(server_histograms_[kind],
                                   std::memory_order_relaxed);
    }
    server_compressed_bytes_->Increment(
        static_cast<double>(sizes.compressed_weight_bytes));
    server_kernel_layout_bytes_->Increment(
        static_cast<double>(sizes.kernel_layout_bytes));
    server_dense_bytes_->Increment(static_cast<double>(sizes.dense_fp32_bytes));
  }
  std::shared_ptr<VersionMetrics> handle(
      raw, [this](VersionMetrics* m) { Release(m); });
  live_[key] = handle;
  return handle;
}

void ServerMetrics::Release(VersionMetrics* m) {
  absl::MutexLock lock(&mu_);
  for (auto& slot : m->requests_) {
    if (prometheus::Counter* c = slot.load()) requests_total_->Remove(c);
  }
  file_bytes_->Remove(m->file_bytes_);
  if (m->detail_) {
    for (int kind = 0; kind < 4; ++kind) {
      if (prometheus::Histogram* h = m->histograms_[kind].load()) {
        histograms_[kind]->Remove(h);
      }
    }
    in_flight_->Remove(m->in_flight_);
    compressed_bytes_->Remove(m->compressed_bytes_);
    kernel_layout_bytes_->Remove(m->kernel_layout_bytes_);
    dense_bytes_->Remove(m->dense_bytes_);
    bits_per_weight_->Remove(m->bits_per_weight_);
  } else {
    server_compressed_bytes_->Decrement(
        static_cast<double>(m->sizes_.compressed_weight_bytes));
    server_kernel_layout_bytes_->Decrement(
        static_cast<double>(m->sizes_.kernel_layout_bytes));
    server_dense_bytes_->Decrement(
        static_cast<double>(m->sizes_.dense_fp32_bytes));
  }
  live_.erase(m->key_);
  delete m;
}

void ServerMetrics::RecordUnresolvedRequest(int code) {
  requests_total_
      ->Add({{"model", ""}, {"version", ""}, {"code", CodeName(code)}})
      .Increment();
}

// Successes are counted server-wide: one series per model name ever loaded
// would grow without bound where models come and go (ModelMesh). Failures,
// rare and worth a name, keep the model label.
void ServerMetrics::RecordLoad(const std::string& model, bool success) {
  if (success) {
    loads_total_->Add({{"result", "success"}}).Increment();
  } else {
    loads_total_->Add({{"model", model}, {"result", "failure"}}).Increment();
  }
}

void ServerMetrics::RecordUnload(const std::string& model, bool success) {
  if (success) {
    unloads_total_->Add({{"result", "success"}}).Increment();
  } else {
    unloads_total_->Add({{"model", model}, {"result", "failure"}}).Increment();
  }
}

void ServerMetrics::RecordColdLoad(double seconds, bool success) {
  (success ? cold_loads_ok_ : cold_loads_failed_)->Increment();
  cold_load_duration_->Observe(seconds);
}

void ServerMetrics::SetResidency(int64_t resident_bytes, int64_t budget_bytes) {
  resident_bytes_->Set(static_cast<double>(resident_bytes));
  budget_bytes_->Set(static_cast<double>(budget_bytes));
}

void ServerMetrics::SetModelsLoaded(int models, int versions) {
  models_loaded_->Set(models);
  versions_loaded_->Set(versions);
}

}  // namespace flexor::server
