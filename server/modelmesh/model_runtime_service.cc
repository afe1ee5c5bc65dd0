#include "server/modelmesh/model_runtime_service.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/grpc_status.h"
#include "base/repository_layout.h"
#include "server/common/log.h"
#include "server/registry/repository.h"

namespace flexor::server {
namespace {

namespace fs = std::filesystem;

constexpr char kRuntimeVersion[] = "flexor-0.1.0";
// Versions one model path may hold (a directory of <version>/model.flexor).
constexpr int kMaxVersionsPerPath = 16;
constexpr int64_t kMaxConfigBytes = 1 << 20;

grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context,
                                const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

absl::Status Invalid(const std::string& path, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("modelPath '", absl::CEscape(path), "': ", why));
}

bool IsRegularFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

int64_t FileSize(const fs::path& p) {
  std::error_code ec;
  const uintmax_t n = fs::file_size(p, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

// The whole file if it has at most `limit` bytes.
absl::StatusOr<std::string> ReadBounded(const std::string& path,
                                        int64_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string bytes;
  char buffer[1 << 16];
  while (in) {
    in.read(buffer, sizeof(buffer));
    bytes.append(buffer, static_cast<size_t>(in.gcount()));
    if (static_cast<int64_t>(bytes.size()) > limit) {
      return absl::ResourceExhaustedError(absl::StrCat(
          path, " is larger than ", limit,
          " bytes (--max-upload-bytes bounds ModelMesh loads too)"));
    }
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return bytes;
}

}  // namespace

absl::StatusOr<ModelMeshFiles> FindModelMeshFiles(
    const std::string& root, const std::string& model_path) {
  if (model_path.empty()) return Invalid(model_path, "empty");
  if (model_path.size() > 4096 || model_path.find('\0') != std::string::npos) {
    return Invalid(model_path.substr(0, 200), "not a usable path");
  }
  std::error_code ec;
  const fs::path root_path = fs::canonical(root, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--modelmesh-model-root '", root, "' is not usable: ", ec.message()));
  }
  fs::path requested(model_path);
  if (requested.is_relative()) requested = root_path / requested;
  const fs::path path = fs::canonical(requested, ec);
  if (ec)
    return Invalid(model_path,
                   absl::StrCat("cannot open (", ec.message(), ")"));
  // Inside the root, symbolic links followed: compare path components.
  auto [root_end, unused] = std::mismatch(root_path.begin(), root_path.end(),
                                          path.begin(), path.end());
  if (root_end != root_path.end()) {
    return Invalid(model_path, absl::StrCat("outside --modelmesh-model-root (",
                                            root_path.string(), ")"));
  }
  ModelMeshFiles out;
  auto add = [&out](int64_t version, const fs::path& file) {
    ModelManager::UploadedFile f;
    f.version = version;
    out.files.push_back(std::move(f));
    out.paths.push_back(file.string());
    out.total_bytes += FileSize(file);
  };
  if (IsRegularFile(path)) {
    add(1, path);
    return out;
  }
  if (!fs::is_directory(path, ec)) {
    return Invalid(model_path, "neither a file nor a directory");
  }
  if (IsRegularFile(path / kModelConfigName)) {
    out.config_path = (path / kModelConfigName).string();
  }
  if (IsRegularFile(path / kModelFileName)) {
    add(1, path / kModelFileName);
    return out;
  }
  std::vector<std::pair<int64_t, fs::path>> versions;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end;
       it.increment(ec)) {
    int64_t version = 0;
    const std::string name = it->path().filename().string();
    if (!absl::SimpleAtoi(name, &version) || version < 1 ||
        version > kMaxModelVersion || absl::StrCat(version) != name) {
      continue;
    }
    const fs::path file = it->path() / kModelFileName;
    if (IsRegularFile(file)) versions.emplace_back(version, file);
  }
  if (ec)
    return Invalid(model_path,
                   absl::StrCat("cannot list (", ec.message(), ")"));
  if (versions.empty()) {
    return Invalid(model_path, absl::StrCat("holds no ", kModelFileName,
                                            " (expected a ", kModelFileName,
                                            " file, a directory with one, "
                                            "or <version>/",
                                            kModelFileName, ")"));
  }
  if (versions.size() > kMaxVersionsPerPath) {
    return Invalid(model_path,
                   absl::StrCat("holds ", versions.size(),
                                " versions; at most ", kMaxVersionsPerPath));
  }
  std::sort(versions.begin(), versions.end());
  for (const auto& [version, file] : versions) add(version, file);
  return out;
}

ModelRuntimeService::ModelRuntimeService(ModelManager* manager,
                                         AdminExecutor* admin,
                                         const Authorizer* auth,
                                         ModelMeshOptions options,
                                         std::string repository_root)
    : manager_(manager),
      admin_(admin),
      auth_(auth),
      options_(std::move(options)),
      repository_root_(std::move(repository_root)) {}

grpc::ServerUnaryReactor* ModelRuntimeService::Deny(
    grpc::CallbackServerContext* context, const char* method) const {
  if (auth_ == nullptr) return nullptr;
  grpc::Status status = auth_->Check(*context, Access::kAdmin, method);
  if (status.ok()) return nullptr;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

absl::StatusOr<int64_t> ModelRuntimeService::SizeOf(
    const std::string& id) const {
  const std::vector<ServablePtr> versions = manager_->ServingVersions(id);
  if (versions.empty()) {
    return absl::NotFoundError(
        absl::StrCat("model '", absl::CEscape(id), "' is not loaded"));
  }
  int64_t bytes = 0;
  for (const ServablePtr& v : versions) {
    bytes += v->model().stats().file_bytes + kModelMeshVersionOverheadBytes;
  }
  return bytes;
}

absl::Status ModelRuntimeService::Load(const std::string& id,
                                       const std::string& path,
                                       mmesh::LoadModelResponse* response) {
  absl::StatusOr<ModelMeshFiles> found =
      FindModelMeshFiles(options_.model_root, path);
  if (!found.ok()) return found.status();
  const int64_t limit = admin_->limits().max_upload_bytes;
  if (found->total_bytes > limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "model '", id, "': ", found->total_bytes, " bytes at modelPath '", path,
        "' exceed --max-upload-bytes (", limit,
        "), which bounds ModelMesh loads too"));
  }
  int64_t total = 0;
  for (size_t i = 0; i < found->files.size(); ++i) {
    absl::StatusOr<std::string> bytes = ReadBounded(found->paths[i], limit);
    if (!bytes.ok()) return bytes.status();
    total += static_cast<int64_t>(bytes->size());
    found->files[i].bytes = *std::move(bytes);
    const std::string sig = absl::StrCat(found->paths[i], ".sig");
    if (IsRegularFile(sig)) {
      absl::StatusOr<std::string> signature = ReadBounded(sig, 64 << 10);
      if (!signature.ok()) return signature.status();
      found->files[i].signature = *std::move(signature);
    }
  }
  if (total > limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("model '", id, "': the files at modelPath '", path,
                     "' exceed --max-upload-bytes (", limit, ")"));
  }
  std::optional<std::string> config;
  if (!found->config_path.empty()) {
    absl::StatusOr<std::string> text =
        ReadBounded(found->config_path, kMaxConfigBytes);
    if (!text.ok()) return text.status();
    config = *std::move(text);
  }
  std::error_code ec;
  const bool existed = fs::exists(fs::path(repository_root_) / id, ec) || ec;
  absl::Status loaded =
      manager_->LoadWithFiles(id, std::move(config), std::move(found->files));
  if (!existed) {
    absl::MutexLock lock(&mu_);
    published_.insert(id);
  }
  if (!loaded.ok()) {
    FLEXOR_LOG(WARNING) << "ModelMesh loadModel '" << id << "' from '" << path
                        << "' failed: " << loaded;
    return loaded;
  }
  absl::StatusOr<int64_t> size = SizeOf(id);
  if (!size.ok()) return size.status();
  response->set_sizeinbytes(static_cast<uint64_t>(*size));
  FLEXOR_LOG(INFO) << "ModelMesh loaded '" << id << "' from '" << path << "' ("
                   << *size << " bytes)";
  return absl::OkStatus();
}

