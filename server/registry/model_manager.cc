#include "server/registry/model_manager.h"

#include <algorithm>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/log.h"

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
                           ModelConfigDefaults defaults)
    : repository_(repository),
      loader_(loader),
      metrics_(metrics),
      defaults_(std::move(defaults)) {}

void ModelManager::SetReadinessListener(ReadinessListener listener) {
  listener_ = std::move(listener);
}

absl::Status ModelManager::Load(const std::string& name,
                                std::optional<std::string> config_override) {
  absl::MutexLock lock(&load_mu_);
  return LoadLocked(name, /*from_poll=*/false,
                    config_override ? &*config_override : nullptr);
}

absl::Status ModelManager::LoadLocked(const std::string& name, bool from_poll,
                                      const std::string* config_override) {
  if (absl::Status s = ModelRepository::ValidateModelName(name); !s.ok()) {
    return s;
  }
  absl::StatusOr<std::string> config_text =
      config_override != nullptr ? absl::StatusOr<std::string>(*config_override)
                                 : repository_->ReadConfig(name);
  absl::StatusOr<std::vector<VersionFile>> files =
      repository_->ListVersions(name);
  if (!files.ok()) {
    // Not in the repository: counted without the name, so that requests
    // for arbitrary names cannot create metric series.
    if (!from_poll) metrics_->RecordLoad("", false);
    return files.status();
  }
  const std::string fingerprint =
      Fingerprint(config_text.ok() ? *config_text : "", *files);
  if (from_poll) {
    absl::ReaderMutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it != models_.end() && it->second.failed_fingerprint == fingerprint) {
      return absl::OkStatus();  // Same bad files as last time.
    }
  }
  if (!config_text.ok()) {
    RecordFailure(name, config_text.status(), fingerprint, from_poll);
    return config_text.status();
  }
  absl::StatusOr<ModelConfig> config = ParseModelConfigText(
      *config_text, defaults_, name,
      config_override != nullptr
          ? absl::StrCat("config override of model '", name, "'")
          : absl::StrCat(repository_->root(), "/", name, "/",
                         kModelConfigName));
  if (!config.ok()) {
    RecordFailure(name, config.status(), fingerprint, from_poll);
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
    RecordFailure(name, status, fingerprint, from_poll);
    return status;
  }

  const std::shared_ptr<const VersionSet> current = Snapshot(name);
  auto next = std::make_shared<VersionSet>();
  bool changed = current->size() != selected.size();
  const std::string config_string = config->DebugString();
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
    changed = true;
    const absl::Time start = absl::Now();
    absl::StatusOr<ServablePtr> loaded = loader_->Load(name, file, *config);
    if (!loaded.ok()) {
      RecordFailure(name, loaded.status(), fingerprint, from_poll);
      return loaded.status();
    }
    FLEXOR_LOG(INFO) << "loaded model '" << name << "' version " << version
                     << " from " << file.path << " in "
                     << absl::FormatDuration(absl::Now() - start) << " ("
                     << (*loaded)->model().stats().file_bytes << " bytes, "
                     << (*loaded)->model().stats().bits_per_weight
                     << " bits/weight; " << config->DebugString() << ")";
    next->push_back(*std::move(loaded));
  }
  if (!changed) {
    for (size_t i = 0; i < next->size(); ++i) {
      changed |= (*next)[i] != (*current)[i];
    }
  }
  if (!changed && !from_poll) {
    metrics_->RecordLoad(name, true);
    return absl::OkStatus();
  }
  if (!changed) return absl::OkStatus();
  FLEXOR_LOG(INFO) << "model '" << name << "' now serves versions ["
                   << VersionList(*next) << "] (was [" << VersionList(*current)
                   << "])";
  metrics_->RecordLoad(name, true);
  Publish(name, std::move(next), ModelReadiness::kReady, "");
  return absl::OkStatus();
}

void ModelManager::RecordFailure(const std::string& name,
                                 const absl::Status& status,
                                 const std::string& fingerprint,
                                 bool from_poll) {
  (void)from_poll;
  FLEXOR_LOG(ERROR) << "load of model '" << name
                    << "' rejected, serving set unchanged: " << status;
  metrics_->RecordLoad(name, false);
  bool notify = false;
  {
    absl::MutexLock lock(&mu_);
    ModelState& state = models_[name];
    state.failed_fingerprint = fingerprint;
    if (state.serving->empty()) {
      state.reason = std::string(status.message());
      notify = true;
    }
  }
  if (notify && listener_) listener_(name, false);
}

void ModelManager::Publish(const std::string& name,
                           std::shared_ptr<const VersionSet> set,
                           ModelReadiness state, std::string reason) {
  std::shared_ptr<const VersionSet> old;
  const bool ready = !set->empty();
  {
    absl::MutexLock lock(&mu_);
    ModelState& s = models_[name];
    old = std::move(s.serving);
    s.serving = std::move(set);
    s.state = state;
    s.reason = std::move(reason);
    s.failed_fingerprint.clear();
    UpdateGauges();
  }
  if (listener_) listener_(name, ready);
  // `old` drops here: versions no longer serving are freed when their last
  // in-flight request finishes.
}

