// KServe ModelMesh's model-runtime SPI (mmesh.ModelRuntime, proto/
// model_runtime.proto) on flexor_server's gRPC port (docs/modelmesh.md).
// ModelMesh's sidecar calls loadModel with a model id and a local path (the
// puller's copy under --modelmesh-model-root); the files found there are
// validated and published into the server's repository under that id
// (ModelManager::LoadWithFiles, the path RepositoryModelLoad uploads take),
// then served. Inference then reaches the model through the KServe v2
// service with the id in the mm-model-id header or in model_name (ModelMesh
// writes it there, see runtimeStatus's methodInfos). Every call runs on the
// server's admin thread (AdminExecutor), one at a time, like
// RepositoryModelLoad/Unload.
#ifndef FLEXOR_SERVER_MODELMESH_MODEL_RUNTIME_SERVICE_H_
#define FLEXOR_SERVER_MODELMESH_MODEL_RUNTIME_SERVICE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "proto/model_runtime.grpc.pb.h"
#include "server/auth/authorizer.h"
#include "server/grpc/inference_service.h"
#include "server/registry/model_manager.h"

namespace flexor::server {

struct ModelMeshOptions {
  bool enabled = false;
  // loadModel/predictModelSize paths must resolve (symbolic links followed)
  // to this directory or below.
  std::string model_root = "/models";
  int64_t capacity_bytes = int64_t{256} << 20;
  int64_t default_model_size_bytes = int64_t{1} << 20;
  int load_timeout_ms = 90000;
};

// What a model path holds: its version files and optional config.pbtxt.
struct ModelMeshFiles {
  std::vector<ModelManager::UploadedFile> files;  // bytes empty until read
  std::vector<std::string> paths;                 // parallel to files
  std::string config_path;                        // "" when none
  int64_t total_bytes = 0;                        // file sizes (stat)
};

// Resolves `model_path` (absolute, or relative to `root`) and lists what it
// holds: a model.flexor file (version 1), a directory with model.flexor
// (version 1), or a directory of <version>/model.flexor; config.pbtxt next
// to them is used as the config. INVALID_ARGUMENT for anything else (outside
// the root, missing, empty, not a model), naming the path.
absl::StatusOr<ModelMeshFiles> FindModelMeshFiles(
    const std::string& root, const std::string& model_path);

// Bytes a loaded version costs besides its file (docs/operations.md,
// "Sizing memory": about 29-36 KiB measured; rounded up).
inline constexpr int64_t kModelMeshVersionOverheadBytes = 64 << 10;

class ModelRuntimeService final : public mmesh::ModelRuntime::CallbackService {
 public:
  // `repository_root`: the server's --model-repository (the directory of a
  // model loaded through this service is removed again when it is unloaded).
  ModelRuntimeService(ModelManager* manager, AdminExecutor* admin,
                      const Authorizer* auth, ModelMeshOptions options,
                      std::string repository_root);

  grpc::ServerUnaryReactor* loadModel(
      grpc::CallbackServerContext* context,
      const mmesh::LoadModelRequest* request,
      mmesh::LoadModelResponse* response) override;
  grpc::ServerUnaryReactor* unloadModel(
      grpc::CallbackServerContext* context,
      const mmesh::UnloadModelRequest* request,
      mmesh::UnloadModelResponse* response) override;
  grpc::ServerUnaryReactor* predictModelSize(
      grpc::CallbackServerContext* context,
      const mmesh::PredictModelSizeRequest* request,
      mmesh::PredictModelSizeResponse* response) override;
  grpc::ServerUnaryReactor* modelSize(
      grpc::CallbackServerContext* context,
      const mmesh::ModelSizeRequest* request,
      mmesh::ModelSizeResponse* response) override;
  grpc::ServerUnaryReactor* runtimeStatus(
      grpc::CallbackServerContext* context,
      const mmesh::RuntimeStatusRequest* request,
      mmesh::RuntimeStatusResponse* response) override;

 private:
  // Denied (reactor finished) or null.
  grpc::ServerUnaryReactor* Deny(grpc::CallbackServerContext* context,
                                 const char* method) const;
  absl::Status Load(const std::string& id, const std::string& path,
                    mmesh::LoadModelResponse* response);
  absl::Status Unload(const std::string& id, absl::Time deadline);
  // Resident bytes of the serving versions of `id`; NOT_FOUND if none.
  absl::StatusOr<int64_t> SizeOf(const std::string& id) const;

  ModelManager* const manager_;
  AdminExecutor* const admin_;
  const Authorizer* const auth_;
  const ModelMeshOptions options_;
  const std::string repository_root_;
  absl::Mutex mu_;
  // Models this service published into the repository.
  absl::flat_hash_set<std::string> published_ ABSL_GUARDED_BY(mu_);
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_MODELMESH_MODEL_RUNTIME_SERVICE_H_
