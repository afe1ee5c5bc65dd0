#include "server/registry/model_manager.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "server/common/log.h"
#include "tbb/parallel_for.h"

namespace flexor::server {
namespace {

std::string VersionList(const std::vector<ServablePtr>& set) {
  std::vector<int64_t> versions;
  for (const ServablePtr& s : set) versions.push_back(s->version());
  return versions.empty() ? "none" : absl::StrJoin(versions, ", ");
}

std::string Fingerprint(const std::string& config_text,
                        const std::vector<VersionFile>& files) {
  std::string out = absl::StrCat(std::hash<std::string>{}(config_text));
  for (const VersionFile& f : files) {
    absl::StrAppend(&out, "|", f.version, ":", f.identity.device, ":",
                    f.identity.inode, ":", f.identity.size, ":",
                    f.identity.mtime_ns);
  }
  return out;
}

}  // namespace

absl::StatusOr<int64_t> ParseByteSize(absl::string_view text) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", absl::CEscape(text.substr(0, 64)),
        "' is not a size (examples: 2GiB, 512MiB, 1.5G, 1000000)"));
  };
  size_t digits = 0;
  while (digits < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[digits])) ||
          text[digits] == '.')) {
    ++digits;
  }
  if (digits == 0 || digits > 24) return bad();
  double value = 0;
  if (!absl::SimpleAtod(text.substr(0, digits), &value) || value < 0) {
    return bad();
  }
  std::string unit = absl::AsciiStrToLower(text.substr(digits));
  double scale = 1;
  if (!unit.empty() && unit != "b") {
    const size_t power = std::string("kmgt").find(unit[0]);
    if (power == std::string::npos) return bad();
    const std::string tail = unit.substr(1);
    double base;
    if (tail.empty() || tail == "b") {
      base = 1000;
    } else if (tail == "ib") {
      base = 1024;
    } else {
      return bad();
    }
    scale = std::pow(base, static_cast<double>(power + 1));
  }
  const double bytes = std::floor(value * scale);
  if (!(bytes < 9.0e18)) return bad();
  return static_cast<int64_t>(bytes);
}

int64_t VersionResidentCost(const ServableVersion& version) {
  return version.model().stats().file_bytes +
         version.model().DerivedWeightBytes() + kVersionFixedCostBytes;
}

const char* ModelReadinessName(ModelReadiness readiness) {
  switch (readiness) {
    case ModelReadiness::kReady:
      return "READY";
    case ModelReadiness::kUnavailable:
      return "UNAVAILABLE";
  }
  return "UNAVAILABLE";
}

ModelManager::ModelManager(const ModelRepository* repository,
                           const ModelLoader* loader, ServerMetrics* metrics,
                           ModelConfigDefaults defaults,
                           int64_t memory_budget_bytes,
                           tbb::task_arena* load_arena)
    : repository_(repository),
      loader_(loader),
      metrics_(metrics),
      defaults_(std::move(defaults)),
      budget_(std::max<int64_t>(0, memory_budget_bytes)),
      load_arena_(load_arena) {
  if (budget_ > 0) {
    metrics_->SetResidency(0, budget_);
    // Evictions worth a tenth of the budget make the next trim urgent
    // (MemoryTrimmer::SetUrgency): small budgets stay within bounds.
    metrics_->memory_trimmer().SetUrgency(budget_ / 10,
                                          absl::Milliseconds(250));
  }
}

ModelManager::~ModelManager() {
  absl::MutexLock lock(&pending_mu_);
  pending_mu_.Await(absl::Condition(
      +[](int* pending) { return *pending == 0; }, &pending_loads_));
}

void ModelManager::SetReadinessListener(ReadinessListener listener) {
  listener_ = std::move(listener);
}

ModelManager::ModelState* ModelManager::StateOf(const std::string& name) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<ModelState>& state = models_[name];
  if (state == nullptr) state = std::make_unique<ModelState>(name);
  return state.get();
}

