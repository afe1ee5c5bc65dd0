// Authentication and transport security against the real server process,
// over real TLS with certificates made by the `openssl` CLI in the test:
// admin RPCs without credentials get UNAUTHENTICATED, with wrong ones
// PERMISSION_DENIED; inference stays open when configured so; mutual TLS
// identities; a plaintext client against a TLS server fails cleanly; tokens
// rotate without a restart; flexorctl speaks TLS and tokens.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"

namespace flexor::server::testing {
namespace {

using grpc::StatusCode;

constexpr char kAdminToken[] = "admin-token-0123456789abcdef";
constexpr char kReaderToken[] = "reader-token-0123456789abcdef";

// A CA, a server certificate for localhost/127.0.0.1, client certificates
// "trainer.flexor" and "reader.flexor" from the same CA, and "rogue.flexor"
// from another CA.
class Pki {
 public:
  Pki() {
    const std::string& d = dir_.path();
    WriteText(d + "/server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    std::string script = absl::StrCat(
        "set -e; cd ", d, "; ", MakeCa("ca"), MakeCa("rogue"),
        Issue("server", "ca", "server.ext"), Client("trainer", "ca"),
        Client("reader", "ca"), Client("rogue-client", "rogue"));
    auto [rc, out] = RunCommand("sh -c '" + script + "'");
    ok_ = rc == 0;
    EXPECT_TRUE(ok_) << out;
  }
  bool ok() const { return ok_; }
  std::string Path(const std::string& name) const {
    return dir_.path() + "/" + name;
  }
  // Client options: TLS to the server, optional client certificate.
  ClientAuthOptions Tls(const std::string& client = "") const {
    ClientAuthOptions o;
    o.ca_file = Path("ca.pem");
    o.server_name = "localhost";
    if (!client.empty()) {
      o.cert_file = Path(client + ".pem");
      o.key_file = Path(client + ".key");
    }
    return o;
  }
  std::vector<std::string> ServerFlags() const {
    return {"--tls-cert-file=" + Path("server.pem"),
            "--tls-key-file=" + Path("server.key")};
  }

 private:
  static std::string MakeCa(const std::string& name) {
    return absl::StrCat(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
        "-nodes -days 2 -subj /CN=",
        name, "-test-ca -keyout ", name, ".key -out ", name,
        ".pem 2>/dev/null; ");
  }
  static std::string Issue(const std::string& name, const std::string& ca,
                           const std::string& ext) {
    return absl::StrCat(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-subj /CN=",
        name, " -keyout ", name, ".key -out ", name,
        ".csr 2>/dev/null; openssl x509 -req -in ", name, ".csr -CA ", ca,
        ".pem -CAkey ", ca, ".key -CAcreateserial -days 2 -extfile ", ext,
        " -out ", name, ".pem 2>/dev/null; ");
  }
  std::string Client(const std::string& name, const std::string& ca) {
    const std::string id =
        absl::StartsWith(name, "rogue") ? "rogue.flexor" : name + ".flexor";
    WriteText(Path(name + ".ext"), absl::StrCat("subjectAltName=DNS:", id,
                                                "\nextendedKeyUsage="
                                                "clientAuth\n"));
    return Issue(name, ca, name + ".ext");
  }

  TempDir dir_;
  bool ok_ = false;
};

grpc::Status Load(inference::GRPCInferenceService::Stub& stub,
                  const std::string& model, const std::string& upload = "") {
  inference::RepositoryModelLoadRequest request;
  request.set_model_name(model);
  if (!upload.empty()) {
    (*request.mutable_parameters())["file:2/model.flexor"].set_bytes_param(
        upload);
  }
  inference::RepositoryModelLoadResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  return stub.RepositoryModelLoad(&context, request, &response);
}

grpc::Status Unload(inference::GRPCInferenceService::Stub& stub,
                    const std::string& model) {
  inference::RepositoryModelUnloadRequest request;
  request.set_model_name(model);
  inference::RepositoryModelUnloadResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  return stub.RepositoryModelUnload(&context, request, &response);
}

grpc::Status SetLogInfo(inference::GRPCInferenceService::Stub& stub) {
  inference::LogSettingsRequest request;
  (*request.mutable_settings())["log_info"].set_bool_param(true);
  inference::LogSettingsResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  return stub.LogSettings(&context, request, &response);
}

// One ModelStreamInfer request; the stream's final status.
grpc::Status StreamOnce(inference::GRPCInferenceService::Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(15));
  auto stream = stub.ModelStreamInfer(&context);
  stream->Write(MakeInferRequest("lenet", RandomImages(1, 3), 1));
  stream->WritesDone();
  inference::ModelStreamInferResponse response;
  while (stream->Read(&response)) {
  }
  return stream->Finish();
}

grpc::Status InferOnce(inference::GRPCInferenceService::Stub& stub) {
  inference::ModelInferResponse response;
  return Infer(stub, MakeInferRequest("lenet", RandomImages(1, 3), 1),
               &response, 15000);
}

std::unique_ptr<inference::GRPCInferenceService::Stub> StubOf(
    const ServerProcess& server, const ClientAuthOptions& client) {
  return inference::GRPCInferenceService::NewStub(server.Channel(client));
}

class AuthTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki_.ok());
    WriteModel(repo_.path(), "lenet", 1, ModelBytes(1));
    WriteText(token_dir_.path() + "/admin", absl::StrCat(kAdminToken, "\n"));
    WriteText(token_dir_.path() + "/reader", absl::StrCat(kReaderToken, "\n"));
    WriteText(token_dir_.path() + "/wrong", "wrong-token-0123456789abcdef\n");
  }
  std::string Token(const std::string& name) const {
    return token_dir_.path() + "/" + name;
  }
  ClientAuthOptions TlsToken(const std::string& token) const {
    ClientAuthOptions o = pki_.Tls();
    o.token_file = Token(token);
    return o;
  }
  std::unique_ptr<ServerProcess> Start(std::vector<std::string> flags) {
    std::vector<std::string> all = pki_.ServerFlags();
    all.push_back("--model-control-mode=explicit");
    all.push_back("--load-model=lenet");
    all.insert(all.end(), flags.begin(), flags.end());
    return std::make_unique<ServerProcess>(repo_.path(), all, pki_.Tls());
  }

  Pki pki_;
  TempDir repo_;
  TempDir token_dir_;
};

