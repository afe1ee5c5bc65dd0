// Closed-loop asynchronous load generator: `concurrency` requests are kept
// in flight on gRPC's callback API; each answer immediately sends the next,
// until the duration or the request count is reached.
#ifndef FLEXOR_TOOLS_FLEXORCTL_BENCH_H_
#define FLEXOR_TOOLS_FLEXORCTL_BENCH_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "proto/grpc_service.grpc.pb.h"

namespace flexor::tools {

struct BenchOptions {
  // ModelInfer, ServerLive (the empty-RPC baseline) or RepositoryIndex (its
  // cost grows with the number of models).
  enum class Rpc { kInfer, kLive, kIndex };
  Rpc rpc = Rpc::kInfer;
  int concurrency = 1;
  absl::Duration duration = absl::Seconds(10);
  int64_t max_requests = 0;  // 0: no count limit (the duration bounds it)
  absl::Duration warmup = absl::Seconds(1);
  absl::Duration timeout = absl::Seconds(10);  // per request
  // kInfer: when not empty, each request goes to one of these models (the
  // request's model_name is replaced): in turn (round robin) when zipf_s is
  // 0, else models[k] drawn with probability ~ 1/(k+1)^zipf_s (Zipf).
  std::vector<std::string> models;
  double zipf_s = 0;
};

struct BenchResult {
  int concurrency = 0;
  int64_t ok = 0;
  std::map<std::string, int64_t> errors;  // by status code name
  double seconds = 0;
  double throughput_rps = 0;  // successful requests per second
  double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0;
  double mean_us = 0, max_us = 0;

  std::string ToText() const;
  std::string ToJson() const;
};

// `request` is sent as-is for kInfer.
BenchResult RunBench(inference::GRPCInferenceService::Stub* stub,
                     const inference::ModelInferRequest& request,
                     const BenchOptions& options);

}  // namespace flexor::tools

#endif  // FLEXOR_TOOLS_FLEXORCTL_BENCH_H_
