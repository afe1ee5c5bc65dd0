// Publishing a model file to a model repository directory
// (<root>/<model>/<version>/model.flexor, the new version appears atomically)
// or to a running server through the KServe v2 RepositoryModelLoad RPC.
#ifndef FLEXOR_TRAINER_PUBLISH_H_
#define FLEXOR_TRAINER_PUBLISH_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/auth/tls.h"

namespace flexor::trainer {

inline constexpr char kModelFileName[] = "model.flexor";

// Copies `model_path` to <repository_root>/<model_name>/<N>/model.flexor with
// N = 1 + the largest numeric version present. The version directory is
// filled under a temporary name and renamed into place, so a server polling
// the repository never sees a partial version. A detached signature
// "<model_path>.sig" (SignModelFile) goes into the version directory with
// the model. A non-empty `config_text` becomes <model>/config.pbtxt (before
// the version appears, so the server loads it with that config) only when
// the model has no config yet: an existing one is the operator's and is
// kept. Returns the path written.
absl::StatusOr<std::string> PublishToDirectory(
    const std::string& model_path, const std::string& repository_root,
    const std::string& model_name, const std::string& config_text = "");

// Sends the file to the server at `address` (HOST:PORT): RepositoryIndex to
// find the next version, then RepositoryModelLoad with the parameter
// "file:<version>/model.flexor" = the file's bytes (and
// "file:<version>/model.flexor.sig" when "<model_path>.sig" exists), over
// the channel `auth` describes (TLS, client certificate, bearer token).
// Returns the version.
absl::StatusOr<int64_t> PublishToServer(
    const std::string& model_path, const std::string& address,
    const std::string& model_name, double timeout_seconds,
    const server::ClientAuthOptions& auth = {});

// Writes "<model_path>.sig", an Ed25519 signature of the file with the PEM
// private key at `key_path` (engine/format/model_signature.h). Returns the
// key id.
absl::StatusOr<std::string> SignModelFile(const std::string& model_path,
                                          const std::string& key_path);

}  // namespace flexor::trainer

#endif  // FLEXOR_TRAINER_PUBLISH_H_
