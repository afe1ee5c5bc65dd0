#include "server/grpc/infer_call.h"

#include "absl/time/clock.h"
#include "server/common/grpc_status.h"
#include "server/grpc/inference_service.h"

namespace flexor::server {

InferCall::InferCall(InferenceService* service,
                     grpc::CallbackServerContext* context,
                     const inference::ModelInferRequest* request,
                     inference::ModelInferResponse* response)
    : service_(service),
      context_(context),
      request_(request),
      response_(response),
      start_(absl::Now()) {
  deadline_ = absl::FromChrono(context->deadline());
}

void InferCall::Start() {
  absl::StatusOr<ServablePtr> servable = service_->manager_->Get(
      request_->model_name(), request_->model_version());
  if (!servable.ok()) {
    Answer(servable.status());
    return;
  }
  servable_ = *std::move(servable);
  servable_->metrics().in_flight().Increment();
  const absl::Time decode_start = absl::Now();
  absl::StatusOr<DecodedRequest> decoded = DecodeInferRequest(
      *request_, servable_->model(), servable_->config().max_batch_size);
  if (!decoded.ok()) {
    Answer(decoded.status());
    return;
  }
  decoded_ = *std::move(decoded);
  servable_->stats().compute_input.Add(absl::Now() - decode_start);
  if (absl::Status s = service_->scheduler_->Submit(servable_->queue(), this);
      !s.ok()) {
    Answer(s);
  }
}

void InferCall::Complete(const absl::Status& status, const float* output,
                         const BatchTimings& timings) {
  ServableStats& stats = servable_->stats();
  stats.queue.Add(timings.queue);
  servable_->metrics().RecordQueue(absl::ToDoubleSeconds(timings.queue));
  if (status.ok()) {
    stats.compute_infer.Add(timings.compute);
    const absl::Time encode_start = absl::Now();
    EncodeInferResponse(*request_, servable_->model(), servable_->name(),
                        servable_->version_string(), output, decoded_.batch,
                        decoded_.raw_output, response_);
    stats.compute_output.Add(absl::Now() - encode_start);
    stats.inference_count.fetch_add(static_cast<uint64_t>(decoded_.batch),
                                    std::memory_order_relaxed);
    stats.last_inference_ms.store(
        static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())),
        std::memory_order_relaxed);
  }
  // The input is no longer needed; free it before the response is sent.
  decoded_.input = std::vector<float>();
  Answer(status);
}

void InferCall::Answer(const absl::Status& status) {
  const absl::Duration elapsed = absl::Now() - start_;
  const int code = static_cast<int>(status.code());
  if (servable_ != nullptr) {
    servable_->metrics().RecordRequest(code, absl::ToDoubleSeconds(elapsed));
    (status.ok() ? servable_->stats().success : servable_->stats().fail)
        .Add(elapsed);
    servable_->metrics().in_flight().Decrement();
    // Release the version before answering: once the client has its
    // answer, a swapped-out version must not be kept alive by this call.
    servable_.reset();
  } else {
    service_->metrics_->RecordUnresolvedRequest(code);
  }
  Finish(ToGrpcStatus(status));
}

}  // namespace flexor::server
