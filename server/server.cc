#include "server/server.h"

#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "proto/health.grpc.pb.h"
#include "server/common/log.h"
#include "server/common/mapped_file_fault.h"

namespace flexor::server {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  std::unique_ptr<Server> server(new Server(std::move(options)));
  if (absl::Status s = server->Init(); !s.ok()) {
    server->Shutdown(absl::ZeroDuration());
    return s;
  }
  return server;
}

Server::Server(ServerOptions options) : options_(std::move(options)) {}

Server::~Server() { Shutdown(absl::ZeroDuration()); }

absl::Status Server::Init() {
  const int threads =
      options_.threads > 0
          ? options_.threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int batches = options_.max_concurrent_batches > 0
                          ? options_.max_concurrent_batches
                          : threads;
  metrics_ = std::make_unique<ServerMetrics>(options_.per_model_histograms);
  if (options_.metrics_port >= 0) {
    if (absl::Status s = metrics_->StartExposer(options_.metrics_address,
                                                options_.metrics_port);
        !s.ok()) {
      return s;
    }
  }
  scheduler_ = std::make_unique<BatchScheduler>(threads, batches,
                                                options_.dispatch_when_idle);
  repository_ = std::make_unique<ModelRepository>(options_.model_repository);
  const int64_t decrypt_period =
      options_.decrypt_sample_rate <= 0
          ? 0
          : std::max<int64_t>(1,
                              std::llround(1.0 / options_.decrypt_sample_rate));
  // Verified files are always read into memory (the bytes verified are the
  // bytes compiled), so --model-file-access=map applies only without keys.
  const ModelFileAccess file_access = options_.trusted_key_files.empty()
                                          ? options_.model_file_access
                                          : ModelFileAccess::kCopy;
  loader_ = std::make_unique<ModelLoader>(scheduler_.get(), metrics_.get(),
                                          options_.max_activation_bytes,
                                          decrypt_period, file_access);
  if (options_.require_signed_models && options_.trusted_key_files.empty()) {
    return absl::InvalidArgumentError(
        "--require-signed-models needs --model-trusted-keys");
  }
  if (!options_.trusted_key_files.empty()) {
    absl::StatusOr<ModelVerifier> verifier =
        ModelVerifier::FromPublicKeyFiles(options_.trusted_key_files);
    if (!verifier.ok()) {
      return absl::Status(
          verifier.status().code(),
          absl::StrCat("--model-trusted-keys: ", verifier.status().message()));
    }
    FLEXOR_LOG(INFO) << "model signatures: trusted key(s) "
                     << absl::StrJoin(verifier->key_ids(), ", ") << "; "
                     << (options_.require_signed_models
                             ? "unsigned models are REFUSED"
                             : "unsigned models are accepted, signed ones "
                               "must verify");
    loader_->SetSignaturePolicy(
        std::make_shared<const ModelVerifier>(*std::move(verifier)),
        options_.require_signed_models);
  } else {
    FLEXOR_LOG(INFO) << "model signatures: not checked (no "
                        "--model-trusted-keys)";
  }
  if (file_access == ModelFileAccess::kMap) {
    FLEXOR_LOG(INFO) << "model files: mapped read-only "
                        "(--model-file-access=map); replace served files by "
                        "rename or a new version directory, never in place";
    InstallMappedFileFaultReport();
  } else if (options_.model_file_access == ModelFileAccess::kMap) {
    FLEXOR_LOG(INFO) << "model files: read into memory: --model-file-access="
                        "map does not apply with --model-trusted-keys "
                        "(verified bytes are the bytes compiled)";
  } else {
    FLEXOR_LOG(INFO) << "model files: read into memory "
                        "(--model-file-access=copy)";
  }
  manager_ = std::make_unique<ModelManager>(
      repository_.get(), loader_.get(), metrics_.get(), options_.model_defaults,
      options_.memory_budget_bytes, &scheduler_->arena());
  admin_ = std::make_unique<AdminExecutor>(options_.admin_limits);
  service_ = std::make_unique<InferenceService>(
      manager_.get(), scheduler_.get(), metrics_.get(), options_.control_mode,
      admin_.get());
  // Credentials are checked before any model is loaded: a mistake in them
  // fails the start at once.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options_.tls);
  if (!credentials.ok()) return credentials.status();
  AuthOptions auth = options_.auth;
  auth.client_certificates = !options_.tls.client_ca_file.empty();
  absl::StatusOr<std::unique_ptr<Authorizer>> authorizer =
      Authorizer::Create(std::move(auth));
  if (!authorizer.ok()) return authorizer.status();
  authorizer_ = *std::move(authorizer);
  service_->SetAuthorizer(authorizer_.get());
  if (options_.modelmesh.enabled) {
    model_runtime_ = std::make_unique<ModelRuntimeService>(
        manager_.get(), admin_.get(), authorizer_.get(), options_.modelmesh,
        options_.model_repository);
    FLEXOR_LOG(INFO) << "ModelMesh model-runtime SPI (mmesh.ModelRuntime) on "
                        "the gRPC port; model paths under "
                     << options_.modelmesh.model_root;
  }
  LogSecurity();
  FLEXOR_LOG(INFO) << "compute: oneTBB arena of " << threads
                   << " threads, up to " << batches << " concurrent batches";

  // Startup models: listed now (a missing repository fails the start),
  // loaded after the endpoints are up.
  std::vector<std::string> startup;
  const bool all =
      options_.control_mode != ModelControlMode::kExplicit ||
      std::find(options_.startup_models.begin(), options_.startup_models.end(),
                "*") != options_.startup_models.end();
  if (all) {
    absl::StatusOr<std::vector<std::string>> names = repository_->ListModels();
    if (!names.ok()) return names.status();
    startup = *std::move(names);
  } else {
    startup = options_.startup_models;
  }
  if (options_.memory_budget_bytes > 0) {
    FLEXOR_LOG(INFO) << "memory budget: " << options_.memory_budget_bytes
                     << " bytes for resident versions; models that are not "
                        "pinned load on first request and are evicted "
                        "least-recently-used";
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // gRPC's health service has no protobuf descriptors; referencing ours
  // links them in, so that reflection can describe grpc.health.v1.Health.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  std::vector<std::string> services = {
      inference::GRPCInferenceService::service_full_name(),
      grpc::health::v1::Health::service_full_name(),
      "grpc.reflection.v1alpha.ServerReflection",
      grpc::reflection::v1::ServerReflection::service_full_name()};
  if (model_runtime_ != nullptr) {
    services.push_back(mmesh::ModelRuntime::service_full_name());
  }
  reflection_v1_ = std::make_unique<ReflectionV1Service>(std::move(services));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(
      absl::StrCat(options_.address, ":", options_.grpc_port), *credentials,
      &grpc_port_);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  if (options_.grpc_memory_quota_bytes > 0) {
    grpc::ResourceQuota quota("flexor_grpc");
    quota.Resize(static_cast<size_t>(options_.grpc_memory_quota_bytes));
    builder.SetResourceQuota(quota);
  }
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  builder.RegisterService(service_.get());
  builder.RegisterService(reflection_v1_.get());
  if (model_runtime_ != nullptr) builder.RegisterService(model_runtime_.get());
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on ", options_.address, ":",
                     options_.grpc_port, " (port in use?)"));
  }
  // Live from here (health service "" is SERVING); ready once the startup
  // loads are done.
  grpc::HealthCheckServiceInterface* health =
      grpc_server_->GetHealthCheckService();
  health->SetServingStatus("inference.GRPCInferenceService", false);
  manager_->SetReadinessListener(
      [health](const std::string& model, bool ready) {
        health->SetServingStatus(model, ready);
      });
  FLEXOR_LOG(INFO) << "listening on " << options_.address << ":" << grpc_port_
                   << "; loading " << startup.size() << " startup model(s)";
  startup_thread_ = std::thread([this, names = std::move(startup)]() mutable {
    StartupLoads(std::move(names));
  });
  return absl::OkStatus();
}

