// What Triton's and KServe's clients rely on beyond plain inference, against
// the real server binary through the project's own client stubs: the
// ModelConfig RPC, Triton's config override on load, ModelStreamInfer,
// LogSettings, the classification extension, Triton's status codes, typed
// versions, statistics as Triton fills them, and reflection v1 / v1alpha.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/graph/model.h"
#include "engine/testing/random_model.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/server/reflection_subset.grpc.pb.h"
#include "tests/server/server_process.h"

namespace flexor::server::testing {
namespace {

using ::grpc::StatusCode;
using Stub = inference::GRPCInferenceService::Stub;

const std::vector<std::string> kLabels = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

std::string LabelledModelBytes(uint64_t seed) {
  RandomModelSpec spec;
  spec.name = "labelled";
  spec.seed = seed;
  spec.labels = kLabels;
  absl::StatusOr<std::string> bytes = BuildRandomModel(spec);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

class TritonCompatTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = new TempDir();
    lenet_ = new std::string(ModelBytes(31));
    WriteModel(repo_->path(), "lenet", 1, *lenet_);
    labelled_ = new std::string(LabelledModelBytes(32));
    WriteModel(repo_->path(), "labelled", 1, *labelled_);
    WriteModel(repo_->path(), "mlp", 1,
               ModelBytes(33, "binary1", RandomArch::kMlp));
    WriteText(repo_->path() + "/mlp/config.pbtxt",
              "max_batch_size: 4\ndynamic_batching { "
              "max_queue_delay_microseconds: 100 }\n");
    // Batches wait 2 s for company, so a request with a short deadline
    // fails in the queue (statistics count successes only).
    WriteModel(repo_->path(), "slow", 1, ModelBytes(34));
    WriteText(repo_->path() + "/slow/config.pbtxt",
              "dynamic_batching { max_queue_delay_microseconds: 2000000 }\n");
    WriteModel(repo_->path(), "override", 1, ModelBytes(35));
    // Triton's own config.pbtxt form in the repository.
    WriteModel(repo_->path(), "tritoncfg", 1, ModelBytes(36));
    WriteText(repo_->path() + "/tritoncfg/config.pbtxt", R"(
name: "tritoncfg"
platform: "flexor"
max_batch_size: 7
version_policy: { all { } }
input [ { name: "image" data_type: TYPE_FP32 dims: [ 1, 28, 28 ] } ]
output [ { name: "probabilities" data_type: TYPE_FP32 dims: [ 10 ] } ]
dynamic_batching {
  preferred_batch_size: [ 4 ]
  max_queue_delay_microseconds: 300
  default_queue_policy { max_queue_size: 64 }
}
instance_group [ { count: 1 kind: KIND_CPU } ]
)");
    server_ = new ServerProcess(
        repo_->path(), {"--model-control-mode=explicit", "--load-model=*",
                        "--threads=2", "--dispatch-when-idle=false"});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete repo_;
    delete lenet_;
    delete labelled_;
  }
  void SetUp() override { ASSERT_TRUE(server_->started()); }

  template <typename Req, typename Resp, typename Method>
  static grpc::Status Call(Method method, const Req& request, Resp* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    return (server_->stub().*method)(&context, request, response);
  }

  static grpc::Status Load(const std::string& model,
                           const std::string& config = "",
                           const std::string& file = "", int version = 0) {
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(model);
    if (!config.empty()) {
      (*request.mutable_parameters())["config"].set_string_param(config);
    }
    if (!file.empty()) {
      (*request.mutable_parameters())[absl::StrCat("file:", version,
                                                   "/model.flexor")]
          .set_bytes_param(file);
    }
    inference::RepositoryModelLoadResponse response;
    return Call(&Stub::RepositoryModelLoad, request, &response);
  }

  static grpc::Status Unload(const std::string& model) {
    inference::RepositoryModelUnloadRequest request;
    request.set_model_name(model);
    inference::RepositoryModelUnloadResponse response;
    return Call(&Stub::RepositoryModelUnload, request, &response);
  }

