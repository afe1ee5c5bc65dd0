// Every RPC of the server and every error path, against the real binary.
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/graph/model.h"
#include "gtest/gtest.h"
#include "proto/health.grpc.pb.h"
#include "tests/server/reflection_subset.grpc.pb.h"
#include "tests/server/server_process.h"

namespace flexor::server::testing {
namespace {

using ::grpc::StatusCode;

void ExpectNear(const std::vector<float>& actual,
                const std::vector<float>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], 1e-5f + 1e-4f * std::fabs(expected[i]))
        << "at " << i;
  }
}

class ServerRpcTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = new TempDir();
    lenet_v1_ = new std::string(ModelBytes(11));
    WriteModel(repo_->path(), "lenet", 1, *lenet_v1_);
    mlp_v1_ = new std::string(ModelBytes(12, "binary1", RandomArch::kMlp));
    WriteModel(repo_->path(), "mlp", 1, *mlp_v1_);
    WriteText(repo_->path() + "/mlp/config.pbtxt",
              "max_batch_size: 4\ndynamic_batching { "
              "max_queue_delay_microseconds: 100 }\n");
    server_ = new ServerProcess(
        repo_->path(), {"--model-control-mode=explicit", "--load-model=*",
                        "--threads=2", "--grpc-max-message-bytes=1048576",
                        // lenet's own series (detail); the others share the
                        // server-wide ones (docs/metrics.md).
                        "--per-model-histograms=lenet"});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete repo_;
    delete lenet_v1_;
    delete mlp_v1_;
  }
  void SetUp() override { ASSERT_TRUE(server_->started()); }

  static grpc::Status InferStatus(
      const inference::ModelInferRequest& request,
      inference::ModelInferResponse* response = nullptr) {
    inference::ModelInferResponse ignored;
    return Infer(server_->stub(), request, response ? response : &ignored);
  }

  template <typename Req, typename Resp, typename Method>
  static grpc::Status Call(Method method, const Req& request, Resp* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    return (server_->stub().*method)(&context, request, response);
  }

  static TempDir* repo_;
  static std::string* lenet_v1_;
  static std::string* mlp_v1_;
  static ServerProcess* server_;
};

TempDir* ServerRpcTest::repo_ = nullptr;
std::string* ServerRpcTest::lenet_v1_ = nullptr;
std::string* ServerRpcTest::mlp_v1_ = nullptr;
ServerProcess* ServerRpcTest::server_ = nullptr;

using Stub = inference::GRPCInferenceService::Stub;

TEST_F(ServerRpcTest, LiveReadyMetadata) {
  inference::ServerLiveResponse live;
  ASSERT_TRUE(
      Call(&Stub::ServerLive, inference::ServerLiveRequest(), &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(
      Call(&Stub::ServerReady, inference::ServerReadyRequest(), &ready).ok());
  EXPECT_TRUE(ready.ready());
  inference::ServerMetadataResponse md;
  ASSERT_TRUE(
      Call(&Stub::ServerMetadata, inference::ServerMetadataRequest(), &md)
          .ok());
  EXPECT_EQ(md.name(), "flexor");
  EXPECT_FALSE(md.version().empty());
  EXPECT_GE(md.extensions_size(), 2);
}

TEST_F(ServerRpcTest, ModelReady) {
  inference::ModelReadyRequest request;
  inference::ModelReadyResponse response;
  request.set_name("lenet");
  ASSERT_TRUE(Call(&Stub::ModelReady, request, &response).ok());
  EXPECT_TRUE(response.ready());
  request.set_version("1");
  ASSERT_TRUE(Call(&Stub::ModelReady, request, &response).ok());
  EXPECT_TRUE(response.ready());
  request.set_version("7");
  ASSERT_TRUE(Call(&Stub::ModelReady, request, &response).ok());
  EXPECT_FALSE(response.ready());
  request.set_name("nope");
  request.clear_version();
  ASSERT_TRUE(Call(&Stub::ModelReady, request, &response).ok());
  EXPECT_FALSE(response.ready());
}

TEST_F(ServerRpcTest, ModelMetadata) {
  inference::ModelMetadataRequest request;
  inference::ModelMetadataResponse response;
  request.set_name("lenet");
  ASSERT_TRUE(Call(&Stub::ModelMetadata, request, &response).ok());
  EXPECT_EQ(response.name(), "lenet");
  EXPECT_EQ(response.platform(), "flexor");
  ASSERT_EQ(response.versions_size(), 1);
  EXPECT_EQ(response.versions(0), "1");
  ASSERT_EQ(response.inputs_size(), 1);
  EXPECT_EQ(response.inputs(0).name(), "image");
  EXPECT_EQ(response.inputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(response.inputs(0).shape().begin(),
                                 response.inputs(0).shape().end()),
            (std::vector<int64_t>{-1, 1, 28, 28}));
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).shape(1), 10);
  request.set_name("nope");
  EXPECT_EQ(Call(&Stub::ModelMetadata, request, &response).error_code(),
            StatusCode::NOT_FOUND);
}

