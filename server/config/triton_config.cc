#include "server/config/triton_config.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "server/config/text_format_errors.h"
#include "server/registry/repository.h"

namespace flexor::server {
namespace {

constexpr char kBackend[] = "flexor";
constexpr char kActivationPrecisionParameter[] = "activation_precision";
constexpr char kLayerActivationPrecisionParameter[] =
    "layer_activation_precision";

constexpr char kPinnedParameter[] = "pinned";

config::ActivationPrecision ProtoPrecision(ActivationPrecision precision) {
  // The proto's values follow the enum's, after DEFAULT = 0.
  static_assert(
      config::FP32 == static_cast<int>(ActivationPrecision::kFloat32) + 1 &&
      config::INT8 == static_cast<int>(ActivationPrecision::kInt8) + 1 &&
      config::INT16 == static_cast<int>(ActivationPrecision::kInt16) + 1);
  return static_cast<config::ActivationPrecision>(static_cast<int>(precision) +
                                                  1);
}

// "TYPE_FP32" -> "FP32": the protocol's datatype names.
std::string DatatypeOf(inference::DataType type) {
  return std::string(
      absl::StripPrefix(inference::DataType_Name(type), "TYPE_"));
}

inference::DataType DataTypeOf(model::v1::DType dtype) {
  switch (dtype) {
    case model::v1::FLOAT32:
      return inference::TYPE_FP32;
    case model::v1::UINT8:
      return inference::TYPE_UINT8;
    case model::v1::UINT64:
      return inference::TYPE_UINT64;
    default:
      return inference::TYPE_INVALID;
  }
}

}  // namespace

absl::StatusOr<TranslatedConfig> TranslateTritonConfig(
    absl::string_view text, bool json, absl::string_view model_name,
    absl::string_view source) {
  inference::ModelConfig in;
  if (json) {
    // Unknown fields are errors: a Triton feature this server lacks (e.g.
    // sequence_batching) must not be dropped without a word.
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    google::protobuf::util::Status status =
        google::protobuf::util::JsonStringToMessage(
            google::protobuf::StringPiece(text.data(), text.size()), &in,
            options);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source,
                       ": invalid model config (JSON of Triton's "
                       "inference.ModelConfig): ",
                       status.message().as_string()));
    }
  } else {
    google::protobuf::TextFormat::Parser parser;
    TextFormatErrors errors;
    parser.RecordErrorsTo(&errors);
    if (!parser.ParseFromString(std::string(text), &in)) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": invalid model config: ", errors.error()));
    }
  }
  auto refuse = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", why, " (see docs/server.md)"));
  };
  if (!in.name().empty() && in.name() != model_name) {
    return refuse(absl::StrCat("name '", in.name(),
                               "' differs from the model's name '", model_name,
                               "'"));
  }
  for (const std::string* field : {&in.platform(), &in.backend()}) {
    if (!field->empty() && *field != kBackend) {
      return refuse(absl::StrCat("platform/backend '", *field,
                                 "': this server runs '", kBackend,
                                 "' models only"));
    }
  }
  if (!in.default_model_filename().empty() &&
      in.default_model_filename() != kModelFileName) {
    return refuse(
        absl::StrCat("default_model_filename must be '", kModelFileName, "'"));
  }
  if (in.model_transaction_policy().decoupled()) {
    return refuse("decoupled models are not supported");
  }
  TranslatedConfig out;
  config::ModelConfig& p = out.project;
  if (in.max_batch_size() < 0) return refuse("max_batch_size is negative");
  // 0 keeps the server default: every model here has a batch dimension, so
  // Triton's meaning of 0 (no batch dimension) cannot apply.
  p.set_max_batch_size(static_cast<uint32_t>(in.max_batch_size()));
  if (in.has_version_policy()) {
    // Same fields and numbers in both schemas.
    if (!p.mutable_version_policy()->ParseFromString(
            in.version_policy().SerializeAsString())) {
      return refuse("unreadable version_policy");
    }
  }
  if (in.has_dynamic_batching()) {
    const inference::ModelDynamicBatching& db = in.dynamic_batching();
    const inference::ModelQueuePolicy& queue = db.default_queue_policy();
    if (queue.default_timeout_microseconds() != 0 ||
        queue.allow_timeout_override() ||
        queue.timeout_action() != inference::ModelQueuePolicy::REJECT) {
      return refuse(
          "dynamic_batching.default_queue_policy: queue timeouts are not "
          "supported (clients set a gRPC deadline instead); only "
          "max_queue_size is");
    }
    p.mutable_dynamic_batching()->set_max_queue_delay_microseconds(
        db.max_queue_delay_microseconds());
    p.set_max_queue_size(queue.max_queue_size());
    // preferred_batch_size and preserve_ordering are hints this batcher
    // does not need: it runs whatever is queued, up to max_batch_size, and
    // every request gets its own response.
  } else {
    // Triton: no dynamic_batching section, no dynamic batcher.
    p.set_disable_dynamic_batching(true);
  }
  for (const inference::ModelInstanceGroup& group : in.instance_group()) {
    if ((group.kind() != inference::ModelInstanceGroup::KIND_AUTO &&
         group.kind() != inference::ModelInstanceGroup::KIND_CPU) ||
        group.gpus_size() > 0) {
      return refuse(absl::StrCat(
          "instance_group '", group.name(), "' is of kind ",
          inference::ModelInstanceGroup::Kind_Name(group.kind()),
          "; this server computes on CPUs only (KIND_CPU or KIND_AUTO)"));
    }
    // The count is not per model: every model runs on the server's one
    // compute pool (--threads), which the ModelConfig RPC reports.
  }
  for (const auto& [key, value] : in.parameters()) {
    if (key == kPinnedParameter) {
      if (value.string_value() != "true" && value.string_value() != "false") {
        return refuse(absl::StrCat("parameter 'pinned' is '",
                                   value.string_value(),
                                   "', not 'true' or 'false'"));
      }
      p.set_pinned(value.string_value() == "true");
      continue;
    }
    if (key == kLayerActivationPrecisionParameter) {
      const absl::StatusOr<std::vector<LayerActivations>> layers =
          ParseLayerActivations(value.string_value());
      if (!layers.ok()) {
        return refuse(
            absl::StrCat("parameter '", key, "': ", layers.status().message()));
      }
      for (const LayerActivations& layer : *layers) {
        config::LayerActivationPrecision* out =
            p.add_layer_activation_precision();
        out->set_layer(layer.layer);
        out->set_precision(ProtoPrecision(layer.precision));
      }
      continue;
    }
    if (key != kActivationPrecisionParameter) {
      return refuse(absl::StrCat("unknown parameter '", key, "'; supported: '",
                                 kActivationPrecisionParameter, "', '",
                                 kLayerActivationPrecisionParameter, "', '",
                                 kPinnedParameter, "'"));
    }
    const absl::StatusOr<ActivationPrecision> precision =
        ParseActivationPrecision(value.string_value());
    if (!precision.ok()) {
      return refuse(absl::StrCat("parameter '", key,
                                 "': ", precision.status().message()));
    }
    p.set_activation_precision(ProtoPrecision(*precision));
  }
  for (const inference::ModelInput& input : in.input()) {
    out.inputs.push_back(TensorDecl{
        input.name(), DatatypeOf(input.data_type()),
        std::vector<int64_t>(input.dims().begin(), input.dims().end())});
  }
  for (const inference::ModelOutput& output : in.output()) {
    if (!output.label_filename().empty()) {
      return refuse(
          "output label_filename: labels come from the model file's "
          "metadata");
    }
    out.outputs.push_back(TensorDecl{
        output.name(), DatatypeOf(output.data_type()),
        std::vector<int64_t>(output.dims().begin(), output.dims().end())});
  }
  return out;
}

