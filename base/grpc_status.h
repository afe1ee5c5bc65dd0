// absl::Status <-> grpc::Status, for every binary that speaks gRPC (server,
// flexorctl, trainer). Both use the canonical code space, so the codes map
// one to one.
#ifndef FLEXOR_BASE_GRPC_STATUS_H_
#define FLEXOR_BASE_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace flexor {

grpc::Status ToGrpcStatus(const absl::Status& status);

// `context` (e.g. "RepositoryIndex on host:8001"), when not empty, prefixes
// the message: "<context>: <message>".
absl::Status ToAbslStatus(const grpc::Status& status,
                          absl::string_view context = "");

}  // namespace flexor

#endif  // FLEXOR_BASE_GRPC_STATUS_H_