void Server::StartupLoads(std::vector<std::string> names) {
  // After the port opened: this visits every model and version directory
  // (seconds with 10,000s of models).
  if (const int stale = repository_->RemoveStaleTemporaries(absl::Minutes(10));
      stale > 0) {
    FLEXOR_LOG(INFO) << "removed " << stale
                     << " stale temporary file(s) of interrupted writes from "
                     << options_.model_repository;
  }
  const absl::Time start = absl::Now();
  const int servable =
      manager_->LoadInitial(names, scheduler_->arena(), &cancel_startup_);
  if (cancel_startup_.load()) return;
  FLEXOR_LOG(INFO) << (options_.memory_budget_bytes > 0 ? "registered "
                                                        : "loaded ")
                   << servable << " of " << names.size()
                   << " startup models from " << options_.model_repository
                   << " in " << absl::FormatDuration(absl::Now() - start);
  // The loads' temporaries (file reads, parse and compile scratch) leave
  // free holes between the versions' long-lived allocations: give those
  // pages back (measured with 1,000 LeNet-size models: see
  // docs/operations.md, "Sizing memory").
  malloc_trim(0);
  grpc_server_->GetHealthCheckService()->SetServingStatus(
      "inference.GRPCInferenceService", true);
  service_->SetReady(true);
  ready_.Notify();
  if (options_.control_mode == ModelControlMode::kPoll) {
    poll_thread_ = std::thread([this] { PollLoop(); });
  }
}

