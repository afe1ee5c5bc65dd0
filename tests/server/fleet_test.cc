// Many models per server (issue 14): startup that answers health before the
// models are loaded, and the memory budget (load on demand, LRU eviction,
// pinned models), against the real flexor_server process over gRPC.
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/microkernels.h"
#include "gtest/gtest.h"
#include "proto/health.grpc.pb.h"
#include "tests/server/server_process.h"

namespace flexor::server::testing {
namespace {

using ::grpc::StatusCode;

// Must match kVersionFixedCostBytes (server/registry/model_manager.h): what
// one resident version is charged on top of its file.
constexpr int64_t kFixedCost = 40 << 10;

bool ServerReady(ServerProcess& server) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  inference::ServerReadyRequest request;
  inference::ServerReadyResponse response;
  EXPECT_TRUE(server.stub().ServerReady(&context, request, &response).ok());
  return response.ready();
}

bool ModelReady(ServerProcess& server, const std::string& model) {
  grpc::ClientContext context;
  inference::ModelReadyRequest request;
  request.set_name(model);
  inference::ModelReadyResponse response;
  EXPECT_TRUE(server.stub().ModelReady(&context, request, &response).ok());
  return response.ready();
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(
    ServerProcess& server, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(server.channel());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.status();
}

// Models resident now (RepositoryIndex entries that are READY).
std::vector<std::string> Resident(ServerProcess& server) {
  grpc::ClientContext context;
  inference::RepositoryIndexRequest request;
  inference::RepositoryIndexResponse response;
  EXPECT_TRUE(server.stub().RepositoryIndex(&context, request, &response).ok());
  std::vector<std::string> out;
  for (const auto& m : response.models()) {
    if (m.state() == "READY") out.push_back(m.name());
  }
  return out;
}

double Metric(ServerProcess& server, const std::string& name,
              const std::vector<std::string>& labels = {}) {
  return MetricValue(server.ScrapeMetrics(), name, labels);
}

// Infers model `name` (built from `seed`) and checks the answer against the
// engine's own output.
void ExpectInfers(ServerProcess& server, const std::string& name,
                  uint64_t seed) {
  const std::vector<float> input = RandomImages(1, seed + 100);
  inference::ModelInferResponse response;
  grpc::Status status =
      Infer(server.stub(), MakeInferRequest(name, input, 1), &response);
  ASSERT_TRUE(status.ok()) << name << ": " << status.error_message();
  const std::vector<float> expected = Reference(ModelBytes(seed), input, 1);
  const std::vector<float> got = OutputOf(response);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], expected[i], 1e-5) << name << " output " << i;
  }
}

// The budget for `n` resident LeNet-size test models.
std::string BudgetFor(double n) {
  const int64_t cost = static_cast<int64_t>(ModelBytes(1).size()) + kFixedCost;
  return absl::StrCat("--memory-budget=", static_cast<int64_t>(n * cost));
}