TEST_F(ServerRpcTest, InferRawMatchesEngine) {
  for (int64_t batch : {1, 3}) {
    const std::vector<float> input = RandomImages(batch, 100 + batch);
    inference::ModelInferResponse response;
    grpc::Status status =
        InferStatus(MakeInferRequest("lenet", input, batch), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.model_name(), "lenet");
    EXPECT_EQ(response.model_version(), "1");
    ASSERT_EQ(response.outputs_size(), 1);
    EXPECT_EQ(response.outputs(0).datatype(), "FP32");
    EXPECT_EQ(response.outputs(0).shape(0), batch);
    EXPECT_EQ(response.outputs(0).shape(1), 10);
    ASSERT_EQ(response.raw_output_contents_size(), 1);
    ExpectNear(OutputOf(response), Reference(*lenet_v1_, input, batch));
  }
}

TEST_F(ServerRpcTest, InferTypedFp32AndUint8) {
  const std::vector<float> input = RandomImages(2, 7);
  inference::ModelInferRequest request = MakeInferRequest("mlp", input, 2);
  request.clear_raw_input_contents();
  auto* contents = request.mutable_inputs(0)->mutable_contents();
  for (float v : input) contents->add_fp32_contents(v);
  inference::ModelInferResponse response;
  grpc::Status status = InferStatus(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.raw_output_contents_size(), 0);  // typed in, typed out
  ExpectNear(OutputOf(response), Reference(*mlp_v1_, input, 2));

  // UINT8 pixels, typed and raw, equal FP32 pixels of the same values.
  std::vector<float> pixels(2 * 784);
  std::string raw(2 * 784, '\0');
  for (size_t i = 0; i < pixels.size(); ++i) {
    raw[i] = static_cast<char>(i % 256);
    pixels[i] = static_cast<float>(i % 256);
  }
  const std::vector<float> expected = Reference(*lenet_v1_, pixels, 2);
  inference::ModelInferRequest u8 = MakeInferRequest("lenet", pixels, 2);
  u8.mutable_inputs(0)->set_datatype("UINT8");
  u8.clear_raw_input_contents();
  u8.add_raw_input_contents(raw);
  ASSERT_TRUE(InferStatus(u8, &response).ok());
  ExpectNear(OutputOf(response), expected);
  u8.clear_raw_input_contents();
  for (unsigned char c : raw) {
    u8.mutable_inputs(0)->mutable_contents()->add_uint_contents(c);
  }
  // Asking for binary output explicitly gives raw output for typed input.
  auto* out = u8.add_outputs();
  out->set_name("probabilities");
  (*out->mutable_parameters())["binary_data"].set_bool_param(true);
  ASSERT_TRUE(InferStatus(u8, &response).ok());
  EXPECT_EQ(response.raw_output_contents_size(), 1);
  ExpectNear(OutputOf(response), expected);
}

