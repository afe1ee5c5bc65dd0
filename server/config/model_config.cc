#include "server/config/model_config.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "server/config/model_config.pb.h"
#include "server/config/text_format_errors.h"
#include "server/config/triton_config.h"

namespace flexor::server {
namespace {

constexpr int kMaxBatchSizeLimit = 4096;
constexpr int kMaxQueueSizeLimit = 1 << 20;
constexpr uint64_t kMaxQueueDelayUsLimit = 10'000'000;  // 10 s

}  // namespace

absl::StatusOr<VersionPolicySpec> VersionPolicySpec::Parse(
    absl::string_view text) {
  VersionPolicySpec spec;
  if (text == "all") {
    spec.kind = Kind::kAll;
    return spec;
  }
  std::pair<absl::string_view, absl::string_view> kv =
      absl::StrSplit(text, absl::MaxSplits(':', 1));
  if (kv.first == "latest") {
    int n = 0;
    if (!absl::SimpleAtoi(kv.second, &n) || n < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "version policy '", text, "': latest:N needs a positive N"));
    }
    spec.kind = Kind::kLatest;
    spec.num_versions = n;
    return spec;
  }
  if (kv.first == "specific") {
    spec.kind = Kind::kSpecific;
    for (absl::string_view v : absl::StrSplit(kv.second, ',')) {
      int64_t version = 0;
      if (!absl::SimpleAtoi(v, &version) || version < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("version policy '", text,
                         "': specific:V1,V2 needs positive integer versions"));
      }
      spec.versions.push_back(version);
    }
    return spec;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("version policy '", text,
                   "' is not one of latest:N, all, specific:V1,V2,..."));
}

std::string VersionPolicySpec::ToString() const {
  switch (kind) {
    case Kind::kLatest:
      return absl::StrCat("latest:", num_versions);
    case Kind::kAll:
      return "all";
    case Kind::kSpecific:
      return absl::StrCat("specific:", absl::StrJoin(versions, ","));
  }
  return "?";
}

std::vector<int64_t> VersionPolicySpec::Select(
    std::vector<int64_t> available) const {
  std::sort(available.begin(), available.end(), std::greater<int64_t>());
  available.erase(std::unique(available.begin(), available.end()),
                  available.end());
  switch (kind) {
    case Kind::kLatest:
      if (static_cast<int>(available.size()) > num_versions) {
        available.resize(num_versions);
      }
      return available;
    case Kind::kAll:
      return available;
    case Kind::kSpecific: {
      std::vector<int64_t> out;
      for (int64_t v : available) {
        if (std::find(versions.begin(), versions.end(), v) != versions.end()) {
          out.push_back(v);
        }
      }
      return out;
    }
  }
  return {};
}

std::string ModelConfig::DebugString() const {
  return absl::StrCat(
      "max_batch_size=", max_batch_size,
      " dynamic_batching=", dynamic_batching ? "on" : "off",
      " max_queue_delay_us=", absl::ToInt64Microseconds(max_queue_delay),
      " max_queue_size=", max_queue_size,
      " version_policy=", version_policy.ToString(),
      " activation_precision=", ActivationPrecisionName(activations),
      layer_activations.empty()
          ? ""
          : absl::StrCat(" layer_activation_precision=",
                         LayerActivationsString(layer_activations)),
      !per_model_histograms.has_value()
          ? ""
          : (*per_model_histograms ? " per_model_histograms=on"
                                   : " per_model_histograms=off"),
      pinned ? " pinned" : "",
      inputs.empty() && outputs.empty() ? "" : " io=declared");
}