absl::Status ModelManager::Load(const std::string& name,
                                std::optional<std::string> config_override) {
  if (absl::Status s = ModelRepository::ValidateModelName(name); !s.ok()) {
    return s;
  }
  if (!repository_->ListVersions(name).ok() && Snapshot(name)->empty()) {
    // Not in the repository and not known: no state (and no metric series)
    // for names clients make up.
    metrics_->RecordLoad("", false);
    return repository_->ListVersions(name).status();
  }
  ModelState* model = StateOf(name);
  absl::MutexLock lock(&model->load_mu);
  return LoadLocked(model, LoadMode::kExplicit,
                    config_override ? &*config_override : nullptr);
}

int ModelManager::LoadInitial(const std::vector<std::string>& names,
                              tbb::task_arena& arena,
                              const std::atomic<bool>* cancel) {
  std::atomic<int> servable{0};
  arena.execute([&] {
    tbb::parallel_for(
        tbb::blocked_range<size_t>(0, names.size(), 1),
        [&](const tbb::blocked_range<size_t>& range) {
          for (size_t i = range.begin(); i != range.end(); ++i) {
            if (cancel != nullptr && cancel->load()) return;
            const std::string& name = names[i];
            absl::Status s = ModelRepository::ValidateModelName(name);
            if (s.ok()) {
              ModelState* model = StateOf(name);
              absl::MutexLock lock(&model->load_mu);
              s = budget_ > 0 ? Register(model, LoadMode::kExplicit)
                              : LoadLocked(model, LoadMode::kExplicit);
            }
            if (s.ok()) {
              servable.fetch_add(1);
            } else {
              FLEXOR_LOG(ERROR)
                  << "startup load of model '" << name << "' failed: " << s;
            }
          }
        },
        tbb::simple_partitioner());
  });
  return servable.load();
}

absl::Status ModelManager::Register(ModelState* model, LoadMode mode) {
  if (!Snapshot(model->name)->empty()) {
    return LoadLocked(model, mode);  // resident: follow changes
  }
  absl::StatusOr<std::string> text = repository_->ReadConfig(model->name);
  if (!text.ok()) return text.status();
  // No config.pbtxt (the common case with 100,000 models): not pinned.
  absl::StatusOr<ModelConfig> config =
      text->empty() ? absl::StatusOr<ModelConfig>(defaults_)
                    : ParseModelConfigText(
                          *text, defaults_, model->name,
                          absl::StrCat(repository_->root(), "/", model->name,
                                       "/", kModelConfigName));
  if (!config.ok()) return config.status();
  if (config->pinned) return LoadLocked(model, mode);
  // Registered only: no per-model health status (it would cost memory per
  // registered model); ModelReady and RepositoryIndex report it.
  absl::MutexLock lock(&mu_);
  if (!model->on_demand) {
    model->on_demand = true;
    model->state = ModelReadiness::kUnavailable;
    model->reason = "not resident (memory budget): loads on first request";
  }
  return absl::OkStatus();
}