TEST_F(ServerRpcTest, InferErrors) {
  const std::vector<float> input = RandomImages(1, 1);
  auto expect = [&](const inference::ModelInferRequest& request,
                    StatusCode code, const std::string& needle) {
    grpc::Status status = InferStatus(request);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_NE(status.error_message().find(needle), std::string::npos)
        << status.error_message();
  };
  inference::ModelInferRequest r = MakeInferRequest("nope", input, 1);
  expect(r, StatusCode::NOT_FOUND, "unknown model 'nope'");
  r = MakeInferRequest("lenet", input, 1);
  r.set_model_version("9");
  expect(r, StatusCode::NOT_FOUND, "version 9 is not loaded");
  r.set_model_version("x1");
  expect(r, StatusCode::INVALID_ARGUMENT, "not a positive integer");
  r = MakeInferRequest("lenet", input, 1);
  r.mutable_inputs(0)->set_name("pixels");
  expect(r, StatusCode::INVALID_ARGUMENT, "no input named 'pixels'");
  r = MakeInferRequest("lenet", input, 1);
  r.mutable_inputs(0)->set_datatype("INT32");
  expect(r, StatusCode::INVALID_ARGUMENT, "datatype");
  r = MakeInferRequest("lenet", input, 1);
  r.mutable_inputs(0)->set_shape(2, 27);
  expect(r, StatusCode::INVALID_ARGUMENT, "has shape [N, 1, 28, 28]");
  r = MakeInferRequest("lenet", input, 1);
  r.mutable_inputs(0)->mutable_shape()->RemoveLast();
  expect(r, StatusCode::INVALID_ARGUMENT, "has shape");
  r = MakeInferRequest("lenet", input, 1);
  r.set_raw_input_contents(0, std::string(100, 'x'));
  expect(r, StatusCode::INVALID_ARGUMENT, "needs 3136");
  r = MakeInferRequest("lenet", input, 1);
  r.mutable_inputs(0)->set_shape(0, 0);
  expect(r, StatusCode::INVALID_ARGUMENT, "batch size 0");
  r = MakeInferRequest("lenet", input, 1);
  r.mutable_inputs(0)->set_shape(0, -5);
  expect(r, StatusCode::INVALID_ARGUMENT, "batch size -5");
  const std::vector<float> five = RandomImages(5, 2);
  expect(MakeInferRequest("mlp", five, 5), StatusCode::INVALID_ARGUMENT,
         "max_batch_size");
  r = MakeInferRequest("lenet", input, 1);
  r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
  expect(r, StatusCode::INVALID_ARGUMENT, "one way only");
  r = MakeInferRequest("lenet", input, 1);
  r.clear_raw_input_contents();
  r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
  expect(r, StatusCode::INVALID_ARGUMENT, "fp32_contents");
  r = MakeInferRequest("lenet", input, 1);
  r.clear_inputs();
  expect(r, StatusCode::INVALID_ARGUMENT, "exactly 1 input");
  r = MakeInferRequest("lenet", input, 1);
  r.add_outputs()->set_name("logits");
  expect(r, StatusCode::INVALID_ARGUMENT, "no output named 'logits'");
  r = MakeInferRequest("lenet", input, 1);
  r.add_raw_input_contents("extra");
  expect(r, StatusCode::INVALID_ARGUMENT, "one per input");
  // Larger than --grpc-max-message-bytes (1 MiB): rejected by gRPC.
  r = MakeInferRequest("lenet", input, 1);
  r.set_raw_input_contents(0, std::string(2 << 20, 'x'));
  EXPECT_EQ(InferStatus(r).error_code(), StatusCode::RESOURCE_EXHAUSTED);
  // Garbage bytes where a message is expected: the server survives.
  inference::ServerLiveResponse live;
  ASSERT_TRUE(
      Call(&Stub::ServerLive, inference::ServerLiveRequest(), &live).ok());
}

