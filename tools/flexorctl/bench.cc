#include "tools/flexorctl/bench.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"

namespace flexor::tools {
namespace {

constexpr int64_t kMaxRecorded = 20'000'000;  // bounds memory (160 MB)

// gRPC's canonical code names, as the server's metrics spell them.
std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

struct Shared {
  absl::Time start;  // measurement start (after warm-up)
  absl::Time end;    // stop sending at
  std::atomic<int64_t> issued{0};
  std::atomic<uint64_t> next_model{0};  // round robin over options.models
  int64_t max_requests = 0;
  absl::Mutex mu;
  int running = 0;  // slots with a request in flight
  // Zipf: cumulative weights of BenchOptions::models (empty: one model).
  std::vector<double> cdf;
};

// One closed-loop client: always exactly one request in flight.
class Slot {
 public:
  Slot(inference::GRPCInferenceService::Stub* stub,
       const inference::ModelInferRequest* request, const BenchOptions* options,
       Shared* shared)
      : stub_(stub), request_(request), options_(options), shared_(shared) {
    if (!options->models.empty()) {
      own_request_ = *request;
      rng_.seed(reinterpret_cast<uintptr_t>(this));
    }
  }
  void Send();
  std::vector<int64_t> latencies_ns;
  std::map<std::string, int64_t> errors;