inference::ModelConfig ToTritonConfig(const std::string& name,
                                      const ModelConfig& config,
                                      const Model& model, int threads) {
  inference::ModelConfig out;
  out.set_name(name);
  out.set_platform(kBackend);
  out.set_backend(kBackend);
  out.set_default_model_filename(kModelFileName);
  out.set_max_batch_size(config.max_batch_size);
  inference::ModelVersionPolicy* policy = out.mutable_version_policy();
  switch (config.version_policy.kind) {
    case VersionPolicySpec::Kind::kLatest:
      policy->mutable_latest()->set_num_versions(
          static_cast<uint32_t>(config.version_policy.num_versions));
      break;
    case VersionPolicySpec::Kind::kAll:
      policy->mutable_all();
      break;
    case VersionPolicySpec::Kind::kSpecific:
      for (int64_t v : config.version_policy.versions) {
        policy->mutable_specific()->add_versions(v);
      }
      break;
  }
  inference::ModelInput* input = out.add_input();
  input->set_name(model.input().name());
  // The input is FP32; UINT8 is accepted too where the model says so
  // (ModelMetadata), but a config has one data type.
  input->set_data_type(inference::TYPE_FP32);
  // Image inputs are channel-first ([C, H, W]) in this engine; Triton's
  // image clients read the layout from here.
  if (model.input().shape_size() == 3) {
    input->set_format(inference::ModelInput::FORMAT_NCHW);
  }
  for (int64_t d : model.input().shape()) input->add_dims(d);
  inference::ModelOutput* output = out.add_output();
  output->set_name(model.output().name());
  output->set_data_type(DataTypeOf(model.output().dtype()));
  for (int64_t d : model.output().shape()) output->add_dims(d);
  if (config.dynamic_batching) {
    inference::ModelDynamicBatching* db = out.mutable_dynamic_batching();
    db->set_max_queue_delay_microseconds(static_cast<uint64_t>(
        absl::ToInt64Microseconds(config.max_queue_delay)));
    db->mutable_default_queue_policy()->set_max_queue_size(
        static_cast<uint32_t>(config.max_queue_size));
  }
  inference::ModelInstanceGroup* group = out.add_instance_group();
  group->set_name(name);
  group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  group->set_count(threads);
  (*out.mutable_parameters())[kActivationPrecisionParameter].set_string_value(
      ActivationPrecisionName(config.activations));
  if (!config.layer_activations.empty()) {
    (*out.mutable_parameters())[kLayerActivationPrecisionParameter]
        .set_string_value(LayerActivationsString(config.layer_activations));
  }
  if (config.pinned) {
    (*out.mutable_parameters())[kPinnedParameter].set_string_value("true");
  }
  return out;
}

}  // namespace flexor::server
