// Reads IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or
// not: ubyte tensors with a big-endian header.
#ifndef FLEXOR_TOOLS_FLEXORCTL_IDX_H_
#define FLEXOR_TOOLS_FLEXORCTL_IDX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace flexor::tools {

struct IdxTensor {
  std::vector<int64_t> shape;  // e.g. [10000, 28, 28] or [10000]
  std::vector<uint8_t> data;
  int64_t items() const { return shape.empty() ? 0 : shape[0]; }
  int64_t item_size() const;  // product of shape[1:]
};

absl::StatusOr<IdxTensor> ReadIdx(const std::string& path);

}  // namespace flexor::tools

#endif  // FLEXOR_TOOLS_FLEXORCTL_IDX_H_
