// Bounded resources against the real server process: per-request and
// in-flight upload byte limits, a bounded admin queue, oversized messages
// (with the server's resident memory reported), and size flags that must be
// positive.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"

namespace flexor::server::testing {
namespace {

using grpc::StatusCode;

// VmRSS / VmHWM of `pid` in MiB (-1 if unreadable).
double ProcMiB(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, field + ":")) {
      int64_t kb = 0;
      std::string digits;
      for (char c : line) {
        if (c >= '0' && c <= '9') digits += c;
      }
      if (absl::SimpleAtoi(digits, &kb)) return kb / 1024.0;
    }
  }
  return -1;
}

grpc::Status Upload(inference::GRPCInferenceService::Stub& stub,
                    const std::string& model, int64_t version,
                    const std::string& bytes) {
  inference::RepositoryModelLoadRequest request;
  request.set_model_name(model);
  (*request
        .mutable_parameters())[absl::StrCat("file:", version, "/model.flexor")]
      .set_bytes_param(bytes);
  inference::RepositoryModelLoadResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(60));
  return stub.RepositoryModelLoad(&context, request, &response);
}

void ExpectServing(ServerProcess& server) { ExpectAnswers(server, "lenet"); }

class ResourceLimitsTest : public ::testing::Test {
 protected:
  std::unique_ptr<ServerProcess> Start(std::vector<std::string> flags) {
    WriteModel(repo_.path(), "lenet", 1, ModelBytes(1));
    flags.insert(flags.begin(),
                 {"--model-control-mode=explicit", "--load-model=lenet"});
    return std::make_unique<ServerProcess>(repo_.path(), flags);
  }
  TempDir repo_;
};

TEST_F(ResourceLimitsTest, UploadLargerThanThePerRequestLimitIsRefused) {
  auto server = Start({"--max-upload-bytes=100000"});
  ASSERT_TRUE(server->started());
  const std::string big = ModelBytes(2, "fp32", RandomArch::kLeNet, 2);
  ASSERT_GT(big.size(), 100000u);
  grpc::Status s = Upload(server->stub(), "lenet", 2, big);
  EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "--max-upload-bytes"))
      << s.error_message();
  EXPECT_FALSE(std::ifstream(repo_.path() + "/lenet/2/model.flexor").good());
  // A small one still goes through.
  s = Upload(server->stub(), "lenet", 2, ModelBytes(2));
  EXPECT_TRUE(s.ok()) << s.error_message();
  ExpectServing(*server);
}

// Concurrent uploads beyond the admin queue bound or the in-flight byte
// limit get RESOURCE_EXHAUSTED at once instead of piling up in memory; the
// rest succeed.
TEST_F(ResourceLimitsTest, AdminQueueAndInFlightUploadBytesAreBounded) {
  const std::string model = ModelBytes(3, "fp32", RandomArch::kResNet, 1);
  for (const bool by_bytes : {false, true}) {
    std::vector<std::string> flags;
    if (by_bytes) {
      flags = {"--max-pending-admin-rpcs=64",
               absl::StrCat("--max-upload-bytes=", model.size() + 1000),
               absl::StrCat("--max-inflight-upload-bytes=",
                            model.size() * 3 / 2 + 1000)};
    } else {
      flags = {"--max-pending-admin-rpcs=1"};
    }
    auto server = Start(flags);
    ASSERT_TRUE(server->started());
    constexpr int kClients = 12;
    std::vector<grpc::Status> results(kClients);
    std::vector<std::thread> threads;
    std::atomic<bool> go{false};
    for (int i = 0; i < kClients; ++i) {
      threads.emplace_back([&, i] {
        while (!go.load()) std::this_thread::yield();
        results[i] = Upload(server->stub(), "resnet", 10 + i, model);
      });
    }
    go.store(true);
    for (std::thread& t : threads) t.join();
    int ok = 0, exhausted = 0;
    for (const grpc::Status& s : results) {
      if (s.ok()) {
        ++ok;
      } else {
        EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED)
            << s.error_message();
        EXPECT_TRUE(absl::StrContains(s.error_message(),
                                      by_bytes ? "--max-inflight-upload-bytes"
                                               : "--max-pending-admin-rpcs"))
            << s.error_message();
        ++exhausted;
      }
    }
    EXPECT_GE(ok, 1) << "by_bytes=" << by_bytes;
    EXPECT_GE(exhausted, 1) << "by_bytes=" << by_bytes;
    // Once the queue drained, an upload is accepted again.
    grpc::Status s = Upload(server->stub(), "resnet", 100, model);
    EXPECT_TRUE(s.ok()) << s.error_message();
    ExpectServing(*server);
  }
}

