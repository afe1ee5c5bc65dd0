// In-process unit tests of the server's small pieces: config parsing,
// version policy, flag spelling, the dynamic batcher.
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "base/flag_names.h"
#include "gtest/gtest.h"
#include "server/batching/batch_scheduler.h"
#include "server/common/memory_trimmer.h"
#include "server/config/model_config.h"
#include "server/grpc/model_version.h"
#include "server/metrics/server_metrics.h"
#include "server/registry/model_manager.h"
#include "server/registry/repository.h"

namespace flexor::server {
namespace {

TEST(ModelConfigTest, DefaultsAndOverrides) {
  ModelConfigDefaults defaults;
  absl::StatusOr<ModelConfig> c = ParseModelConfig("", defaults, "x");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->max_batch_size, defaults.max_batch_size);
  c = ParseModelConfig(
      "max_batch_size: 8 max_queue_size: 3 "
      "dynamic_batching { max_queue_delay_microseconds: 50 } "
      "version_policy { latest { num_versions: 2 } }",
      defaults, "x");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_batch_size, 8);
  EXPECT_EQ(c->max_queue_size, 3);
  EXPECT_EQ(c->max_queue_delay, absl::Microseconds(50));
  EXPECT_EQ(c->version_policy.num_versions, 2);
  c = ParseModelConfig("disable_dynamic_batching: true", defaults, "x");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->dynamic_batching);
}

TEST(ModelConfigTest, ErrorsNameTheSourceAndField) {
  ModelConfigDefaults defaults;
  absl::StatusOr<ModelConfig> c =
      ParseModelConfig("max_batch_sise: 3", defaults, "repo/m/config.pbtxt");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("repo/m/config.pbtxt"),
            std::string::npos);
  EXPECT_NE(c.status().message().find("max_batch_sise"), std::string::npos);
  EXPECT_FALSE(ParseModelConfig("max_batch_size: 100000", defaults, "x").ok());
  EXPECT_FALSE(
      ParseModelConfig("version_policy { latest {} }", defaults, "x").ok());
}

TEST(ModelConfigTest, TritonFormsMapToTheSameConfig) {
  ModelConfigDefaults defaults;
  defaults.max_batch_size = 16;
  // Triton's JSON (as tritonclient sends it) and Triton's config.pbtxt.
  for (const char* text :
       {R"({"name": "m", "max_batch_size": 8, "dynamic_batching":
           {"max_queue_delay_microseconds": 50,
            "default_queue_policy": {"max_queue_size": 7}},
           "version_policy": {"specific": {"versions": [1, 3]}},
           "parameters": {"activation_precision": {"string_value": "int8"}}})",
        "name: \"m\" max_batch_size: 8 dynamic_batching { "
        "max_queue_delay_microseconds: 50 default_queue_policy { "
        "max_queue_size: 7 } } version_policy { specific { versions: [1, 3] "
        "} } parameters { key: \"activation_precision\" value { "
        "string_value: \"int8\" } }"}) {
    SCOPED_TRACE(text);
    absl::StatusOr<ModelConfig> c =
        ParseModelConfigText(text, defaults, "m", "src");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->max_batch_size, 8);
    EXPECT_TRUE(c->dynamic_batching);
    EXPECT_EQ(c->max_queue_delay, absl::Microseconds(50));
    EXPECT_EQ(c->max_queue_size, 7);
    EXPECT_EQ(c->version_policy.ToString(), "specific:1,3");
    EXPECT_EQ(c->activations, ActivationPrecision::kInt8);
  }
  // Triton: no dynamic_batching section, no batching; max_batch_size 0
  // keeps the server default.
  absl::StatusOr<ModelConfig> c =
      ParseModelConfigText(R"({"max_batch_size": 0})", defaults, "m", "src");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->dynamic_batching);
  EXPECT_EQ(c->max_batch_size, 16);
  // The project's form keeps its own meaning (absent: server default).
  c = ParseModelConfigText("max_batch_size: 4", defaults, "m", "src");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->dynamic_batching, defaults.dynamic_batching);
  // Limits apply to every form.
  EXPECT_FALSE(
      ParseModelConfigText(R"({"max_batch_size": 100000})", defaults, "m", "x")
          .ok());
  // Neither form: both errors are shown, the source first.
  c = ParseModelConfigText("max_batch_sise: 3", defaults, "m", "repo/m/cfg");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().rfind("repo/m/cfg", 0), 0u);
  EXPECT_NE(c.status().message().find("as Triton's config.pbtxt"),
            std::string::npos);
}

