// Model versions arrive as strings on the wire (Triton's protocol); past the
// gRPC layer they are int64. This is the one place that parses them.
#ifndef FLEXOR_SERVER_GRPC_MODEL_VERSION_H_
#define FLEXOR_SERVER_GRPC_MODEL_VERSION_H_

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace flexor::server {

// "" -> nullopt (the server picks: the highest serving version).
// A canonical decimal in [1, kMaxModelVersion] -> that version.
// Anything else ("01", "+1", " 1", "1.0", "0", "x") -> INVALID_ARGUMENT:
// "01" is not version 1, or two spellings would name one version.
absl::StatusOr<std::optional<int64_t>> ParseModelVersion(
    absl::string_view text);

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_GRPC_MODEL_VERSION_H_