absl::Status ModelManager::LoadLocked(
    ModelState* model, LoadMode mode, const std::string* config_override,
    std::shared_ptr<const VersionSet>* published) {
  const std::string& name = model->name;
  const bool from_poll = mode == LoadMode::kPoll;
  if (config_override == nullptr && mode != LoadMode::kExplicit &&
      model->config_override.has_value()) {
    config_override = &*model->config_override;
  }
  absl::StatusOr<std::string> config_text =
      config_override != nullptr ? absl::StatusOr<std::string>(*config_override)
                                 : repository_->ReadConfig(name);
  absl::StatusOr<std::vector<VersionFile>> files =
      repository_->ListVersions(name);
  if (!files.ok()) {
    if (mode == LoadMode::kExplicit) metrics_->RecordLoad(name, false);
    return files.status();
  }
  const std::string fingerprint =
      Fingerprint(config_text.ok() ? *config_text : "", *files);
  if (mode != LoadMode::kExplicit) {
    absl::ReaderMutexLock lock(&mu_);
    if (model->failed_fingerprint == fingerprint) {
      // Same bad files as last time: not read again.
      return from_poll ? absl::OkStatus() : model->failed_status;
    }
  }
  ++model->attempts;
  if (!config_text.ok()) {
    RecordFailure(model, config_text.status(), fingerprint, mode);
    return config_text.status();
  }
  absl::StatusOr<ModelConfig> config = ParseModelConfigText(
      *config_text, defaults_, name,
      config_override != nullptr
          ? absl::StrCat("config override of model '", name, "'")
          : absl::StrCat(repository_->root(), "/", name, "/",
                         kModelConfigName));
  if (!config.ok()) {
    RecordFailure(model, config.status(), fingerprint, mode);
    return config.status();
  }
  std::vector<int64_t> available;
  for (const VersionFile& f : *files) available.push_back(f.version);
  const std::vector<int64_t> selected =
      config->version_policy.Select(available);
  if (selected.empty()) {
    absl::Status status = absl::NotFoundError(absl::StrCat(
        "model '", name, "' has no version to serve: the repository has [",
        absl::StrJoin(available, ", "), "] and the version policy is ",
        config->version_policy.ToString(), " (expected ", repository_->root(),
        "/", name, "/<version>/", kModelFileName, ")"));
    RecordFailure(model, status, fingerprint, mode);
    return status;
  }

  const std::shared_ptr<const VersionSet> current = Snapshot(name);
  auto next = std::make_shared<VersionSet>();
  bool changed = current->size() != selected.size();
  const std::string config_string = config->DebugString();
  // Versions to read, and what they will cost against the budget.
  std::vector<const VersionFile*> to_load;
  int64_t reserve = 0;
  for (int64_t version : selected) {
    const VersionFile& file = *std::find_if(
        files->begin(), files->end(),
        [version](const VersionFile& f) { return f.version == version; });
    auto same = std::find_if(
        current->begin(), current->end(), [&](const ServablePtr& s) {
          return s->version() == version && s->identity() == file.identity &&
                 s->config().DebugString() == config_string;
        });
    if (same != current->end()) {
      next->push_back(*same);
      continue;
    }
    next->push_back(nullptr);  // filled below, same order
    to_load.push_back(&file);
    reserve += file.identity.size + kVersionFixedCostBytes;
  }
  if (budget_ > 0 && !to_load.empty()) {
    // Room first, so that the files read below fit in the budget.
    MakeRoom(model, reserve);
    absl::MutexLock lock(&mu_);
    reserved_bytes_ += reserve;
  }
  absl::Status status;
  size_t next_slot = 0;
  for (const VersionFile* file : to_load) {
    while ((*next)[next_slot] != nullptr) ++next_slot;
    changed = true;
    const absl::Time start = absl::Now();
    absl::StatusOr<ServablePtr> loaded = loader_->Load(name, *file, *config);
    if (!loaded.ok()) {
      status = loaded.status();
      break;
    }
    FLEXOR_LOG(INFO) << "loaded model '" << name << "' version "
                     << file->version << " from " << file->path << " in "
                     << absl::FormatDuration(absl::Now() - start) << " ("
                     << (*loaded)->model().stats().file_bytes << " bytes, "
                     << (*loaded)->model().stats().bits_per_weight
                     << " bits/weight; " << config->DebugString() << ")";
    (*next)[next_slot] = *std::move(loaded);
  }
  if (budget_ > 0 && !to_load.empty()) {
    absl::MutexLock lock(&mu_);
    reserved_bytes_ -= reserve;
  }
  if (!status.ok()) {
    RecordFailure(model, status, fingerprint, mode);
    return status;
  }
  if (mode == LoadMode::kExplicit) {
    model->config_override = config_override != nullptr
                                 ? std::make_optional(*config_override)
                                 : std::nullopt;
  }
  if (!changed) {
    for (size_t i = 0; i < next->size(); ++i) {
      changed |= (*next)[i] != (*current)[i];
    }
  }
  if (published != nullptr) *published = next;
  if (!changed) {
    if (mode == LoadMode::kExplicit) metrics_->RecordLoad(name, true);
    return absl::OkStatus();
  }
  FLEXOR_LOG(INFO) << "model '" << name << "' now serves versions ["
                   << VersionList(*next) << "] (was [" << VersionList(*current)
                   << "])";
  if (mode != LoadMode::kOnDemand) metrics_->RecordLoad(name, true);
  Publish(model, std::move(next), ModelReadiness::kReady, "",
          /*on_demand=*/budget_ > 0 && !config->pinned);
  if (budget_ > 0) MakeRoom(model, 0);
  return absl::OkStatus();
}