TEST_F(AuthTlsTest, BearerTokenGuardsAdminRpcsOverTls) {
  std::unique_ptr<ServerProcess> server =
      Start({"--auth-token-file=" + Token("admin")});
  ASSERT_TRUE(server->started());
  EXPECT_TRUE(absl::StrContains(server->Log(), "transport: TLS"));
  EXPECT_TRUE(absl::StrContains(server->Log(), "admin RPCs"));

  // No credentials: UNAUTHENTICATED, for loads, uploads and unloads; the
  // upload wrote nothing.
  grpc::Status s = Load(server->stub(), "lenet");
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "Bearer"));
  s = Load(server->stub(), "lenet", ModelBytes(2));
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_FALSE(std::ifstream(repo_.path() + "/lenet/2/model.flexor").good());
  s = Unload(server->stub(), "lenet");
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED) << s.error_message();
  s = SetLogInfo(server->stub());
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED) << s.error_message();

  // A wrong token, and an inference-only token: PERMISSION_DENIED.
  auto wrong = StubOf(*server, TlsToken("wrong"));
  s = Load(*wrong, "lenet", ModelBytes(2));
  EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_FALSE(std::ifstream(repo_.path() + "/lenet/2/model.flexor").good());

  // Inference is open (the default), with or without a token.
  EXPECT_TRUE(InferOnce(server->stub()).ok());
  EXPECT_TRUE(StreamOnce(server->stub()).ok());
  EXPECT_TRUE(InferOnce(*wrong).ok());

  // The right token: the upload is published and served.
  auto admin = StubOf(*server, TlsToken("admin"));
  EXPECT_TRUE(SetLogInfo(*admin).ok());
  s = Load(*admin, "lenet", ModelBytes(2));
  EXPECT_TRUE(s.ok()) << s.error_message() << server->Log();
  EXPECT_TRUE(std::ifstream(repo_.path() + "/lenet/2/model.flexor").good());
  inference::ModelInferResponse response;
  ASSERT_TRUE(
      Infer(*admin, MakeInferRequest("lenet", RandomImages(1, 3), 1), &response)
          .ok());
  EXPECT_EQ(response.model_version(), "2");

  // Rotation: the file now holds only a new token; within a few seconds the
  // old one is refused and the new one accepted, with no restart.
  WriteText(Token("admin"), "# rotated\nrotated-token-0123456789abcdef\n");
  WriteText(Token("rotated"), "rotated-token-0123456789abcdef\n");
  auto rotated = StubOf(*server, TlsToken("rotated"));
  grpc::Status old_token, new_token;
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    old_token = Load(*admin, "lenet");
    new_token = Load(*rotated, "lenet");
    if (!old_token.ok() && new_token.ok()) break;
  }
  EXPECT_EQ(old_token.error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(new_token.ok()) << new_token.error_message();
  EXPECT_TRUE(absl::StrContains(server->Log(), "re-read token file"));
}

TEST_F(AuthTlsTest, PlaintextClientAgainstTlsServerFailsCleanly) {
  std::unique_ptr<ServerProcess> server =
      Start({"--auth-token-file=" + Token("admin")});
  ASSERT_TRUE(server->started());
  ClientAuthOptions plain;  // no CA: plaintext
  plain.token_file = Token("admin");
  auto stub = StubOf(*server, plain);
  inference::ServerLiveRequest request;
  inference::ServerLiveResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  grpc::Status s = stub->ServerLive(&context, request, &response);
  EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE) << s.error_message();
  // The server is unharmed.
  EXPECT_TRUE(InferOnce(server->stub()).ok());
  EXPECT_EQ(kill(server->pid(), 0), 0);
}

