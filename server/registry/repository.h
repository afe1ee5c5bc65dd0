// The model repository on disk (the "source", in TF Serving's terms):
//   <root>/<model>/config.pbtxt            optional, see docs/server.md
//   <root>/<model>/<version>/model.flexor  version: positive integer
// Lists what is there and publishes new files atomically.
#ifndef FLEXOR_SERVER_REGISTRY_REPOSITORY_H_
#define FLEXOR_SERVER_REGISTRY_REPOSITORY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/repository_layout.h"

namespace flexor::server {

// Identifies one file's contents cheaply: a changed file (rename over it,
// rewrite) gets a different identity.
struct FileIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileIdentity& o) const {
    return device == o.device && inode == o.inode && size == o.size &&
           mtime_ns == o.mtime_ns;
  }
  bool operator!=(const FileIdentity& o) const { return !(*this == o); }
};

struct VersionFile {
  int64_t version = 0;
  std::string path;
  FileIdentity identity;
};

class ModelRepository {
 public:
  explicit ModelRepository(std::string root) : root_(std::move(root)) {}

  const std::string& root() const { return root_; }

  // Model names are [A-Za-z0-9_.-]{1,128} and do not start with '.':
  // hidden directories in a repository are staging areas (a publisher's
  // ".staging-*", Kubernetes' "..data" volume links, NFS ".snapshot"), never
  // models.
  static absl::Status ValidateModelName(absl::string_view name);

  // Directories under the root with valid model names, sorted.
  absl::StatusOr<std::vector<std::string>> ListModels() const;
  // Versions of `model` that have a model file, ascending. NOT_FOUND when
  // the model directory does not exist.
  absl::StatusOr<std::vector<VersionFile>> ListVersions(
      const std::string& model) const;
  // The model's config.pbtxt, or "" if it has none.
  absl::StatusOr<std::string> ReadConfig(const std::string& model) const;

  // Writes <root>/<model>/<version>/model.flexor atomically: temp file,
  // fsync, rename, fsync directory. (Configs sent with a load are overrides
  // for that load, never written: Triton's semantics.) A non-empty
  // `signature` is written first as model.flexor.sig, so that a poller
  // never sees the new model without its signature.
  absl::Status PublishModelFile(const std::string& model, int64_t version,
                                absl::string_view bytes,
                                absl::string_view signature = {}) const;
  // Whether <model>/<version>/model.flexor holds exactly `bytes` (NOT_FOUND
  // when there is no such file). Versions are immutable: an upload of an
  // existing version must carry the same bytes.
  absl::StatusOr<bool> VersionHolds(const std::string& model, int64_t version,
                                    absl::string_view bytes) const;

  // Removes files left by interrupted atomic writes (WriteFileAtomically's
  // "<name>.tmp.<pid>.<n>", e.g. after kill -9) in model and version
  // directories that are older than `min_age` (younger ones may belong to a
  // writer still running, e.g. the trainer). Returns how many it removed.
  int RemoveStaleTemporaries(absl::Duration min_age) const;

 private:
  std::string ModelDir(const std::string& model) const;
  const std::string root_;
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_REGISTRY_REPOSITORY_H_