void ModelManager::RecordFailure(ModelState* model, const absl::Status& status,
                                 const std::string& fingerprint,
                                 LoadMode mode) {
  FLEXOR_LOG(ERROR) << "load of model '" << model->name
                    << "' rejected, serving set unchanged: " << status;
  // Loads on demand are counted server-wide (flexor_model_cold_loads_total):
  // no series per registered model.
  if (mode != LoadMode::kOnDemand) metrics_->RecordLoad(model->name, false);
  bool notify = false;
  {
    absl::MutexLock lock(&mu_);
    model->failed_fingerprint = fingerprint;
    model->failed_status = status;
    if (model->serving->empty()) {
      model->reason = std::string(status.message());
      notify = true;
    }
  }
  if (notify && listener_) listener_(model->name, false);
}

void ModelManager::ChargeLocked(ModelState* model, const VersionSet& set) {
  int64_t cost = 0;
  for (const ServablePtr& s : set) cost += VersionResidentCost(*s);
  const int old_versions = static_cast<int>(model->serving->size());
  models_serving_ += (set.empty() ? 0 : 1) - (old_versions == 0 ? 0 : 1);
  versions_serving_ += static_cast<int>(set.size()) - old_versions;
  resident_bytes_ += cost - model->charged_bytes;
  model->charged_bytes = cost;
  model->pinned = !set.empty() && set.front()->config().pinned;
  if (budget_ > 0) {
    absl::MutexLock lru(&lru_mu_);
    const bool want = !set.empty() && !model->pinned;
    if (want && !model->in_lru) {
      lru_.push_front(model);
      model->lru_pos = lru_.begin();
      model->in_lru = true;
    } else if (want) {
      lru_.splice(lru_.begin(), lru_, model->lru_pos);
    } else if (model->in_lru) {
      lru_.erase(model->lru_pos);
      model->in_lru = false;
    }
  }
}

void ModelManager::Publish(ModelState* model,
                           std::shared_ptr<const VersionSet> set,
                           ModelReadiness state, std::string reason,
                           bool on_demand) {
  std::shared_ptr<const VersionSet> old;
  const bool ready = !set->empty() || on_demand;
  int64_t resident = 0;
  {
    absl::MutexLock lock(&mu_);
    ChargeLocked(model, *set);
    old = std::move(model->serving);
    model->serving = std::move(set);
    model->state = state;
    model->reason = std::move(reason);
    model->on_demand = on_demand;
    model->failed_fingerprint.clear();
    model->failed_status = absl::OkStatus();
    UpdateGauges();
    resident = resident_bytes_;
  }
  if (budget_ > 0) metrics_->SetResidency(resident, budget_);
  // Models that come and go under the budget get no per-model health
  // status: 100,000 registered models would make 100,000 entries.
  if (listener_ && !on_demand) listener_(model->name, ready);
  // `old` drops here: versions no longer serving are freed when their last
  // in-flight request finishes.
}