  static inference::ModelConfig Config(const std::string& model) {
    inference::ModelConfigRequest request;
    request.set_name(model);
    inference::ModelConfigResponse response;
    grpc::Status status = Call(&Stub::ModelConfig, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.config();
  }

  static inference::ModelStatistics Stats(const std::string& model) {
    inference::ModelStatisticsRequest request;
    request.set_name(model);
    inference::ModelStatisticsResponse response;
    grpc::Status status = Call(&Stub::ModelStatistics, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.model_stats_size(), 1);
    return response.model_stats_size() == 1 ? response.model_stats(0)
                                            : inference::ModelStatistics();
  }

  static TempDir* repo_;
  static std::string* lenet_;
  static std::string* labelled_;
  static ServerProcess* server_;
};

TempDir* TritonCompatTest::repo_ = nullptr;
std::string* TritonCompatTest::lenet_ = nullptr;
std::string* TritonCompatTest::labelled_ = nullptr;
ServerProcess* TritonCompatTest::server_ = nullptr;

TEST_F(TritonCompatTest, ModelConfigDescribesModelAndConfig) {
  inference::ModelConfig c = Config("mlp");
  EXPECT_EQ(c.name(), "mlp");
  EXPECT_EQ(c.platform(), "flexor");
  EXPECT_EQ(c.backend(), "flexor");
  EXPECT_EQ(c.max_batch_size(), 4);
  ASSERT_EQ(c.input_size(), 1);
  EXPECT_EQ(c.input(0).name(), "image");
  EXPECT_EQ(c.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_EQ(c.input(0).format(), inference::ModelInput::FORMAT_NCHW);
  EXPECT_EQ(
      std::vector<int64_t>(c.input(0).dims().begin(), c.input(0).dims().end()),
      (std::vector<int64_t>{1, 28, 28}));
  ASSERT_EQ(c.output_size(), 1);
  EXPECT_EQ(c.output(0).name(), "probabilities");
  EXPECT_EQ(c.output(0).data_type(), inference::TYPE_FP32);
  EXPECT_EQ(std::vector<int64_t>(c.output(0).dims().begin(),
                                 c.output(0).dims().end()),
            (std::vector<int64_t>{10}));
  ASSERT_TRUE(c.has_dynamic_batching());
  EXPECT_EQ(c.dynamic_batching().max_queue_delay_microseconds(), 100u);
  EXPECT_EQ(c.dynamic_batching().default_queue_policy().max_queue_size(),
            1024u);
  EXPECT_EQ(c.version_policy().latest().num_versions(), 1u);
  ASSERT_EQ(c.instance_group_size(), 1);
  EXPECT_EQ(c.instance_group(0).kind(),
            inference::ModelInstanceGroup::KIND_CPU);
  EXPECT_EQ(c.instance_group(0).count(), 2);  // --threads=2
  EXPECT_EQ(c.parameters().at("activation_precision").string_value(), "fp32");
  // The server default where the model has no config.pbtxt.
  EXPECT_EQ(Config("lenet").max_batch_size(), 32);
  // Triton's config.pbtxt fields that mean the same thing are read.
  c = Config("tritoncfg");
  EXPECT_EQ(c.max_batch_size(), 7);
  EXPECT_TRUE(c.version_policy().has_all());
  EXPECT_EQ(c.dynamic_batching().max_queue_delay_microseconds(), 300u);
  EXPECT_EQ(c.dynamic_batching().default_queue_policy().max_queue_size(), 64u);

  inference::ModelConfigRequest request;
  inference::ModelConfigResponse response;
  request.set_name("nope");
  EXPECT_EQ(Call(&Stub::ModelConfig, request, &response).error_code(),
            StatusCode::NOT_FOUND);
  request.set_name("lenet");
  request.set_version("7");
  EXPECT_EQ(Call(&Stub::ModelConfig, request, &response).error_code(),
            StatusCode::NOT_FOUND);
  request.set_version("01");
  EXPECT_EQ(Call(&Stub::ModelConfig, request, &response).error_code(),
            StatusCode::INVALID_ARGUMENT);
  request.set_version("1");
  EXPECT_TRUE(Call(&Stub::ModelConfig, request, &response).ok());
}

// Versions are parsed once, strictly: "01" is not version 1 anywhere.
TEST_F(TritonCompatTest, NonCanonicalVersionsAreInvalidEverywhere) {
  for (const std::string version :
       {"01", "+1", " 1", "1 ", "x", "0", "-1", "99999999999999999999"}) {
    SCOPED_TRACE(version);
    inference::ModelStatisticsRequest stats;
    stats.set_name("lenet");
    stats.set_version(version);
    inference::ModelStatisticsResponse stats_response;
    EXPECT_EQ(Call(&Stub::ModelStatistics, stats, &stats_response).error_code(),
              StatusCode::INVALID_ARGUMENT);
    inference::ModelReadyRequest ready;
    ready.set_name("lenet");
    ready.set_version(version);
    inference::ModelReadyResponse ready_response;
    EXPECT_EQ(Call(&Stub::ModelReady, ready, &ready_response).error_code(),
              StatusCode::INVALID_ARGUMENT);
    inference::ModelMetadataRequest md;
    md.set_name("lenet");
    md.set_version(version);
    inference::ModelMetadataResponse md_response;
    EXPECT_EQ(Call(&Stub::ModelMetadata, md, &md_response).error_code(),
              StatusCode::INVALID_ARGUMENT);
    inference::ModelInferRequest infer =
        MakeInferRequest("lenet", RandomImages(1, 1), 1);
    infer.set_model_version(version);
    inference::ModelInferResponse infer_response;
    EXPECT_EQ(Infer(server_->stub(), infer, &infer_response).error_code(),
              StatusCode::INVALID_ARGUMENT);
  }
  inference::ModelStatisticsRequest stats;
  stats.set_name("lenet");
  stats.set_version("1");
  inference::ModelStatisticsResponse stats_response;
  ASSERT_TRUE(Call(&Stub::ModelStatistics, stats, &stats_response).ok());
  ASSERT_EQ(stats_response.model_stats_size(), 1);
  EXPECT_EQ(stats_response.model_stats(0).version(), "1");
}

TEST_F(TritonCompatTest, UnloadOfModelNotLoadedSucceeds) {
  EXPECT_TRUE(Unload("never-heard-of").ok());
  ASSERT_TRUE(Load("override").ok());
  ASSERT_TRUE(Unload("override").ok());
  grpc::Status again = Unload("override");
  EXPECT_TRUE(again.ok()) << again.error_message();
  ASSERT_TRUE(Load("override").ok());
  EXPECT_EQ(Unload("../evil").error_code(), StatusCode::INVALID_ARGUMENT);
}

TEST(TritonStatusCodes, LoadAndUnloadOutsideExplicitModeAreUnavailable) {
  TempDir repo;
  WriteModel(repo.path(), "m", 1, ModelBytes(3));
  for (const char* mode : {"none", "poll"}) {
    SCOPED_TRACE(mode);
    ServerProcess server(repo.path(),
                         {absl::StrCat("--model-control-mode=", mode)});
    ASSERT_TRUE(server.started());
    inference::RepositoryModelLoadRequest load;
    load.set_model_name("m");
    inference::RepositoryModelLoadResponse load_response;
    grpc::ClientContext load_context;
    grpc::Status status =
        server.stub().RepositoryModelLoad(&load_context, load, &load_response);
    EXPECT_EQ(status.error_code(), StatusCode::UNAVAILABLE);
    EXPECT_NE(status.error_message().find("explicit"), std::string::npos)
        << status.error_message();
    inference::RepositoryModelUnloadRequest unload;
    unload.set_model_name("m");
    inference::RepositoryModelUnloadResponse unload_response;
    grpc::ClientContext unload_context;
    EXPECT_EQ(
        server.stub()
            .RepositoryModelUnload(&unload_context, unload, &unload_response)
            .error_code(),
        StatusCode::UNAVAILABLE);
  }
}

TEST_F(TritonCompatTest, StatisticsCountSuccessesOnly) {
  const inference::ModelStatistics before = Stats("slow");
  // One success (waits out the 2 s batching delay)...
  inference::ModelInferResponse response;
  grpc::Status status =
      Infer(server_->stub(), MakeInferRequest("slow", RandomImages(1, 2), 1),
            &response, 10000);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // ...one that is refused when decoded, and one whose deadline passes in
  // the queue (answered by the batcher).
  inference::ModelInferRequest bad =
      MakeInferRequest("slow", RandomImages(1, 3), 1);
  bad.mutable_inputs(0)->set_shape(2, 27);
  EXPECT_EQ(Infer(server_->stub(), bad, &response).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(
      Infer(server_->stub(), MakeInferRequest("slow", RandomImages(1, 4), 1),
            &response, 300)
          .error_code(),
      StatusCode::DEADLINE_EXCEEDED);
  // The batcher answers the expired request when its batch would start.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  const inference::ModelStatistics after = Stats("slow");
  const inference::InferStatistics& a = after.inference_stats();
  const inference::InferStatistics& b = before.inference_stats();
  EXPECT_EQ(a.success().count() - b.success().count(), 1u);
  EXPECT_EQ(a.fail().count() - b.fail().count(), 2u);
  EXPECT_EQ(a.queue().count() - b.queue().count(), 1u);
  EXPECT_EQ(a.compute_input().count() - b.compute_input().count(), 1u);
  EXPECT_EQ(a.compute_infer().count() - b.compute_infer().count(), 1u);
  EXPECT_EQ(a.compute_output().count() - b.compute_output().count(), 1u);
  EXPECT_EQ(after.inference_count() - before.inference_count(), 1u);
  // Per batch size: input, infer and output, one count per execution.
  ASSERT_GE(after.batch_stats_size(), 1);
  for (const inference::InferBatchStatistics& batch : after.batch_stats()) {
    EXPECT_GE(batch.compute_infer().count(), 1u);
    EXPECT_EQ(batch.compute_input().count(), batch.compute_infer().count());
    EXPECT_EQ(batch.compute_output().count(), batch.compute_infer().count());
    EXPECT_GT(batch.compute_output().ns(), 0u);
  }
  // Only decoupled models fill response_stats (Triton); this one is not.
  EXPECT_TRUE(after.response_stats().empty());
}

TEST_F(TritonCompatTest, StreamInferAnswersEachRequestAndCarriesErrors) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  auto stream = server_->stub().ModelStreamInfer(&context);
  const std::vector<float> input = RandomImages(2, 40);
  inference::ModelInferRequest good = MakeInferRequest("lenet", input, 2);
  good.set_id("good");
  inference::ModelInferRequest bad_shape = good;
  bad_shape.set_id("bad-shape");
  bad_shape.mutable_inputs(0)->set_shape(2, 27);
  inference::ModelInferRequest bad_version = good;
  bad_version.set_id("bad-version");
  bad_version.set_model_version("9");
  inference::ModelInferRequest good_again = good;
  good_again.set_id("good-again");
  for (const auto* r : {&good, &bad_shape, &bad_version, &good_again}) {
    ASSERT_TRUE(stream->Write(*r));
  }
  ASSERT_TRUE(stream->WritesDone());
  std::map<std::string, inference::ModelStreamInferResponse> by_id;
  inference::ModelStreamInferResponse response;
  while (stream->Read(&response)) {
    by_id[response.infer_response().id()] = response;
  }
  grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(by_id.size(), 4u);
  const std::vector<float> expected = Reference(*lenet_, input, 2);
  for (const char* id : {"good", "good-again"}) {
    const inference::ModelStreamInferResponse& r = by_id[id];
    EXPECT_EQ(r.error_message(), "") << id;
    EXPECT_EQ(r.infer_response().model_version(), "1");
    const std::vector<float> out = OutputOf(r.infer_response());
    ASSERT_EQ(out.size(), expected.size());
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_NEAR(out[i], expected[i], 1e-5f + 1e-4f * std::fabs(expected[i]));
    }
  }
  EXPECT_NE(by_id["bad-shape"].error_message().find("has shape"),
            std::string::npos)
      << by_id["bad-shape"].error_message();
  EXPECT_EQ(by_id["bad-shape"].infer_response().model_name(), "lenet");
  EXPECT_NE(by_id["bad-version"].error_message().find("version 9"),
            std::string::npos)
      << by_id["bad-version"].error_message();
}

TEST_F(TritonCompatTest, StreamWithNoRequestsEndsOk) {
  grpc::ClientContext context;
  auto stream = server_->stub().ModelStreamInfer(&context);
  ASSERT_TRUE(stream->WritesDone());
  inference::ModelStreamInferResponse response;
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_TRUE(stream->Finish().ok());
}

// A client that goes away mid-stream: the queued request is cancelled and
// the server goes on serving.
TEST_F(TritonCompatTest, StreamCancelledWithRequestsInFlight) {
  {
    grpc::ClientContext context;
    auto stream = server_->stub().ModelStreamInfer(&context);
    for (int i = 0; i < 3; ++i) {
      inference::ModelInferRequest r =
          MakeInferRequest("slow", RandomImages(1, 70 + i), 1);
      r.set_id(absl::StrCat(i));
      ASSERT_TRUE(stream->Write(r));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    context.TryCancel();
    EXPECT_EQ(stream->Finish().error_code(), StatusCode::CANCELLED);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  inference::ModelInferResponse response;
  EXPECT_TRUE(Infer(server_->stub(),
                    MakeInferRequest("lenet", RandomImages(1, 80), 1),
                    &response)
                  .ok());
  EXPECT_TRUE(Stats("slow").inference_stats().fail().count() >= 3);
}

TEST_F(TritonCompatTest, LogSettingsChangeTheLogLevelAtRunTime) {
  using Setting = inference::LogSettingsRequest::SettingValue;
  auto set = [](const std::string& key, const Setting& value) {
    inference::LogSettingsRequest request;
    (*request.mutable_settings())[key] = value;
    inference::LogSettingsResponse response;
    grpc::Status status = Call(&Stub::LogSettings, request, &response);
    return std::make_pair(status, response);
  };
  inference::LogSettingsResponse current;
  ASSERT_TRUE(
      Call(&Stub::LogSettings, inference::LogSettingsRequest(), &current).ok());
  EXPECT_TRUE(current.settings().at("log_info").bool_param());
  EXPECT_TRUE(current.settings().at("log_error").bool_param());
  EXPECT_EQ(current.settings().at("log_format").string_param(), "default");

  Setting off;
  off.set_bool_param(false);
  auto [status, response] = set("log_info", off);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(response.settings().at("log_info").bool_param());
  // An unload of a model that is not loaded logs at INFO.
  ASSERT_TRUE(Unload("quiet-model").ok());
  EXPECT_EQ(server_->Log().find("quiet-model"), std::string::npos);
  Setting on;
  on.set_bool_param(true);
  ASSERT_TRUE(set("log_info", on).first.ok());
  ASSERT_TRUE(Unload("loud-model").ok());
  EXPECT_NE(server_->Log().find("loud-model"), std::string::npos);

  Setting verbose;
  verbose.set_uint32_param(2);
  auto [vstatus, vresponse] = set("log_verbose_level", verbose);
  ASSERT_TRUE(vstatus.ok());
  EXPECT_EQ(vresponse.settings().at("log_verbose_level").uint32_param(), 2u);
  verbose.set_uint32_param(0);
  ASSERT_TRUE(set("log_verbose_level", verbose).first.ok());

  Setting file;
  file.set_string_param("/tmp/elsewhere.log");
  EXPECT_EQ(set("log_file", file).first.error_code(),
            StatusCode::INVALID_ARGUMENT);
  Setting text;
  text.set_string_param("yes");
  EXPECT_EQ(set("log_info", text).first.error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(set("log_colour", on).first.error_code(),
            StatusCode::INVALID_ARGUMENT);
  text.set_string_param("ISO8601");
  EXPECT_EQ(set("log_format", text).first.error_code(),
            StatusCode::INVALID_ARGUMENT);
}

TEST_F(TritonCompatTest, UnimplementedMethodsSayWhich) {
  auto expect = [](const grpc::Status& status, const std::string& method) {
    EXPECT_EQ(status.error_code(), StatusCode::UNIMPLEMENTED) << method;
    EXPECT_NE(status.error_message().find(method), std::string::npos)
        << status.error_message();
  };
  {
    inference::SystemSharedMemoryStatusResponse r;
    expect(Call(&Stub::SystemSharedMemoryStatus,
                inference::SystemSharedMemoryStatusRequest(), &r),
           "SystemSharedMemoryStatus");
  }
  {
    inference::SystemSharedMemoryRegisterResponse r;
    expect(Call(&Stub::SystemSharedMemoryRegister,
                inference::SystemSharedMemoryRegisterRequest(), &r),
           "SystemSharedMemoryRegister");
  }
  {
    inference::SystemSharedMemoryUnregisterResponse r;
    expect(Call(&Stub::SystemSharedMemoryUnregister,
                inference::SystemSharedMemoryUnregisterRequest(), &r),
           "SystemSharedMemoryUnregister");
  }
  {
    inference::CudaSharedMemoryStatusResponse r;
    expect(Call(&Stub::CudaSharedMemoryStatus,
                inference::CudaSharedMemoryStatusRequest(), &r),
           "CudaSharedMemoryStatus");
  }
  {
    inference::CudaSharedMemoryRegisterResponse r;
    expect(Call(&Stub::CudaSharedMemoryRegister,
                inference::CudaSharedMemoryRegisterRequest(), &r),
           "CudaSharedMemoryRegister");
  }
  {
    inference::CudaSharedMemoryUnregisterResponse r;
    expect(Call(&Stub::CudaSharedMemoryUnregister,
                inference::CudaSharedMemoryUnregisterRequest(), &r),
           "CudaSharedMemoryUnregister");
  }
  {
    inference::TraceSettingResponse r;
    expect(Call(&Stub::TraceSetting, inference::TraceSettingRequest(), &r),
           "TraceSetting");
  }
  inference::ServerMetadataResponse md;
  ASSERT_TRUE(
      Call(&Stub::ServerMetadata, inference::ServerMetadataRequest(), &md)
          .ok());
  std::vector<std::string> extensions(md.extensions().begin(),
                                      md.extensions().end());
  for (const char* e : {"classification", "model_configuration",
                        "model_repository", "statistics", "logging"}) {
    EXPECT_NE(std::find(extensions.begin(), extensions.end(), e),
              extensions.end())
        << e;
  }
}

// Triton's override: the config applies to this load only; nothing is
// written to the repository, and a plain load goes back to its config.
TEST_F(TritonCompatTest, ConfigOverrideJsonAppliesToThatLoadOnly) {
  const std::string config_path = repo_->path() + "/override/config.pbtxt";
  ASSERT_TRUE(Load("override").ok());
  EXPECT_EQ(Config("override").max_batch_size(), 32);
  grpc::Status status = Load("override",
                             R"({"name": "override", "max_batch_size": 2,
          "dynamic_batching": {"max_queue_delay_microseconds": "50"},
          "instance_group": [{"kind": "KIND_CPU", "count": 1}],
          "input": [{"name": "image", "data_type": "TYPE_FP32",
                     "dims": [1, 28, 28]}]})");
  ASSERT_TRUE(status.ok()) << status.error_message();
  inference::ModelConfig c = Config("override");
  EXPECT_EQ(c.max_batch_size(), 2);
  EXPECT_EQ(c.dynamic_batching().max_queue_delay_microseconds(), 50u);
  EXPECT_FALSE(std::filesystem::exists(config_path));
  inference::ModelInferResponse response;
  EXPECT_EQ(
      Infer(server_->stub(),
            MakeInferRequest("override", RandomImages(3, 1), 3), &response)
          .error_code(),
      StatusCode::INVALID_ARGUMENT);
  // Triton: no dynamic_batching section means no dynamic batcher.
  ASSERT_TRUE(Load("override", R"({"max_batch_size": 8})").ok());
  EXPECT_FALSE(Config("override").has_dynamic_batching());
  // The project's config.pbtxt form is still accepted, as an override too.
  ASSERT_TRUE(Load("override", "max_batch_size: 5").ok());
  EXPECT_EQ(Config("override").max_batch_size(), 5);
  EXPECT_TRUE(Config("override").has_dynamic_batching());  // server default
  // Triton's config.pbtxt form.
  status = Load("override",
                "name: \"override\"\nbackend: \"flexor\"\nmax_batch_size: 6\n"
                "dynamic_batching { max_queue_delay_microseconds: 10 }\n"
                "instance_group [ { kind: KIND_CPU count: 4 } ]\n"
                "parameters { key: \"activation_precision\" value { "
                "string_value: \"int8\" } }\n");
  ASSERT_TRUE(status.ok()) << status.error_message();
  c = Config("override");
  EXPECT_EQ(c.max_batch_size(), 6);
  EXPECT_EQ(c.parameters().at("activation_precision").string_value(), "int8");
  // A plain load: the repository's config (none: the defaults).
  ASSERT_TRUE(Load("override").ok());
  EXPECT_EQ(Config("override").max_batch_size(), 32);
  EXPECT_FALSE(std::filesystem::exists(config_path));

  // What the ModelConfig RPC answers, as JSON, loads back unchanged (the
  // get_model_config -> edit -> load_model round trip of tritonclient).
  std::string json;
  ASSERT_TRUE(
      google::protobuf::util::MessageToJsonString(Config("mlp"), &json).ok());
  status = Load("mlp", json);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << json;
  std::string reloaded;
  ASSERT_TRUE(
      google::protobuf::util::MessageToJsonString(Config("mlp"), &reloaded)
          .ok());
  EXPECT_EQ(reloaded, json);
  EXPECT_EQ(Config("mlp").max_batch_size(), 4);
  EXPECT_EQ(Config("mlp").dynamic_batching().max_queue_delay_microseconds(),
            100u);
}

// The configured activation precision reaches the engine: int8 and int16
// answer differently from FP32 (one-plane convolutions run on integers),
// int16 far closer than int8, and the ModelConfig RPC names each.
TEST_F(TritonCompatTest, ActivationPrecisionReachesTheEngine) {
  const std::vector<float> images = RandomImages(2, 9);
  std::map<std::string, std::vector<float>> outputs;
  for (const char* precision : {"FP32", "INT8", "INT16"}) {
    SCOPED_TRACE(precision);
    ASSERT_TRUE(
        Load("override", absl::StrCat("activation_precision: ", precision))
            .ok());
    std::string name = precision;
    for (char& ch : name) ch = static_cast<char>(std::tolower(ch));
    EXPECT_EQ(Config("override")
                  .parameters()
                  .at("activation_precision")
                  .string_value(),
              name);
    inference::ModelInferResponse response;
    const grpc::Status status = Infer(
        server_->stub(), MakeInferRequest("override", images, 2), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    outputs[name] = OutputOf(response);
  }
  auto max_diff = [&](const std::string& a) {
    double d = 0;
    for (size_t i = 0; i < outputs[a].size(); ++i) {
      d = std::max<double>(d, std::abs(outputs[a][i] - outputs["fp32"][i]));
    }
    return d;
  };
  ASSERT_EQ(outputs["int8"].size(), outputs["fp32"].size());
  ASSERT_EQ(outputs["int16"].size(), outputs["fp32"].size());
  EXPECT_GT(max_diff("int8"), 0.0);
  EXPECT_GT(max_diff("int16"), 0.0);
  EXPECT_LT(max_diff("int16") * 10, max_diff("int8"));

  // Mixed precision: int8 with one convolution in int16 answers unlike
  // either, and the ModelConfig RPC gives the list back.
  ASSERT_TRUE(Load("override",
                   "activation_precision: INT8\n"
                   "layer_activation_precision { layer: \"conv2\" "
                   "precision: INT16 }")
                  .ok());
  EXPECT_EQ(Config("override")
                .parameters()
                .at("layer_activation_precision")
                .string_value(),
            "conv2=int16");
  inference::ModelInferResponse response;
  grpc::Status status = Infer(
      server_->stub(), MakeInferRequest("override", images, 2), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const std::vector<float> mixed = OutputOf(response);
  EXPECT_NE(mixed, outputs["int8"]);
  EXPECT_NE(mixed, outputs["int16"]);
  // A layer the model does not have: the load is refused, naming the
  // layers it has, and the loaded version keeps serving as configured.
  status = Load("override",
                R"({"parameters": {"activation_precision": {"string_value":
                    "int8"}, "layer_activation_precision": {"string_value":
                    "block1_conv1=int16"}}})");
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find(
                "no Dense or Conv2d layer 'block1_conv1' (its layers: conv1, "
                "conv2"),
            std::string::npos)
      << status.error_message();
  status = Infer(server_->stub(), MakeInferRequest("override", images, 2),
                 &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(OutputOf(response), mixed);
  ASSERT_TRUE(Load("override").ok());
}

TEST_F(TritonCompatTest, ConfigOverrideRefusesWhatItCannotHonour) {
  auto expect = [](const std::string& config, const std::string& needle) {
    grpc::Status status = Load("override", config);
    EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << config;
    EXPECT_NE(status.error_message().find(needle), std::string::npos)
        << status.error_message();
  };
  expect(R"({"sequence_batching": {}})", "sequence_batching");
  expect(R"({"name": "other"})", "differs from the model's name");
  expect(R"({"backend": "onnxruntime"})", "onnxruntime");
  expect(R"({"instance_group": [{"kind": "KIND_GPU", "count": 1}]})",
         "KIND_GPU");
  expect(R"({"parameters": {"colour": {"string_value": "red"}}})", "colour");
  expect(R"({"input": [{"name": "image", "data_type": "TYPE_FP32",
                        "dims": [3, 32, 32]}]})",
         "input section does not match");
  expect(R"({"output": [{"name": "logits", "data_type": "TYPE_FP32",
                         "dims": [10]}]})",
         "output section does not match");
  expect(R"({"max_batch_size": -1})", "negative");
  expect("{ not json", "JSON");
  expect("max_batch_sise: 3", "max_batch_sise");
  expect(R"({"dynamic_batching": {"default_queue_policy":
             {"default_timeout_microseconds": "5"}}})",
         "timeouts");
  // Nothing was half-applied: the model still serves with the defaults.
  EXPECT_EQ(Config("override").max_batch_size(), 32);
}

