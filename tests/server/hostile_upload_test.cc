// The attacks of the issue 12 audit, run against the real server process:
// hostile model files uploaded over gRPC or dropped into a polled repository
// end in a clear error, and the server keeps serving the good model.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/testing/hostile_models.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"

namespace flexor::server::testing {
namespace {

using grpc::StatusCode;

grpc::Status Upload(ServerProcess& server, const std::string& model,
                    int version, const std::string& bytes,
                    const std::string& config = "") {
  inference::RepositoryModelLoadRequest request;
  request.set_model_name(model);
  (*request
        .mutable_parameters())[absl::StrCat("file:", version, "/model.flexor")]
      .set_bytes_param(bytes);
  if (!config.empty()) {
    (*request.mutable_parameters())["config"].set_string_param(config);
  }
  inference::RepositoryModelLoadResponse response;
  grpc::ClientContext context;
  return server.stub().RepositoryModelLoad(&context, request, &response);
}

// The good model answers and the process is alive.
void ExpectServing(ServerProcess& server, const std::string& model,
                   const std::string& version) {
  inference::ModelInferResponse response;
  grpc::Status status = Infer(
      server.stub(), MakeInferRequest(model, RandomImages(2, 5), 2), &response);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << server.Log();
  EXPECT_EQ(response.model_version(), version);
  EXPECT_EQ(kill(server.pid(), 0), 0);
}

// Each test starts its own server on a fresh repository holding the small
// LeNet "lenet" version 1 (ModelBytes(1)), explicit mode.
class HostileUploadTest : public ::testing::Test {
 protected:
  ServerProcess& StartLenet(std::vector<std::string> flags = {}) {
    WriteModel(repo_.path(), "lenet", 1, ModelBytes(1));
    flags.insert(flags.begin(),
                 {"--model-control-mode=explicit", "--load-model=lenet"});
    server_ = std::make_unique<ServerProcess>(repo_.path(), flags);
    return *server_;
  }
  TempDir repo_;
  std::unique_ptr<ServerProcess> server_;
};

// The model's output for `input` (batch 1); fails the test on an error.
std::vector<float> Classify(ServerProcess& server, const std::string& model,
                            const std::vector<float>& input) {
  inference::ModelInferResponse response;
  grpc::Status status =
      Infer(server.stub(), MakeInferRequest(model, input, 1), &response);
  EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << server.Log();
  return OutputOf(response);
}

TEST_F(HostileUploadTest, UploadsAreRefusedAndTheServerKeepsServing) {
  ServerProcess& server = StartLenet();
  ASSERT_TRUE(server.started());

  // Element count that wraps int64: refused by the compiler.
  grpc::Status status = Upload(server, "evil", 1, OverflowingInputShapeModel());
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("inputs[0].shape"), std::string::npos)
      << status.error_message();

  // 256 MiB of activations per sample: refused by the activation budget,
  // with the batch size that would fit (none at the default budget).
  status =
      Upload(server, "evil", 1, ActivationBombModel(), "max_batch_size: 4096");
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("--max_activation_bytes"),
            std::string::npos)
      << status.error_message();

  // The same bomb as a new version of the served model: v1 keeps serving.
  status = Upload(server, "lenet", 2, ActivationBombModel());
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  ExpectServing(server, "lenet", "1");
  EXPECT_EQ(server.Terminate(), 0);
}

TEST_F(HostileUploadTest, BudgetNamesTheBatchSizeThatFits) {
  // 600 MiB fits two samples of the bomb (about 256 MiB each) but not 32.
  ServerProcess& server =
      StartLenet({"--max-activation-bytes=629145600", "--threads=1"});
  ASSERT_TRUE(server.started());
  grpc::Status status = Upload(server, "bomb", 1, ActivationBombModel());
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("max_batch_size 2 would fit"),
            std::string::npos)
      << status.error_message();
  ExpectServing(server, "lenet", "1");
  EXPECT_EQ(server.Terminate(), 0);
}

TEST_F(HostileUploadTest, PolledRepositoryWithHostileFilesStillStarts) {
  WriteModel(repo_.path(), "lenet", 1, ModelBytes(1));
  WriteModel(repo_.path(), "overflow", 1, OverflowingInputShapeModel());
  WriteModel(repo_.path(), "bomb", 1, ActivationBombModel());
  ServerProcess server(
      repo_.path(), {"--model-control-mode=poll", "--repository-poll-secs=1"});
  ASSERT_TRUE(server.started()) << server.Log();
  ExpectServing(server, "lenet", "1");
  for (const char* name : {"overflow", "bomb"}) {
    inference::ModelInferResponse response;
    grpc::Status s =
        Infer(server.stub(), MakeInferRequest(name, RandomImages(1, 1), 1),
              &response);
    EXPECT_FALSE(s.ok()) << name;
  }
  EXPECT_EQ(server.Terminate(), 0);
}