void ModelManager::MakeRoom(const ModelState* keep, int64_t extra) {
  std::vector<std::shared_ptr<const VersionSet>> evicted;
  int64_t resident = 0;
  int64_t freed = 0;  // bytes charged to the evicted versions
  {
    absl::MutexLock lock(&mu_);
    const int64_t before = resident_bytes_;
    while (resident_bytes_ + reserved_bytes_ + extra > budget_) {
      ModelState* victim = nullptr;
      {
        absl::MutexLock lru(&lru_mu_);
        for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
          if (*it != keep) {
            victim = *it;
            break;
          }
        }
      }
      if (victim == nullptr) break;  // only pinned (or `keep`) left
      auto empty = std::make_shared<const VersionSet>();
      ChargeLocked(victim, *empty);
      evicted.push_back(std::move(victim->serving));
      victim->serving = std::move(empty);
      victim->state = ModelReadiness::kUnavailable;
      victim->reason =
          "evicted (memory budget): loads again on the next request";
      victim->on_demand = true;
    }
    UpdateGauges();
    resident = resident_bytes_;
    freed = before - resident_bytes_;
  }
  if (!evicted.empty()) {
    for (size_t i = 0; i < evicted.size(); ++i) metrics_->RecordEviction();
    FLEXOR_LOG(INFO) << "memory budget: evicted " << evicted.size()
                     << " least recently used model(s)";
  }
  metrics_->SetResidency(resident, budget_);
  // Requests still running on the evicted versions hold their own
  // references and finish on them; the manager's go here.
  evicted.clear();
  // Loads and evictions on different threads fragment the allocator's
  // arenas: pages that are free again go back to the system (every 5 s at
  // most, or 250 ms after a tenth of the budget was evicted; off this
  // thread), so that the resident set follows the budget.
  metrics_->RequestMemoryTrim(freed);
}

void ModelManager::UpdateGauges() {
  metrics_->SetModelsLoaded(models_serving_, versions_serving_);
}

int64_t ModelManager::resident_bytes() const {
  absl::ReaderMutexLock lock(&mu_);
  return resident_bytes_;
}

void ModelManager::Touch(ModelState* model) const {
  if (budget_ <= 0) return;
  absl::MutexLock lru(&lru_mu_);
  if (model->in_lru && model->lru_pos != lru_.begin()) {
    lru_.splice(lru_.begin(), lru_, model->lru_pos);
  }
}

absl::StatusOr<ServablePtr> ModelManager::Pick(const VersionSet& set,
                                               const std::string& name,
                                               std::optional<int64_t> version) {
  if (!version.has_value()) return set.front();
  for (const ServablePtr& s : set) {
    if (s->version() == *version) return s;
  }
  return absl::NotFoundError(
      absl::StrCat("model '", name, "' version ", *version,
                   " is not loaded; serving versions: ", VersionList(set)));
}

void ModelManager::GetAsync(const std::string& name,
                            std::optional<int64_t> version, absl::Time deadline,
                            GetCallback done) {
  if (budget_ <= 0) {
    // Nothing loads on demand without a budget: the plain lookup, under a
    // reader lock only (this runs for every request).
    done(Get(name, version));
    return;
  }
  ModelState* model = nullptr;
  bool start = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it != models_.end() && it->second->on_demand &&
        it->second->serving->empty()) {
      model = it->second.get();
      model->waiters.push_back(Waiter{version, deadline, std::move(done)});
      start = !model->loading;
      model->loading = true;
    }
  }
  if (model == nullptr) {
    absl::StatusOr<ServablePtr> resident = Get(name, version);
    if (resident.ok()) metrics_->RecordResidency(true);
    done(std::move(resident));
    return;
  }
  metrics_->RecordResidency(false);
  if (!start) return;  // a load of this model is already under way
  {
    absl::MutexLock lock(&pending_mu_);
    ++pending_loads_;
  }
  if (load_arena_ != nullptr) {
    load_arena_->enqueue([this, model] { LoadOnDemand(model); });
  } else {
    LoadOnDemand(model);
  }
}

