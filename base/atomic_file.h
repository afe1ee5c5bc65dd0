// Atomic file publication: readers see the old file or the whole new one,
// never a partial write, even across a crash (the model repository, the
// trainer's exports, the server's --port-file).
#ifndef FLEXOR_BASE_ATOMIC_FILE_H_
#define FLEXOR_BASE_ATOMIC_FILE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace flexor {

// Writes `bytes` to `path` atomically: temp file "<path>.tmp.<pid>.<n>",
// fsync, rename, fsync of the directory. Creates missing directories.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view bytes);

}  // namespace flexor

#endif  // FLEXOR_BASE_ATOMIC_FILE_H_