TEST_F(AuthTlsTest, MutualTlsIdentitiesAndClosedInference) {
  std::unique_ptr<ServerProcess> server =
      Start({"--tls-client-ca-file=" + pki_.Path("ca.pem"),
             "--auth-admin-identities=trainer.flexor",
             "--auth-inference=authenticated",
             "--auth-inference-token-file=" + Token("reader")});
  ASSERT_TRUE(server->started());

  // Allowed identity: admin and inference.
  auto trainer = StubOf(*server, pki_.Tls("trainer"));
  grpc::Status s = Load(*trainer, "lenet");
  EXPECT_TRUE(s.ok()) << s.error_message() << server->Log();
  EXPECT_TRUE(InferOnce(*trainer).ok());

  // A verified certificate that is not on the list: inference only.
  auto reader = StubOf(*server, pki_.Tls("reader"));
  s = Load(*reader, "lenet");
  EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_TRUE(InferOnce(*reader).ok());

  // No certificate, no token: nothing at all.
  s = Load(server->stub(), "lenet");
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED) << s.error_message();
  s = InferOnce(server->stub());
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED) << s.error_message();
  s = StreamOnce(server->stub());
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_TRUE(StreamOnce(*reader).ok());

  // An inference token: inference, not admin.
  auto reader_token = StubOf(*server, TlsToken("reader"));
  EXPECT_TRUE(InferOnce(*reader_token).ok());
  s = Load(*reader_token, "lenet");
  EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << s.error_message();

  // A certificate from another CA fails the handshake.
  auto rogue = StubOf(*server, pki_.Tls("rogue-client"));
  s = InferOnce(*rogue);
  EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE) << s.error_message();
  s = Load(*rogue, "lenet");
  EXPECT_NE(s.error_code(), StatusCode::OK);
  EXPECT_TRUE(InferOnce(*trainer).ok());
}

TEST_F(AuthTlsTest, FlexorctlUsesTlsAndTokens) {
  std::unique_ptr<ServerProcess> server =
      Start({"--auth-token-file=" + Token("admin")});
  ASSERT_TRUE(server->started());
  const std::string model_file = token_dir_.path() + "/upload.flexor";
  WriteText(model_file, ModelBytes(3));
  const std::string base = absl::StrCat(
      FLEXORCTL_BINARY, " --server=127.0.0.1:", server->grpc_port(),
      " --tls-ca-file=", pki_.Path("ca.pem"), " --tls-server-name=localhost");
  auto [rc, out] =
      RunCommand(absl::StrCat(base, " --version=5 load lenet ", model_file));
  EXPECT_NE(rc, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "UNAUTHENTICATED") ||
              absl::StrContains(out, "needs credentials"))
      << out;
  std::tie(rc, out) =
      RunCommand(absl::StrCat(base, " --token-file=", Token("admin"),
                              " --version=5 load lenet ", model_file));
  EXPECT_EQ(rc, 0) << out << server->Log();
  std::tie(rc, out) = RunCommand(absl::StrCat(base, " list"));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "lenet")) << out;
}

TEST_F(AuthTlsTest, BadCredentialFilesFailTheStartWithAClearMessage) {
  // The key of another certificate.
  auto [rc, out] = RunCommand(absl::StrCat(
      FLEXOR_SERVER_BINARY, " --model-repository=", repo_.path(),
      " --grpc-port=0 --metrics-port=-1 --tls-cert-file=",
      pki_.Path("server.pem"), " --tls-key-file=", pki_.Path("reader.key")));
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, "is not the key of the certificate"))
      << out;
  // A token too short to be safe.
  WriteText(Token("short"), "abc\n");
  std::tie(rc, out) = RunCommand(absl::StrCat(
      FLEXOR_SERVER_BINARY, " --model-repository=", repo_.path(),
      " --grpc-port=0 --metrics-port=-1 --auth-token-file=", Token("short")));
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, "shorter than")) << out;
  // Identities without client certificates mean nothing.
  std::tie(rc, out) = RunCommand(absl::StrCat(
      FLEXOR_SERVER_BINARY, " --model-repository=", repo_.path(),
      " --grpc-port=0 --metrics-port=-1 --auth-admin-identities=x"));
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, "needs client certificates")) << out;
}

TEST_F(AuthTlsTest, OpenAdminRpcsOnAPublicAddressAreWarnedAbout) {
  ServerProcess server(repo_.path(),
                       {"--address=0.0.0.0", "--model-control-mode=explicit"});
  ASSERT_TRUE(server.started());
  EXPECT_TRUE(absl::StrContains(server.Log(), "are OPEN to anyone"))
      << server.Log();
}

}  // namespace
}  // namespace flexor::server::testing
