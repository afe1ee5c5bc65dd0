// Per-model configuration: the optional <model>/config.pbtxt merged over the
// server's defaults into concrete values.
#ifndef FLEXOR_SERVER_CONFIG_MODEL_CONFIG_H_
#define FLEXOR_SERVER_CONFIG_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "engine/kernels/activation_precision.h"

namespace flexor::server {

struct VersionPolicySpec {
  enum class Kind { kLatest, kAll, kSpecific };
  Kind kind = Kind::kLatest;
  int num_versions = 1;           // kLatest
  std::vector<int64_t> versions;  // kSpecific

  // "latest:N", "all" or "specific:1,3" (the --version-policy flag).
  static absl::StatusOr<VersionPolicySpec> Parse(absl::string_view text);
  std::string ToString() const;
  // The versions to serve out of those available (any order), descending.
  std::vector<int64_t> Select(std::vector<int64_t> available) const;
};

// An input or output as a Triton config declares it; checked against the
// model file at load (the file is the truth, the config may only confirm it).
struct TensorDecl {
  std::string name;
  std::string datatype;       // "FP32", "UINT8", ...
  std::vector<int64_t> dims;  // without the batch dimension
  bool operator==(const TensorDecl& o) const {
    return name == o.name && datatype == o.datatype && dims == o.dims;
  }
};

struct ModelConfig {
  int max_batch_size = 32;
  bool dynamic_batching = true;
  absl::Duration max_queue_delay = absl::Microseconds(200);
  int max_queue_size = 1024;
  VersionPolicySpec version_policy;
  // Binary-coded / ternary layers: exact FP32 or int8 activations.
  ActivationPrecision activations = ActivationPrecision::kFloat32;
  // Layers set apart from `activations` (mixed precision; config.pbtxt
  // layer_activation_precision, Triton parameter
  // "layer_activation_precision": "layer=int16,..."). Checked against the
  // model at load.
  std::vector<LayerActivations> layer_activations;
  // config.pbtxt `metrics { per_model_histograms: ... }`; nullopt: the
  // server's --per-model-histograms decides (ServerMetrics::ForVersion).
  std::optional<bool> per_model_histograms;
  // Memory budget: never evicted, loaded at startup (config.pbtxt
  // `pinned: true`; Triton form: parameters["pinned"] = "true").
  bool pinned = false;
  // From a Triton config's input/output sections (empty: not declared).
  std::vector<TensorDecl> inputs;
  std::vector<TensorDecl> outputs;

  std::string DebugString() const;
};

// The server-wide defaults (flags) a config.pbtxt is merged over.
using ModelConfigDefaults = ModelConfig;

// Parses config.pbtxt text in the project's form (server/config/
// model_config.proto; empty text: all defaults). Errors name `source` and
// the offending field.
absl::StatusOr<ModelConfig> ParseModelConfig(
    absl::string_view text, const ModelConfigDefaults& defaults,
    absl::string_view source);

// Any config text a client or the repository may hold for model
// `model_name`: Triton's JSON of inference.ModelConfig (text starting with
// '{'), else config.pbtxt in the project's form, else Triton's
// config.pbtxt (text format of inference.ModelConfig). See docs/server.md.
absl::StatusOr<ModelConfig> ParseModelConfigText(
    absl::string_view text, const ModelConfigDefaults& defaults,
    absl::string_view model_name, absl::string_view source);

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_CONFIG_MODEL_CONFIG_H_
