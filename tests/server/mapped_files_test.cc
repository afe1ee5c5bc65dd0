// --model-file-access=map (issue 14) on a real flexor_server: model files
// are mapped read-only (visible in /proc/<pid>/maps), answers are exactly
// the engine's, and new versions (a new version directory in poll mode, an
// upload in explicit mode) swap in under load without a failed or wrong
// answer, with the old version's file deleted while it was mapped. With
// --model-trusted-keys files are read and verified, never mapped.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"

namespace flexor::server::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kClients = 3;

// How many mappings of files named model.flexor under `repo` the process
// holds (its /proc/<pid>/maps lines).
int MappedModelFiles(pid_t pid, const std::string& repo) {
  std::ifstream maps(absl::StrCat("/proc/", pid, "/maps"));
  std::string line;
  int n = 0;
  while (std::getline(maps, line)) {
    if (absl::StrContains(line, repo) &&
        absl::StrContains(line, "/model.flexor")) {
      ++n;
    }
  }
  return n;
}

bool Near(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return false;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::fabs(got[i] - want[i]) > 1e-5f + 1e-4f * std::fabs(want[i])) {
      return false;
    }
  }
  return true;
}

// Clients that keep asking `model` and check every answer against the
// engine's output of the version that answered.
class Clients {
 public:
  Clients(ServerProcess& server, const std::string& model,
          const std::map<int, std::string>& versions) {
    for (int c = 0; c < kClients; ++c) {
      inputs_.push_back(RandomImages(1, 700 + c));
      for (const auto& [v, bytes] : versions) {
        expected_[v].push_back(Reference(bytes, inputs_[c], 1));
      }
    }
    for (int c = 0; c < kClients; ++c) {
      threads_.emplace_back([this, &server, model, c] {
        const inference::ModelInferRequest request =
            MakeInferRequest(model, inputs_[c], 1);
        while (!stop_.load()) {
          inference::ModelInferResponse response;
          grpc::Status status = Infer(server.stub(), request, &response);
          absl::MutexLock lock(&mu_);
          if (!status.ok()) {
            ++failed_;
            if (first_error_.empty()) first_error_ = status.error_message();
            continue;
          }
          int version = 0;
          const bool match =
              absl::SimpleAtoi(response.model_version(), &version) &&
              expected_.count(version) > 0 &&
              Near(OutputOf(response), expected_[version][c]);
          if (!match) ++mismatched_;
          ++by_version_[version];
        }
      });
    }
  }
  ~Clients() { Stop(); }
  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  // Waits until `version` has answered (true) or 30 s passed.
  bool WaitForAnswerFrom(int version) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      {
        absl::MutexLock lock(&mu_);
        if (by_version_[version] > 0) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  int64_t answers(int version) {
    absl::MutexLock lock(&mu_);
    return by_version_[version];
  }
  void ExpectAllCorrect() {
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(failed_, 0) << first_error_;
    EXPECT_EQ(mismatched_, 0);
  }

 private:
  std::vector<std::vector<float>> inputs_;
  std::map<int, std::vector<std::vector<float>>> expected_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  int64_t failed_ = 0;
  int64_t mismatched_ = 0;
  std::map<int, int64_t> by_version_;
  std::string first_error_;
};

TEST(MappedFilesTest, PollModeServesMappedFilesAndSwapsInNewVersionDirs) {
  TempDir repo;
  std::map<int, std::string> versions = {{1, ModelBytes(4001)},
                                         {2, ModelBytes(4002)}};
  WriteModel(repo.path(), "m", 1, versions[1]);
  const std::string other = ModelBytes(4100, "ternary");
  WriteModel(repo.path(), "other", 1, other);
  ServerProcess server(repo.path(),
                       {"--model-file-access=map", "--model-control-mode=poll",
                        "--repository-poll-secs=1", "--threads=2"});
  ASSERT_TRUE(server.started()) << server.Log();
  EXPECT_TRUE(absl::StrContains(server.Log(), "model file access map"))
      << server.Log();
  EXPECT_TRUE(absl::StrContains(server.Log(), "mapped read-only"));
  // Both files are mapped, and answer as the engine computes.
  EXPECT_EQ(MappedModelFiles(server.pid(), repo.path()), 2);
  const std::vector<float> input = RandomImages(2, 11);
  inference::ModelInferResponse response;
  ASSERT_TRUE(
      Infer(server.stub(), MakeInferRequest("other", input, 2), &response)
          .ok());
  EXPECT_TRUE(Near(OutputOf(response), Reference(other, input, 2)));

  Clients clients(server, "m", versions);
  ASSERT_TRUE(clients.WaitForAnswerFrom(1));
  // A new version directory, published by rename (WriteModel).
  WriteModel(repo.path(), "m", 2, versions[2]);
  ASSERT_TRUE(clients.WaitForAnswerFrom(2)) << server.Log();
  // Version 1 is unloaded (latest:1); deleting its files changes nothing
  // for version 2, which keeps answering.
  fs::remove_all(repo.path() + "/m/1");
  const int64_t before = clients.answers(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_GT(clients.answers(2), before);
  clients.Stop();
  clients.ExpectAllCorrect();
  EXPECT_EQ(MappedModelFiles(server.pid(), repo.path()), 2);  // m/2, other/1
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
}

TEST(MappedFilesTest, ExplicitModeUploadSwapsWhileTheOldFileIsMapped) {
  TempDir repo;
  std::map<int, std::string> versions = {
      {1, ModelBytes(5001)}, {2, ModelBytes(5002)}, {3, ModelBytes(5003)}};
  WriteModel(repo.path(), "swap", 1, versions[1]);
  ServerProcess server(
      repo.path(), {"--model-file-access=map", "--model-control-mode=explicit",
                    "--load-model=swap", "--threads=2"});
  ASSERT_TRUE(server.started()) << server.Log();
  EXPECT_EQ(MappedModelFiles(server.pid(), repo.path()), 1);
  Clients clients(server, "swap", versions);
  ASSERT_TRUE(clients.WaitForAnswerFrom(1));
  // Version 1's file is deleted while it is mapped and serving.
  fs::remove_all(repo.path() + "/swap/1");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (int v = 2; v <= 3; ++v) {
    // RepositoryModelLoad (flexorctl load): published by rename, then
    // loaded from the repository, mapped.
    inference::RepositoryModelLoadRequest request;
    request.set_model_name("swap");
    (*request.mutable_parameters())[absl::StrCat("file:", v, "/model.flexor")]
        .set_bytes_param(versions[v]);
    inference::RepositoryModelLoadResponse load_response;
    grpc::ClientContext context;
    grpc::Status status =
        server.stub().RepositoryModelLoad(&context, request, &load_response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_TRUE(clients.WaitForAnswerFrom(v)) << server.Log();
  }
  clients.Stop();
  clients.ExpectAllCorrect();
  EXPECT_GT(clients.answers(1), 0);
  EXPECT_EQ(MappedModelFiles(server.pid(), repo.path()), 1);  // swap/3
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
}

TEST(MappedFilesTest, CopyIsTheDefaultAndMapsNothing) {
  TempDir repo;
  WriteModel(repo.path(), "m", 1, ModelBytes(6001));
  ServerProcess server(repo.path(), {"--threads=1"});
  ASSERT_TRUE(server.started()) << server.Log();
  EXPECT_TRUE(absl::StrContains(server.Log(), "model file access copy"));
  ExpectAnswers(server, "m");
  EXPECT_EQ(MappedModelFiles(server.pid(), repo.path()), 0);
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
}

// The documented price of map: a served file truncated in place kills the
// server with SIGBUS on the next read of its weights. The log must say why.
TEST(MappedFilesTest, FileTruncatedInPlaceEndsTheServerWithAClearReason) {
  TempDir repo;
  WriteModel(repo.path(), "m", 1, ModelBytes(6002));
  ServerProcess server(repo.path(),
                       {"--threads=1", "--model-file-access=map",
                        "--model-control-mode=explicit", "--load-model=m"});
  ASSERT_TRUE(server.started()) << server.Log();
  ExpectAnswers(server, "m");
  // What `cp new old` would do first: truncate the served file in place.
  fs::resize_file(repo.path() + "/m/1/model.flexor", 0);
  inference::ModelInferResponse response;
  const grpc::Status status = Infer(
      server.stub(), MakeInferRequest("m", RandomImages(1, 5), 1), &response);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(server.Terminate(), 128 + SIGBUS) << server.Log();
  const std::string log = server.Log();
  EXPECT_TRUE(absl::StrContains(log, "SIGBUS reading address 0x")) << log;
  EXPECT_TRUE(absl::StrContains(log, "truncated or rewritten in place")) << log;
}

TEST(MappedFilesTest, TrustedKeysKeepReadingFilesIntoMemory) {
  // With a signature policy the loader verifies the bytes it read and
  // compiles those: --model-file-access=map does not apply.
  TempDir keys;
  auto [rc, out] = RunCommand(
      absl::StrCat(FLEXORCTL_BINARY, " keygen --out=", keys.path(), "/k"));
  ASSERT_EQ(rc, 0) << out;
  TempDir repo;
  const std::string bytes = ModelBytes(7001);
  WriteModel(repo.path(), "m", 1, bytes);
  ServerProcess server(repo.path(),
                       {"--model-file-access=map", "--threads=1",
                        "--model-trusted-keys=" + keys.path() + "/k.pub.pem"});
  ASSERT_TRUE(server.started()) << server.Log();
  EXPECT_TRUE(absl::StrContains(server.Log(),
                                "--model-file-access=map does not apply with "
                                "--model-trusted-keys"))
      << server.Log();
  const std::vector<float> input = RandomImages(1, 3);
  inference::ModelInferResponse response;
  ASSERT_TRUE(
      Infer(server.stub(), MakeInferRequest("m", input, 1), &response).ok());
  EXPECT_TRUE(Near(OutputOf(response), Reference(bytes, input, 1)));
  EXPECT_EQ(MappedModelFiles(server.pid(), repo.path()), 0);
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
}

TEST(MappedFilesTest, UnknownAccessModeIsRefusedAtStartup) {
  TempDir repo;
  // `timeout`: a server that accepted the value would serve until killed.
  auto [rc, out] = RunCommand(absl::StrCat(
      "timeout 20 ", FLEXOR_SERVER_BINARY, " --model-repository=", repo.path(),
      " --grpc-port=0 --metrics-port=-1 --model-file-access=mmap"));
  EXPECT_EQ(rc, 2) << out;
  EXPECT_TRUE(absl::StrContains(
      out, "--model-file-access: model file access 'mmap' is not copy or map"))
      << out;
  // The help explains the trade-off (Abseil wraps the text: compare it
  // with its whitespace collapsed).
  std::tie(rc, out) =
      RunCommand(absl::StrCat(FLEXOR_SERVER_BINARY, " --helpfull"));
  std::string help;
  for (absl::string_view word :
       absl::StrSplit(out, absl::ByAnyChar(" \n\t"), absl::SkipEmpty())) {
    absl::StrAppend(&help, word, " ");
  }
  EXPECT_TRUE(absl::StrContains(help, "-model_file_access")) << help;
  EXPECT_TRUE(absl::StrContains(
      help, "never truncate or rewrite a served file in place"))
      << help;
  EXPECT_TRUE(absl::StrContains(help, "Not used with --model-trusted-keys"));
}

}  // namespace
}  // namespace flexor::server::testing