void ModelManager::LoadOnDemand(ModelState* model) {
  const absl::Time start = absl::Now();
  absl::Status status;
  std::shared_ptr<const VersionSet> set;
  bool attempted = false;
  {
    absl::MutexLock lock(&model->load_mu);
    set = Snapshot(model->name);
    if (set->empty()) {
      const int64_t attempts = model->attempts;
      status = LoadLocked(model, LoadMode::kOnDemand, nullptr, &set);
      attempted = model->attempts != attempts;
    }
  }
  if (status.ok() && (set == nullptr || set->empty())) {
    status = absl::UnavailableError(absl::StrCat(
        "model '", model->name, "' was unloaded while it was being loaded"));
  }
  if (attempted) {
    metrics_->RecordColdLoad(absl::ToDoubleSeconds(absl::Now() - start),
                             status.ok());
  }
  std::vector<Waiter> waiters;
  {
    absl::MutexLock lock(&mu_);
    waiters.swap(model->waiters);
    model->loading = false;
  }
  const absl::Time now = absl::Now();
  for (Waiter& w : waiters) {
    if (!status.ok()) {
      w.done(absl::Status(
          status.code(),
          absl::StrCat("model '", model->name,
                       "' could not be loaded on demand: ", status.message())));
    } else if (now > w.deadline) {
      w.done(absl::DeadlineExceededError(
          absl::StrCat("model '", model->name, "' was loaded on demand in ",
                       absl::FormatDuration(now - start),
                       ", after the request's deadline")));
    } else {
      // From the set this load published: an eviction since then cannot
      // fail these requests.
      w.done(Pick(*set, model->name, w.version));
    }
  }
  absl::MutexLock lock(&pending_mu_);
  --pending_loads_;
}

absl::StatusOr<ServablePtr> ModelManager::GetOrLoad(
    const std::string& name, std::optional<int64_t> version,
    absl::Time deadline) {
  absl::Notification loaded;
  absl::StatusOr<ServablePtr> out;
  GetAsync(name, version, deadline, [&](absl::StatusOr<ServablePtr> result) {
    out = std::move(result);
    loaded.Notify();
  });
  loaded.WaitForNotification();
  return out;
}

bool ModelManager::Servable(const std::string& name,
                            std::optional<int64_t> version) const {
  std::shared_ptr<const VersionSet> set;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return false;
    if (it->second->serving->empty()) {
      return it->second->on_demand && it->second->failed_status.ok();
    }
    set = it->second->serving;
  }
  // Not a use: the LRU order does not change.
  return Pick(*set, name, version).ok();
}

absl::Status ModelManager::LoadWithFiles(
    const std::string& name, std::optional<std::string> config_override,
    std::vector<UploadedFile> files) {
  if (absl::Status s = ModelRepository::ValidateModelName(name); !s.ok()) {
    return s;
  }
  ModelState* model = StateOf(name);
  absl::MutexLock lock(&model->load_mu);
  // The files are checked against the config they will be served with: the
  // override, else the repository's, else the defaults.
  std::string effective_text;
  if (config_override.has_value()) {
    effective_text = *config_override;
  } else if (absl::StatusOr<std::string> on_disk =
                 repository_->ReadConfig(name);
             on_disk.ok()) {
    effective_text = *on_disk;
  }
  absl::StatusOr<ModelConfig> config =
      ParseModelConfigText(effective_text, defaults_, name,
                           absl::StrCat("config of model '", name, "'"));
  absl::Status status = config.status();
  for (const UploadedFile& file : files) {
    if (!status.ok()) break;
    status = loader_->ValidateBytes(name, file.version, file.bytes, *config,
                                    file.signature);
  }
  if (!status.ok()) {
    FLEXOR_LOG(ERROR) << "upload for model '" << name
                      << "' rejected, nothing published: " << status;
    metrics_->RecordLoad(MetricLabel(name), false);
    return status;
  }
  // Versions are immutable: re-sending a version's exact bytes is a no-op
  // (a retry), different bytes are refused. Uploads are serialised by
  // the model's load_mu, so of concurrent uploads of one version the first
  // wins.
  for (const UploadedFile& file : files) {
    absl::StatusOr<bool> same =
        repository_->VersionHolds(name, file.version, file.bytes);
    if (same.ok() && !*same) {
      metrics_->RecordLoad(MetricLabel(name), false);
      return absl::AlreadyExistsError(absl::StrCat(
          "model '", name, "' version ", file.version,
          " already exists with different content; versions are immutable, "
          "publish a new version number"));
    }
  }
  // The config is an override for this load (Triton's semantics): only the
  // model files are published.
  for (const UploadedFile& file : files) {
    if (file.signature.empty() &&
        repository_->VersionHolds(name, file.version, file.bytes)
            .value_or(false)) {
      continue;  // already there, byte for byte
    }
    if (absl::Status s = repository_->PublishModelFile(
            name, file.version, file.bytes, file.signature);
        !s.ok()) {
      metrics_->RecordLoad(MetricLabel(name), false);
      return s;
    }
    FLEXOR_LOG(INFO) << "published model '" << name << "' version "
                     << file.version << " (" << file.bytes.size()
                     << " bytes) into " << repository_->root();
  }
  return LoadLocked(model, LoadMode::kExplicit,
                    config_override ? &*config_override : nullptr);
}

