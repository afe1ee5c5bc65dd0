// Issue 14, "Many models per server", end to end on a real flexor_server:
// the metric modes (server-wide histograms by default, per-model detail for
// chosen models) and KServe ModelMesh's model-runtime SPI driven through
// flexorctl mesh, with inference routed by the mm-model-id header.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"

namespace flexor::server::testing {
namespace {

namespace fs = std::filesystem;

// A label-free sample line ("name value") is present.
bool HasUnlabelled(const std::string& exposition, const std::string& name) {
  return absl::StrContains(exposition, absl::StrCat("\n", name, " "));
}

grpc::Status InferOk(ServerProcess& server, const std::string& name) {
  inference::ModelInferResponse response;
  return Infer(server.stub(), MakeInferRequest(name, RandomImages(1, 9), 1),
               &response);
}

TEST(PerModelHistogramsTest, ServerWideByDefaultPerModelWhenChosen) {
  TempDir repo;
  WriteModel(repo.path(), "plain", 1, ModelBytes(1));
  WriteModel(repo.path(), "detailed", 1, ModelBytes(2));
  WriteText(repo.path() + "/detailed/config.pbtxt",
            "metrics { per_model_histograms: true }\n");
  WriteModel(repo.path(), "flagged", 1, ModelBytes(3));
  WriteModel(repo.path(), "optout", 1, ModelBytes(4));
  WriteText(repo.path() + "/optout/config.pbtxt",
            "metrics { per_model_histograms: false }\n");
  ServerProcess server(repo.path(),
                       {"--model-control-mode=explicit", "--load-model=*",
                        "--per-model-histograms=flagged,optout"});
  ASSERT_TRUE(server.started()) << server.Log();
  for (const char* name : {"plain", "detailed", "flagged", "optout"}) {
    ASSERT_TRUE(InferOk(server, name).ok()) << name;
  }
  const std::string m = server.ScrapeMetrics();
  const std::string hist = "flexor_inference_request_duration_seconds_count";
  // Chosen by config or flag: own histograms.
  EXPECT_EQ(MetricValue(m, hist, {"model=\"detailed\""}), 1) << m;
  EXPECT_EQ(MetricValue(m, hist, {"model=\"flagged\""}), 1);
  // Not chosen (the config's false beats the flag): server-wide only.
  EXPECT_EQ(MetricValue(m, hist, {"model=\"plain\""}), -1);
  EXPECT_EQ(MetricValue(m, hist, {"model=\"optout\""}), -1);
  EXPECT_EQ(
      MetricValue(m, "flexor_inference_batch_size_count", {"model=\"plain\""}),
      -1);
  ASSERT_TRUE(HasUnlabelled(m, hist)) << m;
  EXPECT_NE(m.find(absl::StrCat("\n", hist, " 2\n")), std::string::npos)
      << "plain + optout in the server-wide histogram";
  // Counters and the file size stay per model.
  EXPECT_EQ(MetricValue(m, "flexor_inference_requests_total",
                        {"model=\"plain\"", "code=\"OK\""}),
            1);
  EXPECT_GT(MetricValue(m, "flexor_model_file_bytes", {"model=\"plain\""}), 0);
  EXPECT_EQ(MetricValue(m, "flexor_model_weight_bitwidth", {"model=\"plain\""}),
            -1);
  EXPECT_GT(
      MetricValue(m, "flexor_model_weight_bitwidth", {"model=\"detailed\""}),
      0);
  EXPECT_TRUE(HasUnlabelled(m, "flexor_model_compressed_weight_bytes"));
  EXPECT_EQ(MetricValue(m, "flexor_model_loads_total", {"result=\"success\""}),
            4);
  EXPECT_EQ(MetricValue(m, "flexor_model_loads_total", {"model=\"plain\""}),
            -1);
  // An idle detailed model has no histogram series yet (first use).
  WriteModel(repo.path(), "idle", 1, ModelBytes(5));
  WriteText(repo.path() + "/idle/config.pbtxt",
            "metrics { per_model_histograms: true }\n");
  auto [code, out] = RunCommand(
      absl::StrCat(FLEXORCTL_BINARY, " --server=localhost:", server.grpc_port(),
                   " load idle"));
  ASSERT_EQ(code, 0) << out;
  const std::string after = server.ScrapeMetrics();
  EXPECT_EQ(MetricValue(after, hist, {"model=\"idle\""}), -1);
  EXPECT_EQ(MetricValue(after, "flexor_inference_requests_in_flight",
                        {"model=\"idle\""}),
            0);
}

TEST(PerModelHistogramsTest, BadFlagIsRefused) {
  TempDir repo;
  auto [code, out] = RunCommand(absl::StrCat(
      FLEXOR_SERVER_BINARY, " --model-repository=", repo.path(),
      " --grpc-port=0 --metrics-port=-1 --per-model-histograms=a,../b"));
  EXPECT_EQ(code, 2) << out;
  EXPECT_TRUE(absl::StrContains(out, "--per-model-histograms")) << out;
}

class ModelMeshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteModel(root_.path(), "versioned", 1, ModelBytes(11));
    fs::create_directories(root_.path() + "/flat");
    WriteText(root_.path() + "/flat/model.flexor", ModelBytes(12));
    WriteText(root_.path() + "/single.flexor", ModelBytes(13));
    fs::create_directories(root_.path() + "/empty");
    fs::create_directories(root_.path() + "/corrupt");
    WriteText(root_.path() + "/corrupt/model.flexor", "not a model file");
    fs::create_symlink("/etc", root_.path() + "/escape");
    server_ = std::make_unique<ServerProcess>(
        repo_.path(),
        std::vector<std::string>{"--model-control-mode=explicit", "--modelmesh",
                                 "--modelmesh-model-root=" + root_.path(),
                                 "--modelmesh-capacity-bytes=123456789"});
  }

