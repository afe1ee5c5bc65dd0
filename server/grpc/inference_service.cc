#include "server/grpc/inference_service.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/grpc_status.h"
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

// Parses Triton's "file:<version>/<name>" parameter key.
absl::StatusOr<int64_t> ParseFileKey(const std::string& model,
                                     const std::string& key) {
  const std::string path = key.substr(5);
  std::vector<std::string> parts = absl::StrSplit(path, '/');
  int64_t version = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &version) ||
      version < 1 || version > kMaxModelVersion || parts[1] != kModelFileName) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RepositoryModelLoad parameter '", absl::CEscape(key.substr(0, 100)),
        "' for model '", model, "' must be 'file:<version>/", kModelFileName,
        "' with an integer version in [1, ", kMaxModelVersion, "]"));
  }
  return version;
}

}  // namespace

AdminExecutor::AdminExecutor() {
  thread_ = std::thread([this] {
    while (true) {
      std::function<void()> fn;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](AdminExecutor* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
              return self->stop_ || !self->queue_.empty();
            },
            this));
        if (queue_.empty()) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
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

void AdminExecutor::Schedule(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(fn));
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
  response->set_live(true);
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(ready_.load());
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  absl::StatusOr<std::optional<int64_t>> version =
      ParseModelVersion(request->version());
  if (!version.ok()) return Reply(context, version.status());
  response->set_ready(manager_->Get(request->name(), *version).ok());
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
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
  absl::StatusOr<std::optional<int64_t>> version =
      ParseModelVersion(request->version());
  if (!version.ok()) return Reply(context, version.status());
  absl::StatusOr<ServablePtr> servable =
      manager_->Get(request->name(), *version);
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
  auto* call = new InferCall(this, context, request, response);
  call->Start();
  return call;
}

grpc::ServerBidiReactor<inference::ModelInferRequest,
                        inference::ModelStreamInferResponse>*
InferenceService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  return new StreamInferCall(this, context);
}

grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    grpc::CallbackServerContext* context,
    const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  absl::StatusOr<std::optional<int64_t>> version =
      ParseModelVersion(request->version());
  if (!version.ok()) return Reply(context, version.status());
  absl::StatusOr<ServablePtr> servable =
      manager_->Get(request->name(), *version);
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
  for (const ModelManager::IndexEntry& e : manager_->Index(request->ready())) {
    auto* m = response->add_models();
    m->set_name(e.name);
    if (e.version > 0) m->set_version(absl::StrCat(e.version));
    m->set_state(ModelReadinessName(e.state));
    m->set_reason(e.reason);
  }
  return Reply(context, absl::OkStatus());
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
  if (absl::Status s = CheckRepositoryControl("RepositoryModelLoad"); !s.ok()) {
    return Reply(context, s);
  }
  if (absl::Status s =
          ModelRepository::ValidateModelName(request->model_name());
      !s.ok()) {
    return Reply(context, s);
  }
  std::optional<std::string> config;
  std::vector<ModelManager::UploadedFile> files;
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
      absl::StatusOr<int64_t> version =
          ParseFileKey(request->model_name(), key);
      if (!version.ok()) return Reply(context, version.status());
      if (value.parameter_choice_case() !=
          inference::ModelRepositoryParameter::kBytesParam) {
        return Reply(context, absl::InvalidArgumentError(absl::StrCat(
                                  "parameter '", key,
                                  "' must be a bytes_param with the file")));
      }
      files.push_back({*version, value.bytes_param()});
    } else {
      return Reply(context, absl::InvalidArgumentError(absl::StrCat(
                                "unknown RepositoryModelLoad parameter '",
                                absl::CEscape(key.substr(0, 100)),
                                "'; supported: 'config', 'file:<version>/",
                                kModelFileName, "'")));
    }
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  admin_->Schedule([this, reactor, name = request->model_name(),
                    config = std::move(config),
                    files = std::move(files)]() mutable {
    absl::Status status = files.empty()
                              ? manager_->Load(name, std::move(config))
                              : manager_->LoadWithFiles(name, std::move(config),
                                                        std::move(files));
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelUnload(
    grpc::CallbackServerContext* context,
    const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
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
  admin_->Schedule([this, reactor, name = request->model_name(), deadline] {
    reactor->Finish(ToGrpcStatus(manager_->Unload(name, deadline)));
  });
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::LogSettings(
    grpc::CallbackServerContext* context,
    const inference::LogSettingsRequest* request,
    inference::LogSettingsResponse* response) {
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