// Triton's rules for file: uploads, with a config alongside; the files are
// published atomically into the repository, the config is an override.
TEST_F(TritonCompatTest, FileUploadWithJsonConfig) {
  const std::string v1 = ModelBytes(50);
  grpc::Status status =
      Load("uploaded-with-config", R"({"max_batch_size": 3})", v1, 1);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Config("uploaded-with-config").max_batch_size(), 3);
  EXPECT_TRUE(std::filesystem::exists(repo_->path() +
                                      "/uploaded-with-config/1/model.flexor"));
  EXPECT_FALSE(std::filesystem::exists(repo_->path() +
                                       "/uploaded-with-config/config.pbtxt"));
  const std::vector<float> input = RandomImages(1, 51);
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer(server_->stub(),
                    MakeInferRequest("uploaded-with-config", input, 1),
                    &response)
                  .ok());
  // A config that the uploaded file does not satisfy publishes nothing.
  status = Load("uploaded-with-config",
                R"({"input": [{"name": "pixels", "data_type": "TYPE_FP32",
                               "dims": [1, 28, 28]}]})",
                ModelBytes(52), 2);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(
      std::filesystem::exists(repo_->path() + "/uploaded-with-config/2"));
}

std::vector<int64_t> TopK(const float* row, int64_t n, int64_t k) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [row](int64_t a, int64_t b) { return row[a] > row[b]; });
  order.resize(static_cast<size_t>(k));
  return order;
}