  // flexorctl mesh ARGS: (exit code, output).
  std::pair<int, std::string> Mesh(const std::string& args) {
    return RunCommand(absl::StrCat(FLEXORCTL_BINARY, " --server=localhost:",
                                   server_->grpc_port(), " mesh ", args));
  }

  // ModelInfer routed by the mm-model-id header; model_name says otherwise.
  grpc::Status InferById(const std::string& id, const std::string& bytes) {
    const std::vector<float> input = RandomImages(2, 4);
    grpc::ClientContext context;
    context.AddMetadata("mm-model-id", id);
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    inference::ModelInferResponse response;
    grpc::Status status = server_->stub().ModelInfer(
        &context, MakeInferRequest("not-this-name", input, 2), &response);
    if (status.ok()) {
      EXPECT_EQ(response.model_name(), id);
      EXPECT_EQ(OutputOf(response), Reference(bytes, input, 2));
    }
    // ModelStreamInfer routes by the header too: the same answer, or the
    // same error in the stream's response.
    grpc::ClientContext stream_context;
    stream_context.AddMetadata("mm-model-id", id);
    stream_context.set_deadline(std::chrono::system_clock::now() +
                                std::chrono::seconds(10));
    auto stream = server_->stub().ModelStreamInfer(&stream_context);
    EXPECT_TRUE(stream->Write(MakeInferRequest("not-this-name", input, 2)));
    EXPECT_TRUE(stream->WritesDone());
    inference::ModelStreamInferResponse streamed;
    EXPECT_TRUE(stream->Read(&streamed));
    EXPECT_TRUE(stream->Finish().ok());
    EXPECT_EQ(streamed.error_message().empty(), status.ok())
        << id << ": " << streamed.error_message();
    if (status.ok()) {
      EXPECT_EQ(streamed.infer_response().model_name(), id);
      EXPECT_EQ(OutputOf(streamed.infer_response()),
                Reference(bytes, input, 2));
    }
    return status;
  }

  static int64_t LastNumber(const std::string& out) {
    std::vector<std::string> words =
        absl::StrSplit(out, absl::ByAnyChar(" \n"), absl::SkipEmpty());
    int64_t n = -1;
    if (!words.empty()) EXPECT_TRUE(absl::SimpleAtoi(words.back(), &n)) << out;
    return n;
  }

