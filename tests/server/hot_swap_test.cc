// Hot swap under concurrent load: versions are published and swapped in
// repeatedly while clients keep sending requests. No request may fail and
// every answer must be exactly the output of one complete version.
#include <atomic>
#include <cmath>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/graph/model.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"

namespace flexor::server::testing {
namespace {

constexpr int kVersions = 12;
constexpr int kClients = 4;

TEST(HotSwapTest, SwapsUnderLoadWithoutFailures) {
  TempDir repo;
  std::vector<std::string> files(kVersions + 1);
  for (int v = 1; v <= kVersions; ++v) files[v] = ModelBytes(1000 + v);
  WriteModel(repo.path(), "swap", 1, files[1]);
  ServerProcess server(
      repo.path(),
      {"--model-control-mode=explicit", "--load-model=swap", "--threads=2",
       "--dynamic-batching=true", "--max-queue-delay-us=100"});
  ASSERT_TRUE(server.started());

  // expected[v][client]: the engine's answer of version v on client's input.
  std::vector<std::vector<float>> inputs(kClients);
  std::vector<std::vector<std::vector<float>>> expected(kVersions + 1);
  for (int c = 0; c < kClients; ++c) inputs[c] = RandomImages(1, 500 + c);
  for (int v = 1; v <= kVersions; ++v) {
    auto file = ModelFile::FromBytes(files[v], "expected");
    ASSERT_TRUE(file.ok());
    auto model = Model::Compile(*file);
    ASSERT_TRUE(model.ok());
    for (int c = 0; c < kClients; ++c) {
      std::vector<float> out(10);
      ASSERT_TRUE((*model)->Run(inputs[c].data(), 1, out.data()).ok());
      expected[v].push_back(out);
    }
  }

  std::atomic<bool> stop{false};
  std::atomic<int64_t> ok{0}, failed{0}, mismatched{0};
  absl::Mutex mu;
  std::map<int, int64_t> answers_by_version;
  std::string first_error;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      const inference::ModelInferRequest request =
          MakeInferRequest("swap", inputs[c], 1);
      while (!stop.load()) {
        inference::ModelInferResponse response;
        grpc::Status status = Infer(server.stub(), request, &response);
        if (!status.ok()) {
          failed.fetch_add(1);
          absl::MutexLock lock(&mu);
          if (first_error.empty()) first_error = status.error_message();
          continue;
        }
        int version = 0;
        const std::vector<float> out = OutputOf(response);
        bool match = absl::SimpleAtoi(response.model_version(), &version) &&
                     version >= 1 && version <= kVersions && out.size() == 10;
        for (int i = 0; match && i < 10; ++i) {
          match = std::fabs(out[i] - expected[version][c][i]) <=
                  1e-5f + 1e-4f * std::fabs(expected[version][c][i]);
        }
        (match ? ok : mismatched).fetch_add(1);
        absl::MutexLock lock(&mu);
        ++answers_by_version[version];
      }
    });
  }

  auto load = [&](int version, const std::string& bytes) {
    inference::RepositoryModelLoadRequest request;
    request.set_model_name("swap");
    (*request.mutable_parameters())[absl::StrCat("file:", version,
                                                 "/model.flexor")]
        .set_bytes_param(bytes);
    inference::RepositoryModelLoadResponse response;
    grpc::ClientContext context;
    return server.stub().RepositoryModelLoad(&context, request, &response);
  };
  for (int v = 2; v <= kVersions; ++v) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    grpc::Status status = load(v, files[v]);
    ASSERT_TRUE(status.ok())
        << "version " << v << ": " << status.error_message();
    if (v % 4 == 0) {  // A corrupt publish in between changes nothing.
      std::string corrupt = files[v];
      corrupt[corrupt.size() - 100] ^= 0x01;
      EXPECT_EQ(load(v + 100, corrupt).error_code(),
                grpc::StatusCode::INVALID_ARGUMENT);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop.store(true);
  for (std::thread& t : clients) t.join();

  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_EQ(mismatched.load(), 0);
  EXPECT_GT(ok.load(), 100);
  // Answers came from many versions, ending on the last one.
  EXPECT_GE(answers_by_version.size(), static_cast<size_t>(kVersions / 2));
  EXPECT_GT(answers_by_version[kVersions], 0);

  // Old versions are gone: one version loaded, and no series of version 1.
  const std::string metrics = server.ScrapeMetrics();
  EXPECT_EQ(MetricValue(metrics, "flexor_model_versions_loaded", {}), 1);
  EXPECT_EQ(MetricValue(metrics, "flexor_model_file_bytes",
                        {"model=\"swap\"", "version=\"1\""}),
            -1);
  EXPECT_EQ(MetricValue(metrics, "flexor_model_loads_total",
                        {"model=\"swap\"", "result=\"failure\""}),
            kVersions / 4 - (kVersions % 4 == 0 ? 0 : 0));
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
}

}  // namespace
}  // namespace flexor::server::testing