TEST_F(ServerRpcTest, NoDeadlineAndRandomRequestsNeverCrash) {
  const std::vector<float> input = RandomImages(2, 8);
  {
    grpc::ClientContext context;  // no deadline at all
    inference::ModelInferResponse response;
    ASSERT_TRUE(
        server_->stub()
            .ModelInfer(&context,
                        MakeInferRequest("lenet", RandomImages(1, 9), 1),
                        &response)
            .ok());
  }
  // Mutated requests: every answer is OK or an error a client can act on.
  std::mt19937_64 rng(1234);
  const std::vector<int64_t> dims = {-1, 0,    1,         2,         28,
                                     29, 4096, 1LL << 40, INT64_MAX, INT64_MIN};
  const std::vector<std::string> types = {"FP32", "UINT8", "INT8",
                                          "",     "BYTES", "FP64"};
  for (int i = 0; i < 300; ++i) {
    inference::ModelInferRequest r =
        MakeInferRequest(rng() % 2 ? "lenet" : "mlp", input, 2);
    auto* in = r.mutable_inputs(0);
    if (rng() % 2) in->set_datatype(types[rng() % types.size()]);
    if (rng() % 2) {
      in->clear_shape();
      const int rank = static_cast<int>(rng() % 6);
      for (int d = 0; d < rank; ++d) in->add_shape(dims[rng() % dims.size()]);
    }
    if (rng() % 3 == 0) {
      r.set_raw_input_contents(0, std::string(rng() % 10000, 'a'));
    }
    if (rng() % 4 == 0) {
      r.clear_raw_input_contents();
      for (int k = 0; k < static_cast<int>(rng() % 5000); ++k) {
        in->mutable_contents()->add_uint_contents(static_cast<uint32_t>(rng()));
      }
    }
    if (rng() % 5 == 0) r.set_model_version(std::to_string(rng() % 3));
    grpc::Status status = InferStatus(r);
    EXPECT_TRUE(status.ok() ||
                status.error_code() == StatusCode::INVALID_ARGUMENT ||
                status.error_code() == StatusCode::NOT_FOUND)
        << status.error_code() << " " << status.error_message();
  }
  inference::ServerLiveResponse live;
  ASSERT_TRUE(
      Call(&Stub::ServerLive, inference::ServerLiveRequest(), &live).ok());
  EXPECT_TRUE(live.live());
}

TEST_F(ServerRpcTest, StatisticsAndIndex) {
  const std::vector<float> input = RandomImages(1, 4);
  ASSERT_TRUE(InferStatus(MakeInferRequest("lenet", input, 1)).ok());
  inference::ModelStatisticsRequest request;
  request.set_name("lenet");
  inference::ModelStatisticsResponse stats;
  ASSERT_TRUE(Call(&Stub::ModelStatistics, request, &stats).ok());
  ASSERT_EQ(stats.model_stats_size(), 1);
  EXPECT_GE(stats.model_stats(0).inference_count(), 1u);
  EXPECT_GE(stats.model_stats(0).inference_stats().success().count(), 1u);
  EXPECT_GT(stats.model_stats(0).last_inference(), 0u);
  EXPECT_GT(stats.model_stats(0).memory_usage(0).byte_size(), 0u);
  request.set_name("nope");
  EXPECT_EQ(Call(&Stub::ModelStatistics, request, &stats).error_code(),
            StatusCode::NOT_FOUND);
  request.clear_name();
  ASSERT_TRUE(Call(&Stub::ModelStatistics, request, &stats).ok());
  EXPECT_EQ(stats.model_stats_size(), 2);

  inference::RepositoryIndexResponse index;
  ASSERT_TRUE(
      Call(&Stub::RepositoryIndex, inference::RepositoryIndexRequest(), &index)
          .ok());
  std::vector<std::string> names;
  for (const auto& m : index.models())
    names.push_back(m.name() + ":" + m.state());
  EXPECT_NE(std::find(names.begin(), names.end(), "lenet:READY"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "mlp:READY"), names.end());
}