TEST_F(HostileUploadTest, ServedFileTruncatedOrRewrittenInPlace) {
  ServerProcess& server = StartLenet();
  ASSERT_TRUE(server.started());
  const std::vector<float> input = RandomImages(1, 3);
  const std::vector<float> before = Classify(server, "lenet", input);
  const std::string path = repo_.path() + "/lenet/1/model.flexor";
  // In place: truncate to a page, then scribble over what is left. A mapped
  // file would raise SIGBUS or change the outputs; an owned copy does not.
  ASSERT_EQ(truncate(path.c_str(), 4096), 0);
  {
    std::FILE* f = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    const std::string junk(4096, '\x5a');
    std::fwrite(junk.data(), 1, junk.size(), f);
    std::fclose(f);
  }
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Classify(server, "lenet", input), before);
  }
  EXPECT_EQ(server.Terminate(), 0);
}

TEST_F(HostileUploadTest, StalledMetricsConnectionsDoNotBlindScrapes) {
  ServerProcess& server = StartLenet();
  ASSERT_TRUE(server.started());
  // Two clients send half a request each and then go quiet.
  std::vector<int> stalled;
  for (int i = 0; i < 2; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server.metrics_port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const char partial[] = "GET /metrics HTTP/1.1\r\nHost: x";
    ASSERT_GT(write(fd, partial, sizeof(partial) - 1), 0);
    stalled.push_back(fd);
  }
  // A real scrape still answers, within curl's 3 s limit.
  auto [rc, out] = RunCommand(absl::StrCat(
      "curl -s -m 3 http://127.0.0.1:", server.metrics_port(), "/metrics"));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("flexor_models_loaded"), std::string::npos);
  for (int fd : stalled) close(fd);
  EXPECT_EQ(server.Terminate(), 0);
}

TEST_F(HostileUploadTest, VersionsAreImmutableAndConcurrentUploadsConflict) {
  const std::string v1 = ModelBytes(1);
  ServerProcess& server = StartLenet();
  ASSERT_TRUE(server.started());
  const std::vector<float> input = RandomImages(1, 3);
  const std::vector<float> before = Classify(server, "lenet", input);
  // Overwriting the served version with other weights is refused...
  grpc::Status status = Upload(server, "lenet", 1, ModelBytes(2));
  EXPECT_EQ(status.error_code(), StatusCode::ALREADY_EXISTS)
      << status.error_message();
  // ... re-sending its exact bytes is a harmless retry.
  status = Upload(server, "lenet", 1, v1);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Classify(server, "lenet", input), before);
  // Eight clients race to publish version 2 with different weights: one
  // wins, the others learn that the version exists.
  std::vector<std::string> files;
  for (int i = 0; i < 8; ++i) files.push_back(ModelBytes(100 + i));
  std::vector<grpc::Status> results(8);
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back(
        [&, i] { results[i] = Upload(server, "lenet", 2, files[i]); });
  }
  for (std::thread& t : clients) t.join();
  int ok = 0, exists = 0;
  for (const grpc::Status& r : results) {
    ok += r.ok();
    exists += r.error_code() == StatusCode::ALREADY_EXISTS;
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(exists, 7);
  ExpectServing(server, "lenet", "2");
  EXPECT_EQ(server.Terminate(), 0);
}

TEST_F(HostileUploadTest, UnknownNamesCreateNoMetricSeries) {
  ServerProcess& server = StartLenet();
  ASSERT_TRUE(server.started());
  for (int i = 0; i < 50; ++i) {
    const std::string name = absl::StrCat("nope", i);
    inference::RepositoryModelLoadRequest load;
    load.set_model_name(name);
    inference::RepositoryModelLoadResponse load_response;
    grpc::ClientContext load_context;
    EXPECT_FALSE(server.stub()
                     .RepositoryModelLoad(&load_context, load, &load_response)
                     .ok());
    inference::RepositoryModelUnloadRequest unload;
    unload.set_model_name(name);
    inference::RepositoryModelUnloadResponse unload_response;
    grpc::ClientContext unload_context;
    // Not loaded: a successful no-op (Triton), which counts nothing.
    EXPECT_TRUE(
        server.stub()
            .RepositoryModelUnload(&unload_context, unload, &unload_response)
            .ok());
    // A rejected upload under a new name: no series for it either.
    EXPECT_FALSE(Upload(server, name, 1, "not a model").ok());
  }
  const std::string metrics = server.ScrapeMetrics();
  EXPECT_EQ(metrics.find("nope"), std::string::npos);
  EXPECT_GE(MetricValue(metrics, "flexor_model_loads_total",
                        {"model=\"\"", "result=\"failure\""}),
            100);
  EXPECT_LE(MetricValue(metrics, "flexor_model_unloads_total",
                        {"model=\"\"", "result=\"failure\""}),
            0);
  ExpectServing(server, "lenet", "1");
  EXPECT_EQ(server.Terminate(), 0);
}

}  // namespace
}  // namespace flexor::server::testing