absl::Status ModelRuntimeService::Unload(const std::string& id,
                                         absl::Time deadline) {
  if (!ModelRepository::ValidateModelName(id).ok()) {
    return absl::OkStatus();  // never loaded: nothing to do
  }
  if (absl::Status s = manager_->Unload(id, deadline); !s.ok()) return s;
  bool remove = false;
  {
    absl::MutexLock lock(&mu_);
    remove = published_.erase(id) > 0;
  }
  if (remove) {
    std::error_code ec;
    fs::remove_all(fs::path(repository_root_) / id, ec);
    if (ec) {
      FLEXOR_LOG(WARNING) << "ModelMesh unloadModel '" << id
                          << "': cannot remove its repository copy: "
                          << ec.message();
    }
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* ModelRuntimeService::loadModel(
    grpc::CallbackServerContext* context,
    const mmesh::LoadModelRequest* request,
    mmesh::LoadModelResponse* response) {
  if (auto* denied = Deny(context, "loadModel")) return denied;
  if (absl::Status s = ModelRepository::ValidateModelName(request->modelid());
      !s.ok()) {
    return Reply(context, s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status queued = admin_->Schedule(
      [this, id = request->modelid(), path = request->modelpath(), response] {
        return Load(id, path, response);
      },
      reactor);
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

grpc::ServerUnaryReactor* ModelRuntimeService::unloadModel(
    grpc::CallbackServerContext* context,
    const mmesh::UnloadModelRequest* request, mmesh::UnloadModelResponse*) {
  if (auto* denied = Deny(context, "unloadModel")) return denied;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time deadline = std::min(absl::FromChrono(context->deadline()),
                                       absl::Now() + absl::Seconds(60));
  absl::Status queued =
      admin_->Schedule([this, id = request->modelid(),
                        deadline] { return Unload(id, deadline); },
                       reactor);
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

grpc::ServerUnaryReactor* ModelRuntimeService::predictModelSize(
    grpc::CallbackServerContext* context,
    const mmesh::PredictModelSizeRequest* request,
    mmesh::PredictModelSizeResponse* response) {
  if (auto* denied = Deny(context, "predictModelSize")) return denied;
  // Answered at once (ModelMesh asks before loading): file sizes only.
  absl::StatusOr<ModelMeshFiles> found =
      FindModelMeshFiles(options_.model_root, request->modelpath());
  if (!found.ok()) return Reply(context, found.status());
  response->set_sizeinbytes(static_cast<uint64_t>(
      found->total_bytes + static_cast<int64_t>(found->files.size()) *
                               kModelMeshVersionOverheadBytes));
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* ModelRuntimeService::modelSize(
    grpc::CallbackServerContext* context,
    const mmesh::ModelSizeRequest* request,
    mmesh::ModelSizeResponse* response) {
  if (auto* denied = Deny(context, "modelSize")) return denied;
  absl::StatusOr<int64_t> size = SizeOf(request->modelid());
  if (!size.ok()) return Reply(context, size.status());
  response->set_sizeinbytes(static_cast<uint64_t>(*size));
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* ModelRuntimeService::runtimeStatus(
    grpc::CallbackServerContext* context, const mmesh::RuntimeStatusRequest*,
    mmesh::RuntimeStatusResponse* response) {
  if (auto* denied = Deny(context, "runtimeStatus")) return denied;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time deadline = std::min(absl::FromChrono(context->deadline()),
                                       absl::Now() + absl::Seconds(60));
  absl::Status queued = admin_->Schedule(
      [this, response, deadline]() -> absl::Status {
        // A (re)started ModelMesh sidecar assumes an empty runtime.
        for (const std::string& name : manager_->ServingModels()) {
          if (absl::Status s = Unload(name, deadline); !s.ok()) return s;
        }
        response->set_status(mmesh::RuntimeStatusResponse::READY);
        response->set_capacityinbytes(
            static_cast<uint64_t>(options_.capacity_bytes));
        response->set_maxloadingconcurrency(1);  // one admin thread
        response->set_modelloadingtimeoutms(
            static_cast<uint32_t>(options_.load_timeout_ms));
        response->set_defaultmodelsizeinbytes(
            static_cast<uint64_t>(options_.default_model_size_bytes));
        response->set_runtimeversion(kRuntimeVersion);
        response->set_limitmodelconcurrency(false);
        response->set_allowanymethod(false);
        // ModelMesh writes the model id into field 1 (model_name / name) of
        // these requests; ModelInfer also honours mm-model-id.
        for (const char* method : {"ModelInfer", "ModelMetadata", "ModelReady",
                                   "ModelConfig", "ModelStatistics"}) {
          (*response
                ->mutable_methodinfos())[absl::StrCat("inference."
                                                      "GRPCInferenceService/",
                                                      method)]
              .add_idinjectionpath(1);
        }
        return absl::OkStatus();
      },
      reactor);
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

}  // namespace flexor::server