TEST_F(TritonCompatTest, ClassificationReturnsTopClassesWithLabels) {
  const std::vector<float> input = RandomImages(2, 60);
  const std::vector<float> scores = Reference(*labelled_, input, 2);
  for (bool binary : {false, true}) {
    SCOPED_TRACE(binary);
    inference::ModelInferRequest request =
        MakeInferRequest("labelled", input, 2);
    auto* out = request.add_outputs();
    out->set_name("probabilities");
    (*out->mutable_parameters())["class_count"].set_int64_param(3);
    (*out->mutable_parameters())["binary_data"].set_bool_param(binary);
    inference::ModelInferResponse response;
    grpc::Status status = Infer(server_->stub(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.outputs_size(), 1);
    EXPECT_EQ(response.outputs(0).datatype(), "BYTES");
    EXPECT_EQ(std::vector<int64_t>(response.outputs(0).shape().begin(),
                                   response.outputs(0).shape().end()),
              (std::vector<int64_t>{2, 3}));
    std::vector<std::string> entries;
    if (binary) {
      ASSERT_EQ(response.raw_output_contents_size(), 1);
      const std::string& raw = response.raw_output_contents(0);
      for (size_t pos = 0; pos + 4 <= raw.size();) {
        const uint32_t n =
            static_cast<uint8_t>(raw[pos]) |
            static_cast<uint8_t>(raw[pos + 1]) << 8 |
            static_cast<uint8_t>(raw[pos + 2]) << 16 |
            static_cast<uint32_t>(static_cast<uint8_t>(raw[pos + 3])) << 24;
        entries.push_back(raw.substr(pos + 4, n));
        pos += 4 + n;
      }
    } else {
      const auto& bytes = response.outputs(0).contents().bytes_contents();
      entries.assign(bytes.begin(), bytes.end());
    }
    ASSERT_EQ(entries.size(), 6u);
    for (int64_t b = 0; b < 2; ++b) {
      const std::vector<int64_t> top = TopK(&scores[b * 10], 10, 3);
      for (int64_t i = 0; i < 3; ++i) {
        const std::vector<std::string> parts =
            absl::StrSplit(entries[b * 3 + i], absl::MaxSplits(':', 2));
        ASSERT_EQ(parts.size(), 3u) << entries[b * 3 + i];
        EXPECT_NEAR(std::stof(parts[0]), scores[b * 10 + top[i]], 1e-5);
        EXPECT_EQ(parts[1], std::to_string(top[i]));
        EXPECT_EQ(parts[2], kLabels[top[i]]);
      }
    }
  }
  // Without labels: "score:index"; more classes than there are: all ten.
  inference::ModelInferRequest request =
      MakeInferRequest("lenet", RandomImages(1, 61), 1);
  request.clear_raw_input_contents();
  for (float v : RandomImages(1, 61)) {
    request.mutable_inputs(0)->mutable_contents()->add_fp32_contents(v);
  }
  auto* out = request.add_outputs();
  out->set_name("probabilities");
  (*out->mutable_parameters())["class_count"].set_int64_param(50);
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer(server_->stub(), request, &response).ok());
  ASSERT_EQ(response.outputs(0).contents().bytes_contents_size(), 10);
  EXPECT_EQ(
      std::count(response.outputs(0).contents().bytes_contents(0).begin(),
                 response.outputs(0).contents().bytes_contents(0).end(), ':'),
      1);
  // A bad class_count is refused, not ignored.
  (*out->mutable_parameters())["class_count"].set_int64_param(0);
  EXPECT_EQ(Infer(server_->stub(), request, &response).error_code(),
            StatusCode::INVALID_ARGUMENT);
  (*out->mutable_parameters())["class_count"].set_string_param("3");
  EXPECT_EQ(Infer(server_->stub(), request, &response).error_code(),
            StatusCode::INVALID_ARGUMENT);
}