// Every precision in every form: the project's enum, Triton's parameter
// string (both forms parse through the engine's names), round trip.
TEST(ModelConfigTest, ActivationPrecisionInEveryForm) {
  ModelConfigDefaults defaults;
  for (ActivationPrecision p :
       {ActivationPrecision::kFloat32, ActivationPrecision::kInt8,
        ActivationPrecision::kInt16}) {
    const std::string name = ActivationPrecisionName(p);
    SCOPED_TRACE(name);
    EXPECT_EQ(*ParseActivationPrecision(name), p);
    std::string upper = name;
    for (char& ch : upper) ch = static_cast<char>(std::toupper(ch));
    absl::StatusOr<ModelConfig> c = ParseModelConfigText(
        "activation_precision: " + upper, defaults, "m", "src");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->activations, p);
    c = ParseModelConfigText(
        R"({"parameters": {"activation_precision": {"string_value": ")" + name +
            R"("}}})",
        defaults, "m", "src");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->activations, p);
  }
  for (const char* bad : {"int4", "INT8", "", "fp16"}) {
    EXPECT_FALSE(ParseActivationPrecision(bad).ok()) << bad;
  }
  absl::StatusOr<ModelConfig> c = ParseModelConfigText(
      R"({"parameters": {"activation_precision": {"string_value": "int4"}}})",
      defaults, "m", "src");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("not fp32, int8 or int16"),
            std::string::npos)
      << c.status();
}

// Mixed precision: layers set apart in the project's form and as Triton's
// parameter; malformed lists are refused with the source named. (Whether the
// layers exist is checked at load, against the model.)
TEST(ModelConfigTest, LayerActivationPrecisionInEveryForm) {
  ModelConfigDefaults defaults;
  const std::vector<LayerActivations> want = {
      {"block1_conv1", ActivationPrecision::kInt16},
      {"fc", ActivationPrecision::kFloat32}};
  absl::StatusOr<ModelConfig> c = ParseModelConfigText(
      "activation_precision: INT8\n"
      "layer_activation_precision { layer: \"block1_conv1\" precision: INT16 "
      "}\n"
      "layer_activation_precision { layer: \"fc\" precision: FP32 }\n",
      defaults, "m", "src");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->activations, ActivationPrecision::kInt8);
  EXPECT_EQ(c->layer_activations, want);
  EXPECT_NE(c->DebugString().find(
                "layer_activation_precision=block1_conv1=int16,fc=fp32"),
            std::string::npos);
  c = ParseModelConfigText(
      R"({"parameters": {"activation_precision": {"string_value": "int8"},
          "layer_activation_precision": {"string_value":
              "block1_conv1=int16,fc=fp32"}}})",
      defaults, "m", "src");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->layer_activations, want);
  for (const char* bad :
       {"layer_activation_precision { layer: \"a\" }",
        "layer_activation_precision { precision: INT8 }",
        "layer_activation_precision { layer: \"a\" precision: INT8 }\n"
        "layer_activation_precision { layer: \"a\" precision: INT16 }",
        R"({"parameters": {"layer_activation_precision": {"string_value":
            "a=int4"}}})",
        R"({"parameters": {"layer_activation_precision": {"string_value":
            "a"}}})"}) {
    c = ParseModelConfigText(bad, defaults, "m", "src");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().message().rfind("src", 0), 0u) << c.status();
  }
}

