// inference.GRPCInferenceService on gRPC's callback API. ModelInfer is
// asynchronous end to end: the handler validates and queues the request and
// returns; a compute thread answers it. Repository operations run on a
// dedicated admin thread, so loading a model never blocks gRPC's threads.
#ifndef FLEXOR_SERVER_GRPC_INFERENCE_SERVICE_H_
#define FLEXOR_SERVER_GRPC_INFERENCE_SERVICE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proto/grpc_service.grpc.pb.h"
#include "server/auth/authorizer.h"
#include "server/batching/batch_scheduler.h"
#include "server/metrics/server_metrics.h"
#include "server/registry/model_manager.h"

namespace flexor::server {

enum class ModelControlMode { kNone, kPoll, kExplicit };

// Bounds on admin RPCs: a queue of loads is memory (each upload holds its
// bytes until it runs) and time (one load at a time), so both are capped.
struct AdminLimits {
  int max_pending = 8;                           // admin RPCs queued or running
  int64_t max_upload_bytes = int64_t{64} << 20;  // per request
  int64_t max_inflight_upload_bytes = int64_t{256} << 20;  // all queued
};

// Runs closures one at a time on its own thread (model loads and unloads).
class AdminExecutor {
 public:
  explicit AdminExecutor(AdminLimits limits = {});
  ~AdminExecutor();  // Runs what is queued, then joins.
  // Queues `work`, which holds `upload_bytes` until it returns; then the
  // bytes and the queue slot are released and `reactor` is finished with
  // work's status (in that order, so a client that has its answer can
  // queue the next call at once). Refuses with RESOURCE_EXHAUSTED (nothing
  // queued) when max_pending admin RPCs are already queued or running, or
  // when the bytes would take the in-flight upload total over its limit.
  absl::Status Schedule(std::function<absl::Status()> work,
                        grpc::ServerUnaryReactor* reactor,
                        int64_t upload_bytes = 0);
  const AdminLimits& limits() const { return limits_; }

 private:
  struct Task {
    std::function<absl::Status()> work;
    grpc::ServerUnaryReactor* reactor = nullptr;
    int64_t bytes = 0;
  };
  const AdminLimits limits_;
  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t inflight_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

class InferenceService final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  InferenceService(ModelManager* manager, BatchScheduler* scheduler,
                   ServerMetrics* metrics, ModelControlMode mode,
                   AdminExecutor* admin);

  // Readiness as reported by ServerReady (false once shutdown starts).
  void SetReady(bool ready) { ready_.store(ready); }
  // Checks every RPC against `auth` (null: everything open). Set before the
  // service is registered; not owned.
  void SetAuthorizer(const Authorizer* auth) { auth_ = auth; }

  grpc::ServerUnaryReactor* ServerLive(
      grpc::CallbackServerContext* context,
      const inference::ServerLiveRequest* request,
      inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(
      grpc::CallbackServerContext* context,
      const inference::ServerReadyRequest* request,
      inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(
      grpc::CallbackServerContext* context,
      const inference::ModelReadyRequest* request,
      inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(
      grpc::CallbackServerContext* context,
      const inference::ServerMetadataRequest* request,
      inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* context,
      const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(
      grpc::CallbackServerContext* context,
      const inference::ModelInferRequest* request,
      inference::ModelInferResponse* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest,
                          inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ModelConfig(
      grpc::CallbackServerContext* context,
      const inference::ModelConfigRequest* request,
      inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(
      grpc::CallbackServerContext* context,
      const inference::ModelStatisticsRequest* request,
      inference::ModelStatisticsResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(
      grpc::CallbackServerContext* context,
      const inference::RepositoryIndexRequest* request,
      inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context,
      const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context,
      const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;

  grpc::ServerUnaryReactor* LogSettings(
      grpc::CallbackServerContext* context,
      const inference::LogSettingsRequest* request,
      inference::LogSettingsResponse* response) override;
  // Not implemented: each answers UNIMPLEMENTED naming itself.
  grpc::ServerUnaryReactor* SystemSharedMemoryStatus(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryStatusRequest* request,
      inference::SystemSharedMemoryStatusResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryRegister(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryRegisterRequest* request,
      inference::SystemSharedMemoryRegisterResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryUnregister(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryUnregisterRequest* request,
      inference::SystemSharedMemoryUnregisterResponse* response) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryStatus(
      grpc::CallbackServerContext* context,
      const inference::CudaSharedMemoryStatusRequest* request,
      inference::CudaSharedMemoryStatusResponse* response) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryRegister(
      grpc::CallbackServerContext* context,
      const inference::CudaSharedMemoryRegisterRequest* request,
      inference::CudaSharedMemoryRegisterResponse* response) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryUnregister(
      grpc::CallbackServerContext* context,
      const inference::CudaSharedMemoryUnregisterRequest* request,
      inference::CudaSharedMemoryUnregisterResponse* response) override;
  grpc::ServerUnaryReactor* TraceSetting(
      grpc::CallbackServerContext* context,
      const inference::TraceSettingRequest* request,
      inference::TraceSettingResponse* response) override;

 private:
  friend class InferTask;
  absl::Status CheckRepositoryControl(const std::string& op) const;
  // A finished reactor (UNAUTHENTICATED / PERMISSION_DENIED) when the
  // caller may not make this call; null when it may. Every implemented
  // handler starts with it (ModelStreamInfer with its own reactor), so a
  // new RPC must say whether it is inference or admin.
  grpc::ServerUnaryReactor* Deny(grpc::CallbackServerContext* context,
                                 Access access, const char* method) const;

  ModelManager* manager_;
  BatchScheduler* scheduler_;
  ServerMetrics* metrics_;
  const ModelControlMode mode_;
  AdminExecutor* admin_;
  std::atomic<bool> ready_{false};
  const Authorizer* auth_ = nullptr;
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_GRPC_INFERENCE_SERVICE_H_
