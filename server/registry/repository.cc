#include "server/registry/repository.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "engine/format/model_signature.h"

namespace flexor::server {
namespace fs = std::filesystem;

namespace {

absl::StatusOr<FileIdentity> Identify(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot stat ", path, ": ", std::strerror(errno)));
  }
  FileIdentity id;
  id.device = st.st_dev;
  id.inode = st.st_ino;
  id.size = st.st_size;
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                st.st_mtim.tv_nsec;
  return id;
}

// Writes never go through a symbolic link: a link planted in the repository
// (model or version directory, or the file itself) could point anywhere.
absl::Status RefuseSymlinks(const std::vector<std::string>& paths) {
  for (const std::string& path : paths) {
    std::error_code ec;
    if (fs::is_symlink(fs::symlink_status(path, ec))) {
      return absl::PermissionDeniedError(
          absl::StrCat("refusing to write through the symbolic link ", path));
    }
  }
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create directory ", dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ModelRepository::ValidateModelName(absl::string_view name) {
  // Not '.' first (hidden: staging areas) nor '-' (reads as a flag in
  // every tool the name is passed to).
  if (name.empty() || name.size() > 128 || name[0] == '.' || name[0] == '-') {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid model name '", absl::CEscape(name.substr(0, 140)),
        "': use 1 to 128 characters from [A-Za-z0-9_.-], not starting "
        "with '.' or '-'"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
        c != '-' && c != '.') {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid model name '", absl::CEscape(name),
                       "': use 1 to 128 characters from [A-Za-z0-9_.-], not "
                       "starting with '.' or '-'"));
    }
  }
  return absl::OkStatus();
}

std::string ModelRepository::ModelDir(const std::string& model) const {
  return absl::StrCat(root_, "/", model);
}

absl::StatusOr<std::vector<std::string>> ModelRepository::ListModels() const {
  std::error_code ec;
  fs::directory_iterator it(root_, ec);
  if (ec) {
    return absl::NotFoundError(absl::StrCat("cannot read the model repository ",
                                            root_, ": ", ec.message()));
  }
  std::vector<std::string> models;
  for (const fs::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory(ec) || !ValidateModelName(name).ok()) continue;
    models.push_back(name);
  }
  std::sort(models.begin(), models.end());
  return models;
}

absl::StatusOr<std::vector<VersionFile>> ModelRepository::ListVersions(
    const std::string& model) const {
  if (absl::Status s = ValidateModelName(model); !s.ok()) return s;
  const std::string dir = ModelDir(model);
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    return absl::NotFoundError(absl::StrCat("model '", model,
                                            "' is not in the repository (", dir,
                                            ": ", ec.message(), ")"));
  }
  std::vector<VersionFile> versions;
  for (const fs::directory_entry& entry : it) {
    int64_t version = 0;
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory(ec) || !absl::SimpleAtoi(name, &version) ||
        version < 1 || version > kMaxModelVersion ||
        absl::StrCat(version) != name) {
      continue;
    }
    const std::string path = absl::StrCat(dir, "/", name, "/", kModelFileName);
    absl::StatusOr<FileIdentity> id = Identify(path);
    if (!id.ok()) continue;  // A version directory still being prepared.
    versions.push_back(VersionFile{version, path, *id});
  }
  std::sort(versions.begin(), versions.end(),
            [](const VersionFile& a, const VersionFile& b) {
              return a.version < b.version;
            });
  return versions;
}

absl::StatusOr<std::string> ModelRepository::ReadConfig(
    const std::string& model) const {
  const std::string path = absl::StrCat(ModelDir(model), "/", kModelConfigName);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return std::string();
    return absl::PermissionDeniedError(absl::StrCat("cannot read ", path));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is larger than 1 MiB"));
  }
  return text.str();
}

absl::Status ModelRepository::PublishModelFile(
    const std::string& model, int64_t version, absl::string_view bytes,
    absl::string_view signature) const {
  if (absl::Status s = ValidateModelName(model); !s.ok()) return s;
  if (version < 1 || version > kMaxModelVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model version ", version, " must be in [1, ", kMaxModelVersion, "]"));
  }
  const std::string dir = absl::StrCat(ModelDir(model), "/", version);
  const std::string path = absl::StrCat(dir, "/", kModelFileName);
  const std::string sig_path = absl::StrCat(path, kSignatureSuffix);
  if (absl::Status s = RefuseSymlinks({ModelDir(model), dir, path, sig_path});
      !s.ok()) {
    return s;
  }
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  if (!signature.empty()) {
    if (absl::Status s = WriteFileAtomically(sig_path, signature); !s.ok()) {
      return s;
    }
  }
  return WriteFileAtomically(path, bytes);
}

absl::StatusOr<bool> ModelRepository::VersionHolds(
    const std::string& model, int64_t version, absl::string_view bytes) const {
  const std::string path =
      absl::StrCat(ModelDir(model), "/", version, "/", kModelFileName);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
  if (size != bytes.size()) return false;
  std::ifstream in(path, std::ios::binary);
  std::string existing(bytes.size(), '\0');
  if (!in.read(existing.data(),
               static_cast<std::streamsize>(existing.size()))) {
    return absl::PermissionDeniedError(absl::StrCat("cannot read ", path));
  }
  return existing == bytes;
}

int ModelRepository::RemoveStaleTemporaries(absl::Duration min_age) const {
  const auto now = fs::file_time_type::clock::now();
  const auto max_mtime =
      now - std::chrono::duration_cast<fs::file_time_type::duration>(
                absl::ToChronoNanoseconds(min_age));
  int removed = 0;
  std::error_code ec;
  std::vector<fs::path> dirs;
  for (const fs::directory_entry& model : fs::directory_iterator(root_, ec)) {
    if (!model.is_directory(ec) || model.is_symlink(ec)) continue;
    dirs.push_back(model.path());
    for (const fs::directory_entry& v :
         fs::directory_iterator(model.path(), ec)) {
      if (v.is_directory(ec) && !v.is_symlink(ec)) dirs.push_back(v.path());
    }
  }
  for (const fs::path& dir : dirs) {
    for (const fs::directory_entry& f : fs::directory_iterator(dir, ec)) {
      const std::string name = f.path().filename().string();
      if (!f.is_regular_file(ec) || f.is_symlink(ec) ||
          name.find(".tmp.") == std::string::npos) {
        continue;
      }
      const auto mtime = f.last_write_time(ec);
      if (ec || mtime > max_mtime) continue;
      if (fs::remove(f.path(), ec)) ++removed;
    }
  }
  return removed;
}

}  // namespace flexor::server
