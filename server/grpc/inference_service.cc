#include "server/grpc/inference_service.h"

#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/grpc_status.h"
#include "engine/format/model_signature.h"
#include "server/common/log.h"
#include "server/config/triton_config.h"
#include "server/grpc/infer_call.h"
#include "server/grpc/model_version.h"
#include "server/grpc/tensor_codec.h"
#include "server/registry/repository.h"

namespace flexor::server {
namespace {

constexpr char kServerName[] = "flexor";
constexpr char kServerVersion[] = "0.1.0";

// A ModelStreamInfer stream refused by the authorizer: finished at once
// (gRPC holds the Finish until the reactor is bound).
class DeniedStream final
    : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                     inference::ModelStreamInferResponse> {
 public:
  explicit DeniedStream(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context,
                                const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

void FillDuration(const ServableStats::Duration& from,
                  inference::StatisticDuration* to) {
  to->set_count(from.count.load(std::memory_order_relaxed));
  to->set_ns(from.ns.load(std::memory_order_relaxed));
}

// Answers UNIMPLEMENTED for a method of Triton's protocol this server does
// not have, saying which and what to do instead (gRPC's default answer has
// an empty message).
grpc::ServerUnaryReactor* NotImplemented(grpc::CallbackServerContext* context,
                                         absl::string_view method,
                                         absl::string_view instead) {
  return Reply(context, absl::UnimplementedError(absl::StrCat(
                            "inference.GRPCInferenceService/", method,
                            " is not implemented by this server; ", instead)));
}

constexpr char kNoSharedMemory[] =
    "send tensors in the request itself (raw_input_contents); there is no "
    "shared-memory extension";

void FillStatistics(const ServableVersion& s, inference::ModelStatistics* out) {
  const ServableStats& st = s.stats();
  out->set_name(s.name());
  out->set_version(absl::StrCat(s.version()));
  out->set_last_inference(st.last_inference_ms.load());
  out->set_inference_count(st.inference_count.load());
  out->set_execution_count(st.execution_count.load());
  auto* infer = out->mutable_inference_stats();
  FillDuration(st.success, infer->mutable_success());
  FillDuration(st.fail, infer->mutable_fail());
  FillDuration(st.queue, infer->mutable_queue());
  FillDuration(st.compute_input, infer->mutable_compute_input());
  FillDuration(st.compute_infer, infer->mutable_compute_infer());
  FillDuration(st.compute_output, infer->mutable_compute_output());
  for (const auto& [size, entry] : st.BatchStats()) {
    auto* batch = out->add_batch_stats();
    batch->set_batch_size(static_cast<uint64_t>(size));
    // Triton's layout: one count per execution in each of the three.
    batch->mutable_compute_input()->set_count(entry.count);
    batch->mutable_compute_input()->set_ns(entry.input_ns);
    batch->mutable_compute_infer()->set_count(entry.count);
    batch->mutable_compute_infer()->set_ns(entry.compute_ns);
    batch->mutable_compute_output()->set_count(entry.count);
    batch->mutable_compute_output()->set_ns(entry.output_ns);
  }
  auto* memory = out->add_memory_usage();
  memory->set_type("CPU");
  memory->set_byte_size(static_cast<uint64_t>(s.model().stats().file_bytes));
}

// Parses Triton's "file:<version>/<name>" parameter key: the model file or
// its detached signature (model.flexor.sig).
struct FileKey {
  int64_t version = 0;
  bool signature = false;
};
absl::StatusOr<FileKey> ParseFileKey(const std::string& model,
                                     const std::string& key) {
  const std::string path = key.substr(5);
  std::vector<std::string> parts = absl::StrSplit(path, '/');
  const std::string sig_name = absl::StrCat(kModelFileName, kSignatureSuffix);
  FileKey parsed;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &parsed.version) ||
      parsed.version < 1 || parsed.version > kMaxModelVersion ||
      (parts[1] != kModelFileName && parts[1] != sig_name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RepositoryModelLoad parameter '", absl::CEscape(key.substr(0, 100)),
        "' for model '", model, "' must be 'file:<version>/", kModelFileName,
        "' (or '", sig_name, "') with an integer version in [1, ",
        kMaxModelVersion, "]"));
  }
  parsed.signature = parts[1] == sig_name;
  return parsed;
}

}  // namespace

