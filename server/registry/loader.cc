#include "server/registry/loader.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/format/model_file.h"

namespace flexor::server {
namespace {

// Model files larger than this are refused when read for verification.
constexpr size_t kMaxModelFileBytes = size_t{4} << 30;

absl::Status Annotate(const absl::Status& status, const std::string& model,
                      int64_t version) {
  return absl::Status(status.code(),
                      absl::StrCat("model '", model, "' version ", version,
                                   " failed validation: ", status.message()));
}

// A config's declared inputs (outputs) must be the model's: the model file
// is the truth, a config may only confirm it.
absl::Status CheckDeclared(const std::vector<TensorDecl>& declared,
                           const model::v1::ValueInfo& actual,
                           bool accepts_uint8, const char* what,
                           const std::string& model_name, int64_t version) {
  if (declared.empty()) return absl::OkStatus();
  const TensorDecl& d = declared.front();
  const std::vector<int64_t> dims(actual.shape().begin(), actual.shape().end());
  const bool type_ok =
      d.datatype == "FP32" || (accepts_uint8 && d.datatype == "UINT8");
  if (declared.size() != 1 || d.name != actual.name() || !type_ok ||
      d.dims != dims) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the config's ", what, " section does not match model '", model_name,
        "' version ", version, ": it has one ", what, " '", actual.name(),
        "' FP32 dims [", absl::StrJoin(dims, ", "),
        "] (without the batch dimension)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<ActivationPrecision>> ModelLoader::CheckServable(
    const std::string& model_name, int64_t version, const Model& model,
    const ModelConfig& config) const {
  const model::v1::ModelHeader& header = model.file().header();
  if (header.inputs_size() != 1 || header.outputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", model_name, "' version ", version, " has ",
        header.inputs_size(), " inputs and ", header.outputs_size(),
        " outputs; the server serves single-input single-output graphs"));
  }
  if (model.input_size() <= 0 || model.output_size() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", model_name, "' version ", version,
                     " has an empty input or output"));
  }
  if (absl::Status s = CheckDeclared(config.inputs, model.input(),
                                     model.input().accepts_uint8(), "input",
                                     model_name, version);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckDeclared(config.outputs, model.output(), false,
                                     "output", model_name, version);
      !s.ok()) {
    return s;
  }
  std::vector<ActivationPrecision> step_activations;
  if (!config.layer_activations.empty()) {
    absl::StatusOr<std::vector<ActivationPrecision>> steps =
        model.StepActivations(config.activations, config.layer_activations);
    if (!steps.ok()) {
      return Annotate(
          absl::InvalidArgumentError(absl::StrCat(
              "config layer_activation_precision: ", steps.status().message())),
          model_name, version);
    }
    step_activations = *std::move(steps);
  }
  // The memory one request may take is known before any request: refuse a
  // version whose largest batch would exceed the budget (a hostile or
  // mistaken graph must not take the process down at the first request).
  const int threads = scheduler_->arena().max_concurrency();
  const int64_t need = model.ActivationBytes(config.max_batch_size, threads);
  if (need > max_activation_bytes_) {
    int64_t fits = 0;
    while (fits < config.max_batch_size &&
           model.ActivationBytes(fits + 1, threads) <= max_activation_bytes_) {
      ++fits;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", model_name, "' version ", version, " needs ", need,
        " bytes of activations at max_batch_size ", config.max_batch_size,
        ", more than the server's --max_activation_bytes=",
        max_activation_bytes_,
        fits > 0 ? absl::StrCat("; max_batch_size ", fits, " would fit")
                 : std::string("; even one sample does not fit")));
  }
  // Warm-up: one sample through the whole graph, in the serving arena. This
  // catches run-time failures before the version can serve, and faults the
  // weight pages in so the first request is not slower than the rest.
  std::vector<float> input(static_cast<size_t>(model.input_size()), 0.0f);
  std::vector<float> output(static_cast<size_t>(model.output_size()));
  absl::Status run;
  // With the precisions it will serve with, so the warm-up takes (and
  // faults in) the same kernels as the requests.
  RunOptions options;
  options.matmul.activations = config.activations;
  options.step_activations = step_activations;
  scheduler_->arena().execute(
      [&] { run = model.Run(input.data(), 1, output.data(), options); });
  if (!run.ok()) {
    return Annotate(
        absl::Status(run.code(), absl::StrCat("warm-up run: ", run.message())),
        model_name, version);
  }
  return step_activations;
}

