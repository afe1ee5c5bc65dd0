#include "tests/server/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "engine/format/model_file.h"
#include "engine/graph/model.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "proto/reflection_v1.grpc.pb.h"

extern char** environ;

namespace flexor::server::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "flexor_srv_XXXXXX").string();
  char* made = mkdtemp(tmpl.data());
  EXPECT_NE(made, nullptr);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string ModelBytes(uint64_t seed, const std::string& method,
                       RandomArch arch, int width) {
  RandomModelSpec spec;
  spec.name = "test";
  spec.arch = arch;
  spec.method = method;
  spec.seed = seed;
  spec.width = width;
  absl::StatusOr<std::string> bytes = BuildRandomModel(spec);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

void WriteText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

void WriteModel(const std::string& repo, const std::string& model,
                int64_t version, const std::string& bytes) {
  // Rename into place, as a publisher would.
  const std::string dir = absl::StrCat(repo, "/", model, "/", version);
  fs::create_directories(dir);
  WriteText(dir + "/.model.tmp", bytes);
  fs::rename(dir + "/.model.tmp", dir + "/model.flexor");
}

ServerProcess::ServerProcess(const std::string& repo,
                             std::vector<std::string> flags,
                             const ClientAuthOptions& client,
                             bool wait_until_ready) {
  port_file_ = dir_.path() + "/ports";
  const std::string listening_file = dir_.path() + "/listening";
  const std::string port_file = wait_until_ready ? port_file_ : listening_file;
  log_path_ = dir_.path() + "/server.log";
  std::vector<std::string> args = {FLEXOR_SERVER_BINARY,
                                   "--model-repository=" + repo,
                                   "--address=127.0.0.1",
                                   "--grpc-port=0",
                                   "--metrics-port=0",
                                   "--port-file=" + port_file_,
                                   "--listening-port-file=" + listening_file};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  const int rc =
      posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << std::strerror(rc);
    pid_ = -1;
    return;
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      ADD_FAILURE() << "server exited during startup:\n" << Log();
      pid_ = -1;
      return;
    }
    std::ifstream in(port_file);
    std::string line;
    while (std::getline(in, line)) {
      std::pair<std::string, std::string> kv = absl::StrSplit(line, '=');
      if (kv.first == "grpc") (void)absl::SimpleAtoi(kv.second, &grpc_port_);
      if (kv.first == "metrics") {
        (void)absl::SimpleAtoi(kv.second, &metrics_port_);
      }
    }
    if (grpc_port_ > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (grpc_port_ <= 0) {
    ADD_FAILURE() << "server not ready in 60 s:\n" << Log();
    return;
  }
  channel_ = Channel(client);
  stub_ = inference::GRPCInferenceService::NewStub(channel_);
}

bool ServerProcess::ReadyFileWritten() const {
  return std::filesystem::exists(port_file_);
}

std::shared_ptr<grpc::Channel> ServerProcess::Channel(
    const ClientAuthOptions& client) const {
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxSendMessageSize(256 << 20);
  channel_args.SetMaxReceiveMessageSize(256 << 20);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeClientChannel(
      absl::StrCat("127.0.0.1:", grpc_port_), client, channel_args);
  EXPECT_TRUE(channel.ok()) << channel.status();
  return channel.ok() ? *channel : nullptr;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::string ServerProcess::Log() const {
  std::ifstream in(log_path_);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

int ServerProcess::Terminate(int timeout_s) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, n);
  }
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::string ServerProcess::ScrapeMetrics() const {
  auto [rc, body] = RunCommand(absl::StrCat(
      "curl -sS --fail --max-time 10 http://127.0.0.1:", metrics_port_,
      "/metrics"));
  EXPECT_EQ(rc, 0) << body;
  return body;
}

double MetricValue(const std::string& exposition, const std::string& name,
                   const std::vector<std::string>& label_matchers) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::StartsWith(line, name)) continue;
    absl::string_view rest = line.substr(name.size());
    if (rest.empty() || (rest[0] != '{' && rest[0] != ' ')) continue;
    bool match = true;
    for (const std::string& m : label_matchers) {
      match &= absl::StrContains(rest, m);
    }
    if (!match) continue;
    const size_t space = rest.rfind(' ');
    double value = 0;
    if (absl::SimpleAtod(rest.substr(space + 1), &value)) return value;
  }
  return -1;
}

std::vector<float> RandomImages(int64_t batch, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> pixel(0.0f, 255.0f);
  std::vector<float> images(static_cast<size_t>(batch * 28 * 28));
  for (float& v : images) v = pixel(rng);
  return images;
}

