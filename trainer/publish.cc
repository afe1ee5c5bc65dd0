#include "trainer/publish.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "base/grpc_status.h"
#include "base/repository_layout.h"
#include "engine/format/model_signature.h"
#include "engine/format/model_writer.h"
#include "proto/grpc_service.grpc.pb.h"
#include "unistd.h"

namespace flexor::trainer {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// The detached signature next to `model_path`: its text, "" if there is
// none.
absl::StatusOr<std::string> SignatureOf(const std::string& model_path) {
  absl::StatusOr<std::string> sig =
      ReadSmallFile(model_path + kSignatureSuffix, kMaxSignatureFileBytes);
  if (absl::IsNotFound(sig.status())) return std::string();
  return sig;
}

int64_t LargestVersion(const fs::path& model_dir) {
  int64_t largest = 0;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(model_dir, error)) {
    int64_t version = 0;
    if (entry.is_directory() &&
        absl::SimpleAtoi(entry.path().filename().string(), &version) &&
        version <= kMaxModelVersion) {
      largest = std::max(largest, version);
    }
  }
  return largest;
}

// The version after `largest`, or an error when the repository already
// holds the largest version the server accepts.
absl::StatusOr<int64_t> NextVersion(int64_t largest,
                                    const std::string& model_name) {
  if (largest >= kMaxModelVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", model_name, "' already has version ", largest,
                     ", the largest allowed (", kMaxModelVersion, ")"));
  }
  return largest + 1;
}

}  // namespace

absl::StatusOr<std::string> PublishToDirectory(
    const std::string& model_path, const std::string& repository_root,
    const std::string& model_name, const std::string& config_text) {
  absl::StatusOr<std::string> bytes = ReadWholeFile(model_path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<std::string> signature = SignatureOf(model_path);
  if (!signature.ok()) return signature.status();
  const fs::path model_dir = fs::path(repository_root) / model_name;
  std::error_code error;
  fs::create_directories(model_dir, error);
  if (error) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create ", model_dir.string(), ": ", error.message()));
  }
  const fs::path config = model_dir / "config.pbtxt";
  if (!config_text.empty() && !fs::exists(config, error)) {
    if (absl::Status s = WriteFileAtomically(config.string(), config_text);
        !s.ok()) {
      return s;
    }
  }
  // Another publisher may take the version first: retry with the next one.
  for (int attempt = 0; attempt < 10; ++attempt) {
    absl::StatusOr<int64_t> next =
        NextVersion(LargestVersion(model_dir), model_name);
    if (!next.ok()) return next.status();
    const int64_t version = *next;
    const fs::path staging =
        model_dir / absl::StrCat(".staging-", version, "-", getpid());
    fs::remove_all(staging, error);
    fs::create_directories(staging, error);
    if (error) {
      return absl::PermissionDeniedError(absl::StrCat(
          "cannot create ", staging.string(), ": ", error.message()));
    }
    absl::Status written =
        WriteFileAtomically((staging / kModelFileName).string(), *bytes);
    if (written.ok() && !signature->empty()) {
      written = WriteFileAtomically(
          (staging / absl::StrCat(kModelFileName, kSignatureSuffix)).string(),
          *signature);
    }
    if (!written.ok()) {
      fs::remove_all(staging, error);
      return written;
    }
    const fs::path target = model_dir / std::to_string(version);
    // rename(2) of a directory fails if the target exists and is non-empty.
    if (!fs::exists(target)) {
      fs::rename(staging, target, error);
      if (!error) return (target / kModelFileName).string();
    }
    fs::remove_all(staging, error);
  }
  return absl::AbortedError(
      absl::StrCat("could not claim a new version under ", model_dir.string()));
}

absl::StatusOr<int64_t> PublishToServer(const std::string& model_path,
                                        const std::string& address,
                                        const std::string& model_name,
                                        double timeout_seconds,
                                        const server::ClientAuthOptions& auth) {
  absl::StatusOr<std::string> bytes = ReadWholeFile(model_path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<std::string> signature = SignatureOf(model_path);
  if (!signature.ok()) return signature.status();
  grpc::ChannelArguments arguments;
  arguments.SetMaxSendMessageSize(-1);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      server::MakeClientChannel(address, auth, arguments);
  if (!channel.ok()) return channel.status();
  auto stub = inference::GRPCInferenceService::NewStub(*channel);
  const auto deadline = [timeout_seconds] {
    return std::chrono::system_clock::now() +
           std::chrono::milliseconds(
               static_cast<int64_t>(timeout_seconds * 1000));
  };

  inference::RepositoryIndexRequest index_request;
  inference::RepositoryIndexResponse index_response;
  grpc::ClientContext index_context;
  index_context.set_deadline(deadline());
  absl::Status status = ToAbslStatus(
      stub->RepositoryIndex(&index_context, index_request, &index_response),
      absl::StrCat("RepositoryIndex on ", address));
  if (!status.ok()) return status;
  int64_t largest = 0;
  for (const auto& entry : index_response.models()) {
    int64_t version = 0;
    if (entry.name() == model_name &&
        absl::SimpleAtoi(entry.version(), &version)) {
      largest = std::max(largest, version);
    }
  }
  absl::StatusOr<int64_t> next = NextVersion(largest, model_name);
  if (!next.ok()) return next.status();
  const int64_t version = *next;

  inference::RepositoryModelLoadRequest load_request;
  load_request.set_model_name(model_name);
  (*load_request.mutable_parameters())[absl::StrCat("file:", version, "/",
                                                    kModelFileName)]
      .set_bytes_param(*bytes);
  if (!signature->empty()) {
    (*load_request
          .mutable_parameters())[absl::StrCat("file:", version, "/",
                                              kModelFileName, kSignatureSuffix)]
        .set_bytes_param(*signature);
  }
  inference::RepositoryModelLoadResponse load_response;
  grpc::ClientContext load_context;
  load_context.set_deadline(deadline());
  status = ToAbslStatus(
      stub->RepositoryModelLoad(&load_context, load_request, &load_response),
      absl::StrCat("RepositoryModelLoad of ", model_name, " version ", version,
                   " on ", address));
  if (!status.ok()) return status;
  return version;
}

absl::StatusOr<std::string> SignModelFile(const std::string& model_path,
                                          const std::string& key_path) {
  absl::StatusOr<ModelSigner> signer =
      ModelSigner::FromPrivateKeyFile(key_path);
  if (!signer.ok()) return signer.status();
  absl::StatusOr<std::string> bytes = ReadWholeFile(model_path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<std::string> signature = signer->Sign(*bytes);
  if (!signature.ok()) return signature.status();
  if (absl::Status s =
          WriteFileAtomically(model_path + kSignatureSuffix, *signature);
      !s.ok()) {
    return s;
  }
  return signer->key_id();
}

}  // namespace flexor::trainer
