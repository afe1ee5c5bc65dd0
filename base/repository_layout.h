// The model repository's layout, shared by the server (which serves it) and
// the trainer (which publishes into it):
//   <root>/<model>/config.pbtxt            optional
//   <root>/<model>/<version>/model.flexor  version in [1, kMaxModelVersion]
#ifndef FLEXOR_BASE_REPOSITORY_LAYOUT_H_
#define FLEXOR_BASE_REPOSITORY_LAYOUT_H_

#include <cstdint>

namespace flexor {

inline constexpr char kModelFileName[] = "model.flexor";
inline constexpr char kModelConfigName[] = "config.pbtxt";

// Versions are positive and at most 2^53 - 1, so that they survive JSON
// clients (doubles) and "largest + 1" never overflows.
inline constexpr int64_t kMaxModelVersion = (int64_t{1} << 53) - 1;

}  // namespace flexor

#endif  // FLEXOR_BASE_REPOSITORY_LAYOUT_H_
