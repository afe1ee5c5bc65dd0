#include "server/grpc/infer_call.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/grpc_status.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/model_version.h"

namespace flexor::server {

InferTask::InferTask(InferenceService* service,
                     const inference::ModelInferRequest* request,
                     inference::ModelInferResponse* response,
                     absl::Time deadline, std::string model_override)
    : service_(service),
      request_(request),
      response_(response),
      start_(absl::Now()),
      deadline_(deadline),
      model_override_(std::move(model_override)) {}

void InferTask::Start() {
  absl::StatusOr<std::optional<int64_t>> version =
      ParseModelVersion(request_->model_version());
  if (!version.ok()) {
    Answer(version.status());
    return;
  }
  service_->manager_->GetAsync(
      model_override_.empty() ? request_->model_name() : model_override_,
      *version, deadline_, [this](absl::StatusOr<ServablePtr> servable) {
        Resolved(std::move(servable));
      });
}

void InferTask::Resolved(absl::StatusOr<ServablePtr> servable) {
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
  decode_time_ = absl::Now() - decode_start;
  if (absl::Status s = service_->scheduler_->Submit(servable_->queue(), this);
      !s.ok()) {
    Answer(s);
  }
}

void InferTask::Complete(const absl::Status& status, const float* output,
                         const BatchTimings& timings) {
  servable_->metrics().RecordQueue(absl::ToDoubleSeconds(timings.queue));
  if (status.ok()) {
    const absl::Time encode_start = absl::Now();
    EncodeInferResponse(*request_, servable_->model(), servable_->name(),
                        absl::StrCat(servable_->version()), output, decoded_,
                        response_);
    const absl::Duration encode_time = absl::Now() - encode_start;
    // As in Triton, only successful requests count in the queue and
    // compute statistics.
    ServableStats& stats = servable_->stats();
    stats.queue.Add(timings.queue);
    stats.compute_input.Add(decode_time_);
    stats.compute_infer.Add(timings.compute);
    stats.compute_output.Add(encode_time);
    stats.RecordBatchIo(timings.batch_samples, decode_time_, encode_time);
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

void InferTask::Answer(const absl::Status& status) {
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
  Done(status);  // may delete this
}

void InferCall::Done(const absl::Status& status) {
  Finish(ToGrpcStatus(status));
}

// The messages of one stream request; a base of Item so that they exist
// before InferTask (constructed next) is given pointers into them.
struct StreamMessages {
  inference::ModelInferRequest request;
  inference::ModelStreamInferResponse response;
};

// One request of a stream with its response.
class StreamInferCall::Item final : public StreamMessages, public InferTask {
 public:
  Item(InferenceService* service, StreamInferCall* stream, absl::Time deadline,
       std::string model_override)
      : InferTask(service, &request, response.mutable_infer_response(),
                  deadline, std::move(model_override)),
        stream_(stream) {}

 private:
  void Done(const absl::Status& status) override {
    if (!status.ok()) {
      // Triton's stream: the error travels in the response, named by the
      // request it belongs to, and the stream goes on.
      response.set_error_message(std::string(status.message()));
      inference::ModelInferResponse* r = response.mutable_infer_response();
      r->Clear();
      r->set_model_name(request.model_name());
      r->set_model_version(request.model_version());
      r->set_id(request.id());
    }
    stream_->Answered(this);
  }

  StreamInferCall* const stream_;
};

StreamInferCall::StreamInferCall(InferenceService* service,
                                 grpc::CallbackServerContext* context)
    : service_(service),
      deadline_(absl::FromChrono(context->deadline())),
      model_override_(ModelMeshModelId(*context)) {
  reading_ = std::make_unique<Item>(service_, this, deadline_, model_override_);
  StartRead(&reading_->request);
}

StreamInferCall::~StreamInferCall() = default;

void StreamInferCall::OnDone() { delete this; }

void StreamInferCall::OnReadDone(bool ok) {
  if (!ok) {  // the client is done writing, or the stream broke
    {
      absl::MutexLock lock(&mu_);
      reads_done_ = true;
    }
    Advance();
    return;
  }
  Item* item = reading_.release();
  {
    absl::MutexLock lock(&mu_);
    running_.insert(item);
  }
  reading_ = std::make_unique<Item>(service_, this, deadline_, model_override_);
  StartRead(&reading_->request);
  item->Start();  // answers through Answered(), maybe before returning
}

void StreamInferCall::Answered(Item* item) {
  {
    absl::MutexLock lock(&mu_);
    running_.erase(item);
    answered_.emplace_back(item);
  }
  Advance();
}

void StreamInferCall::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    answered_.pop_front();
    writing_ = false;
    // The client is gone: later responses are dropped, running requests
    // still end (cancelled), then the stream finishes.
    if (!ok) write_failed_ = true;
  }
  Advance();
}

void StreamInferCall::OnCancel() {
  absl::MutexLock lock(&mu_);
  for (Item* item : running_) item->Cancel();
}

void StreamInferCall::Advance() {
  const inference::ModelStreamInferResponse* to_write = nullptr;
  bool finish = false;
  {
    absl::MutexLock lock(&mu_);
    if (write_failed_) answered_.clear();
    if (!writing_ && !answered_.empty()) {
      writing_ = true;
      to_write = &answered_.front()->response;
    } else if (!writing_ && answered_.empty() && running_.empty() &&
               reads_done_ && !finished_) {
      finished_ = true;
      finish = true;
    }
  }
  if (to_write != nullptr) StartWrite(to_write);
  if (finish) Finish(grpc::Status::OK);
}

}  // namespace flexor::server