std::vector<float> Reference(const std::string& model_bytes,
                             const std::vector<float>& input, int64_t batch) {
  absl::StatusOr<std::shared_ptr<const ModelFile>> file =
      ModelFile::FromBytes(model_bytes, "reference");
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return {};
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Compile(*file);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  std::vector<float> out(static_cast<size_t>(batch * (*model)->output_size()));
  EXPECT_TRUE((*model)->Run(input.data(), batch, out.data()).ok());
  return out;
}

inference::ModelInferRequest MakeInferRequest(const std::string& model,
                                              const std::vector<float>& input,
                                              int64_t batch) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  auto* tensor = request.add_inputs();
  tensor->set_name("image");
  tensor->set_datatype("FP32");
  for (int64_t d : {batch, int64_t{1}, int64_t{28}, int64_t{28}}) {
    tensor->add_shape(d);
  }
  request.add_raw_input_contents(reinterpret_cast<const char*>(input.data()),
                                 input.size() * sizeof(float));
  return request;
}

std::vector<float> OutputOf(const inference::ModelInferResponse& response) {
  std::vector<float> out;
  if (response.raw_output_contents_size() > 0) {
    const std::string& raw = response.raw_output_contents(0);
    out.resize(raw.size() / sizeof(float));
    std::memcpy(out.data(), raw.data(), out.size() * sizeof(float));
  } else if (response.outputs_size() > 0) {
    const auto& f = response.outputs(0).contents().fp32_contents();
    out.assign(f.begin(), f.end());
  }
  return out;
}

grpc::Status Infer(inference::GRPCInferenceService::Stub& stub,
                   const inference::ModelInferRequest& request,
                   inference::ModelInferResponse* response, int timeout_ms) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(timeout_ms));
  return stub.ModelInfer(&context, request, response);
}

inference::ModelInferResponse ExpectAnswers(ServerProcess& server,
                                            const std::string& model) {
  inference::ModelInferResponse response;
  grpc::Status status = Infer(
      server.stub(), MakeInferRequest(model, RandomImages(1, 5), 1), &response);
  EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << server.Log();
  EXPECT_EQ(kill(server.pid(), 0), 0);
  return response;
}

std::vector<grpc::StatusCode> Burst(ServerProcess& server,
                                    const inference::ModelInferRequest& request,
                                    int n, std::function<void()> after_send) {
  struct Call {
    grpc::ClientContext context;
    inference::ModelInferResponse response;
    grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  };
  std::vector<std::unique_ptr<Call>> calls;
  absl::Mutex mu;
  int pending = n;
  for (int i = 0; i < n; ++i) {
    calls.push_back(std::make_unique<Call>());
    Call* call = calls.back().get();
    call->context.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::seconds(30));
    server.stub().async()->ModelInfer(
        &call->context, &request, &call->response,
        [call, &mu, &pending](grpc::Status status) {
          absl::MutexLock lock(&mu);
          call->code = status.error_code();
          --pending;
        });
  }
  if (after_send) after_send();
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](int* p) { return *p == 0; }, &pending));
  std::vector<grpc::StatusCode> codes;
  for (auto& call : calls) codes.push_back(call->code);
  return codes;
}

ReflectionV1Answers ReflectV1(ServerProcess& server,
                              const std::vector<std::string>& more_symbols) {
  ReflectionV1Answers answers;
  auto stub = grpc::reflection::v1::ServerReflection::NewStub(server.channel());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(15));
  auto stream = stub->ServerReflectionInfo(&context);
  grpc::reflection::v1::ServerReflectionRequest request;
  grpc::reflection::v1::ServerReflectionResponse response;
  request.set_list_services("");
  EXPECT_TRUE(stream->Write(request));
  EXPECT_TRUE(stream->Read(&response));
  for (const auto& s : response.list_services_response().service()) {
    answers.services.push_back(s.name());
  }
  std::vector<std::string> symbols = answers.services;
  symbols.insert(symbols.end(), more_symbols.begin(), more_symbols.end());
  for (const std::string& symbol : symbols) {
    request.set_file_containing_symbol(symbol);
    if (!stream->Write(request) || !stream->Read(&response)) {
      ADD_FAILURE() << "reflection stream broke at " << symbol;
      break;
    }
    int& answer = answers.describe[symbol];
    answer = response.has_error_response()
                 ? response.error_response().error_code()
                 : -1;
    for (const std::string& bytes :
         response.file_descriptor_response().file_descriptor_proto()) {
      google::protobuf::FileDescriptorProto file;
      EXPECT_TRUE(file.ParseFromString(bytes));
      for (const auto& s : file.service()) {
        if (file.package() + "." + s.name() == symbol) answer = 0;
      }
    }
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  return answers;
}

}  // namespace flexor::server::testing