AdminExecutor::AdminExecutor(AdminLimits limits) : limits_(limits) {
  thread_ = std::thread([this] {
    while (true) {
      Task task;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](AdminExecutor* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
              return self->stop_ || !self->queue_.empty();
            },
            this));
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      const absl::Status status = task.work();
      task.work = nullptr;  // frees the upload's bytes before releasing them
      {
        absl::MutexLock lock(&mu_);
        --pending_;
        inflight_bytes_ -= task.bytes;
      }
      task.reactor->Finish(ToGrpcStatus(status));
    }
  });
}

AdminExecutor::~AdminExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

absl::Status AdminExecutor::Schedule(std::function<absl::Status()> work,
                                     grpc::ServerUnaryReactor* reactor,
                                     int64_t upload_bytes) {
  absl::MutexLock lock(&mu_);
  if (pending_ >= limits_.max_pending) {
    return absl::ResourceExhaustedError(
        absl::StrCat(pending_,
                     " admin RPCs are already queued or running (the limit, "
                     "--max-pending-admin-rpcs); retry later"));
  }
  if (upload_bytes > limits_.max_inflight_upload_bytes - inflight_bytes_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("uploads in flight already hold ", inflight_bytes_,
                     " bytes; this one's ", upload_bytes,
                     " would pass --max-inflight-upload-bytes=",
                     limits_.max_inflight_upload_bytes, "; retry later"));
  }
  ++pending_;
  inflight_bytes_ += upload_bytes;
  queue_.push_back(Task{std::move(work), reactor, upload_bytes});
  return absl::OkStatus();
}

InferenceService::InferenceService(ModelManager* manager,
                                   BatchScheduler* scheduler,
                                   ServerMetrics* metrics,
                                   ModelControlMode mode, AdminExecutor* admin)
    : manager_(manager),
      scheduler_(scheduler),
      metrics_(metrics),
      mode_(mode),
      admin_(admin) {}

grpc::ServerUnaryReactor* InferenceService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  if (auto* denied = Deny(context, Access::kInference, "ServerLive"))
    return denied;
  response->set_live(true);
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  if (auto* denied = Deny(context, Access::kInference, "ServerReady"))
    return denied;
  response->set_ready(ready_.load());
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  if (auto* denied = Deny(context, Access::kInference, "ModelReady"))
    return denied;
  absl::StatusOr<std::optional<int64_t>> version =
      ParseModelVersion(request->version());
  if (!version.ok()) return Reply(context, version.status());
  response->set_ready(manager_->Servable(request->name(), *version));
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  if (auto* denied = Deny(context, Access::kInference, "ServerMetadata"))
    return denied;
  response->set_name(kServerName);
  response->set_version(kServerVersion);
  response->add_extensions("classification");
  response->add_extensions("model_configuration");
  response->add_extensions("model_repository");
  response->add_extensions("statistics");
  response->add_extensions("logging");
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context,
    const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  if (auto* denied = Deny(context, Access::kInference, "ModelMetadata"))
    return denied;
  absl::StatusOr<std::optional<int64_t>> version =
      ParseModelVersion(request->version());
  if (!version.ok()) return Reply(context, version.status());
  absl::StatusOr<ServablePtr> servable = manager_->GetOrLoad(
      request->name(), *version, absl::FromChrono(context->deadline()));
  if (!servable.ok()) return Reply(context, servable.status());
  const Model& model = (*servable)->model();
  response->set_name(request->name());
  response->set_platform("flexor");
  for (const ServablePtr& s : manager_->ServingVersions(request->name())) {
    response->add_versions(absl::StrCat(s->version()));
  }
  auto* input = response->add_inputs();
  input->set_name(model.input().name());
  input->set_datatype("FP32");
  input->add_shape(-1);  // batch
  for (int64_t d : model.input().shape()) input->add_shape(d);
  auto* output = response->add_outputs();
  output->set_name(model.output().name());
  output->set_datatype(DatatypeName(model.output().dtype()));
  output->add_shape(-1);
  for (int64_t d : model.output().shape()) output->add_shape(d);
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(
    grpc::CallbackServerContext* context,
    const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  if (auto* denied = Deny(context, Access::kInference, "ModelInfer"))
    return denied;
  auto* call = new InferCall(this, context, request, response);
  call->Start();
  return call;
}

grpc::ServerBidiReactor<inference::ModelInferRequest,
                        inference::ModelStreamInferResponse>*
