// Triton's model configuration (inference.ModelConfig, proto/
// model_config.proto) <-> this server's: what Triton clients send in
// RepositoryModelLoad's "config" parameter or write as config.pbtxt, and what
// the ModelConfig RPC answers. Mapping and refusals: docs/server.md.
#ifndef FLEXOR_SERVER_CONFIG_TRITON_CONFIG_H_
#define FLEXOR_SERVER_CONFIG_TRITON_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/graph/model.h"
#include "proto/model_config.pb.h"
#include "server/config/model_config.h"
#include "server/config/model_config.pb.h"

namespace flexor::server {

// A Triton config in the project's terms: the fields with a project
// equivalent, plus the declared inputs and outputs.
struct TranslatedConfig {
  config::ModelConfig project;
  std::vector<TensorDecl> inputs;
  std::vector<TensorDecl> outputs;
};

// Parses `text` (Triton's JSON when `json`, else its text format) for model
// `model_name` and translates it. Fields without a meaning here (a GPU
// instance group, a foreign backend, queue timeouts, unknown parameters) are
// INVALID_ARGUMENT naming the field, never silently dropped.
absl::StatusOr<TranslatedConfig> TranslateTritonConfig(
    absl::string_view text, bool json, absl::string_view model_name,
    absl::string_view source);

// The ModelConfig RPC's answer for a loaded version of `name`. `threads`:
// the compute pool every model shares, reported as one CPU instance group.
inference::ModelConfig ToTritonConfig(const std::string& name,
                                      const ModelConfig& config,
                                      const Model& model, int threads);

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_CONFIG_TRITON_CONFIG_H_
