// ModelInfer and ModelStreamInfer calls. An InferTask is one inference
// request through the server: resolve the model version, decode, queue for
// the batcher, encode, record statistics; it answers exactly once through
// Done(). InferCall wraps one in a unary reactor; StreamInferCall runs one
// per request read from a bidirectional stream.
//
// Lifetime: a task holds the model version it runs on, so a hot swap or an
// unload cannot free the version before the request is answered. A unary
// call is deleted by gRPC's OnDone; a stream's tasks belong to the stream,
// which finishes only after every task it started has been answered.
#ifndef FLEXOR_SERVER_GRPC_INFER_CALL_H_
#define FLEXOR_SERVER_GRPC_INFER_CALL_H_

#include <atomic>
#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/grpc_service.pb.h"
#include "server/batching/batch_task.h"
#include "server/grpc/tensor_codec.h"
#include "server/modelmesh/model_id.h"
#include "server/registry/model_manager.h"

namespace flexor::server {

class InferenceService;

class InferTask : public BatchTask {
 public:
  // `request` and `response` must stay valid until Done().
  // `model_override`: the model to run instead of request->model_name()
  // (ModelMesh's mm-model-id header); "" for none.
  InferTask(InferenceService* service,
            const inference::ModelInferRequest* request,
            inference::ModelInferResponse* response, absl::Time deadline,
            std::string model_override = "");

  // Validates and queues the request, or answers it at once.
  void Start();
  void Cancel() { cancelled_.store(true); }

  // BatchTask
  int64_t num_samples() const override { return decoded_.batch; }
  const float* input() const override { return decoded_.input.data(); }
  bool IsCancelled() const override { return cancelled_.load(); }
  absl::Time deadline() const override { return deadline_; }
  void Complete(const absl::Status& status, const float* output,
                const BatchTimings& timings) override;

 protected:
  // Called exactly once, with the response filled when `status` is OK. May
  // delete the task.
  virtual void Done(const absl::Status& status) = 0;

 private:
  void Answer(const absl::Status& status);
  // Start, once the version is resolved (at once, or after a load on
  // demand under the memory budget).
  void Resolved(absl::StatusOr<ServablePtr> servable);

  InferenceService* const service_;
  const inference::ModelInferRequest* const request_;
  inference::ModelInferResponse* const response_;
  const absl::Time start_;
  const absl::Time deadline_;
  const std::string model_override_;
  std::atomic<bool> cancelled_{false};
  ServablePtr servable_;
  DecodedRequest decoded_;
  absl::Duration decode_time_;
};

class InferCall final : public grpc::ServerUnaryReactor, public InferTask {
 public:
  InferCall(InferenceService* service, grpc::CallbackServerContext* context,
            const inference::ModelInferRequest* request,
            inference::ModelInferResponse* response)
      : InferTask(service, request, response,
                  absl::FromChrono(context->deadline()),
                  ModelMeshModelId(*context)) {}

  // grpc::ServerUnaryReactor
  void OnCancel() override { Cancel(); }
  void OnDone() override { delete this; }

 private:
  void Done(const absl::Status& status) override;
};

// Reads requests while earlier ones run; each gets one response, written in
// completion order (requests carry their `id` for matching, as in Triton).
// A failed request is answered with error_message set and the stream goes
// on; the stream itself ends OK once the client is done writing and every
// request has been answered.
class StreamInferCall final
    : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                     inference::ModelStreamInferResponse> {
 public:
  StreamInferCall(InferenceService* service,
                  grpc::CallbackServerContext* context);
  ~StreamInferCall() override;

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  class Item;
  void Answered(Item* item);
  // Starts the next write or finishes the stream if nothing is left; call
  // without mu_ held (gRPC may run reactions inline).
  void Advance();

  InferenceService* const service_;
  const absl::Time deadline_;
  // ModelMesh's mm-model-id header, for every request of the stream.
  const std::string model_override_;
  std::unique_ptr<Item> reading_;  // only touched by gRPC's read reactions
  absl::Mutex mu_;
  absl::flat_hash_set<Item*> running_ ABSL_GUARDED_BY(mu_);
  std::deque<std::unique_ptr<Item>> answered_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_GRPC_INFER_CALL_H_