absl::Status ModelLoader::CheckSignature(const std::string& model_name,
                                         int64_t version,
                                         absl::string_view bytes,
                                         absl::string_view signature) const {
  if (verifier_ == nullptr) return absl::OkStatus();
  if (signature.empty()) {
    if (!require_signature_) return absl::OkStatus();
    return absl::PermissionDeniedError(absl::StrCat(
        "model '", model_name, "' version ", version,
        " is not signed and this server requires signed models (upload "
        "'file:<version>/",
        kModelFileName, kSignatureSuffix,
        "' with the model, or put it next to the file; flexorctl model "
        "sign)"));
  }
  if (absl::Status s = verifier_->Verify(bytes, signature); !s.ok()) {
    return absl::PermissionDeniedError(absl::StrCat("model '", model_name,
                                                    "' version ", version,
                                                    " refused: ", s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const ServableVersion>> ModelLoader::Load(
    const std::string& model_name, const VersionFile& file,
    const ModelConfig& config) const {
  absl::StatusOr<std::shared_ptr<const Model>> model;
  if (verifier_ == nullptr) {
    model = Model::Load(file.path, file_access_);
  } else {
    // The bytes that are verified are the bytes that are compiled: read
    // once into memory, checked, then parsed (no window for a swap of the
    // file between the check and the load, and an unsigned file is never
    // parsed). Never mapped: a mapping could change after its
    // verification (the server passes kCopy with a verifier anyway).
    absl::StatusOr<std::string> bytes =
        ReadSmallFile(file.path, kMaxModelFileBytes);
    if (!bytes.ok()) return Annotate(bytes.status(), model_name, file.version);
    absl::StatusOr<std::string> signature = ReadSmallFile(
        absl::StrCat(file.path, kSignatureSuffix), kMaxSignatureFileBytes);
    if (!signature.ok() && !absl::IsNotFound(signature.status())) {
      return Annotate(signature.status(), model_name, file.version);
    }
    if (absl::Status s =
            CheckSignature(model_name, file.version, *bytes,
                           signature.ok() ? *signature : std::string());
        !s.ok()) {
      return s;
    }
    absl::StatusOr<std::shared_ptr<const ModelFile>> parsed =
        ModelFile::FromBytes(*bytes, file.path);
    model = parsed.ok()
                ? Model::Compile(*std::move(parsed))
                : absl::StatusOr<std::shared_ptr<const Model>>(parsed.status());
  }
  if (!model.ok()) return Annotate(model.status(), model_name, file.version);
  absl::StatusOr<std::vector<ActivationPrecision>> step_activations =
      CheckServable(model_name, file.version, **model, config);
  if (!step_activations.ok()) return step_activations.status();
  const ModelStats& stats = (*model)->stats();
  ModelSizeInfo sizes;
  sizes.file_bytes = stats.file_bytes;
  sizes.compressed_weight_bytes = stats.compressed_weight_bytes;
  sizes.kernel_layout_bytes = (*model)->DerivedWeightBytes();  // warmed up
  sizes.dense_fp32_bytes = stats.dense_fp32_bytes;
  sizes.bits_per_weight = stats.bits_per_weight;
  std::shared_ptr<VersionMetrics> metrics =
      metrics_->ForVersion(model_name, absl::StrCat(file.version), sizes,
                           config.per_model_histograms);
  return std::make_shared<const ServableVersion>(
      model_name, file.version, *std::move(model), config, file.identity,
      std::move(metrics), decrypt_sample_period_, *std::move(step_activations));
}

absl::Status ModelLoader::ValidateBytes(const std::string& model_name,
                                        int64_t version,
                                        absl::string_view bytes,
                                        const ModelConfig& config,
                                        absl::string_view signature) const {
  if (absl::Status s = CheckSignature(model_name, version, bytes, signature);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::shared_ptr<const ModelFile>> file = ModelFile::FromBytes(
      bytes, absl::StrCat("upload of ", model_name, "/", version));
  if (!file.ok()) return Annotate(file.status(), model_name, version);
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Compile(*std::move(file));
  if (!model.ok()) return Annotate(model.status(), model_name, version);
  return CheckServable(model_name, version, **model, config).status();
}

}  // namespace flexor::server