// Every listed service can be described through both reflection versions,
// the health service included.
TEST_F(TritonCompatTest, ReflectionV1AndV1AlphaDescribeEveryService) {
  const ReflectionV1Answers v1 = ReflectV1(*server_, {"no.such.Service"});
  const std::vector<std::string>& services = v1.services;
  for (const char* expected :
       {"inference.GRPCInferenceService", "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection"}) {
    EXPECT_NE(std::find(services.begin(), services.end(), expected),
              services.end())
        << expected;
  }
  for (const std::string& service : services) {
    EXPECT_EQ(v1.describe.at(service), 0) << service;
  }
  EXPECT_EQ(v1.describe.at("no.such.Service"),
            static_cast<int>(StatusCode::NOT_FOUND));

  // v1alpha (gRPC's own service) now finds the health descriptors too.
  auto alpha =
      grpc::reflection::v1alpha::ServerReflection::NewStub(server_->channel());
  grpc::ClientContext alpha_context;
  auto alpha_stream = alpha->ServerReflectionInfo(&alpha_context);
  for (const std::string& service : services) {
    SCOPED_TRACE(service);
    grpc::reflection::v1alpha::ServerReflectionRequest alpha_request;
    alpha_request.set_file_containing_symbol(service);
    ASSERT_TRUE(alpha_stream->Write(alpha_request));
    grpc::reflection::v1alpha::ServerReflectionResponse alpha_response;
    ASSERT_TRUE(alpha_stream->Read(&alpha_response));
    EXPECT_GT(
        alpha_response.file_descriptor_response().file_descriptor_proto_size(),
        0)
        << alpha_response.error_response().error_message();
  }
  alpha_stream->WritesDone();
  EXPECT_TRUE(alpha_stream->Finish().ok());
}

}  // namespace
}  // namespace flexor::server::testing
