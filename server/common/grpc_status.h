// absl::Status <-> grpc::Status. Both use the canonical gRPC code space.
#ifndef FLEXOR_SERVER_COMMON_GRPC_STATUS_H_
#define FLEXOR_SERVER_COMMON_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace flexor::server {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

inline absl::Status ToAbslStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_COMMON_GRPC_STATUS_H_