absl::Status ModelManager::Unload(const std::string& name,
                                  absl::Time drain_deadline) {
  std::vector<std::weak_ptr<const ServableVersion>> draining;
  ModelState* model = nullptr;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it != models_.end()) model = it->second.get();
  }
  if (model == nullptr) {
    FLEXOR_LOG(INFO) << "unload of model '" << name
                     << "': not loaded, nothing to do";
    return absl::OkStatus();
  }
  {
    absl::MutexLock lock(&model->load_mu);
    std::shared_ptr<const VersionSet> current = Snapshot(name);
    bool on_demand;
    {
      absl::ReaderMutexLock read(&mu_);
      on_demand = model->on_demand;
    }
    if (current->empty() && !on_demand) {
      // Triton answers success: the caller wants the model not loaded, and
      // it is not (a retried unload must not fail).
      FLEXOR_LOG(INFO) << "unload of model '" << name
                       << "': not loaded, nothing to do";
      return absl::OkStatus();
    }
    for (const ServablePtr& s : *current) draining.push_back(s);
    current.reset();
    model->config_override.reset();
    Publish(model, std::make_shared<const VersionSet>(),
            ModelReadiness::kUnavailable, "unloaded", /*on_demand=*/false);
    metrics_->RecordUnload(name, true);
  }
  FLEXOR_LOG(INFO) << "model '" << name
                   << "' unloaded; draining in-flight requests";
  // Drain: the versions are freed by the last request that holds them.
  while (absl::Now() < drain_deadline) {
    bool drained = true;
    for (const auto& weak : draining) drained &= weak.expired();
    if (drained) {
      FLEXOR_LOG(INFO) << "model '" << name << "' drained";
      metrics_->RequestMemoryTrim();  // its memory, back to the system
      return absl::OkStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "model '", name,
      "' is unloaded, but requests still running on it did not finish "
      "before the deadline; they will complete on the old version"));
}

void ModelManager::Poll() {
  absl::MutexLock poll(&poll_mu_);
  absl::StatusOr<std::vector<std::string>> on_disk = repository_->ListModels();
  if (!on_disk.ok()) {
    FLEXOR_LOG(WARNING) << "repository poll: " << on_disk.status();
    return;
  }
  for (const std::string& name : *on_disk) {
    ModelState* model = StateOf(name);
    absl::MutexLock lock(&model->load_mu);
    // With a budget, models that are not resident stay registered (the
    // first request loads them); resident ones follow their files.
    (budget_ > 0 ? Register(model, LoadMode::kPoll)
                 : LoadLocked(model, LoadMode::kPoll))
        .IgnoreError();
  }
  std::vector<ModelState*> gone;
  {
    absl::ReaderMutexLock read(&mu_);
    for (const auto& [name, state] : models_) {
      if ((!state->serving->empty() || state->on_demand) &&
          !std::binary_search(on_disk->begin(), on_disk->end(), name)) {
        gone.push_back(state.get());
      }
    }
  }
  for (ModelState* model : gone) {
    absl::MutexLock lock(&model->load_mu);
    FLEXOR_LOG(INFO) << "model '" << model->name
                     << "' left the repository; unloading";
    Publish(model, std::make_shared<const VersionSet>(),
            ModelReadiness::kUnavailable, "removed from the repository",
            /*on_demand=*/false);
    metrics_->RecordUnload(model->name, true);
  }
}

