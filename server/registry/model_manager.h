// Maps model names to their serving versions (the "manager", in TF Serving's
// terms). Each model's serving set is an immutable vector of reference-
// counted versions swapped atomically: lookups copy a shared_ptr under a
// reader lock, loads build the new set outside any lookup lock and publish
// it in one step. Loading is all-or-nothing: if any version selected by the
// policy fails validation, nothing changes and the old set keeps serving.
//
// Loads of one model are serialised by that model's own mutex; loads of
// different models run in parallel (LoadInitial runs the startup loads on
// the compute arena).
//
// Memory budget (memory_budget_bytes > 0): models that are not pinned
// (config.pbtxt `pinned: true`) are registered at startup without being
// loaded, loaded by the first request that needs them (one load however
// many requests wait), and evicted least-recently-used when the resident
// versions would exceed the budget. Eviction only drops the manager's
// reference: requests still running on an evicted version finish on it.
#ifndef FLEXOR_SERVER_REGISTRY_MODEL_MANAGER_H_
#define FLEXOR_SERVER_REGISTRY_MODEL_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/config/model_config.h"
#include "server/metrics/server_metrics.h"
#include "server/registry/loader.h"
#include "server/registry/repository.h"
#include "server/registry/servable.h"
#include "tbb/task_arena.h"

namespace flexor::server {

using ServablePtr = std::shared_ptr<const ServableVersion>;

// A model's state as RepositoryIndex reports it (Triton's state names).
enum class ModelReadiness { kUnavailable, kReady };
// "UNAVAILABLE", "READY": the wire form, for the gRPC layer.
const char* ModelReadinessName(ModelReadiness readiness);

// "2GiB", "512MiB", "1.5G", "1000000" (bytes; K/M/G/T are powers of 1000
// with "B" or none, of 1024 with "iB"). The --memory-budget flag.
absl::StatusOr<int64_t> ParseByteSize(absl::string_view text);

// What one loaded version is charged against the memory budget: its file
// (read into memory), the weight layouts its kernels built during the load's
// warm-up (Model::DerivedWeightBytes: transposed taps on AVX2 int8 hosts,
// as many bytes again as the stored bits), plus the fixed cost of a version
// measured with tools/scripts/density_bench.sh (parsed header, compiled
// graph, queue, statistics, metric series, allocator slack).
int64_t VersionResidentCost(const ServableVersion& version);
inline constexpr int64_t kVersionFixedCostBytes = 40 << 10;

class ModelManager {
 public:
  struct IndexEntry {
    std::string name;
    int64_t version = 0;  // 0: the model has no serving version
    ModelReadiness state = ModelReadiness::kUnavailable;
    std::string reason;
  };
  // An uploaded version file (RepositoryModelLoad "file:<version>/...").
  struct UploadedFile {
    int64_t version = 0;
    std::string bytes;
    std::string signature;  // model.flexor.sig text, "" if none was sent
  };
  // Called after a model's readiness may have changed.
  using ReadinessListener =
      std::function<void(const std::string& model, bool ready)>;
  using GetCallback = absl::AnyInvocable<void(absl::StatusOr<ServablePtr>)>;

  // `memory_budget_bytes` 0: no budget, every model stays loaded.
  // `load_arena`: where cold loads (budget) run; null runs them inline.
  ModelManager(const ModelRepository* repository, const ModelLoader* loader,
               ServerMetrics* metrics, ModelConfigDefaults defaults,
               int64_t memory_budget_bytes = 0,
               tbb::task_arena* load_arena = nullptr);
  // Waits for cold loads still running.
  ~ModelManager();

  void SetReadinessListener(ReadinessListener listener);

  // Startup: loads `names` in parallel in `arena` (with a budget: loads the
  // pinned ones and registers the others for loading on demand). Stops
  // early once `*cancel` is true. Returns how many models are servable.
  int LoadInitial(const std::vector<std::string>& names, tbb::task_arena& arena,
                  const std::atomic<bool>* cancel);

