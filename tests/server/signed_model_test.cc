// Signed models against the real server process (--model-trusted-keys,
// --require-signed-models): uploads and repository versions that are
// unsigned, tampered (checksums recomputed) or signed by an untrusted key
// are refused with a clear error while the version already serving keeps
// serving; a good signature is accepted. Keys and signatures are made with
// flexorctl keygen / model sign, as an operator would.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/format/model_signature.h"
#include "engine/testing/hostile_models.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"

namespace flexor::server::testing {
namespace {

using grpc::StatusCode;

grpc::Status Upload(ServerProcess& server, const std::string& model,
                    int version, const std::string& bytes,
                    const std::string& signature) {
  inference::RepositoryModelLoadRequest request;
  request.set_model_name(model);
  auto& params = *request.mutable_parameters();
  params[absl::StrCat("file:", version, "/model.flexor")].set_bytes_param(
      bytes);
  if (!signature.empty()) {
    params[absl::StrCat("file:", version, "/model.flexor.sig")].set_bytes_param(
        signature);
  }
  inference::RepositoryModelLoadResponse response;
  grpc::ClientContext context;
  return server.stub().RepositoryModelLoad(&context, request, &response);
}

std::string ServedVersion(ServerProcess& server) {
  return ExpectAnswers(server, "lenet").model_version();
}

class SignedModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"trusted", "other"}) {
      auto [rc, out] = RunCommand(absl::StrCat(
          FLEXORCTL_BINARY, " keygen --out=", keys_.path(), "/", name));
      ASSERT_EQ(rc, 0) << out;
    }
  }
  // The .sig text of `bytes` by key `name`, made with flexorctl model sign.
  std::string Sign(const std::string& bytes, const std::string& name) {
    const std::string file = keys_.path() + "/to-sign.flexor";
    WriteText(file, bytes);
    auto [rc, out] = RunCommand(absl::StrCat(FLEXORCTL_BINARY,
                                             " model sign --key=", keys_.path(),
                                             "/", name, ".pem ", file));
    EXPECT_EQ(rc, 0) << out;
    std::ifstream in(file + ".sig");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void WriteSigned(int version, const std::string& bytes,
                   const std::string& signature) {
    const std::string dir = absl::StrCat(repo_.path(), "/lenet/", version);
    if (!signature.empty()) {
      std::filesystem::create_directories(dir);
      WriteText(dir + "/model.flexor.sig", signature);
    }
    WriteModel(repo_.path(), "lenet", version, bytes);
  }
  std::vector<std::string> Flags() const {
    return {"--model-trusted-keys=" + keys_.path() + "/trusted.pub.pem",
            "--require-signed-models"};
  }

  TempDir keys_;
  TempDir repo_;
};