void Server::LogSecurity() const {
  const ServerTlsOptions& tls = options_.tls;
  if (!TlsEnabled(tls)) {
    FLEXOR_LOG(INFO) << "transport: PLAINTEXT gRPC (no --tls-cert-file)";
  } else {
    FLEXOR_LOG(INFO) << "transport: TLS (" << tls.cert_file << ", re-read "
                     << "every " << tls.reload_secs << " s)"
                     << (tls.client_ca_file.empty()
                             ? std::string()
                             : absl::StrCat(
                                   "; client certificates verified against ",
                                   tls.client_ca_file,
                                   tls.require_client_cert
                                       ? " and required"
                                       : " when presented"));
  }
  FLEXOR_LOG(INFO) << "authorisation: " << authorizer_->Describe();
  const bool loopback =
      options_.address == "127.0.0.1" || options_.address == "localhost" ||
      options_.address == "::1" || options_.address == "[::1]";
  const bool admin_rpcs = options_.control_mode == ModelControlMode::kExplicit;
  if (admin_rpcs && !authorizer_->admin_protected() && !loopback) {
    FLEXOR_LOG(WARNING)
        << "admin RPCs (RepositoryModelLoad/Unload, uploads) are OPEN to "
           "anyone who reaches "
        << options_.address
        << ": set --auth-token-file and/or --auth-admin-identities, or "
           "--address=127.0.0.1 (docs/security.md)";
  }
  if (!TlsEnabled(tls) && authorizer_->admin_protected() && !loopback) {
    FLEXOR_LOG(WARNING) << "bearer tokens travel in PLAINTEXT on "
                        << options_.address
                        << ": anyone on the path can read and replay them; "
                           "set --tls-cert-file/--tls-key-file";
  }
}

void Server::PollLoop() {
  while (
      !stop_polling_.WaitForNotificationWithTimeout(options_.poll_interval)) {
    manager_->Poll();
  }
}

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (service_) service_->SetReady(false);
  cancel_startup_.store(true);
  if (startup_thread_.joinable()) startup_thread_.join();
  if (poll_thread_.joinable()) {
    stop_polling_.Notify();
    poll_thread_.join();
  }
  if (grpc_server_) {
    FLEXOR_LOG(INFO) << "shutting down: no new RPCs; waiting up to "
                     << absl::FormatDuration(grace)
                     << " for in-flight requests";
    grpc_server_->GetHealthCheckService()->Shutdown();
    if (scheduler_) scheduler_->Flush();  // queued requests run now
    // Stops accepting, waits for in-flight calls (they are answered by the
    // batcher, still running), cancels what is left at the deadline.
    grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  }
  admin_.reset();  // Finishes a running load/unload.
  if (scheduler_) scheduler_->Stop();
  if (grpc_server_) grpc_server_->Wait();
  if (manager_) manager_->UnloadAll();
  FLEXOR_LOG(INFO) << "shutdown complete";
}

}  // namespace flexor::server
