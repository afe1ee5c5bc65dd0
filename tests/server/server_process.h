// Test harness: runs the real flexor_server binary as a child process on
// ephemeral loopback ports, with its own model repository, and talks to it
// with a real gRPC client.
#ifndef FLEXOR_TESTS_SERVER_SERVER_PROCESS_H_
#define FLEXOR_TESTS_SERVER_SERVER_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/testing/random_model.h"
#include "grpcpp/grpcpp.h"
#include "proto/grpc_service.grpc.pb.h"
#include "server/auth/tls.h"

namespace flexor::server::testing {

using ::flexor::server::ClientAuthOptions;

// A fresh temporary directory, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// BuildRandomModel bytes (tiny LeNet by default) with `seed`.
std::string ModelBytes(uint64_t seed, const std::string& method = "flexor",
                       RandomArch arch = RandomArch::kLeNet, int width = 1);
// Writes <repo>/<model>/<version>/model.flexor.
void WriteModel(const std::string& repo, const std::string& model,
                int64_t version, const std::string& bytes);
void WriteText(const std::string& path, const std::string& text);

class ServerProcess {
 public:
  // Starts flexor_server --model-repository=`repo` with `flags` added, and
  // waits until it is ready (its --port-file appears), or with
  // `wait_until_ready` false only until it listens (--listening-port-file;
  // startup models may still be loading).
  // `client` configures the channel of channel()/stub() (TLS, token).
  ServerProcess(const std::string& repo, std::vector<std::string> flags,
                const ClientAuthOptions& client = {},
                bool wait_until_ready = true);
  // Whether the server has written its --port-file (startup loads done).
  bool ReadyFileWritten() const;
  ~ServerProcess();  // SIGKILL if still running

  bool started() const { return grpc_port_ > 0; }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string Log() const;

  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // Another channel to this server, with other credentials (TLS, token).
  std::shared_ptr<grpc::Channel> Channel(const ClientAuthOptions& client) const;
  inference::GRPCInferenceService::Stub& stub() { return *stub_; }

  // SIGTERM, then waits; returns the exit status (or -1 on timeout).
  int Terminate(int timeout_s = 30);

  // GET /metrics over HTTP (curl).
  std::string ScrapeMetrics() const;

 private:
  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  TempDir dir_;
  std::string log_path_;
  std::string port_file_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

// Runs a shell command, returns (exit code, stdout+stderr).
std::pair<int, std::string> RunCommand(const std::string& command);

// Value of the first sample of `name` whose labels contain all of
// `label_matchers` (e.g. {"model=\"a\"", "result=\"failure\""}); -1 if absent.
double MetricValue(const std::string& exposition, const std::string& name,
                   const std::vector<std::string>& label_matchers);

// A ModelInfer request for `model` with FP32 raw input [batch, 1, 28, 28].
inference::ModelInferRequest MakeInferRequest(const std::string& model,
                                              const std::vector<float>& input,
                                              int64_t batch);
std::vector<float> RandomImages(int64_t batch, uint64_t seed);
// What the engine itself computes for `model_bytes` on `input` (the expected
// output of a request).
std::vector<float> Reference(const std::string& model_bytes,
                             const std::vector<float>& input, int64_t batch);
// The response's output as floats (raw or typed).
std::vector<float> OutputOf(const inference::ModelInferResponse& response);

// One request of one random image to `model`: expects OK (else the server's
// log is shown) and the process still alive; returns the response.
inference::ModelInferResponse ExpectAnswers(ServerProcess& server,
                                            const std::string& model);

// Sends `n` ModelInfer requests at once (callback API, 30 s deadline each),
// runs `after_send` once all are sent, and returns each request's status
// code once all have answered.
std::vector<grpc::StatusCode> Burst(ServerProcess& server,
                                    const inference::ModelInferRequest& request,
                                    int n,
                                    std::function<void()> after_send = {});

grpc::Status Infer(inference::GRPCInferenceService::Stub& stub,
                   const inference::ModelInferRequest& request,
                   inference::ModelInferResponse* response,
                   int timeout_ms = 10000);

// What a client learns over one grpc.reflection.v1 stream: the services the
// server lists, and for each of them and each of `more_symbols` the answer
// to file_containing_symbol: 0 when a returned file defines the service,
// the error_response code on an error, -1 when no returned file defines it.
struct ReflectionV1Answers {
  std::vector<std::string> services;
  std::map<std::string, int> describe;
};
ReflectionV1Answers ReflectV1(
    ServerProcess& server, const std::vector<std::string>& more_symbols = {});

}  // namespace flexor::server::testing

#endif  // FLEXOR_TESTS_SERVER_SERVER_PROCESS_H_