// Requests larger than --grpc-max-message-bytes are refused; the server's
// resident memory afterwards is reported. gRPC receives a message whole
// before it checks its size; the memory quota (--grpc-memory-quota-bytes)
// is what bounds the buffering. FLEXOR_OVERSIZE_MB / FLEXOR_OVERSIZE_CLIENTS
// scale it up for a measurement (docs/security.md).
TEST_F(ResourceLimitsTest, OversizedMessagesAreRefusedAndMemoryIsReported) {
  const char* mb_env = std::getenv("FLEXOR_OVERSIZE_MB");
  const char* clients_env = std::getenv("FLEXOR_OVERSIZE_CLIENTS");
  const char* quota_env = std::getenv("FLEXOR_OVERSIZE_QUOTA");
  const int64_t mb = mb_env ? std::atoll(mb_env) : 48;
  const int clients = clients_env ? std::atoi(clients_env) : 2;
  std::vector<std::string> flags = {"--grpc-max-message-bytes=8388608"};
  if (quota_env != nullptr) {
    flags.push_back(absl::StrCat("--grpc-memory-quota-bytes=", quota_env));
  }
  auto server = Start(flags);
  ASSERT_TRUE(server->started());
  ExpectServing(*server);
  const double rss_before = ProcMiB(server->pid(), "VmRSS");
  const int64_t floats = mb * (1 << 20) / 4;
  std::vector<std::thread> threads;
  std::vector<grpc::Status> results(clients);
  {
    const inference::ModelInferRequest request = MakeInferRequest(
        "lenet", std::vector<float>(floats, 1.0f), floats / (28 * 28));
    for (int i = 0; i < clients; ++i) {
      threads.emplace_back([&, i] {
        inference::ModelInferResponse response;
        results[i] = Infer(server->stub(), request, &response, 60000);
      });
    }
    for (std::thread& t : threads) t.join();
  }
  for (const grpc::Status& s : results) {
    EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED)
        << s.error_message();
  }
  ExpectServing(*server);
  // A request just under the limit still reaches the server (and is refused
  // there for its batch size, not by the transport). The memory quota may
  // still hold the oversized requests' buffers for a moment (seen under
  // AddressSanitizer with the tests running in parallel): gRPC then resets
  // the stream with RESOURCE_EXHAUSTED, so retry while it does, for at most
  // 10 s.
  {
    const int64_t n = (7 << 20) / 4;
    const inference::ModelInferRequest request =
        MakeInferRequest("lenet", std::vector<float>(n, 1.0f), n / (28 * 28));
    grpc::Status s;
    for (int attempt = 0; attempt < 40; ++attempt) {
      inference::ModelInferResponse response;
      s = Infer(server->stub(), request, &response, 60000);
      if (s.error_code() != StatusCode::RESOURCE_EXHAUSTED) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT)
        << s.error_message();
  }
  const double rss_after = ProcMiB(server->pid(), "VmRSS");
  const double peak = ProcMiB(server->pid(), "VmHWM");
  std::cout << "oversized: " << clients << " x " << mb
            << " MiB requests against an 8 MiB limit"
            << (quota_env ? absl::StrCat(", quota ", quota_env) : "")
            << ": server RSS " << rss_before << " MiB before, " << rss_after
            << " MiB after, peak " << peak << " MiB\n";
  // The default quota (4 x the 8 MiB limit) holds what oversized requests
  // leave behind to well under their size (without a quota: +82 MiB).
  // Not under AddressSanitizer: its quarantine keeps freed memory resident.
#ifndef __SANITIZE_ADDRESS__
  if (quota_env == nullptr && mb == 48 && clients == 2) {
    EXPECT_LT(rss_after - rss_before, 64) << "MiB";
  }
#endif
  RecordProperty("rss_after_mib", static_cast<int>(rss_after));
  RecordProperty("rss_peak_mib", static_cast<int>(peak));
}

TEST_F(ResourceLimitsTest, SizeFlagsMustBePositive) {
  for (const std::string flag :
       {"--max-upload-bytes=0", "--max-upload-bytes=-5",
        "--max-inflight-upload-bytes=-1", "--max-pending-admin-rpcs=0",
        "--grpc-max-message-bytes=-1", "--grpc-memory-quota-bytes=-1",
        "--max-activation-bytes=0", "--threads=-1",
        "--max-concurrent-batches=-2", "--shutdown-grace-secs=-1",
        "--grpc-port=-3", "--metrics-port=-2", "--max-queue-size=0",
        "--tls-reload-secs=0"}) {
    // Free ports and no metrics endpoint, unless that is the flag tested.
    std::string extra;
    if (!absl::StartsWith(flag, "--grpc-port")) extra += " --grpc-port=0";
    if (!absl::StartsWith(flag, "--metrics-port"))
      extra += " --metrics-port=-1";
    if (absl::StartsWith(flag, "--tls")) {
      extra += " --tls-cert-file=/nonexistent --tls-key-file=/nonexistent";
    }
    // `timeout`: a flag that is not validated would leave a server running.
    auto [rc, out] = RunCommand(
        absl::StrCat("timeout 20 ", FLEXOR_SERVER_BINARY,
                     " --model-repository=", repo_.path(), " ", flag, extra));
    EXPECT_NE(rc, 0) << flag << ": " << out;
    EXPECT_TRUE(absl::StrContains(out, "must")) << flag << ": " << out;
  }
}

}  // namespace
}  // namespace flexor::server::testing