  // Loads (or reloads) `name` from the repository: versions chosen by the
  // model's version policy; versions whose file and config are unchanged
  // are kept as they are. `config_override` (config.pbtxt text or Triton's
  // JSON, see ParseModelConfigText) replaces the repository's config for
  // this load only, as in Triton: it is not written anywhere, and the next
  // load without one goes back to the repository's config.
  absl::Status Load(const std::string& name,
                    std::optional<std::string> config_override = std::nullopt);
  // Validates the uploaded files (against the config they will be served
  // with) first, publishes them into the repository atomically, then loads
  // with `config_override` as Load does.
  absl::Status LoadWithFiles(const std::string& name,
                             std::optional<std::string> config_override,
                             std::vector<UploadedFile> files);
  // Stops serving `name`, then waits until requests still running on it
  // finish (or `drain_deadline` passes). A model that is not loaded is a
  // successful no-op, as in Triton.
  absl::Status Unload(const std::string& name, absl::Time drain_deadline);
  // Poll mode: loads new or changed models, unloads removed ones. A file
  // that failed once is not retried until it changes.
  void Poll();
  // Unloads everything (shutdown).
  void UnloadAll();

  // The version to run: nullopt means the highest serving version. Only
  // resident versions (no load on demand).
  absl::StatusOr<ServablePtr> Get(const std::string& name,
                                  std::optional<int64_t> version) const;
  // As Get, but a model registered under the memory budget and not resident
  // is loaded first. `done` runs inline when the version is resident, else
  // on the loading thread once the load ends (DEADLINE_EXCEEDED when that is
  // after `deadline`). Concurrent requests for one cold model share a load.
  void GetAsync(const std::string& name, std::optional<int64_t> version,
                absl::Time deadline, GetCallback done);
  // Blocking GetAsync (metadata RPCs).
  absl::StatusOr<ServablePtr> GetOrLoad(const std::string& name,
                                        std::optional<int64_t> version,
                                        absl::Time deadline);
  // ModelReady: resident, or registered for loading on demand and its
  // files did not fail to load.
  bool Servable(const std::string& name, std::optional<int64_t> version) const;
  int64_t memory_budget_bytes() const { return budget_; }
  // Bytes charged to the budget by resident versions.
  int64_t resident_bytes() const;
  // Serving versions of `name`, highest first (empty when none).
  std::vector<ServablePtr> ServingVersions(const std::string& name) const;
  // Every model with serving versions, by name.
  std::vector<std::string> ServingModels() const;
  // Repository contents with states (RepositoryIndex).
  std::vector<IndexEntry> Index(bool ready_only) const;

 private:
  using VersionSet = std::vector<ServablePtr>;  // highest version first
  struct Waiter {
    std::optional<int64_t> version;
    absl::Time deadline;
    GetCallback done;
  };
  // One model. Created on first mention and never erased, so pointers to it
  // stay valid for the manager's life. Fields other than load_mu and the
  // LRU links are guarded by the manager's mu_ (an annotation cannot name
  // the enclosing object's mutex).
  struct ModelState {
    explicit ModelState(std::string n) : name(std::move(n)) {}
    const std::string name;
    // Serialises loads and unloads of this model (slow, rare); never held
    // by lookups.
    absl::Mutex load_mu;
    std::shared_ptr<const VersionSet> serving =
        std::make_shared<const VersionSet>();
    ModelReadiness state = ModelReadiness::kUnavailable;
    std::string reason;
    // Fingerprint and status of the last failed load attempt (poll and
    // loads on demand do not retry the same files).
    std::string failed_fingerprint;
    absl::Status failed_status;
    // Budget: not resident now, the first request loads it.
    bool on_demand = false;
    bool pinned = false;        // the serving set's config says pinned
    int64_t charged_bytes = 0;  // charged to the budget (serving set)
    bool loading = false;       // a load on demand is running
    // Loads that read files (guarded by load_mu): a load on demand of files
    // that already failed answers the failure without counting a load.
    int64_t attempts = 0;
    // The config override of the last successful explicit load (guarded by
    // load_mu). Loads on demand after an eviction and polls use it, as if
    // the model had stayed loaded, until an explicit load without one or an
    // unload.
    std::optional<std::string> config_override;
    std::vector<Waiter> waiters;  // requests waiting for it
    // LRU links (guarded by lru_mu_).
    bool in_lru = false;
    std::list<ModelState*>::iterator lru_pos;
  };
  enum class LoadMode { kExplicit, kPoll, kOnDemand };