 private:
  void OnDone(const grpc::Status& status);
  inference::GRPCInferenceService::Stub* stub_;
  const inference::ModelInferRequest* request_;
  const BenchOptions* options_;
  Shared* shared_;
  std::unique_ptr<grpc::ClientContext> context_;
  inference::ModelInferResponse infer_response_;
  inference::ServerLiveRequest live_request_;
  inference::ServerLiveResponse live_response_;
  inference::RepositoryIndexRequest index_request_;
  inference::RepositoryIndexResponse index_response_;
  absl::Time sent_;
  // Spread or Zipf: this slot's copy of the request, its model name chosen
  // per send.
  inference::ModelInferRequest own_request_;
  std::mt19937_64 rng_;
};

void Slot::Send() {
  const absl::Time now = absl::Now();
  if (now >= shared_->end ||
      (shared_->max_requests > 0 &&
       shared_->issued.fetch_add(1) >= shared_->max_requests)) {
    absl::MutexLock lock(&shared_->mu);
    --shared_->running;
    return;
  }
  context_ = std::make_unique<grpc::ClientContext>();
  context_->set_deadline(absl::ToChronoTime(now + options_->timeout));
  sent_ = absl::Now();
  auto done = [this](grpc::Status status) { OnDone(status); };
  if (options_->rpc == BenchOptions::Rpc::kLive) {
    stub_->async()->ServerLive(context_.get(), &live_request_, &live_response_,
                               done);
  } else if (options_->rpc == BenchOptions::Rpc::kIndex) {
    index_response_.Clear();
    stub_->async()->RepositoryIndex(context_.get(), &index_request_,
                                    &index_response_, done);
  } else if (!shared_->cdf.empty()) {
    const double u =
        std::uniform_real_distribution<double>(0, shared_->cdf.back())(rng_);
    const size_t k = std::min<size_t>(
        shared_->cdf.size() - 1,
        std::upper_bound(shared_->cdf.begin(), shared_->cdf.end(), u) -
            shared_->cdf.begin());
    own_request_.set_model_name(options_->models[k]);
    infer_response_.Clear();
    stub_->async()->ModelInfer(context_.get(), &own_request_, &infer_response_,
                               done);
  } else {
    infer_response_.Clear();
    const inference::ModelInferRequest* request = request_;
    if (!options_->models.empty()) {
      const uint64_t i = shared_->next_model.fetch_add(1);
      own_request_.set_model_name(
          options_->models[i % options_->models.size()]);
      request = &own_request_;
    }
    stub_->async()->ModelInfer(context_.get(), request, &infer_response_, done);
  }
}

void Slot::OnDone(const grpc::Status& status) {
  const absl::Time now = absl::Now();
  if (sent_ >= shared_->start) {  // not warm-up
    if (status.ok()) {
      if (static_cast<int64_t>(latencies_ns.size()) < kMaxRecorded) {
        latencies_ns.push_back(absl::ToInt64Nanoseconds(now - sent_));
      }
    } else {
      ++errors[CodeName(status.error_code())];
    }
  }
  Send();
}

double Percentile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t index =
      std::min(sorted.size() - 1,
               static_cast<size_t>(q * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[index]) / 1000.0;
}

}  // namespace

BenchResult RunBench(inference::GRPCInferenceService::Stub* stub,
                     const inference::ModelInferRequest& request,
                     const BenchOptions& options) {
  Shared shared;
  const absl::Time begin = absl::Now();
  shared.start = begin + options.warmup;
  shared.end = shared.start + options.duration;
  shared.max_requests = options.max_requests;
  double total = 0;
  for (size_t k = 0; options.zipf_s > 0 && k < options.models.size(); ++k) {
    total += 1.0 / std::pow(static_cast<double>(k + 1), options.zipf_s);
    shared.cdf.push_back(total);
  }
  std::vector<std::unique_ptr<Slot>> slots;
  for (int i = 0; i < options.concurrency; ++i) {
    slots.push_back(std::make_unique<Slot>(stub, &request, &options, &shared));
  }
  shared.running = options.concurrency;
  for (auto& slot : slots) slot->Send();
  {
    absl::MutexLock lock(&shared.mu);
    shared.mu.Await(absl::Condition(
        +[](int* running) { return *running == 0; }, &shared.running));
  }
  const absl::Time finish = absl::Now();

  BenchResult result;
  result.concurrency = options.concurrency;
  std::vector<int64_t> all;
  for (auto& slot : slots) {
    all.insert(all.end(), slot->latencies_ns.begin(), slot->latencies_ns.end());
    for (const auto& [code, n] : slot->errors) result.errors[code] += n;
  }
  std::sort(all.begin(), all.end());
  result.ok = static_cast<int64_t>(all.size());
  result.seconds =
      absl::ToDoubleSeconds(finish - std::max(begin, shared.start));
  if (finish < shared.start)
    result.seconds = absl::ToDoubleSeconds(finish - begin);
  result.throughput_rps =
      result.seconds > 0 ? static_cast<double>(result.ok) / result.seconds : 0;
  result.p50_us = Percentile(all, 0.50);
  result.p90_us = Percentile(all, 0.90);
  result.p99_us = Percentile(all, 0.99);
  result.p999_us = Percentile(all, 0.999);
  double sum = 0;
  for (int64_t v : all) sum += static_cast<double>(v);
  result.mean_us =
      all.empty() ? 0 : sum / static_cast<double>(all.size()) / 1000.0;
  result.max_us = all.empty() ? 0 : static_cast<double>(all.back()) / 1000.0;
  return result;
}

std::string BenchResult::ToText() const {
  std::string errs;
  for (const auto& [code, n] : errors)
    absl::StrAppend(&errs, " ", code, "=", n);
  return absl::StrFormat(
      "concurrency %d: %d ok in %.2f s = %.1f req/s; latency us p50 %.0f "
      "p90 %.0f p99 %.0f p99.9 %.0f (mean %.0f, max %.0f); errors:%s",
      concurrency, ok, seconds, throughput_rps, p50_us, p90_us, p99_us, p999_us,
      mean_us, max_us, errs.empty() ? " none" : errs);
}

std::string BenchResult::ToJson() const {
  std::vector<std::string> errs;
  for (const auto& [code, n] : errors) {
    errs.push_back(absl::StrCat("\"", code, "\": ", n));
  }
  return absl::StrFormat(
      "{\"concurrency\": %d, \"ok\": %d, \"seconds\": %.3f, "
      "\"throughput_rps\": %.1f, \"latency_us\": {\"p50\": %.1f, \"p90\": "
      "%.1f, \"p99\": %.1f, \"p99.9\": %.1f, \"mean\": %.1f, \"max\": %.1f}, "
      "\"errors\": {%s}}",
      concurrency, ok, seconds, throughput_rps, p50_us, p90_us, p99_us, p999_us,
      mean_us, max_us, absl::StrJoin(errs, ", "));
}

}  // namespace flexor::tools