TEST(FleetTest, HealthAnswersWhileStartupModelsLoad) {
  TempDir repo;
  constexpr int kModels = 600;
  const std::string bytes = ModelBytes(7);
  for (int i = 0; i < kModels; ++i) {
    WriteModel(repo.path(), absl::StrCat("m", i), 1, bytes);
  }
  ServerProcess server(repo.path(), {"--threads=1", "--log-level=warning"}, {},
                       /*wait_until_ready=*/false);
  ASSERT_TRUE(server.started());
  // Live and healthy at once, not ready: 600 loads on one thread take
  // longer than these three RPCs.
  EXPECT_EQ(Health(server, ""), grpc::health::v1::HealthCheckResponse::SERVING);
  grpc::ClientContext live_context;
  inference::ServerLiveResponse live;
  ASSERT_TRUE(
      server.stub()
          .ServerLive(&live_context, inference::ServerLiveRequest(), &live)
          .ok());
  EXPECT_TRUE(live.live());
  EXPECT_FALSE(ServerReady(server));
  EXPECT_EQ(Health(server, "inference.GRPCInferenceService"),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(server.ReadyFileWritten());

  // Then ready, with every model loaded.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!ServerReady(server) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(ServerReady(server));
  EXPECT_EQ(Resident(server).size(), static_cast<size_t>(kModels));
  EXPECT_EQ(Health(server, "inference.GRPCInferenceService"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(server, "m123"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  ExpectInfers(server, "m599", 7);
  // The ready file follows readiness.
  for (int i = 0; i < 100 && !server.ReadyFileWritten(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(server.ReadyFileWritten());
  EXPECT_EQ(server.Terminate(), 0);
}

TEST(FleetTest, TerminateDuringStartupLoadsExitsCleanly) {
  TempDir repo;
  const std::string bytes = ModelBytes(3);
  for (int i = 0; i < 300; ++i) {
    WriteModel(repo.path(), absl::StrCat("m", i), 1, bytes);
  }
  ServerProcess server(repo.path(), {"--threads=1", "--log-level=warning"}, {},
                       /*wait_until_ready=*/false);
  ASSERT_TRUE(server.started());
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
}

TEST(FleetTest, BudgetLoadsOnDemandAndEvictsLeastRecentlyUsed) {
  TempDir repo;
  for (int i = 1; i <= 4; ++i) {
    WriteModel(repo.path(), absl::StrCat("m", i), 1, ModelBytes(i));
  }
  // Room for two and a half models.
  ServerProcess server(repo.path(), {"--threads=2", BudgetFor(2.5)});
  ASSERT_TRUE(server.started());
  EXPECT_TRUE(ServerReady(server));
  // Registered, listed, not resident; ModelReady: servable.
  EXPECT_TRUE(Resident(server).empty());
  {
    grpc::ClientContext context;
    inference::RepositoryIndexResponse index;
    ASSERT_TRUE(server.stub()
                    .RepositoryIndex(
                        &context, inference::RepositoryIndexRequest(), &index)
                    .ok());
    ASSERT_EQ(index.models_size(), 4);
    EXPECT_TRUE(absl::StrContains(index.models(0).reason(), "not resident"))
        << index.models(0).reason();
  }
  EXPECT_TRUE(ModelReady(server, "m1"));

  ExpectInfers(server, "m1", 1);  // cold
  ExpectInfers(server, "m2", 2);  // cold
  EXPECT_EQ(Resident(server), (std::vector<std::string>{"m1", "m2"}));
  ExpectInfers(server, "m1", 1);  // hit: m2 is now least recently used
  ExpectInfers(server, "m3", 3);  // cold: evicts m2
  EXPECT_EQ(Resident(server), (std::vector<std::string>{"m1", "m3"}));
  ExpectInfers(server, "m4", 4);  // cold: evicts m1
  EXPECT_EQ(Resident(server), (std::vector<std::string>{"m3", "m4"}));
  ExpectInfers(server, "m2", 2);  // cold again: evicts m3
  EXPECT_EQ(Resident(server), (std::vector<std::string>{"m2", "m4"}));

  const std::string metrics = server.ScrapeMetrics();
  EXPECT_EQ(MetricValue(metrics, "flexor_model_cold_loads_total",
                        {"result=\"success\""}),
            5);
  EXPECT_EQ(MetricValue(metrics, "flexor_model_evictions_total", {}), 3);
  EXPECT_EQ(MetricValue(metrics, "flexor_model_residency_requests_total",
                        {"result=\"hit\""}),
            1);
  EXPECT_EQ(MetricValue(metrics, "flexor_model_residency_requests_total",
                        {"result=\"miss\""}),
            5);
  EXPECT_EQ(
      MetricValue(metrics, "flexor_model_cold_load_duration_seconds_count", {}),
      5);
  const double resident =
      MetricValue(metrics, "flexor_model_resident_bytes", {});
  const double budget = MetricValue(metrics, "flexor_memory_budget_bytes", {});
  EXPECT_GT(resident, 0);
  EXPECT_LE(resident, budget);
  // Metadata of a cold model loads it too.
  {
    grpc::ClientContext context;
    inference::ModelMetadataRequest request;
    request.set_name("m3");
    inference::ModelMetadataResponse response;
    ASSERT_TRUE(server.stub().ModelMetadata(&context, request, &response).ok());
    EXPECT_EQ(response.name(), "m3");
  }
  EXPECT_EQ(server.Terminate(), 0);
}

// The version a request without one is answered by.
std::string ServedVersion(ServerProcess& server, const std::string& name) {
  inference::ModelInferResponse response;
  grpc::Status status = Infer(
      server.stub(), MakeInferRequest(name, RandomImages(1, 3), 1), &response);
  EXPECT_TRUE(status.ok()) << name << ": " << status.error_message();
  return response.model_version();
}

grpc::Status LoadModel(ServerProcess& server, const std::string& name,
                       const std::string* config) {
  inference::RepositoryModelLoadRequest request;
  request.set_model_name(name);
  if (config != nullptr) {
    (*request.mutable_parameters())["config"].set_string_param(*config);
  }
  inference::RepositoryModelLoadResponse response;
  grpc::ClientContext context;
  return server.stub().RepositoryModelLoad(&context, request, &response);
}

// A config sent with an explicit load outlives an eviction: the load on
// demand that brings the model back uses it, not the repository's config,
// until an explicit load without one.
TEST(FleetTest, ConfigOverrideSurvivesEviction) {
  TempDir repo;
  WriteModel(repo.path(), "m1", 1, ModelBytes(1));
  WriteModel(repo.path(), "m1", 2, ModelBytes(11));
  WriteModel(repo.path(), "m2", 1, ModelBytes(2));
  ServerProcess server(repo.path(),
                       {"--threads=2", "--model-control-mode=explicit",
                        "--load-model=*", BudgetFor(1.5)});
  ASSERT_TRUE(server.started());
  EXPECT_EQ(ServedVersion(server, "m1"), "2");  // the repository's: latest
  const std::string version_1 = "version_policy { specific { versions: 1 } }";
  grpc::Status status = LoadModel(server, "m1", &version_1);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ServedVersion(server, "m1"), "1");
  ExpectInfers(server, "m2", 2);  // evicts m1
  EXPECT_EQ(Resident(server), (std::vector<std::string>{"m2"}));
  EXPECT_EQ(ServedVersion(server, "m1"), "1");  // loaded on demand, override
  EXPECT_EQ(Resident(server), (std::vector<std::string>{"m1"}));
  status = LoadModel(server, "m1", nullptr);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ServedVersion(server, "m1"), "2");
  ExpectInfers(server, "m2", 2);  // evicts m1 again
  EXPECT_EQ(ServedVersion(server, "m1"), "2");
  EXPECT_EQ(server.Terminate(), 0);
}

TEST(FleetTest, PinnedModelsAreLoadedAtStartupAndNeverEvicted) {
  TempDir repo;
  WriteModel(repo.path(), "pinned", 1, ModelBytes(9));
  WriteText(repo.path() + "/pinned/config.pbtxt", "pinned: true\n");
  // Triton's form of the same setting.
  WriteModel(repo.path(), "tpinned", 1, ModelBytes(8));
  WriteText(repo.path() + "/tpinned/config.pbtxt",
            "parameters { key: \"pinned\" value { string_value: \"true\" } }\n"
            "dynamic_batching {}\n");
  for (int i = 1; i <= 3; ++i) {
    WriteModel(repo.path(), absl::StrCat("m", i), 1, ModelBytes(i));
  }
  // Room for the two pinned models and one more.
  ServerProcess server(repo.path(), {"--threads=2", BudgetFor(3.5)});
  ASSERT_TRUE(server.started());
  EXPECT_EQ(Resident(server), (std::vector<std::string>{"pinned", "tpinned"}));
  for (int round = 0; round < 2; ++round) {
    for (int i = 1; i <= 3; ++i) {
      ExpectInfers(server, absl::StrCat("m", i), i);
      const std::vector<std::string> resident = Resident(server);
      EXPECT_EQ(resident, (std::vector<std::string>{absl::StrCat("m", i),
                                                    "pinned", "tpinned"}));
    }
  }
  ExpectInfers(server, "pinned", 9);
  EXPECT_EQ(Metric(server, "flexor_model_evictions_total"), 5);
  EXPECT_EQ(server.Terminate(), 0);
}

// The budget charges what a version holds beyond its file: the weight
// layouts its kernels built at load (transposed taps for the int8 look-up,
// built on AVX2 hosts; the avx2/ entry of this test runs it there).
TEST(FleetTest, KernelLayoutsAreChargedToTheBudget) {
  TempDir repo;
  // binary1: one segment, so every Dense layer keeps transposed taps.
  const std::string mlp = ModelBytes(5, "binary1", RandomArch::kMlp, 4);
  WriteModel(repo.path(), "mlp", 1, mlp);
  WriteText(repo.path() + "/mlp/config.pbtxt",
            "pinned: true\nactivation_precision: INT8\n");
  WriteModel(repo.path(), "lenet", 1, ModelBytes(1));
  ServerProcess server(repo.path(), {"--threads=1", "--memory-budget=100MB"});
  ASSERT_TRUE(server.started());
  ASSERT_EQ(Resident(server), std::vector<std::string>{"mlp"});
  const std::string metrics = server.ScrapeMetrics();
  const double layouts =
      MetricValue(metrics, "flexor_model_kernel_layout_bytes", {});
  if (GetKernelTable(SelectedIsa()).lut_i8 != nullptr) {
    EXPECT_GT(layouts, static_cast<double>(mlp.size()) / 4)
        << IsaName(SelectedIsa());
  } else {
    EXPECT_EQ(layouts, 0) << IsaName(SelectedIsa());
  }
  EXPECT_EQ(MetricValue(metrics, "flexor_model_file_bytes", {"model=\"mlp\""}),
            static_cast<double>(mlp.size()));
  EXPECT_EQ(MetricValue(metrics, "flexor_model_resident_bytes", {}),
            static_cast<double>(mlp.size()) + layouts + kFixedCost);
  EXPECT_EQ(server.Terminate(), 0);
}

TEST(FleetTest, ConcurrentColdRequestsShareOneLoad) {
  TempDir repo;
  WriteModel(repo.path(), "m1", 1, ModelBytes(1));
  WriteModel(repo.path(), "m2", 1, ModelBytes(2));
  ServerProcess server(repo.path(), {"--threads=2", BudgetFor(1.5)});
  ASSERT_TRUE(server.started());
  const std::vector<float> input = RandomImages(1, 5);
  for (const char* model : {"m1", "m2", "m1"}) {
    const std::vector<StatusCode> codes =
        Burst(server, MakeInferRequest(model, input, 1), 64);
    for (StatusCode c : codes) EXPECT_EQ(c, StatusCode::OK) << model;
  }
  // One load per cold phase (m1, m2, m1 again), not one per request.
  EXPECT_EQ(
      Metric(server, "flexor_model_cold_loads_total", {"result=\"success\""}),
      3);
  EXPECT_EQ(Metric(server, "flexor_model_evictions_total"), 2);
  EXPECT_EQ(server.Terminate(), 0);
}

TEST(FleetTest, RequestInFlightOnAnEvictedModelCompletes) {
  TempDir repo;
  // m1 holds its requests in the batch queue for 1 s (no dispatch when
  // idle), long enough for m2's load to evict m1 meanwhile.
  WriteModel(repo.path(), "m1", 1, ModelBytes(1));
  WriteText(repo.path() + "/m1/config.pbtxt",
            "dynamic_batching { max_queue_delay_microseconds: 1000000 }\n");
  WriteModel(repo.path(), "m2", 1, ModelBytes(2));
  ServerProcess server(repo.path(), {"--threads=2", BudgetFor(1.5),
                                     "--dispatch-when-idle=false"});
  ASSERT_TRUE(server.started());
  const std::vector<float> input = RandomImages(1, 11);
  std::atomic<bool> done{false};
  grpc::Status slow_status;
  inference::ModelInferResponse slow_response;
  std::thread slow([&] {
    slow_status = Infer(server.stub(), MakeInferRequest("m1", input, 1),
                        &slow_response, 20000);
    done.store(true);
  });
  // Wait until m1 is resident (its request is queued), then evict it.
  for (int i = 0; i < 500 && Resident(server).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_EQ(Resident(server), (std::vector<std::string>{"m1"}));
  ExpectInfers(server, "m2", 2);
  EXPECT_EQ(Resident(server), (std::vector<std::string>{"m2"}));
  EXPECT_EQ(Metric(server, "flexor_model_evictions_total"), 1);
  EXPECT_FALSE(done.load()) << "the slow request should still be queued";
  slow.join();
  ASSERT_TRUE(slow_status.ok()) << slow_status.error_message();
  const std::vector<float> expected = Reference(ModelBytes(1), input, 1);
  const std::vector<float> got = OutputOf(slow_response);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], expected[i], 1e-5);
  EXPECT_EQ(server.Terminate(), 0);
}

TEST(FleetTest, CorruptModelUnderBudgetFailsClearlyAndOnce) {
  TempDir repo;
  WriteModel(repo.path(), "good", 1, ModelBytes(1));
  std::string bad = ModelBytes(2);
  bad[bad.size() / 2] ^= 0x5a;  // payload CRC mismatch
  WriteModel(repo.path(), "bad", 1, bad);
  WriteModel(repo.path(), "junk", 1, std::string(1000, 'x'));
  ServerProcess server(repo.path(), {"--threads=2", BudgetFor(1.5)});
  ASSERT_TRUE(server.started());
  for (const char* model : {"bad", "junk"}) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      inference::ModelInferResponse response;
      grpc::Status status =
          Infer(server.stub(), MakeInferRequest(model, RandomImages(1, 1), 1),
                &response);
      EXPECT_FALSE(status.ok());
      EXPECT_NE(status.error_code(), StatusCode::UNKNOWN);
      EXPECT_TRUE(absl::StrContains(status.error_message(),
                                    "could not be loaded on demand"))
          << status.error_message();
      EXPECT_TRUE(absl::StrContains(status.error_message(), model))
          << status.error_message();
    }
    EXPECT_FALSE(ModelReady(server, model));
  }
  // The same bad files are not read again on every request.
  EXPECT_EQ(
      Metric(server, "flexor_model_cold_loads_total", {"result=\"failure\""}),
      2);
  ExpectInfers(server, "good", 1);
  // A fixed file is picked up by the next request.
  WriteModel(repo.path(), "bad", 2, ModelBytes(2));
  ExpectInfers(server, "bad", 2);
  EXPECT_EQ(server.Terminate(), 0);
}

TEST(FleetTest, BadBudgetFlagIsRefused) {
  auto [rc, out] = RunCommand(absl::StrCat(FLEXOR_SERVER_BINARY,
                                           " --model-repository=/nonexistent",
                                           " --memory-budget=12XB"));
  EXPECT_EQ(rc, 2) << out;
  EXPECT_TRUE(absl::StrContains(out, "--memory-budget")) << out;
}

}  // namespace
}  // namespace flexor::server::testing