  TempDir repo_, root_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(ModelMeshTest, LoadSizeInferUnload) {
  ASSERT_TRUE(server_->started()) << server_->Log();
  auto [code, out] = Mesh("status");
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "status READY")) << out;
  EXPECT_TRUE(absl::StrContains(out, "capacity_bytes 123456789")) << out;
  EXPECT_TRUE(
      absl::StrContains(out, "inference.GRPCInferenceService/ModelInfer[1]"))
      << out;

  const std::string versioned = root_.path() + "/versioned";
  std::tie(code, out) = Mesh("predict-size mm-a " + versioned);
  ASSERT_EQ(code, 0) << out;
  const int64_t file_bytes = static_cast<int64_t>(ModelBytes(11).size());
  EXPECT_GT(LastNumber(out), file_bytes);

  std::tie(code, out) = Mesh("load mm-a " + versioned);
  ASSERT_EQ(code, 0) << out << server_->Log();
  const int64_t loaded_size = LastNumber(out);
  EXPECT_GT(loaded_size, file_bytes);
  std::tie(code, out) = Mesh("size mm-a");
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(LastNumber(out), loaded_size);

  // The other layouts: a directory with model.flexor, a single file, a path
  // relative to the root.
  std::tie(code, out) = Mesh("load mm-b " + root_.path() + "/flat/");
  ASSERT_EQ(code, 0) << out;
  std::tie(code, out) = Mesh("load mm-c single.flexor");
  ASSERT_EQ(code, 0) << out;

  EXPECT_TRUE(InferById("mm-a", ModelBytes(11)).ok());
  EXPECT_TRUE(InferById("mm-b", ModelBytes(12)).ok());
  EXPECT_TRUE(InferById("mm-c", ModelBytes(13)).ok());
  EXPECT_EQ(InferById("mm-unknown", "").error_code(),
            grpc::StatusCode::NOT_FOUND);

  std::tie(code, out) = Mesh("unload mm-a");
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(InferById("mm-a", "").error_code(), grpc::StatusCode::NOT_FOUND);
  std::tie(code, out) = Mesh("size mm-a");
  EXPECT_EQ(code, 1);
  EXPECT_TRUE(absl::StrContains(out, "NOT_FOUND")) << out;
  EXPECT_FALSE(fs::exists(repo_.path() + "/mm-a")) << "repository copy kept";
  // Unloading what is not loaded (or cannot be) is OK, as the SPI asks.
  EXPECT_EQ(Mesh("unload mm-a").first, 0);
  EXPECT_EQ(Mesh("unload ../../x").first, 0);
  // Loaded again after an unload: same id, same files.
  std::tie(code, out) = Mesh("load mm-a " + versioned);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(InferById("mm-a", ModelBytes(11)).ok());

  // runtimeStatus purges every loaded model (a restarted sidecar).
  std::tie(code, out) = Mesh("status");
  ASSERT_EQ(code, 0) << out;
  for (const char* id : {"mm-a", "mm-b", "mm-c"}) {
    EXPECT_EQ(InferById(id, "").error_code(), grpc::StatusCode::NOT_FOUND)
        << id;
  }
}

// ModelMesh discovers and describes the SPI through server reflection (v1,
// and gRPC's own v1alpha).
TEST_F(ModelMeshTest, ReflectionListsAndDescribesTheModelRuntime) {
  const ReflectionV1Answers v1 = ReflectV1(*server_);
  EXPECT_NE(
      std::find(v1.services.begin(), v1.services.end(), "mmesh.ModelRuntime"),
      v1.services.end());
  const auto described = v1.describe.find("mmesh.ModelRuntime");
  ASSERT_NE(described, v1.describe.end());
  EXPECT_EQ(described->second, 0);
}

TEST_F(ModelMeshTest, BadPathsAndIdsAreClearErrors) {
  ASSERT_TRUE(server_->started()) << server_->Log();
  struct Case {
    std::string args;
    std::string code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"load m /etc/passwd", "INVALID_ARGUMENT",
       "outside --modelmesh-model-root"},
      {"load m " + root_.path() + "/escape/passwd", "INVALID_ARGUMENT",
       "outside --modelmesh-model-root"},
      {"load m " + root_.path() + "/../", "INVALID_ARGUMENT", "outside"},
      {"load m " + root_.path() + "/missing", "INVALID_ARGUMENT",
       "cannot open"},
      {"load m " + root_.path() + "/empty", "INVALID_ARGUMENT",
       "holds no model.flexor"},
      {"load m ''", "INVALID_ARGUMENT", "empty"},
      {"load ../m " + root_.path() + "/flat", "INVALID_ARGUMENT",
       "invalid model name"},
      {"load m " + root_.path() + "/corrupt", "INVALID_ARGUMENT",
       "failed validation"},
      {"predict-size m /etc", "INVALID_ARGUMENT", "outside"},
      {"size never-loaded", "NOT_FOUND", "not loaded"},
  };
  for (const Case& c : cases) {
    auto [code, out] = Mesh(c.args);
    EXPECT_EQ(code, 1) << c.args << ": " << out;
    if (!c.code.empty()) {
      EXPECT_TRUE(absl::StrContains(out, c.code)) << c.args << ": " << out;
    }
    if (!c.message.empty()) {
      EXPECT_TRUE(absl::StrContains(out, c.message)) << c.args << ": " << out;
    }
  }
  // The server is still there and serves a good load.
  auto [code, out] = Mesh("load good " + root_.path() + "/flat");
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(InferById("good", ModelBytes(12)).ok());
  EXPECT_EQ(kill(server_->pid(), 0), 0);
}

}  // namespace
}  // namespace flexor::server::testing
