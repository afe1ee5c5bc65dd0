#include "tools/flexorctl/idx.h"

#include <zlib.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace flexor::tools {

int64_t IdxTensor::item_size() const {
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

absl::StatusOr<IdxTensor> ReadIdx(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");  // Reads plain files too.
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path));
  }
  auto read = [&](void* dst, unsigned n) {
    return gzread(file, dst, n) == static_cast<int>(n);
  };
  uint8_t magic[4];
  IdxTensor t;
  absl::Status status;
  if (!read(magic, 4) || magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 ||
      magic[3] < 1 || magic[3] > 4) {
    status = absl::InvalidArgumentError(
        absl::StrCat(path, " is not an unsigned-byte IDX file"));
  }
  int64_t total = 1;
  for (int d = 0; status.ok() && d < magic[3]; ++d) {
    uint8_t b[4];
    if (!read(b, 4)) {
      status = absl::InvalidArgumentError(absl::StrCat(path, ": short header"));
      break;
    }
    const int64_t dim =
        (int64_t{b[0]} << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
    t.shape.push_back(dim);
    total *= dim;
    if (total > (int64_t{1} << 31)) {
      status = absl::InvalidArgumentError(absl::StrCat(path, ": too large"));
    }
  }
  if (status.ok()) {
    t.data.resize(static_cast<size_t>(total));
    if (!read(t.data.data(), static_cast<unsigned>(total))) {
      status = absl::InvalidArgumentError(
          absl::StrCat(path, ": truncated (expected ", total, " bytes)"));
    }
  }
  gzclose(file);
  if (!status.ok()) return status;
  return t;
}

}  // namespace flexor::tools
