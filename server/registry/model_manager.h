// Maps model names to their serving versions (the "manager", in TF Serving's
// terms). Each model's serving set is an immutable vector of reference-
// counted versions swapped atomically: lookups copy a shared_ptr under a
// reader lock, loads build the new set outside any lookup lock and publish
// it in one step. Loading is all-or-nothing: if any version selected by the
// policy fails validation, nothing changes and the old set keeps serving.
#ifndef FLEXOR_SERVER_REGISTRY_MODEL_MANAGER_H_
#define FLEXOR_SERVER_REGISTRY_MODEL_MANAGER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/config/model_config.h"
#include "server/metrics/server_metrics.h"
#include "server/registry/loader.h"
#include "server/registry/repository.h"
#include "server/registry/servable.h"

namespace flexor::server {

using ServablePtr = std::shared_ptr<const ServableVersion>;

// A model's state as RepositoryIndex reports it (Triton's state names).
enum class ModelReadiness { kUnavailable, kReady };
// "UNAVAILABLE", "READY": the wire form, for the gRPC layer.
const char* ModelReadinessName(ModelReadiness readiness);

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

  ModelManager(const ModelRepository* repository, const ModelLoader* loader,
               ServerMetrics* metrics, ModelConfigDefaults defaults);

  void SetReadinessListener(ReadinessListener listener);

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

  // The version to run: nullopt means the highest serving version.
  absl::StatusOr<ServablePtr> Get(const std::string& name,
                                  std::optional<int64_t> version) const;
  // Serving versions of `name`, highest first (empty when none).
  std::vector<ServablePtr> ServingVersions(const std::string& name) const;
  // Every model with serving versions, by name.
  std::vector<std::string> ServingModels() const;
  // Repository contents with states (RepositoryIndex).
  std::vector<IndexEntry> Index(bool ready_only) const;

 private:
  using VersionSet = std::vector<ServablePtr>;  // highest version first
  struct ModelState {
    std::shared_ptr<const VersionSet> serving =
        std::make_shared<const VersionSet>();
    ModelReadiness state = ModelReadiness::kUnavailable;
    std::string reason;
    // Fingerprint of the last failed load attempt (poll does not retry it).
    std::string failed_fingerprint;
  };

  // `config_override`: see Load; null: the repository's config.
  absl::Status LoadLocked(const std::string& name, bool from_poll,
                          const std::string* config_override = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(load_mu_);
  void Publish(const std::string& name, std::shared_ptr<const VersionSet> set,
               ModelReadiness state, std::string reason)
      ABSL_LOCKS_EXCLUDED(mu_);
  void RecordFailure(const std::string& name, const absl::Status& status,
                     const std::string& fingerprint, bool from_poll);
  std::shared_ptr<const VersionSet> Snapshot(const std::string& name) const;
  // `name` for metric labels if the model is loaded or in the repository,
  // else "" (bounded series whatever names clients send).
  std::string MetricLabel(const std::string& name) const;
  void UpdateGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
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

  // Serialises loads and unloads (slow, rare); never held by lookups.
  absl::Mutex load_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, ModelState> models_ ABSL_GUARDED_BY(mu_);

  static constexpr absl::Duration kListingTtl = absl::Seconds(1);
  mutable absl::Mutex listing_mu_;
  mutable absl::Time listing_time_ ABSL_GUARDED_BY(listing_mu_) =
      absl::InfinitePast();
  mutable std::vector<std::string> listing_ ABSL_GUARDED_BY(listing_mu_);
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_REGISTRY_MODEL_MANAGER_H_
