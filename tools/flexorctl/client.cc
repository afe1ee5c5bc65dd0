#include "tools/flexorctl/client.h"

#include "absl/strings/str_cat.h"
#include "base/grpc_status.h"

namespace flexor::tools {

Client::Client(const std::string& target, absl::Duration timeout)
    : target_(target), timeout_(timeout) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  channel_ = grpc::CreateCustomChannel(
      target, grpc::InsecureChannelCredentials(), args);
  stub_ = inference::GRPCInferenceService::NewStub(channel_);
}

absl::Status Client::FromGrpc(const grpc::Status& status) const {
  return ToAbslStatus(status, absl::StrCat("server ", target_));
}

}  // namespace flexor::tools
