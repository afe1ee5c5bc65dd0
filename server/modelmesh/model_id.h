// The model a ModelMesh-routed request is for (docs/modelmesh.md).
#ifndef FLEXOR_SERVER_MODELMESH_MODEL_ID_H_
#define FLEXOR_SERVER_MODELMESH_MODEL_ID_H_

#include <string>

#include "grpcpp/grpcpp.h"

namespace flexor::server {

// The mm-model-id header (or mm-model-id-bin, for ids that are not ASCII),
// "" when absent. ModelMesh sets it on every request it forwards to the
// runtime, naming the model id it loaded with loadModel.
inline std::string ModelMeshModelId(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  for (const char* key : {"mm-model-id", "mm-model-id-bin"}) {
    auto it = metadata.find(key);
    if (it != metadata.end()) {
      return std::string(it->second.data(), it->second.size());
    }
  }
  return "";
}

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_MODELMESH_MODEL_ID_H_