void ModelManager::UnloadAll() {
  std::vector<ModelState*> all;
  {
    absl::ReaderMutexLock read(&mu_);
    for (const auto& [name, state] : models_) all.push_back(state.get());
  }
  for (ModelState* model : all) {
    absl::MutexLock lock(&model->load_mu);
    if (Snapshot(model->name)->empty()) continue;
    Publish(model, std::make_shared<const VersionSet>(),
            ModelReadiness::kUnavailable, "server shutting down",
            /*on_demand=*/false);
  }
}

std::string ModelManager::MetricLabel(const std::string& name) const {
  if (!Snapshot(name)->empty() || repository_->ListVersions(name).ok()) {
    return name;
  }
  return "";
}

std::shared_ptr<const ModelManager::VersionSet> ModelManager::Snapshot(
    const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return std::make_shared<const VersionSet>();
  return it->second->serving;
}

absl::StatusOr<ServablePtr> ModelManager::Get(
    const std::string& name, std::optional<int64_t> version) const {
  std::shared_ptr<const VersionSet> set;
  std::string reason;
  ModelState* model = nullptr;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) {
      return absl::NotFoundError(absl::StrCat(
          "unknown model '", absl::CEscape(name.substr(0, 200)),
          "'; RepositoryIndex (flexorctl list) shows the available models"));
    }
    model = it->second.get();
    set = model->serving;
    reason = model->reason;
  }
  if (set->empty()) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' is not loaded",
                     reason.empty() ? "" : absl::StrCat(" (", reason, ")"),
                     "; load it with RepositoryModelLoad (flexorctl load)"));
  }
  Touch(model);
  return Pick(*set, name, version);
}

std::vector<ServablePtr> ModelManager::ServingVersions(
    const std::string& name) const {
  return *Snapshot(name);
}

std::vector<std::string> ModelManager::ServingModels() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, state] : models_) {
    if (!state->serving->empty()) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> ModelManager::RepositoryListing() const {
  absl::MutexLock lock(&listing_mu_);
  const absl::Time now = absl::Now();
  if (now - listing_time_ >= kListingTtl) {
    if (absl::StatusOr<std::vector<std::string>> disk =
            repository_->ListModels();
        disk.ok()) {
      listing_ = *std::move(disk);
      listing_time_ = now;
    }
  }
  return listing_;
}

std::vector<ModelManager::IndexEntry> ModelManager::Index(
    bool ready_only) const {
  // Every model in the repository (a listing at most kListingTtl old; not
  // needed when only ready models are asked for) or known here, sorted and
  // unique: O(N log N) for N models.
  std::vector<std::string> names;
  if (!ready_only) names = RepositoryListing();
  std::vector<IndexEntry> out;
  absl::ReaderMutexLock lock(&mu_);
  names.reserve(names.size() + models_.size());
  for (const auto& [name, state] : models_) names.push_back(name);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  for (const std::string& name : names) {
    auto it = models_.find(name);
    if (it == models_.end() || it->second->serving->empty()) {
      if (ready_only) continue;
      out.push_back(
          IndexEntry{name, 0, ModelReadiness::kUnavailable,
                     it == models_.end() ? "not loaded" : it->second->reason});
      continue;
    }
    for (const ServablePtr& s : *it->second->serving) {
      out.push_back(IndexEntry{name, s->version(), ModelReadiness::kReady, ""});
    }
  }
  return out;
}

}  // namespace flexor::server