TEST_F(SignedModelTest, UploadsNeedAValidSignatureFromATrustedKey) {
  const std::string v1 = ModelBytes(1);
  WriteSigned(1, v1, Sign(v1, "trusted"));
  std::vector<std::string> flags = Flags();
  flags.push_back("--model-control-mode=explicit");
  flags.push_back("--load-model=lenet");
  ServerProcess server(repo_.path(), flags);
  ASSERT_TRUE(server.started());
  EXPECT_TRUE(absl::StrContains(server.Log(), "unsigned models are REFUSED"));
  EXPECT_EQ(ServedVersion(server), "1");

  const std::string v2 = ModelBytes(2);
  struct Case {
    const char* what;
    std::string bytes, signature, expect;
  };
  const std::vector<Case> cases = {
      {"unsigned", v2, "", "not signed"},
      {"tampered weights", TamperWeights(v2), Sign(v2, "trusted"),
       "does not match"},
      {"tampered provenance", TamperProvenance(v2), Sign(v2, "trusted"),
       "does not match"},
      {"untrusted key", v2, Sign(v2, "other"), "not a trusted key"},
      {"garbage signature", v2, "flexor-ed25519 00 AAAA", "malformed"},
  };
  for (const Case& c : cases) {
    grpc::Status s = Upload(server, "lenet", 2, c.bytes, c.signature);
    EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << c.what;
    EXPECT_TRUE(absl::StrContains(s.error_message(), c.expect))
        << c.what << ": " << s.error_message();
    EXPECT_FALSE(std::ifstream(repo_.path() + "/lenet/2/model.flexor").good())
        << c.what << " was written";
    EXPECT_EQ(ServedVersion(server), "1") << c.what;
  }
  // A signature without its model file is a malformed request.
  inference::RepositoryModelLoadRequest request;
  request.set_model_name("lenet");
  (*request.mutable_parameters())["file:2/model.flexor.sig"].set_bytes_param(
      Sign(v2, "trusted"));
  inference::RepositoryModelLoadResponse response;
  grpc::ClientContext context;
  EXPECT_EQ(server.stub()
                .RepositoryModelLoad(&context, request, &response)
                .error_code(),
            StatusCode::INVALID_ARGUMENT);

  // The good signature: published with its signature, and served.
  grpc::Status s = Upload(server, "lenet", 2, v2, Sign(v2, "trusted"));
  EXPECT_TRUE(s.ok()) << s.error_message() << server.Log();
  EXPECT_TRUE(std::ifstream(repo_.path() + "/lenet/2/model.flexor.sig").good());
  EXPECT_EQ(ServedVersion(server), "2");

  // flexorctl load sends FILE.sig along.
  const std::string v3_file = keys_.path() + "/v3.flexor";
  WriteText(v3_file, ModelBytes(3));
  auto [rc, out] = RunCommand(
      absl::StrCat(FLEXORCTL_BINARY, " --server=127.0.0.1:", server.grpc_port(),
                   " --version=3 load lenet ", v3_file));
  EXPECT_NE(rc, 0) << out;  // not signed yet
  EXPECT_TRUE(absl::StrContains(out, "not signed")) << out;
  std::tie(rc, out) = RunCommand(absl::StrCat(
      FLEXORCTL_BINARY, " model sign --key=", keys_.path(), "/trusted.pem ",
      v3_file, " && ", FLEXORCTL_BINARY,
      " model verify --pubkey=", keys_.path(), "/trusted.pub.pem ", v3_file,
      " && ", FLEXORCTL_BINARY, " --server=127.0.0.1:", server.grpc_port(),
      " --version=3 load lenet ", v3_file));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(ServedVersion(server), "3");
  std::tie(rc, out) = RunCommand(
      absl::StrCat(FLEXORCTL_BINARY, " model verify --pubkey=", keys_.path(),
                   "/other.pub.pem ", v3_file));
  EXPECT_NE(rc, 0) << out;
}

TEST_F(SignedModelTest, PolledRepositoryRefusesBadSignaturesAndKeepsServing) {
  const std::string v1 = ModelBytes(1);
  WriteSigned(1, v1, Sign(v1, "trusted"));
  std::vector<std::string> flags = Flags();
  flags.push_back("--model-control-mode=poll");
  flags.push_back("--repository-poll-secs=1");
  ServerProcess server(repo_.path(), flags);
  ASSERT_TRUE(server.started());
  EXPECT_EQ(ServedVersion(server), "1");

  // A tampered v2 carrying v2's genuine signature, then an unsigned v3
  // (one at a time: the version policy, latest:1, only tries the newest).
  auto wait_for_log = [&server](const std::string& text) {
    for (int i = 0; i < 100 && !absl::StrContains(server.Log(), text); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return absl::StrContains(server.Log(), text);
  };
  const std::string v2 = ModelBytes(2);
  WriteSigned(2, TamperWeights(v2), Sign(v2, "trusted"));
  EXPECT_TRUE(wait_for_log("does not match")) << server.Log();
  EXPECT_EQ(ServedVersion(server), "1");
  WriteSigned(3, ModelBytes(3), "");
  EXPECT_TRUE(wait_for_log("is not signed")) << server.Log();
  EXPECT_EQ(ServedVersion(server), "1");

  // A correctly signed v4 is picked up.
  const std::string v4 = ModelBytes(4);
  WriteSigned(4, v4, Sign(v4, "trusted"));
  std::string served;
  for (int i = 0; i < 100 && served != "4"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    served = ServedVersion(server);
  }
  EXPECT_EQ(served, "4") << server.Log();
}

TEST_F(SignedModelTest, RequiringSignaturesWithoutKeysFailsTheStart) {
  auto [rc, out] = RunCommand(
      absl::StrCat(FLEXOR_SERVER_BINARY, " --model-repository=", repo_.path(),
                   " --grpc-port=0 --metrics-port=-1 --require-signed-models"));
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, "needs --model-trusted-keys")) << out;
}

}  // namespace
}  // namespace flexor::server::testing
