#include "server/grpc/model_version.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/registry/repository.h"

namespace flexor::server {

absl::StatusOr<std::optional<int64_t>> ParseModelVersion(
    absl::string_view text) {
  if (text.empty()) return std::nullopt;
  bool canonical = text.size() <= 16 && text[0] != '0';
  for (char c : text) canonical &= absl::ascii_isdigit(c);
  int64_t version = 0;
  if (!canonical || !absl::SimpleAtoi(text, &version) || version < 1 ||
      version > kMaxModelVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model version '", absl::CEscape(text.substr(0, 40)),
        "' is not a positive integer written without leading zeros or "
        "signs, at most ",
        kMaxModelVersion, " (leave it empty for the latest version)"));
  }
  return version;
}

}  // namespace flexor::server