TEST(ModelVersionTest, OnlyCanonicalPositiveIntegers) {
  EXPECT_EQ(*ParseModelVersion(""), std::nullopt);
  EXPECT_EQ(*ParseModelVersion("1"), 1);
  EXPECT_EQ(*ParseModelVersion("9007199254740991"), kMaxModelVersion);
  for (const char* bad : {"0", "01", "+1", "-1", " 1", "1 ", "1.0", "0x1",
                          "9007199254740992", "99999999999999999999", "x"}) {
    SCOPED_TRACE(bad);
    absl::StatusOr<std::optional<int64_t>> v = ParseModelVersion(bad);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(VersionPolicyTest, Select) {
  auto latest2 = VersionPolicySpec::Parse("latest:2");
  ASSERT_TRUE(latest2.ok());
  EXPECT_EQ(latest2->Select({1, 5, 3}), (std::vector<int64_t>{5, 3}));
  auto all = VersionPolicySpec::Parse("all");
  EXPECT_EQ(all->Select({1, 5, 3}), (std::vector<int64_t>{5, 3, 1}));
  auto specific = VersionPolicySpec::Parse("specific:1,3,9");
  EXPECT_EQ(specific->Select({1, 5, 3}), (std::vector<int64_t>{3, 1}));
  EXPECT_FALSE(VersionPolicySpec::Parse("latest:0").ok());
  EXPECT_FALSE(VersionPolicySpec::Parse("newest").ok());
}

TEST(RepositoryTest, ModelNames) {
  EXPECT_TRUE(ModelRepository::ValidateModelName("fashion_lenet-v2.1").ok());
  for (const char* bad : {"", ".", "..", "a/b", "../x", "a b", ".staging-2-99",
                          "..data", "--help", "-x"}) {
    EXPECT_FALSE(ModelRepository::ValidateModelName(bad).ok()) << bad;
  }
}

// A shared repository volume holds more than models: a publisher's staging
// directory, lost+found, Kubernetes' ..data links. Only model directories
// are listed, so none of these turns into a failed load.
TEST(RepositoryTest, ListModelsSkipsHiddenAndInvalidDirectories) {
  const std::filesystem::path root =
      std::filesystem::path(::testing::TempDir()) /
      ("repo_list_" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  for (const char* dir : {"mlp", "fashion_lenet", ".staging-fashion_lenet",
                          "..data", "lost+found"}) {
    std::filesystem::create_directories(root / dir);
  }
  std::ofstream(root / "README").put('x');
  absl::StatusOr<std::vector<std::string>> models =
      ModelRepository(root.string()).ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(*models, (std::vector<std::string>{"fashion_lenet", "mlp"}));
  std::filesystem::remove_all(root);
}

TEST(RepositoryTest, VersionsAreBoundedAndStaleTemporariesRemoved) {
  const std::filesystem::path root =
      std::filesystem::path(::testing::TempDir()) /
      ("repo_tmp_" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  const ModelRepository repo(root.string());
  EXPECT_TRUE(repo.PublishModelFile("m", kMaxModelVersion, "x").ok());
  EXPECT_FALSE(repo.PublishModelFile("m", kMaxModelVersion + 1, "x").ok());
  EXPECT_FALSE(repo.PublishModelFile("m", INT64_MAX, "x").ok());
  // A version directory past the bound is not a version.
  std::filesystem::create_directories(root / "m" / "9223372036854775807");
  std::ofstream(root / "m" / "9223372036854775807" / "model.flexor").put('x');
  absl::StatusOr<std::vector<VersionFile>> versions = repo.ListVersions("m");
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_EQ(versions->size(), 1u);
  EXPECT_EQ(versions->front().version, kMaxModelVersion);
  // Leftovers of interrupted atomic writes: old ones go, fresh ones (a
  // writer may still be running) and real files stay.
  const std::filesystem::path v1 = root / "m" / "1";
  std::filesystem::create_directories(v1);
  std::ofstream(v1 / "model.flexor").put('m');
  std::ofstream(v1 / "model.flexor.tmp.123.456").put('t');
  std::ofstream(root / "m" / "config.pbtxt.tmp.123.789").put('t');
  std::ofstream(v1 / "model.flexor.tmp.999.1").put('t');
  const auto old =
      std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
  std::filesystem::last_write_time(v1 / "model.flexor.tmp.123.456", old);
  std::filesystem::last_write_time(root / "m" / "config.pbtxt.tmp.123.789",
                                   old);
  EXPECT_EQ(repo.RemoveStaleTemporaries(absl::Minutes(10)), 2);
  EXPECT_TRUE(std::filesystem::exists(v1 / "model.flexor"));
  EXPECT_TRUE(std::filesystem::exists(v1 / "model.flexor.tmp.999.1"));
  EXPECT_FALSE(std::filesystem::exists(v1 / "model.flexor.tmp.123.456"));
  std::filesystem::remove_all(root);
}

TEST(RepositoryTest, WritesRefuseSymbolicLinks) {
  const std::filesystem::path root =
      std::filesystem::path(::testing::TempDir()) /
      ("repo_link_" + std::to_string(::getpid()));
  const std::filesystem::path elsewhere = root.string() + "_elsewhere";
  std::filesystem::remove_all(root);
  std::filesystem::remove_all(elsewhere);
  std::filesystem::create_directories(root);
  std::filesystem::create_directories(elsewhere / "1");
  std::filesystem::create_directory_symlink(elsewhere, root / "linked");
  const ModelRepository repo(root.string());
  absl::Status s = repo.PublishModelFile("linked", 1, "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_FALSE(std::filesystem::exists(elsewhere / "1" / "model.flexor"));
  // A version directory that is a link is refused too.
  std::filesystem::create_directories(root / "m");
  std::filesystem::create_directory_symlink(elsewhere / "1", root / "m" / "7");
  EXPECT_EQ(repo.PublishModelFile("m", 7, "x").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(repo.PublishModelFile("m", 8, "x").ok());
  std::filesystem::remove_all(root);
  std::filesystem::remove_all(elsewhere);
}

TEST(ByteSizeTest, SuffixesAndErrors) {
  EXPECT_EQ(*ParseByteSize("0"), 0);
  EXPECT_EQ(*ParseByteSize("1000000"), 1000000);
  EXPECT_EQ(*ParseByteSize("2GiB"), int64_t{2} << 30);
  EXPECT_EQ(*ParseByteSize("512MiB"), int64_t{512} << 20);
  EXPECT_EQ(*ParseByteSize("64KiB"), 64 << 10);
  EXPECT_EQ(*ParseByteSize("1.5G"), 1500000000);
  EXPECT_EQ(*ParseByteSize("2gb"), 2000000000);
  EXPECT_EQ(*ParseByteSize("3B"), 3);
  EXPECT_EQ(*ParseByteSize("1TiB"), int64_t{1} << 40);
  for (const char* bad : {"", "abc", "-1", "1e3", "12XB", "1GiBs", "GiB",
                          "1..5G", "99999999999TiB", "1 GiB"}) {
    EXPECT_FALSE(ParseByteSize(bad).ok()) << bad;
  }
}

TEST(ModelConfigTest, Pinned) {
  ModelConfigDefaults defaults;
  absl::StatusOr<ModelConfig> own =
      ParseModelConfigText("pinned: true", defaults, "m", "test");
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_TRUE(own->pinned);
  absl::StatusOr<ModelConfig> triton = ParseModelConfigText(
      "parameters { key: \"pinned\" value { string_value: \"true\" } }",
      defaults, "m", "test");
  ASSERT_TRUE(triton.ok()) << triton.status();
  EXPECT_TRUE(triton->pinned);
  EXPECT_FALSE(
      ParseModelConfigText("parameters { key: \"pinned\" value { string_value: "
                           "\"yes\" } }",
                           defaults, "m", "test")
          .ok());
  EXPECT_FALSE(ParseModelConfigText("", defaults, "m", "test")->pinned);
}

TEST(FlagNamesTest, DashesBecomeUnderscoresInNamesOnly) {
  const char* argv[] = {"prog", "--model-repository=/a-b",
                        "-x-y", "pos-arg",
                        "--",   "--not-a-flag"};
  std::vector<std::string> storage;
  std::vector<char*> out =
      NormalizeFlagNames(6, const_cast<char**>(argv), &storage);
  EXPECT_STREQ(out[1], "--model_repository=/a-b");
  EXPECT_STREQ(out[2], "-x_y");
  EXPECT_STREQ(out[3], "pos-arg");
  EXPECT_STREQ(out[5], "--not-a-flag");
  EXPECT_EQ(out[6], nullptr);
}

// A task that records how it was batched.
class FakeTask : public BatchTask {
 public:
  explicit FakeTask(float value) : input_(4, value) {}
  int64_t num_samples() const override { return 1; }
  const float* input() const override { return input_.data(); }
  bool IsCancelled() const override { return false; }
  absl::Time deadline() const override { return absl::InfiniteFuture(); }
  void Complete(const absl::Status& status, const float* output,
                const BatchTimings& timings) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    if (output != nullptr) output_ = output[0];
    batch_ = timings.batch_samples;
    done_ = true;
  }
  void Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
  }
  float output() {
    absl::MutexLock lock(&mu_);
    return output_;
  }
  int64_t batch() {
    absl::MutexLock lock(&mu_);
    return batch_;
  }

 private:
  std::vector<float> input_;
  absl::Mutex mu_;
  bool done_ = false;
  absl::Status status_;
  float output_ = 0;
  int64_t batch_ = 0;
};

// A test queue's options: FakeTask's 4 floats in, 1 out per sample.
BatchQueue::Options QueueOptions(std::string name, int64_t max_batch,
                                 bool batching, absl::Duration delay) {
  BatchQueue::Options options;
  options.name = std::move(name);
  options.max_batch_size = max_batch;
  options.dynamic_batching = batching;
  options.max_queue_delay = delay;
  options.input_size = 4;
  options.output_size = 1;
  return options;
}

TEST(BatchSchedulerTest, CombinesConcurrentRequestsAndKeepsRowsApart) {
  BatchScheduler scheduler(2, 1);
  std::atomic<int> runs{0};
  BatchQueue queue(
      QueueOptions("test", 8, true, absl::Milliseconds(50)),
      [&](const float* in, int64_t batch, float* out) {
        ++runs;
        for (int64_t b = 0; b < batch; ++b) out[b] = in[b * 4] * 2;
        return absl::OkStatus();
      },
      nullptr);
  std::vector<std::unique_ptr<FakeTask>> tasks;
  for (int i = 0; i < 8; ++i) {
    tasks.push_back(std::make_unique<FakeTask>(static_cast<float>(i)));
    ASSERT_TRUE(scheduler.Submit(&queue, tasks.back().get()).ok());
  }
  for (int i = 0; i < 8; ++i) {
    tasks[i]->Wait();
    EXPECT_EQ(tasks[i]->output(), 2.0f * i);
    EXPECT_EQ(tasks[i]->batch(), 8);  // full batch dispatched at once
  }
  EXPECT_EQ(runs.load(), 1);
}

TEST(BatchSchedulerTest, BoundedQueueAndStop) {
  BatchScheduler scheduler(1, 1);
  BatchQueue::Options options =
      QueueOptions("model 'q'", 100, true, absl::Seconds(10));
  options.max_queue_size = 2;
  BatchQueue queue(
      options,
      [](const float*, int64_t batch, float* out) {
        for (int64_t b = 0; b < batch; ++b) out[b] = 1;
        return absl::OkStatus();
      },
      nullptr);
  FakeTask a(1), b(2), c(3);
  ASSERT_TRUE(scheduler.Submit(&queue, &a).ok());
  ASSERT_TRUE(scheduler.Submit(&queue, &b).ok());
  absl::Status full = scheduler.Submit(&queue, &c);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("model 'q'"), std::string::npos);
  scheduler.Stop();  // Runs what is queued without waiting for the delay.
  a.Wait();
  b.Wait();
  EXPECT_EQ(a.output(), 1);
  EXPECT_EQ(scheduler.Submit(&queue, &c).code(),
            absl::StatusCode::kUnavailable);
}

// Requests spread over many models start in arrival order (the oldest
// waiting request first, whatever its model), while requests of one model
// still share an execution.
TEST(BatchSchedulerTest, StartsRequestsInArrivalOrderAcrossModels) {
  BatchScheduler scheduler(1, 1);
  absl::Mutex mu;
  std::vector<std::string> order;  // "<queue>:<batch>" per execution
  absl::Notification release;
  auto make = [&](const std::string& name, bool batching, int max_batch) {
    return std::make_unique<BatchQueue>(
        QueueOptions(name, max_batch, batching, absl::Seconds(30)),
        [&, name](const float*, int64_t batch, float* out) {
          if (name == "gate") release.WaitForNotification();
          absl::MutexLock lock(&mu);
          order.push_back(absl::StrCat(name, ":", batch));
          for (int64_t b = 0; b < batch; ++b) out[b] = 1;
          return absl::OkStatus();
        },
        nullptr);
  };
  // Queues created (and first used) in an order unrelated to arrival.
  auto c = make("c", false, 8);
  auto b = make("b", false, 8);
  auto a = make("a", false, 8);
  auto m = make("m", true, 3);  // batches 3 requests, long delay
  auto gate = make("gate", false, 8);
  FakeTask g(0), m1(1), a1(2), b1(3), m2(4), c1(5), m3(6), a2(7);
  ASSERT_TRUE(scheduler.Submit(gate.get(), &g).ok());
  // The only execution slot is taken by the gate; everything below waits.
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(scheduler.Submit(m.get(), &m1).ok());
  ASSERT_TRUE(scheduler.Submit(a.get(), &a1).ok());
  ASSERT_TRUE(scheduler.Submit(b.get(), &b1).ok());
  ASSERT_TRUE(scheduler.Submit(m.get(), &m2).ok());
  ASSERT_TRUE(scheduler.Submit(c.get(), &c1).ok());
  ASSERT_TRUE(scheduler.Submit(m.get(), &m3).ok());
  ASSERT_TRUE(scheduler.Submit(a.get(), &a2).ok());
  release.Notify();
  for (FakeTask* t : {&g, &m1, &a1, &b1, &m2, &c1, &m3, &a2}) t->Wait();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(absl::StrJoin(order, " "), "gate:1 m:3 a:1 b:1 c:1 a:1");
  EXPECT_EQ(m1.batch(), 3);
}

// With dispatch_when_idle (the server's default) a request that finds the
// scheduler idle starts at once, from Submit, whatever the queue's delay;
// requests that arrive while a batch runs still wait and share the next
// execution.
TEST(BatchSchedulerTest, IdleSchedulerStartsALoneRequestAndBatchesTheRest) {
  BatchScheduler scheduler(1, 1, /*dispatch_when_idle=*/true);
  absl::Mutex mu;
  std::vector<int64_t> batches;
  absl::Notification entered, release;
  bool hold = false;
  BatchQueue queue(
      QueueOptions("m", 8, true, absl::Seconds(30)),
      [&](const float*, int64_t batch, float* out) {
        bool wait = false;
        {
          absl::MutexLock lock(&mu);
          batches.push_back(batch);
          wait = hold;
          hold = false;
        }
        if (wait) {
          entered.Notify();
          release.WaitForNotification();
        }
        for (int64_t b = 0; b < batch; ++b) out[b] = 1;
        return absl::OkStatus();
      },
      nullptr);
  // Alone on an idle scheduler: runs long before the 30 s delay.
  FakeTask lone(0);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(scheduler.Submit(&queue, &lone).ok());
  lone.Wait();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(lone.batch(), 1);
  // The next lone request starts at once too and holds the only slot...
  {
    absl::MutexLock lock(&mu);
    hold = true;
  }
  FakeTask first(1), a(2), b(3), c(4);
  ASSERT_TRUE(scheduler.Submit(&queue, &first).ok());
  entered.WaitForNotification();
  // ...so these three queue behind it and then run as one batch.
  ASSERT_TRUE(scheduler.Submit(&queue, &a).ok());
  ASSERT_TRUE(scheduler.Submit(&queue, &b).ok());
  ASSERT_TRUE(scheduler.Submit(&queue, &c).ok());
  release.Notify();
  for (FakeTask* t : {&first, &a, &b, &c}) t->Wait();
  EXPECT_EQ(first.batch(), 1);
  EXPECT_EQ(c.batch(), 3);
  absl::MutexLock lock(&mu);
  EXPECT_EQ(absl::StrJoin(batches, " "), "1 1 3");
}

// Trims done once `n` are, or after 10 s.
int64_t WaitForTrims(const MemoryTrimmer& trimmer, int64_t n) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (trimmer.trims() < n && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  return trimmer.trims();
}

TEST(MemoryTrimmerTest, MergesRequestsAndSpacesTrims) {
  MemoryTrimmer trimmer(absl::Milliseconds(20), absl::Milliseconds(400));
  EXPECT_EQ(trimmer.trims(), 0);
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(trimmer.trims(), 0);  // nothing asked, nothing done
  // A burst is one trim.
  const absl::Time first = absl::Now();
  for (int i = 0; i < 100; ++i) trimmer.Request();
  EXPECT_EQ(WaitForTrims(trimmer, 1), 1);
  EXPECT_GE(absl::Now() - first, absl::Milliseconds(20));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(trimmer.trims(), 1);
  // The next one waits for min_interval after the first.
  trimmer.Request();
  EXPECT_EQ(WaitForTrims(trimmer, 2), 2);
  EXPECT_GE(absl::Now() - first, absl::Milliseconds(400));
}

TEST(MemoryTrimmerTest, EnoughFreedBytesMakeTheNextTrimUrgent) {
  MemoryTrimmer trimmer(absl::Milliseconds(10), absl::Seconds(60));
  trimmer.SetUrgency(1000, absl::Milliseconds(50));
  trimmer.Request();
  EXPECT_EQ(WaitForTrims(trimmer, 1), 1);
  // Below the urgency: the next trim waits the full minute.
  trimmer.Request(500);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(trimmer.trims(), 1);
  // 1,100 bytes freed since the last trim: it comes forward.
  trimmer.Request(600);
  EXPECT_EQ(WaitForTrims(trimmer, 2), 2);
  // The count starts again after a trim.
  trimmer.Request(600);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(trimmer.trims(), 2);
}

TEST(MemoryTrimmerTest, DestructorDoesNotWaitForAPendingTrim) {
  const absl::Time start = absl::Now();
  {
    MemoryTrimmer trimmer(absl::Seconds(60));
    trimmer.Request();
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(ServerMetricsTest, AScrapeIsFollowedByATrim) {
  // The scrape's copies of every series are freed after the text is
  // written, on the exposer's thread: the collector asks for a trim.
  ServerMetrics metrics;
  ASSERT_TRUE(metrics.StartExposer("127.0.0.1", 0).ok());
  EXPECT_EQ(metrics.memory_trimmer().trims(), 0);
  const std::string cmd =
      absl::StrCat("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:",
                   metrics.exposer_port(), "/metrics");
  FILE* curl = popen(cmd.c_str(), "r");
  ASSERT_NE(curl, nullptr);
  char code[8] = {};
  ASSERT_NE(fgets(code, sizeof code, curl), nullptr);
  pclose(curl);
  EXPECT_STREQ(code, "200");
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (metrics.memory_trimmer().trims() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(metrics.memory_trimmer().trims(), 1);
}

}  // namespace
}  // namespace flexor::server
