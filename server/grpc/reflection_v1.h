// grpc.reflection.v1.ServerReflection over the process's generated
// descriptor pool, the same answers gRPC's own v1alpha service gives (that
// one stays registered for older clients). Every service the server lists
// must have its descriptors linked in, or clients cannot describe it: that
// is why the server links proto/health.proto although gRPC implements the
// health service itself.
#ifndef FLEXOR_SERVER_GRPC_REFLECTION_V1_H_
#define FLEXOR_SERVER_GRPC_REFLECTION_V1_H_

#include <string>
#include <vector>

#include "proto/reflection_v1.grpc.pb.h"

namespace flexor::server {

class ReflectionV1Service final
    : public grpc::reflection::v1::ServerReflection::Service {
 public:
  // `services`: the full names answered to list_services.
  explicit ReflectionV1Service(std::vector<std::string> services)
      : services_(std::move(services)) {}

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<grpc::reflection::v1::ServerReflectionResponse,
                               grpc::reflection::v1::ServerReflectionRequest>*
          stream) override;

 private:
  const std::vector<std::string> services_;
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_GRPC_REFLECTION_V1_H_