InferenceService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  if (auth_ != nullptr) {
    grpc::Status status =
        auth_->Check(*context, Access::kInference, "ModelStreamInfer");
    if (!status.ok()) return new DeniedStream(std::move(status));
  }
  return new StreamInferCall(this, context);
}

grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    grpc::CallbackServerContext* context,
    const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  if (auto* denied = Deny(context, Access::kInference, "ModelConfig"))
    return denied;
  absl::StatusOr<std::optional<int64_t>> version =
      ParseModelVersion(request->version());
  if (!version.ok()) return Reply(context, version.status());
  absl::StatusOr<ServablePtr> servable = manager_->GetOrLoad(
      request->name(), *version, absl::FromChrono(context->deadline()));
  if (!servable.ok()) return Reply(context, servable.status());
  *response->mutable_config() =
      ToTritonConfig((*servable)->name(), (*servable)->config(),
                     (*servable)->model(), scheduler_->threads());
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelStatistics(
    grpc::CallbackServerContext* context,
    const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  if (auto* denied = Deny(context, Access::kInference, "ModelStatistics"))
    return denied;
  absl::StatusOr<std::optional<int64_t>> version =
      ParseModelVersion(request->version());
  if (!version.ok()) return Reply(context, version.status());
  std::vector<std::string> names;
  if (request->name().empty()) {
    names = manager_->ServingModels();
  } else {
    absl::StatusOr<ServablePtr> check =
        manager_->Get(request->name(), *version);
    if (!check.ok()) return Reply(context, check.status());
    names.push_back(request->name());
  }
  for (const std::string& name : names) {
    for (const ServablePtr& s : manager_->ServingVersions(name)) {
      if (version->has_value() && s->version() != **version) continue;
      FillStatistics(*s, response->add_model_stats());
    }
  }
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(
    grpc::CallbackServerContext* context,
    const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  if (auto* denied = Deny(context, Access::kInference, "RepositoryIndex"))
    return denied;
  for (const ModelManager::IndexEntry& e : manager_->Index(request->ready())) {
    auto* m = response->add_models();
    m->set_name(e.name);
    if (e.version > 0) m->set_version(absl::StrCat(e.version));
    m->set_state(ModelReadinessName(e.state));
    m->set_reason(e.reason);
  }
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::Deny(
    grpc::CallbackServerContext* context, Access access,
    const char* method) const {
  if (auth_ == nullptr) return nullptr;
  grpc::Status status = auth_->Check(*context, access, method);
  if (status.ok()) return nullptr;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

absl::Status InferenceService::CheckRepositoryControl(
    const std::string& op) const {
  if (mode_ == ModelControlMode::kExplicit) return absl::OkStatus();
  // UNAVAILABLE, as Triton answers (KServe v2 names no code for this).
  return absl::UnavailableError(absl::StrCat(
      op, " needs --model-control-mode=explicit; this server runs in ",
      mode_ == ModelControlMode::kPoll ? "poll" : "none",
      " mode, where the repository directory alone decides what is loaded"));
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelLoad(
    grpc::CallbackServerContext* context,
    const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  if (auto* denied = Deny(context, Access::kAdmin, "RepositoryModelLoad"))
    return denied;
  if (absl::Status s = CheckRepositoryControl("RepositoryModelLoad"); !s.ok()) {
    return Reply(context, s);
  }
  if (absl::Status s =
          ModelRepository::ValidateModelName(request->model_name());
      !s.ok()) {
    return Reply(context, s);
  }
  // The request is already in memory (gRPC caps it at
  // --grpc-max-message-bytes); bound what the admin queue may hold on to.
  int64_t upload_bytes = 0;
  for (const auto& [key, value] : request->parameters()) {
    upload_bytes += static_cast<int64_t>(
        key.size() + value.bytes_param().size() + value.string_param().size());
  }
  if (upload_bytes > admin_->limits().max_upload_bytes) {
    return Reply(context,
                 absl::ResourceExhaustedError(absl::StrCat(
                     "RepositoryModelLoad of model '", request->model_name(),
                     "' carries ", upload_bytes,
                     " bytes, more than this server's --max-upload-bytes=",
                     admin_->limits().max_upload_bytes)));
  }
  std::optional<std::string> config;
  std::vector<ModelManager::UploadedFile> files;
  std::map<int64_t, std::string> signatures;
  for (const auto& [key, value] : request->parameters()) {
    if (key == "config") {
      if (value.parameter_choice_case() !=
          inference::ModelRepositoryParameter::kStringParam) {
        return Reply(context,
                     absl::InvalidArgumentError(
                         "parameter 'config' must be a string_param holding "
                         "Triton's JSON of inference.ModelConfig or "
                         "config.pbtxt text"));
      }
      config = value.string_param();
    } else if (absl::StartsWith(key, "file:")) {
      absl::StatusOr<FileKey> file = ParseFileKey(request->model_name(), key);
      if (!file.ok()) return Reply(context, file.status());
      if (value.parameter_choice_case() !=
          inference::ModelRepositoryParameter::kBytesParam) {
        return Reply(context, absl::InvalidArgumentError(absl::StrCat(
                                  "parameter '", key,
                                  "' must be a bytes_param with the file")));
      }
      if (file->signature) {
        if (value.bytes_param().size() > kMaxSignatureFileBytes) {
          return Reply(context, absl::InvalidArgumentError(absl::StrCat(
                                    "parameter '", key, "' is larger than ",
                                    kMaxSignatureFileBytes, " bytes")));
        }
        signatures[file->version] = value.bytes_param();
      } else {
        files.push_back({file->version, value.bytes_param(), ""});
      }
    } else {
      return Reply(context, absl::InvalidArgumentError(absl::StrCat(
                                "unknown RepositoryModelLoad parameter '",
                                absl::CEscape(key.substr(0, 100)),
                                "'; supported: 'config', 'file:<version>/",
                                kModelFileName, "'")));
    }
  }
  for (ModelManager::UploadedFile& file : files) {
    if (auto it = signatures.find(file.version); it != signatures.end()) {
      file.signature = std::move(it->second);
      signatures.erase(it);
    }
  }
  if (!signatures.empty()) {
    return Reply(context,
                 absl::InvalidArgumentError(absl::StrCat(
                     "a signature for version ", signatures.begin()->first,
                     " of model '", request->model_name(),
                     "' came without its model file; send 'file:<version>/",
                     kModelFileName, "' in the same request")));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status queued = admin_->Schedule(
      [this, name = request->model_name(), config = std::move(config),
       files = std::move(files)]() mutable {
        return files.empty() ? manager_->Load(name, std::move(config))
                             : manager_->LoadWithFiles(name, std::move(config),
                                                       std::move(files));
      },
      reactor, upload_bytes);
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelUnload(
    grpc::CallbackServerContext* context,
    const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  if (auto* denied = Deny(context, Access::kAdmin, "RepositoryModelUnload"))
    return denied;
  if (absl::Status s = CheckRepositoryControl("RepositoryModelUnload");
      !s.ok()) {
    return Reply(context, s);
  }
  if (absl::Status s =
          ModelRepository::ValidateModelName(request->model_name());
      !s.ok()) {
    return Reply(context, s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time deadline = std::min(absl::FromChrono(context->deadline()),
                                       absl::Now() + absl::Seconds(60));
  absl::Status queued =
      admin_->Schedule([this, name = request->model_name(),
                        deadline] { return manager_->Unload(name, deadline); },
                       reactor);
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::LogSettings(
    grpc::CallbackServerContext* context,
    const inference::LogSettingsRequest* request,
    inference::LogSettingsResponse* response) {
  // Changes the server's state, like the repository RPCs.
  if (auto* denied = Deny(context, Access::kAdmin, "LogSettings"))
    return denied;
  using Value = inference::LogSettingsRequest::SettingValue;
  const std::pair<const char*, LogLevel> levels[] = {
      {"log_info", LogLevel::kInfo},
      {"log_warning", LogLevel::kWarning},
      {"log_error", LogLevel::kError}};
  // Check every setting before applying any: a bad request changes nothing.
  for (const auto& [key, value] : request->settings()) {
    auto type_error = [&key = key](const char* type) {
      return absl::InvalidArgumentError(
          absl::StrCat("log setting '", key, "' must be a ", type));
    };
    if (key == "log_info" || key == "log_warning" || key == "log_error") {
      if (value.parameter_choice_case() != Value::kBoolParam) {
        return Reply(context, type_error("bool_param"));
      }
    } else if (key == "log_verbose_level") {
      if (value.parameter_choice_case() != Value::kUint32Param) {
        return Reply(context, type_error("uint32_param"));
      }
    } else if (key == "log_file") {
      if (value.parameter_choice_case() != Value::kStringParam) {
        return Reply(context, type_error("string_param"));
      }
      // A client must not make the server write files of its choosing.
      if (!value.string_param().empty()) {
        return Reply(context, absl::InvalidArgumentError(
                                  "log_file: this server logs to stderr "
                                  "only (redirect it where it runs); only "
                                  "\"\" is accepted"));
      }
    } else if (key == "log_format") {
      if (value.parameter_choice_case() != Value::kStringParam) {
        return Reply(context, type_error("string_param"));
      }
      if (value.string_param() != "default") {
        return Reply(context,
                     absl::InvalidArgumentError(absl::StrCat(
                         "log_format '",
                         absl::CEscape(value.string_param().substr(0, 40)),
                         "' is not supported; only \"default\"")));
      }
    } else {
      return Reply(
          context,
          absl::InvalidArgumentError(absl::StrCat(
              "unknown log setting '", absl::CEscape(key.substr(0, 60)),
              "'; supported: log_info, log_warning, log_error, "
              "log_verbose_level, log_format, log_file")));
    }
  }
  for (const auto& [key, value] : request->settings()) {
    for (const auto& [name, level] : levels) {
      if (key == name) SetLogLevelEnabled(level, value.bool_param());
    }
    if (key == "log_verbose_level") {
      SetLogVerboseLevel(static_cast<int>(value.uint32_param()));
    }
  }
  if (!request->settings().empty()) {
    FLEXOR_LOG(WARNING) << "log settings changed: info="
                        << LogLevelEnabled(LogLevel::kInfo)
                        << " warning=" << LogLevelEnabled(LogLevel::kWarning)
                        << " error=" << LogLevelEnabled(LogLevel::kError)
                        << " verbose_level=" << LogVerboseLevel();
  }
  auto& out = *response->mutable_settings();
  for (const auto& [name, level] : levels) {
    out[name].set_bool_param(LogLevelEnabled(level));
  }
  out["log_verbose_level"].set_uint32_param(
      static_cast<uint32_t>(LogVerboseLevel()));
  out["log_format"].set_string_param("default");
  out["log_file"].set_string_param("");
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryStatus(
    grpc::CallbackServerContext* context,
    const inference::SystemSharedMemoryStatusRequest*,
    inference::SystemSharedMemoryStatusResponse*) {
  return NotImplemented(context, "SystemSharedMemoryStatus", kNoSharedMemory);
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryRegister(
    grpc::CallbackServerContext* context,
    const inference::SystemSharedMemoryRegisterRequest*,
    inference::SystemSharedMemoryRegisterResponse*) {
  return NotImplemented(context, "SystemSharedMemoryRegister", kNoSharedMemory);
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryUnregister(
    grpc::CallbackServerContext* context,
    const inference::SystemSharedMemoryUnregisterRequest*,
    inference::SystemSharedMemoryUnregisterResponse*) {
  return NotImplemented(context, "SystemSharedMemoryUnregister",
                        kNoSharedMemory);
}

grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryStatus(
    grpc::CallbackServerContext* context,
    const inference::CudaSharedMemoryStatusRequest*,
    inference::CudaSharedMemoryStatusResponse*) {
  return NotImplemented(context, "CudaSharedMemoryStatus", kNoSharedMemory);
}

grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryRegister(
    grpc::CallbackServerContext* context,
    const inference::CudaSharedMemoryRegisterRequest*,
    inference::CudaSharedMemoryRegisterResponse*) {
  return NotImplemented(context, "CudaSharedMemoryRegister", kNoSharedMemory);
}

grpc::ServerUnaryReactor* InferenceService::CudaSharedMemoryUnregister(
    grpc::CallbackServerContext* context,
    const inference::CudaSharedMemoryUnregisterRequest*,
    inference::CudaSharedMemoryUnregisterResponse*) {
  return NotImplemented(context, "CudaSharedMemoryUnregister", kNoSharedMemory);
}

grpc::ServerUnaryReactor* InferenceService::TraceSetting(
    grpc::CallbackServerContext* context, const inference::TraceSettingRequest*,
    inference::TraceSettingResponse*) {
  return NotImplemented(context, "TraceSetting",
                        "there is no trace extension; per-stage timings are "
                        "in ModelStatistics and the Prometheus metrics");
}

}  // namespace flexor::server