// RepositoryIndex lists the repository from a listing at most a second old
// (no directory scan per call): a model directory created while the server
// runs shows up as not loaded within a few seconds, and `ready` lists loaded
// versions only.
TEST(RepositoryIndexTest, SeesNewDirectoriesAndFiltersReady) {
  TempDir repo;
  WriteModel(repo.path(), "first", 1, ModelBytes(21));
  ServerProcess server(repo.path(), {"--model-control-mode=explicit",
                                     "--load-model=first", "--threads=1"});
  ASSERT_TRUE(server.started());
  auto index = [&](bool ready) {
    grpc::ClientContext ctx;
    inference::RepositoryIndexRequest request;
    request.set_ready(ready);
    inference::RepositoryIndexResponse response;
    EXPECT_TRUE(server.stub().RepositoryIndex(&ctx, request, &response).ok());
    std::vector<std::string> names;
    for (const auto& m : response.models()) {
      names.push_back(m.name() + ":" + m.state());
    }
    return names;
  };
  EXPECT_EQ(index(false), std::vector<std::string>{"first:READY"});
  WriteModel(repo.path(), "second", 1, ModelBytes(22));
  std::vector<std::string> all;
  for (int i = 0; i < 40; ++i) {
    all = index(false);
    if (all.size() == 2) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(all,
            (std::vector<std::string>{"first:READY", "second:UNAVAILABLE"}));
  EXPECT_EQ(index(true), std::vector<std::string>{"first:READY"});
}

// `flexorctl health` is the container HEALTHCHECK: its exit code must
// follow grpc.health.v1.
TEST_F(ServerRpcTest, FlexorctlHealthExitCode) {
  const std::string ctl = absl::StrCat(
      FLEXORCTL_BINARY, " --server=localhost:", server_->grpc_port(),
      " --timeout-ms=5000 health");
  auto [rc, out] = RunCommand(ctl);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("server at localhost"), std::string::npos) << out;
  EXPECT_NE(out.find("SERVING"), std::string::npos) << out;
  std::tie(rc, out) = RunCommand(ctl + " lenet");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("service 'lenet'"), std::string::npos) << out;
  std::tie(rc, out) = RunCommand(ctl + " nope");
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("'nope'"), std::string::npos) << out;
  // Nothing listens on port 1: the check fails within its deadline.
  std::tie(rc, out) = RunCommand(absl::StrCat(
      FLEXORCTL_BINARY, " --server=localhost:1 --timeout-ms=500 health"));
  EXPECT_NE(rc, 0) << out;
}