void ModelManager::UpdateGauges() {
  int models = 0, versions = 0;
  for (const auto& [name, state] : models_) {
    if (!state.serving->empty()) ++models;
    versions += static_cast<int>(state.serving->size());
  }
  metrics_->SetModelsLoaded(models, versions);
}

absl::Status ModelManager::LoadWithFiles(
    const std::string& name, std::optional<std::string> config_override,
    std::vector<UploadedFile> files) {
  absl::MutexLock lock(&load_mu_);
  if (absl::Status s = ModelRepository::ValidateModelName(name); !s.ok()) {
    return s;
  }
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
  // load_mu_, so of concurrent uploads of one version the first wins.
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
  return LoadLocked(name, /*from_poll=*/false,
                    config_override ? &*config_override : nullptr);
}

absl::Status ModelManager::Unload(const std::string& name,
                                  absl::Time drain_deadline) {
  std::vector<std::weak_ptr<const ServableVersion>> draining;
  {
    absl::MutexLock lock(&load_mu_);
    std::shared_ptr<const VersionSet> current = Snapshot(name);
    if (current->empty()) {
      // Triton answers success: the caller wants the model not loaded, and
      // it is not (a retried unload must not fail).
      FLEXOR_LOG(INFO) << "unload of model '" << name
                       << "': not loaded, nothing to do";
      return absl::OkStatus();
    }
    for (const ServablePtr& s : *current) draining.push_back(s);
    current.reset();
    Publish(name, std::make_shared<const VersionSet>(),
            ModelReadiness::kUnavailable, "unloaded");
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
  absl::MutexLock lock(&load_mu_);
  absl::StatusOr<std::vector<std::string>> on_disk = repository_->ListModels();
  if (!on_disk.ok()) {
    FLEXOR_LOG(WARNING) << "repository poll: " << on_disk.status();
    return;
  }
  for (const std::string& name : *on_disk) {
    LoadLocked(name, /*from_poll=*/true).IgnoreError();
  }
  std::vector<std::string> gone;
  {
    absl::ReaderMutexLock read(&mu_);
    for (const auto& [name, state] : models_) {
      if (!state.serving->empty() &&
          std::find(on_disk->begin(), on_disk->end(), name) == on_disk->end()) {
        gone.push_back(name);
      }
    }
  }
  for (const std::string& name : gone) {
    FLEXOR_LOG(INFO) << "model '" << name << "' left the repository; unloading";
    Publish(name, std::make_shared<const VersionSet>(),
            ModelReadiness::kUnavailable, "removed from the repository");
    metrics_->RecordUnload(name, true);
  }
}

void ModelManager::UnloadAll() {
  absl::MutexLock lock(&load_mu_);
  std::vector<std::string> names = ServingModels();
  for (const std::string& name : names) {
    Publish(name, std::make_shared<const VersionSet>(),
            ModelReadiness::kUnavailable, "server shutting down");
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
  return it->second.serving;
}

absl::StatusOr<ServablePtr> ModelManager::Get(
    const std::string& name, std::optional<int64_t> version) const {
  std::shared_ptr<const VersionSet> set;
  std::string reason;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) {
      return absl::NotFoundError(absl::StrCat(
          "unknown model '", absl::CEscape(name.substr(0, 200)),
          "'; RepositoryIndex (flexorctl list) shows the available models"));
    }
    set = it->second.serving;
    reason = it->second.reason;
  }
  if (set->empty()) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' is not loaded",
                     reason.empty() ? "" : absl::StrCat(" (", reason, ")"),
                     "; load it with RepositoryModelLoad (flexorctl load)"));
  }
  if (!version.has_value()) return set->front();
  for (const ServablePtr& s : *set) {
    if (s->version() == *version) return s;
  }
  return absl::NotFoundError(
      absl::StrCat("model '", name, "' version ", *version,
                   " is not loaded; serving versions: ", VersionList(*set)));
}

std::vector<ServablePtr> ModelManager::ServingVersions(
    const std::string& name) const {
  return *Snapshot(name);
}

std::vector<std::string> ModelManager::ServingModels() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, state] : models_) {
    if (!state.serving->empty()) names.push_back(name);
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
    if (it == models_.end() || it->second.serving->empty()) {
      if (ready_only) continue;
      out.push_back(
          IndexEntry{name, 0, ModelReadiness::kUnavailable,
                     it == models_.end() ? "not loaded" : it->second.reason});
      continue;
    }
    for (const ServablePtr& s : *it->second.serving) {
      out.push_back(IndexEntry{name, s->version(), ModelReadiness::kReady, ""});
    }
  }
  return out;
}

}  // namespace flexor::server
