// flexorctl's subcommands.
#ifndef FLEXOR_TOOLS_FLEXORCTL_COMMANDS_H_
#define FLEXOR_TOOLS_FLEXORCTL_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/kernels/activation_precision.h"
#include "server/auth/tls.h"

namespace flexor::tools {

struct CommandContext {
  std::string server;
  absl::Duration timeout;
  server::ClientAuthOptions auth;  // TLS and bearer token
  // model sign / verify / keygen
  std::string key, out;
  std::vector<std::string> pubkeys;
  std::string model;
  std::string model_version;
  bool json = false;
  // infer / bench input
  std::string images, labels, raw;
  int index = 0, count = 1, batch = 1;
  // model bench
  std::vector<int> batches;
  int threads = 1;
  bool profile = false;
  absl::Duration min_time = absl::Seconds(1);
  // model bench/eval: activation precision of bit-coded layers.
  ActivationPrecision activations = ActivationPrecision::kFloat32;
  std::vector<LayerActivations> layer_activations;
  bool sensitivity = false;
  double target_agreement = 0;
  bool uint8 = false, typed = false;
  // load
  int64_t version = 1;
  std::string config;
  // bench
  std::vector<int> concurrency;
  absl::Duration duration;
  int64_t requests = 0;
  absl::Duration warmup;
  std::string rpc;
  int spread_models = 0;  // bench: 0 = --model only
  // bench: spread ModelInfer over zipf_models models (names: zipf_format
  // with the rank 1..N), rank k drawn with probability ~ 1/k^zipf_s.
  int zipf_models = 0;
  double zipf_s = 1.1;
  std::string zipf_format;
};

// args[0] is the command.
absl::Status RunCommand(const CommandContext& ctx,
                        const std::vector<std::string>& args);

}  // namespace flexor::tools

#endif  // FLEXOR_TOOLS_FLEXORCTL_COMMANDS_H_