  // `config_override`: see Load; null: the repository's config.
  // `published`: the set serving after the call (also when unchanged).
  absl::Status LoadLocked(
      ModelState* model, LoadMode mode,
      const std::string* config_override = nullptr,
      std::shared_ptr<const VersionSet>* published = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(model->load_mu);
  // The state of `name`, created if new (name must be valid).
  ModelState* StateOf(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  void Publish(ModelState* model, std::shared_ptr<const VersionSet> set,
               ModelReadiness state, std::string reason, bool on_demand)
      ABSL_LOCKS_EXCLUDED(mu_);
  void RecordFailure(ModelState* model, const absl::Status& status,
                     const std::string& fingerprint, LoadMode mode);
  // Budget: evicts least-recently-used unpinned models other than `keep`
  // until the resident bytes plus reservations plus `extra` fit.
  void MakeRoom(const ModelState* keep, int64_t extra) ABSL_LOCKS_EXCLUDED(mu_);
  // Budget: a model that is not pinned and not loaded is registered for
  // loading on demand; a pinned one is loaded now.
  absl::Status Register(ModelState* model, LoadMode mode)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(model->load_mu);
  void Touch(ModelState* model) const ABSL_LOCKS_EXCLUDED(lru_mu_);
  // Runs one load on demand and answers its waiters.
  void LoadOnDemand(ModelState* model);
  static absl::StatusOr<ServablePtr> Pick(const VersionSet& set,
                                          const std::string& name,
                                          std::optional<int64_t> version);
  std::shared_ptr<const VersionSet> Snapshot(const std::string& name) const;
  // `name` for metric labels if the model is loaded or in the repository,
  // else "" (bounded series whatever names clients send).
  std::string MetricLabel(const std::string& name) const;
  void UpdateGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Charges `set` for `model` (budget accounting, LRU, gauges).
  void ChargeLocked(ModelState* model, const VersionSet& set)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The repository's model names, listed again at most once per
  // kListingTtl: RepositoryIndex must not scan a directory of thousands of
  // models on every call (concurrent callers wait for one scan).
  std::vector<std::string> RepositoryListing() const
      ABSL_LOCKS_EXCLUDED(listing_mu_);

  const ModelRepository* repository_;
  const ModelLoader* loader_;
  ServerMetrics* metrics_;
  const ModelConfigDefaults defaults_;
  ReadinessListener listener_;

  const int64_t budget_;
  tbb::task_arena* const load_arena_;

  // Serialises polls (each model's loads are serialised by its load_mu,
  // which is acquired before mu_).
  absl::Mutex poll_mu_;
  mutable absl::Mutex mu_ ABSL_ACQUIRED_BEFORE(lru_mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<ModelState>> models_
      ABSL_GUARDED_BY(mu_);
  int models_serving_ ABSL_GUARDED_BY(mu_) = 0;
  int versions_serving_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t resident_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Bytes of loads running now (budget), reserved before they read files.
  int64_t reserved_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Resident unpinned models, most recently used first.
  mutable absl::Mutex lru_mu_;
  mutable std::list<ModelState*> lru_ ABSL_GUARDED_BY(lru_mu_);
  // Loads on demand queued or running (the destructor waits for 0).
  absl::Mutex pending_mu_;
  int pending_loads_ ABSL_GUARDED_BY(pending_mu_) = 0;

  static constexpr absl::Duration kListingTtl = absl::Seconds(1);
  mutable absl::Mutex listing_mu_;
  mutable absl::Time listing_time_ ABSL_GUARDED_BY(listing_mu_) =
      absl::InfinitePast();
  mutable std::vector<std::string> listing_ ABSL_GUARDED_BY(listing_mu_);
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_REGISTRY_MODEL_MANAGER_H_
