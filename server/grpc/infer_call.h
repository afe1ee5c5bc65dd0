// One ModelInfer call: the gRPC reactor and the batcher's task in one object.
// Lifetime: created by the handler, answered exactly once (Finish) either at
// once (bad request, queue full) or by the compute thread that ran its
// batch, deleted by gRPC's OnDone. It holds the model version it runs on, so
// a hot swap or unload cannot free the version before it is answered.
#ifndef FLEXOR_SERVER_GRPC_INFER_CALL_H_
#define FLEXOR_SERVER_GRPC_INFER_CALL_H_

#include <atomic>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/grpc_service.pb.h"
#include "server/batching/batch_task.h"
#include "server/grpc/tensor_codec.h"
#include "server/registry/model_manager.h"

namespace flexor::server {

class InferenceService;

class InferCall final : public grpc::ServerUnaryReactor, public BatchTask {
 public:
  InferCall(InferenceService* service, grpc::CallbackServerContext* context,
            const inference::ModelInferRequest* request,
            inference::ModelInferResponse* response);

  // Validates and queues the request, or answers it at once.
  void Start();

  // BatchTask
  int64_t num_samples() const override { return decoded_.batch; }
  const float* input() const override { return decoded_.input.data(); }
  bool IsCancelled() const override { return cancelled_.load(); }
  absl::Time deadline() const override { return deadline_; }
  void Complete(const absl::Status& status, const float* output,
                const BatchTimings& timings) override;

  // grpc::ServerUnaryReactor
  void OnCancel() override { cancelled_.store(true); }
  void OnDone() override { delete this; }

 private:
  void Answer(const absl::Status& status);

  InferenceService* const service_;
  grpc::CallbackServerContext* const context_;
  const inference::ModelInferRequest* const request_;
  inference::ModelInferResponse* const response_;
  const absl::Time start_;
  absl::Time deadline_;
  std::atomic<bool> cancelled_{false};
  ServablePtr servable_;
  DecodedRequest decoded_;
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_GRPC_INFER_CALL_H_
