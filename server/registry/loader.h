// Turns one version file into a ready ServableVersion (the "loader", in TF
// Serving's terms): open + validate + compile through the engine, check that
// the graph is servable, warm it up once, and attach its metric series.
#ifndef FLEXOR_SERVER_REGISTRY_LOADER_H_
#define FLEXOR_SERVER_REGISTRY_LOADER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/format/model_file.h"
#include "engine/format/model_signature.h"
#include "engine/graph/model.h"
#include "server/batching/batch_scheduler.h"
#include "server/config/model_config.h"
#include "server/metrics/server_metrics.h"
#include "server/registry/repository.h"
#include "server/registry/servable.h"

namespace flexor::server {

class ModelLoader {
 public:
  // Per-request activation budget: a version whose run at its
  // max_batch_size needs more is refused at load (Model::ActivationBytes).
  static constexpr int64_t kDefaultMaxActivationBytes = int64_t{512} << 20;

  // decrypt_sample_period: every N-th execution of a version is profiled
  // for flexor_inference_decrypt_duration_seconds (0: never).
  // file_access: how repository files are opened when no signature policy
  // is set (ModelFileAccess; --model-file-access). With a verifier the file
  // is always read into memory: the bytes verified are the bytes compiled.
  ModelLoader(BatchScheduler* scheduler, ServerMetrics* metrics,
              int64_t max_activation_bytes = kDefaultMaxActivationBytes,
              int64_t decrypt_sample_period = 0,
              ModelFileAccess file_access = ModelFileAccess::kCopy)
      : scheduler_(scheduler),
        metrics_(metrics),
        max_activation_bytes_(max_activation_bytes),
        decrypt_sample_period_(decrypt_sample_period),
        file_access_(file_access) {}

  // Signed models: with a verifier, a version whose detached signature
  // (model.flexor.sig) is present must verify; with `require`, one without
  // a signature is refused too. Set before the first load.
  void SetSignaturePolicy(std::shared_ptr<const ModelVerifier> verifier,
                          bool require) {
    verifier_ = std::move(verifier);
    require_signature_ = require;
  }

  // Loads `file` as version file.version of `model_name`.
  absl::StatusOr<std::shared_ptr<const ServableVersion>> Load(
      const std::string& model_name, const VersionFile& file,
      const ModelConfig& config) const;

  // Validates uploaded bytes without keeping them: the same checks as Load,
  // the signature policy included (`signature`: the uploaded .sig text, ""
  // for none).
  absl::Status ValidateBytes(const std::string& model_name, int64_t version,
                             absl::string_view bytes, const ModelConfig& config,
                             absl::string_view signature = {}) const;

 private:
  // Checks a compiled version against the config and the server's limits
  // and runs it once (warm-up); returns the per-step activation precisions
  // it is to run with (RunOptions::step_activations; empty unless the
  // config mixes precisions).
  absl::StatusOr<std::vector<ActivationPrecision>> CheckServable(
      const std::string& model_name, int64_t version, const Model& model,
      const ModelConfig& config) const;

  // OK when `bytes` may be loaded under the signature policy.
  absl::Status CheckSignature(const std::string& model_name, int64_t version,
                              absl::string_view bytes,
                              absl::string_view signature) const;

  BatchScheduler* scheduler_;
  ServerMetrics* metrics_;
  std::shared_ptr<const ModelVerifier> verifier_;
  bool require_signature_ = false;
  int64_t max_activation_bytes_;
  int64_t decrypt_sample_period_;
  ModelFileAccess file_access_;
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_REGISTRY_LOADER_H_
