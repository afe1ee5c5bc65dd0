// A thin synchronous client of inference.GRPCInferenceService for flexorctl.
#ifndef FLEXOR_TOOLS_FLEXORCTL_CLIENT_H_
#define FLEXOR_TOOLS_FLEXORCTL_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/grpc_service.grpc.pb.h"
#include "server/auth/tls.h"

namespace flexor::tools {

class Client {
 public:
  // `auth`: TLS files and bearer token (checked by flexorctl's main first,
  // see CheckClientAuth).
  Client(const std::string& target, absl::Duration timeout,
         const server::ClientAuthOptions& auth = {});

  inference::GRPCInferenceService::Stub& stub() { return *stub_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  // Calls `method` with a fresh context carrying the deadline; a failed RPC
  // becomes an absl::Status naming the server.
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(
      grpc::Status (inference::GRPCInferenceService::Stub::*method)(
          grpc::ClientContext*, const Req&, Resp*),
      const Req& request) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    Resp response;
    grpc::Status status = ((*stub_).*method)(&context, request, &response);
    if (!status.ok()) return FromGrpc(status);
    return response;
  }

 private:
  absl::Status FromGrpc(const grpc::Status& status) const;

  std::string target_;
  absl::Duration timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

// Whether `auth` can make a channel (files readable, key matches).
absl::Status CheckClientAuth(const std::string& target,
                             const server::ClientAuthOptions& auth);

}  // namespace flexor::tools

#endif  // FLEXOR_TOOLS_FLEXORCTL_CLIENT_H_
