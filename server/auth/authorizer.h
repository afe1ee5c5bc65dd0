// Who may call what: every RPC of inference.GRPCInferenceService is either
// an inference RPC (ModelInfer, metadata, readiness, statistics, index) or
// an admin RPC (anything that changes what is served or how the server
// runs: RepositoryModelLoad, including uploads, RepositoryModelUnload,
// LogSettings). An admin RPC needs a bearer
// token from --auth-token-file ("authorization: Bearer <token>" metadata) or
// a verified client certificate whose identity is in --auth-admin-identities.
// Inference RPCs are open unless --auth-inference=authenticated, in which
// case they take any admin credential, a token from
// --auth-inference-token-file, or any client certificate the server's
// client CA verified.
//
// No credential at all: UNAUTHENTICATED. A credential that is wrong or not
// enough for the RPC: PERMISSION_DENIED.
#ifndef FLEXOR_SERVER_AUTH_AUTHORIZER_H_
#define FLEXOR_SERVER_AUTH_AUTHORIZER_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace flexor::server {

enum class Access { kInference, kAdmin };

struct AuthOptions {
  // Bearer tokens, one per line (blank lines and '#' comments ignored), so
  // that a rotation can add the new token before removing the old one. The
  // file is re-read when it changes.
  std::string admin_token_file;
  std::string inference_token_file;
  // Client-certificate identities (a SAN entry or, without SANs, the CN)
  // allowed to call admin RPCs. Needs TLS with a client CA.
  std::vector<std::string> admin_identities;
  // Inference RPCs need no credential.
  bool inference_open = true;
  // Whether the transport verifies client certificates (TLS with a client
  // CA); only then do identities mean anything.
  bool client_certificates = false;
};

// A set of bearer tokens read from a file, kept as SHA-256 digests and
// compared in constant time (no early exit on a prefix, no length leak).
class TokenFile {
 public:
  static absl::StatusOr<std::unique_ptr<TokenFile>> Open(std::string path);
  // Whether `token` is one of the file's tokens. Re-reads the file (at most
  // once a second) when its size, mtime or inode changed; a re-read that
  // fails keeps the previous tokens and logs why.
  bool Contains(absl::string_view token) const;
  const std::string& path() const { return path_; }

 private:
  using Digest = std::array<unsigned char, 32>;
  explicit TokenFile(std::string path) : path_(std::move(path)) {}
  absl::Status Reload() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  mutable absl::Mutex mu_;
  mutable std::vector<Digest> digests_ ABSL_GUARDED_BY(mu_);
  mutable std::string stamp_ ABSL_GUARDED_BY(mu_);  // size/mtime/inode
  mutable absl::Time next_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

class Authorizer {
 public:
  static absl::StatusOr<std::unique_ptr<Authorizer>> Create(
      AuthOptions options);

  // OK, UNAUTHENTICATED or PERMISSION_DENIED for a call of `method` (for
  // messages) that needs `access`.
  grpc::Status Check(const grpc::ServerContextBase& context, Access access,
                     absl::string_view method) const;

  // Whether admin RPCs need a credential.
  bool admin_protected() const;
  bool inference_open() const { return options_.inference_open; }
  // One line for the startup log: what is protected, and by what.
  std::string Describe() const;

 private:
  explicit Authorizer(AuthOptions options) : options_(std::move(options)) {}

  const AuthOptions options_;
  std::unique_ptr<TokenFile> admin_tokens_;
  std::unique_ptr<TokenFile> inference_tokens_;
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_AUTH_AUTHORIZER_H_