namespace {

// nullopt for ACTIVATION_PRECISION_DEFAULT (unknown values: text format
// rejects them).
std::optional<ActivationPrecision> PrecisionOf(config::ActivationPrecision p) {
  switch (p) {
    case config::FP32:
      return ActivationPrecision::kFloat32;
    case config::INT8:
      return ActivationPrecision::kInt8;
    case config::INT16:
      return ActivationPrecision::kInt16;
    default:
      return std::nullopt;
  }
}

// The checks and defaults every config form goes through.
absl::StatusOr<ModelConfig> ConfigFromProto(const config::ModelConfig& proto,
                                            const ModelConfigDefaults& defaults,
                                            absl::string_view source) {
  ModelConfig config = defaults;

  if (proto.max_batch_size() != 0) {
    if (proto.max_batch_size() > kMaxBatchSizeLimit) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": max_batch_size ", proto.max_batch_size(),
                       " exceeds the limit ", kMaxBatchSizeLimit));
    }
    config.max_batch_size = static_cast<int>(proto.max_batch_size());
  }
  if (proto.has_dynamic_batching()) {
    const uint64_t us = proto.dynamic_batching().max_queue_delay_microseconds();
    if (us > kMaxQueueDelayUsLimit) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": dynamic_batching.max_queue_delay_microseconds ", us,
          " exceeds the limit ", kMaxQueueDelayUsLimit));
    }
    config.dynamic_batching = true;
    config.max_queue_delay = absl::Microseconds(static_cast<int64_t>(us));
  }
  if (proto.disable_dynamic_batching()) config.dynamic_batching = false;
  if (proto.max_queue_size() != 0) {
    if (proto.max_queue_size() > kMaxQueueSizeLimit) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": max_queue_size ", proto.max_queue_size(),
                       " exceeds the limit ", kMaxQueueSizeLimit));
    }
    config.max_queue_size = static_cast<int>(proto.max_queue_size());
  }
  if (proto.has_version_policy()) {
    const config::VersionPolicy& vp = proto.version_policy();
    VersionPolicySpec spec;
    switch (vp.policy_choice_case()) {
      case config::VersionPolicy::kLatest:
        if (vp.latest().num_versions() < 1) {
          return absl::InvalidArgumentError(absl::StrCat(
              source, ": version_policy.latest.num_versions must be >= 1"));
        }
        spec.kind = VersionPolicySpec::Kind::kLatest;
        spec.num_versions = static_cast<int>(
            std::min<uint32_t>(vp.latest().num_versions(), 1u << 16));
        break;
      case config::VersionPolicy::kAll:
        spec.kind = VersionPolicySpec::Kind::kAll;
        break;
      case config::VersionPolicy::kSpecific:
        spec.kind = VersionPolicySpec::Kind::kSpecific;
        for (int64_t v : vp.specific().versions()) {
          if (v < 1) {
            return absl::InvalidArgumentError(absl::StrCat(
                source, ": version_policy.specific.versions must be >= 1"));
          }
          spec.versions.push_back(v);
        }
        break;
      case config::VersionPolicy::POLICY_CHOICE_NOT_SET:
        break;
    }
    config.version_policy = spec;
  }
  config.pinned = proto.pinned();
  if (std::optional<ActivationPrecision> p =
          PrecisionOf(proto.activation_precision())) {
    config.activations = *p;
  }
  absl::flat_hash_set<std::string> layers_seen;
  for (const config::LayerActivationPrecision& layer :
       proto.layer_activation_precision()) {
    const std::optional<ActivationPrecision> p = PrecisionOf(layer.precision());
    if (layer.layer().empty() || !p.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source,
          ": layer_activation_precision needs a layer and a precision (FP32, "
          "INT8 or INT16), got layer '",
          layer.layer(), "'"));
    }
    if (!layers_seen.insert(layer.layer()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": layer_activation_precision names layer '",
                       layer.layer(), "' twice"));
    }
    config.layer_activations.push_back({layer.layer(), *p});
  }
  if (proto.has_metrics()) {
    config.per_model_histograms = proto.metrics().per_model_histograms();
  }
  return config;
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(
    absl::string_view text, const ModelConfigDefaults& defaults,
    absl::string_view source) {
  config::ModelConfig proto;
  google::protobuf::TextFormat::Parser parser;
  TextFormatErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &proto)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": invalid model config: ", errors.error()));
  }
  return ConfigFromProto(proto, defaults, source);
}

absl::StatusOr<ModelConfig> ParseModelConfigText(
    absl::string_view text, const ModelConfigDefaults& defaults,
    absl::string_view model_name, absl::string_view source) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  const bool json = first != absl::string_view::npos && text[first] == '{';
  absl::Status own_error;
  if (!json) {
    absl::StatusOr<ModelConfig> own = ParseModelConfig(text, defaults, source);
    // A parse error may mean Triton's form; a value error is final.
    if (own.ok() ||
        !absl::StrContains(own.status().message(), "invalid model config")) {
      return own;
    }
    own_error = own.status();
  }
  absl::StatusOr<TranslatedConfig> triton =
      TranslateTritonConfig(text, json, model_name, source);
  if (!triton.ok()) {
    if (json ||
        !absl::StrContains(triton.status().message(), "invalid model config")) {
      return triton.status();
    }
    // Neither form: the project's error first, Triton's beside it.
    return absl::InvalidArgumentError(absl::StrCat(
        own_error.message(),
        " (as Triton's config.pbtxt: ", triton.status().message(), ")"));
  }
  absl::StatusOr<ModelConfig> config =
      ConfigFromProto(triton->project, defaults, source);
  if (!config.ok()) return config;
  config->inputs = std::move(triton->inputs);
  config->outputs = std::move(triton->outputs);
  return config;
}

}  // namespace flexor::server