TEST_F(ServerRpcTest, HealthAndReflection) {
  auto health = grpc::health::v1::Health::NewStub(server_->channel());
  auto check = [&](const std::string& service) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = health->Check(&context, request, &response);
    return status.ok() ? static_cast<int>(response.status())
                       : -static_cast<int>(status.error_code());
  };
  EXPECT_EQ(check(""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(check("inference.GRPCInferenceService"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(check("lenet"), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(check("nope"), -static_cast<int>(StatusCode::NOT_FOUND));

  auto reflection =
      grpc::reflection::v1alpha::ServerReflection::NewStub(server_->channel());
  grpc::ClientContext context;
  auto stream = reflection->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  stream->WritesDone();
  std::vector<std::string> services;
  for (const auto& s : response.list_services_response().service()) {
    services.push_back(s.name());
  }
  EXPECT_NE(std::find(services.begin(), services.end(),
                      "inference.GRPCInferenceService"),
            services.end());
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServerRpcTest, LoadPublishUnloadAndCorruptUpload) {
  const std::vector<float> input = RandomImages(1, 5);
  const std::string v2 = ModelBytes(21);
  // Publish version 2 of a new model through the RPC.
  inference::RepositoryModelLoadRequest load;
  load.set_model_name("uploaded");
  (*load.mutable_parameters())["file:2/model.flexor"].set_bytes_param(v2);
  inference::RepositoryModelLoadResponse load_response;
  grpc::Status status = Call(&Stub::RepositoryModelLoad, load, &load_response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  inference::ModelInferResponse response;
  ASSERT_TRUE(
      InferStatus(MakeInferRequest("uploaded", input, 1), &response).ok());
  EXPECT_EQ(response.model_version(), "2");
  ExpectNear(OutputOf(response), Reference(v2, input, 1));

  // A corrupt version 3 is rejected; version 2 keeps serving; the failure
  // is counted.
  const double failures_before = std::max(
      0.0, MetricValue(server_->ScrapeMetrics(), "flexor_model_loads_total",
                       {"model=\"uploaded\"", "result=\"failure\""}));
  std::string corrupt = ModelBytes(22);
  corrupt[corrupt.size() / 2] ^= 0x5a;  // payload bit flip: CRC mismatch
  inference::RepositoryModelLoadRequest bad = load;
  bad.mutable_parameters()->clear();
  (*bad.mutable_parameters())["file:3/model.flexor"].set_bytes_param(corrupt);
  status = Call(&Stub::RepositoryModelLoad, bad, &load_response);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_NE(status.error_message().find("version 3"), std::string::npos)
      << status.error_message();
  ASSERT_TRUE(
      InferStatus(MakeInferRequest("uploaded", input, 1), &response).ok());
  EXPECT_EQ(response.model_version(), "2");
  EXPECT_EQ(MetricValue(server_->ScrapeMetrics(), "flexor_model_loads_total",
                        {"model=\"uploaded\"", "result=\"failure\""}),
            failures_before + 1);
  // Truncated header, garbage: same.
  (*bad.mutable_parameters())["file:3/model.flexor"].set_bytes_param(
      corrupt.substr(0, 40));
  EXPECT_EQ(Call(&Stub::RepositoryModelLoad, bad, &load_response).error_code(),
            StatusCode::INVALID_ARGUMENT);
  (*bad.mutable_parameters())["file:3/model.flexor"].set_bytes_param("junk");
  EXPECT_EQ(Call(&Stub::RepositoryModelLoad, bad, &load_response).error_code(),
            StatusCode::INVALID_ARGUMENT);

  // Bad parameters and names.
  bad.mutable_parameters()->clear();
  (*bad.mutable_parameters())["file:../../etc/model.flexor"].set_bytes_param(
      v2);
  EXPECT_EQ(Call(&Stub::RepositoryModelLoad, bad, &load_response).error_code(),
            StatusCode::INVALID_ARGUMENT);
  bad.mutable_parameters()->clear();
  (*bad.mutable_parameters())["colour"].set_string_param("red");
  EXPECT_EQ(Call(&Stub::RepositoryModelLoad, bad, &load_response).error_code(),
            StatusCode::INVALID_ARGUMENT);
  bad.mutable_parameters()->clear();
  (*bad.mutable_parameters())["config"].set_string_param("max_batch_size: x");
  EXPECT_EQ(Call(&Stub::RepositoryModelLoad, bad, &load_response).error_code(),
            StatusCode::INVALID_ARGUMENT);
  bad.mutable_parameters()->clear();
  bad.set_model_name("../evil");
  EXPECT_EQ(Call(&Stub::RepositoryModelLoad, bad, &load_response).error_code(),
            StatusCode::INVALID_ARGUMENT);
  bad.set_model_name("absent");
  EXPECT_EQ(Call(&Stub::RepositoryModelLoad, bad, &load_response).error_code(),
            StatusCode::NOT_FOUND);

  // Unload drains and stops serving; reload from the repository.
  inference::RepositoryModelUnloadRequest unload;
  unload.set_model_name("uploaded");
  inference::RepositoryModelUnloadResponse unload_response;
  ASSERT_TRUE(
      Call(&Stub::RepositoryModelUnload, unload, &unload_response).ok());
  status = InferStatus(MakeInferRequest("uploaded", input, 1));
  EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("not loaded"), std::string::npos);
  // Unloading it again is a successful no-op, as in Triton.
  EXPECT_TRUE(
      Call(&Stub::RepositoryModelUnload, unload, &unload_response).ok());
  load.mutable_parameters()->clear();
  ASSERT_TRUE(Call(&Stub::RepositoryModelLoad, load, &load_response).ok());
  ASSERT_TRUE(
      InferStatus(MakeInferRequest("uploaded", input, 1), &response).ok());
  EXPECT_EQ(response.model_version(), "2");
}

TEST_F(ServerRpcTest, MetricsEndpointPassesPromtool) {
  const std::vector<float> input = RandomImages(1, 6);
  ASSERT_TRUE(InferStatus(MakeInferRequest("lenet", input, 1)).ok());
  EXPECT_EQ(InferStatus(MakeInferRequest("nope", input, 1)).error_code(),
            StatusCode::NOT_FOUND);
  const std::string exposition = server_->ScrapeMetrics();
  TempDir dir;
  WriteText(dir.path() + "/metrics.txt", exposition);
  auto [rc, output] =
      RunCommand("promtool check metrics < " + dir.path() + "/metrics.txt");
  EXPECT_EQ(rc, 0) << output;
  const std::vector<std::string> lenet = {"model=\"lenet\"", "version=\"1\""};
  EXPECT_GE(MetricValue(exposition, "flexor_inference_requests_total",
                        {"model=\"lenet\"", "code=\"OK\""}),
            1);
  EXPECT_GE(MetricValue(exposition, "flexor_inference_requests_total",
                        {"model=\"\"", "code=\"NOT_FOUND\""}),
            1);
  for (const char* histogram :
       {"flexor_inference_request_duration_seconds_count",
        "flexor_inference_queue_duration_seconds_count",
        "flexor_inference_compute_duration_seconds_count",
        "flexor_inference_batch_size_count"}) {
    EXPECT_GE(MetricValue(exposition, histogram, lenet), 1) << histogram;
  }
  // The first execution of every version is sampled (1 in 100 by default):
  // the FleXOR LeNet's weights took some time to decrypt.
  EXPECT_GE(MetricValue(exposition,
                        "flexor_inference_decrypt_duration_seconds_count", {}),
            1);
  EXPECT_GT(MetricValue(exposition,
                        "flexor_inference_decrypt_duration_seconds_sum", {}),
            0);
  EXPECT_EQ(
      MetricValue(exposition, "flexor_inference_requests_in_flight", lenet), 0);
  EXPECT_GT(MetricValue(exposition, "flexor_model_file_bytes", lenet), 0);
  EXPECT_GT(
      MetricValue(exposition, "flexor_model_compressed_weight_bytes", lenet),
      0);
  EXPECT_GT(
      MetricValue(exposition, "flexor_model_dense_fp32_equivalent_bytes",
                  lenet),
      MetricValue(exposition, "flexor_model_compressed_weight_bytes", lenet));
  EXPECT_NEAR(MetricValue(exposition, "flexor_model_weight_bitwidth", lenet),
              0.8, 1e-6);
  // Exported per version (-1: missing); its value depends on the CPU and
  // the activation precision (DerivedWeightsTest checks it in the engine).
  EXPECT_GE(MetricValue(exposition, "flexor_model_kernel_layout_bytes", lenet),
            0);
  EXPECT_GE(MetricValue(exposition, "flexor_models_loaded", {}), 2);
  // Successful loads are one server-wide series (no model label).
  EXPECT_GE(MetricValue(exposition, "flexor_model_loads_total",
                        {"result=\"success\""}),
            1);
  EXPECT_EQ(MetricValue(exposition, "flexor_model_loads_total",
                        {"model=\"lenet\"", "result=\"success\""}),
            -1);
  EXPECT_GT(MetricValue(exposition, "process_resident_memory_bytes", {}), 1e6);
}

}  // namespace
}  // namespace flexor::server::testing
