// Abseil flags are declared with underscores (--model_repository); the
// documented spelling, like Triton's, uses dashes (--model-repository).
// NormalizeFlagNames rewrites dashes in flag names (not in values) so both
// spellings work.
#ifndef FLEXOR_BASE_FLAG_NAMES_H_
#define FLEXOR_BASE_FLAG_NAMES_H_

#include <string>
#include <vector>

namespace flexor {

// Returns argv with "--a-b[=v]" rewritten to "--a_b[=v]"; `storage` owns the
// strings. Stops at "--".
std::vector<char*> NormalizeFlagNames(int argc, char** argv,
                                      std::vector<std::string>* storage);

}  // namespace flexor

#endif  // FLEXOR_BASE_FLAG_NAMES_H_
