#include "server/auth/authorizer.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/stat.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/format/model_signature.h"
#include "server/common/log.h"

namespace flexor::server {
namespace {

// Tokens shorter than this are guessable; refuse them rather than warn.
constexpr size_t kMinTokenLength = 16;
constexpr size_t kMaxTokenFileBytes = 64 << 10;

std::string Stamp(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return absl::StrCat(st.st_size, "/", st.st_mtim.tv_sec, ".",
                      st.st_mtim.tv_nsec, "/", st.st_ino);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::Open(std::string path) {
  std::unique_ptr<TokenFile> file(new TokenFile(std::move(path)));
  absl::MutexLock lock(&file->mu_);
  if (absl::Status s = file->Reload(); !s.ok()) return s;
  file->next_check_ = absl::Now() + absl::Seconds(1);
  return file;
}

absl::Status TokenFile::Reload() const {
  const std::string stamp = Stamp(path_);
  absl::StatusOr<std::string> text = ReadSmallFile(path_, kMaxTokenFileBytes);
  if (!text.ok()) return text.status();
  std::vector<Digest> digests;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    if (line.size() < kMinTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a token in ", path_, " is shorter than ", kMinTokenLength,
          " characters; use e.g. `openssl rand -hex 32`"));
    }
    Digest d;
    SHA256(reinterpret_cast<const unsigned char*>(line.data()), line.size(),
           d.data());
    digests.push_back(d);
  }
  if (digests.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, " holds no token (one per line)"));
  }
  digests_ = std::move(digests);
  stamp_ = stamp;
  return absl::OkStatus();
}

bool TokenFile::Contains(absl::string_view token) const {
  Digest want;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(),
         want.data());
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (now >= next_check_) {
    next_check_ = now + absl::Seconds(1);
    if (Stamp(path_) != stamp_) {
      if (absl::Status s = Reload(); s.ok()) {
        FLEXOR_LOG(INFO) << "re-read token file " << path_ << " ("
                         << digests_.size() << " token(s))";
      } else {
        FLEXOR_LOG(ERROR) << "cannot re-read token file, keeping the "
                             "previous tokens: "
                          << s;
      }
    }
  }
  // Digests of equal length, compared in full: the time taken does not
  // depend on how much of a guess is right.
  int found = 0;
  for (const Digest& d : digests_) {
    found |= CRYPTO_memcmp(d.data(), want.data(), d.size()) == 0;
  }
  return found != 0;
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Create(
    AuthOptions options) {
  if (!options.admin_identities.empty() && !options.client_certificates) {
    return absl::InvalidArgumentError(
        "--auth-admin-identities needs client certificates: set "
        "--tls-cert-file, --tls-key-file and --tls-client-ca-file");
  }
  if (!options.inference_open && options.admin_token_file.empty() &&
      options.inference_token_file.empty() && !options.client_certificates) {
    return absl::InvalidArgumentError(
        "--auth-inference=authenticated needs a credential to check: "
        "--auth-token-file, --auth-inference-token-file or client "
        "certificates (--tls-client-ca-file)");
  }
  std::unique_ptr<Authorizer> auth(new Authorizer(std::move(options)));
  if (!auth->options_.admin_token_file.empty()) {
    absl::StatusOr<std::unique_ptr<TokenFile>> f =
        TokenFile::Open(auth->options_.admin_token_file);
    if (!f.ok()) return f.status();
    auth->admin_tokens_ = *std::move(f);
  }
  if (!auth->options_.inference_token_file.empty()) {
    absl::StatusOr<std::unique_ptr<TokenFile>> f =
        TokenFile::Open(auth->options_.inference_token_file);
    if (!f.ok()) return f.status();
    auth->inference_tokens_ = *std::move(f);
  }
  return auth;
}

bool Authorizer::admin_protected() const {
  return admin_tokens_ != nullptr || !options_.admin_identities.empty();
}

std::string Authorizer::Describe() const {
  std::vector<std::string> admin;
  if (admin_tokens_)
    admin.push_back("bearer token (" + admin_tokens_->path() + ")");
  if (!options_.admin_identities.empty()) {
    admin.push_back("client certificate identity in [" +
                    absl::StrJoin(options_.admin_identities, ", ") + "]");
  }
  std::string out = admin.empty() ? "admin RPCs (RepositoryModelLoad/Unload, "
                                    "uploads, LogSettings): OPEN "
                                    "to any client"
                                  : "admin RPCs (RepositoryModelLoad/Unload, "
                                    "uploads, LogSettings) need " +
                                        absl::StrJoin(admin, " or ");
  if (options_.inference_open) {
    absl::StrAppend(&out, "; inference RPCs: open");
  } else {
    std::vector<std::string> inf = {"an admin credential"};
    if (inference_tokens_) {
      inf.push_back("bearer token (" + inference_tokens_->path() + ")");
    }
    if (options_.client_certificates)
      inf.push_back("a verified client certificate");
    absl::StrAppend(&out, "; inference RPCs need ", absl::StrJoin(inf, " or "));
  }
  return out;
}

grpc::Status Authorizer::Check(const grpc::ServerContextBase& context,
                               Access access, absl::string_view method) const {
  if (access == Access::kInference && options_.inference_open) {
    return grpc::Status::OK;
  }
  if (access == Access::kAdmin && !admin_protected()) return grpc::Status::OK;
  bool presented = false;
  // Bearer token.
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    presented = true;
    absl::string_view value(it->second.data(), it->second.size());
    value = absl::StripAsciiWhitespace(value);
    if (value.size() > 7 &&
        absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) {
      const absl::string_view token =
          absl::StripAsciiWhitespace(value.substr(7));
      if (admin_tokens_ && admin_tokens_->Contains(token)) {
        return grpc::Status::OK;
      }
      if (access == Access::kInference && inference_tokens_ &&
          inference_tokens_->Contains(token)) {
        return grpc::Status::OK;
      }
    }
  }
  // Client certificate: only present in the auth context once the TLS
  // handshake verified it against the client CA.
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (options_.client_certificates && auth != nullptr &&
      auth->IsPeerAuthenticated()) {
    std::vector<grpc::string_ref> ids = auth->GetPeerIdentity();
    if (!ids.empty()) {
      presented = true;
      if (access == Access::kInference) return grpc::Status::OK;
      for (const grpc::string_ref& id : ids) {
        const absl::string_view v(id.data(), id.size());
        if (std::find(options_.admin_identities.begin(),
                      options_.admin_identities.end(),
                      v) != options_.admin_identities.end()) {
          return grpc::Status::OK;
        }
      }
    }
  }
  const char* what = access == Access::kAdmin ? "admin RPC" : "RPC";
  if (!presented) {
    return grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        absl::StrCat(
            what, " ", method,
            " needs credentials: 'authorization: Bearer <token>' "
            "metadata",
            options_.client_certificates ? " or a client certificate" : ""));
  }
  return grpc::Status(
      grpc::StatusCode::PERMISSION_DENIED,
      absl::StrCat("the credentials presented are not allowed to call ", what,
                   " ", method));
}

}  // namespace flexor::server
