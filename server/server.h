// The whole server: repository, manager, batcher, metrics exposer and the
// gRPC endpoint, started and stopped in the right order.
#ifndef FLEXOR_SERVER_SERVER_H_
#define FLEXOR_SERVER_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/auth/authorizer.h"
#include "server/auth/tls.h"
#include "server/batching/batch_scheduler.h"
#include "server/config/model_config.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/reflection_v1.h"
#include "server/metrics/server_metrics.h"
#include "server/modelmesh/model_runtime_service.h"
#include "server/registry/loader.h"
#include "server/registry/model_manager.h"
#include "server/registry/repository.h"

namespace flexor::server {

struct ServerOptions {
  std::string model_repository;
  ModelControlMode control_mode = ModelControlMode::kNone;
  absl::Duration poll_interval = absl::Seconds(15);
  // Explicit mode: models to load at startup ("*": all).
  std::vector<std::string> startup_models;
  std::string address = "0.0.0.0";
  int grpc_port = 8001;     // 0: pick a free port
  int metrics_port = 8002;  // 0: pick a free port; -1: no metrics endpoint
  std::string metrics_address = "127.0.0.1";
  int threads = 0;                 // 0: hardware concurrency
  int max_concurrent_batches = 0;  // 0: threads
  // See BatchScheduler: no batching delay while nothing is running.
  bool dispatch_when_idle = true;
  int max_message_bytes = 64 << 20;
  // Per-request activation budget (ModelLoader).
  int64_t max_activation_bytes = ModelLoader::kDefaultMaxActivationBytes;
  // How unsigned repository files are opened (--model-file-access): read
  // into private memory (kCopy) or mapped read-only (kMap). ModelLoader.
  ModelFileAccess model_file_access = ModelFileAccess::kCopy;
  // Fraction of executions profiled for the decryption-time metric.
  double decrypt_sample_rate = 0.01;
  ModelConfigDefaults model_defaults;
  // Transport security of the gRPC port (plaintext when no cert file).
  ServerTlsOptions tls;
  // Who may call admin and inference RPCs (docs/security.md).
  AuthOptions auth;
  // Signed models: trusted Ed25519 public keys (PEM files). With keys, a
  // version with a signature must verify; with require_signed_models, one
  // without is refused too.
  std::vector<std::string> trusted_key_files;
  // Admin RPC bounds (uploads, queue).
  AdminLimits admin_limits;
  // Memory gRPC itself may use (buffers of requests being received), as a
  // grpc::ResourceQuota; 0: gRPC's default (unbounded). flexor_server's
  // flag defaults to 4 x max_message_bytes.
  int64_t grpc_memory_quota_bytes = 0;
  bool require_signed_models = false;
  // Which models get per-model histograms (--per-model-histograms).
  PerModelHistograms per_model_histograms;
  // KServe ModelMesh's model-runtime SPI (--modelmesh...).
  ModelMeshOptions modelmesh;
  // Memory budget for resident model versions (0: none). See ModelManager.
  int64_t memory_budget_bytes = 0;
};

class Server {
 public:
  // Opens the endpoints and starts loading the startup models in the
  // background (in parallel); fails if an endpoint cannot be bound. From
  // the start ServerLive and grpc.health (service "") answer; ServerReady
  // and the health of "inference.GRPCInferenceService" turn true once the
  // startup loads have finished (Triton), each model's ModelReady and
  // health as it becomes ready. Models that fail to load are reported and
  // skipped.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);
  // Waits until the startup loads have finished (true) or `timeout` passed.
  bool WaitUntilReady(absl::Duration timeout) {
    return ready_.WaitForNotificationWithTimeout(timeout);
  }
  ~Server();  // Shutdown(zero grace) if not done

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_ ? metrics_->exposer_port() : -1; }

  // Graceful shutdown: not ready, stop accepting RPCs, finish in-flight ones
  // (cancelling what is left after `grace`), drain the batcher, unload.
  void Shutdown(absl::Duration grace);

 private:
  explicit Server(ServerOptions options);
  absl::Status Init();
  void PollLoop();
  // The startup loads, then ready, then polling (poll mode).
  void StartupLoads(std::vector<std::string> names);
  void LogSecurity() const;

  const ServerOptions options_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<BatchScheduler> scheduler_;
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<ModelLoader> loader_;
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<AdminExecutor> admin_;
  std::unique_ptr<Authorizer> authorizer_;
  std::unique_ptr<InferenceService> service_;
  std::unique_ptr<ReflectionV1Service> reflection_v1_;
  std::unique_ptr<ModelRuntimeService> model_runtime_;  // --modelmesh
  std::unique_ptr<grpc::Server> grpc_server_;
  int grpc_port_ = 0;
  absl::Notification stop_polling_;
  std::thread poll_thread_;
  std::atomic<bool> cancel_startup_{false};
  std::thread startup_thread_;
  absl::Notification ready_;
  bool shut_down_ = false;
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_SERVER_H_
