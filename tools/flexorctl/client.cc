#include "tools/flexorctl/client.h"

#include "absl/strings/str_cat.h"
#include "base/grpc_status.h"

namespace flexor::tools {

namespace {

grpc::ChannelArguments Arguments() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  return args;
}

}  // namespace

Client::Client(const std::string& target, absl::Duration timeout,
               const server::ClientAuthOptions& auth)
    : target_(target), timeout_(timeout) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      server::MakeClientChannel(target, auth, Arguments());
  // CheckClientAuth ran first; should the files have vanished since, the
  // channel is plaintext without a token and the server says what is wrong.
  channel_ = channel.ok()
                 ? *std::move(channel)
                 : grpc::CreateCustomChannel(
                       target, grpc::InsecureChannelCredentials(), Arguments());
  stub_ = inference::GRPCInferenceService::NewStub(channel_);
}

absl::Status CheckClientAuth(const std::string& target,
                             const server::ClientAuthOptions& auth) {
  return server::MakeClientChannel(target, auth, Arguments()).status();
}

absl::Status Client::FromGrpc(const grpc::Status& status) const {
  return ToAbslStatus(status, absl::StrCat("server ", target_));
}

}  // namespace flexor::tools
