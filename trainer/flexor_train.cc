// flexor_train: trains a FleXOR (or baseline) classifier on Fashion-MNIST,
// exports it in the engine's model format, checks the exported file with the
// engine (the trainer/engine contract test) and optionally publishes it,
// behind an optional accuracy gate (--min_publish_accuracy).
//
// Exit codes: 0 success, 2 bad flags, 3 data could not be read, 4 training
// failed, 5 export failed, 6 contract check failed, 7 publishing failed,
// 8 below --min_publish_accuracy (nothing published).
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/atomic_file.h"
#include "base/flag_names.h"
#include "engine/format/model_writer.h"
#include "trainer/fashion_mnist.h"
#include "trainer/models.h"
#include "trainer/publish.h"
#include "trainer/quant_layers.h"
#include "trainer/trainer.h"

ABSL_FLAG(std::string, arch, "lenet", "Architecture: mlp, lenet or resnet.");
ABSL_FLAG(std::string, method, "flexor",
          "Weight quantization: fp32, binary1, binary2_ls, ternary, flexor, "
          "ternary_dst (GXNOR discrete state transition).");
ABSL_FLAG(int, n_in, 16, "FleXOR: stored (encrypted) bits per slice, N_in.");
ABSL_FLAG(int, n_out, 20, "FleXOR: weight bits per slice, N_out.");
ABSL_FLAG(int, n_tap, 2, "FleXOR: XOR inputs per weight bit, N_tap.");
ABSL_FLAG(int, planes, 1, "FleXOR: bit planes q (1 or 2).");
ABSL_FLAG(uint64_t, xor_seed, 1, "FleXOR: seed of the XOR network M.");
ABSL_FLAG(bool, row_aligned_slices, false,
          "FleXOR Dense layers: round the slice count up to a multiple of "
          "the layer's input size, so that every segment starts on a row "
          "(the engine's AVX2 int8 path then decrypts inside its look-up; "
          "at most N_out (K - 1) padding bits per stored vector). Engines "
          "before this option refuse such files, and checkpoints of the "
          "other layout do not load.");
ABSL_FLAG(bool, exact_tanh_grad, false,
          "FleXOR: backward with prod of tanh of the other taps instead of "
          "their signs.");
ABSL_FLAG(double, s_tanh, 10.0, "FleXOR: final S_tanh.");
ABSL_FLAG(double, s_tanh_start, 5.0, "FleXOR: S_tanh at step 0.");
ABSL_FLAG(double, s_tanh_warmup_epochs, 1.0,
          "FleXOR: epochs over which S_tanh rises linearly to --s_tanh.");
ABSL_FLAG(double, latent_clip, 0.0,
          "FleXOR: if > 0, clamp latent bits to |x| <= latent_clip/S_tanh.");
ABSL_FLAG(double, dst_m, 30.0,
          "ternary_dst: transition probability tanh(dst_m * |remainder of "
          "the proposed step|).");
ABSL_FLAG(std::string, float_layers, "auto",
          "Layers kept in float32: auto (lenet/resnet: first,last; mlp: "
          "last), none, first, last or first,last.");
ABSL_FLAG(int, epochs, 10,
          "Training epochs (0: no training, e.g. export a "
          "--load_checkpoint).");
ABSL_FLAG(int, batch_size, 256, "Mini-batch size.");
ABSL_FLAG(double, lr, 1e-3,
          "Adam learning rate (cosine decay to 0, per step).");
ABSL_FLAG(int64_t, max_steps, 0, "If > 0, stop after this many steps.");
ABSL_FLAG(int64_t, train_limit, 0, "If > 0, use the first N training images.");
ABSL_FLAG(int64_t, test_limit, 0, "If > 0, use the first N test images.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of initialisation and data order.");
ABSL_FLAG(int, threads, 1, "Intra-op CPU threads for libtorch.");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda (if libtorch has CUDA).");
ABSL_FLAG(std::string, data_dir, flexor::trainer::kDefaultFashionMnistDir,
          "Directory with the Fashion-MNIST IDX .gz files.");
ABSL_FLAG(std::string, model_name, "",
          "Model name in the file and repository (default fashion_<arch>).");
ABSL_FLAG(std::string, output, "model.flexor", "Exported model file.");
ABSL_FLAG(bool, fold_batchnorm, true,
          "Fold BatchNorm into the weight scales and bias (else keep BN "
          "nodes).");
ABSL_FLAG(std::string, load_checkpoint, "",
          "Load parameters from this checkpoint before training.");
ABSL_FLAG(std::string, save_checkpoint, "",
          "Save parameters to this checkpoint after training.");
ABSL_FLAG(bool, verify, true,
          "Reload the exported file with the engine and compare with the "
          "trainer on the test set (fails with exit 6 if accuracy differs by "
          "> --max_accuracy_diff points or agreement < --min_agreement %).");
ABSL_FLAG(double, max_accuracy_diff, 0.1, "Contract: accuracy tolerance.");
ABSL_FLAG(double, min_agreement, 99.9, "Contract: prediction agreement, %.");
ABSL_FLAG(double, serving_agreement, 99.9,
          "After the engine check: recommend int8 activations with as few "
          "layers in int16 as reach this top-1 agreement (%) with FP32 on "
          "the test set, written to <output>.config.pbtxt (0: skip).");
ABSL_FLAG(std::string, results_json, "",
          "Append a one-line JSON summary of the run to this file.");
ABSL_FLAG(std::string, publish_dir, "",
          "Model repository root: write <root>/<model>/<next "
          "version>/model.flexor atomically.");
ABSL_FLAG(std::string, publish_server, "",
          "HOST:PORT of a running server: RepositoryModelLoad with the file.");
ABSL_FLAG(double, publish_timeout, 60, "Seconds allowed per publish RPC.");
ABSL_FLAG(std::string, sign_key, "",
          "Ed25519 private key (PEM): writes <output>.sig, which is published "
          "with the model (servers with --require-signed-models need it).");
ABSL_FLAG(std::string, publish_tls_ca_file, "",
          "--publish-server over TLS: CA bundle of the server certificate.");
ABSL_FLAG(std::string, publish_tls_cert_file, "",
          "--publish-server over mutual TLS: client certificate (PEM).");
ABSL_FLAG(std::string, publish_tls_key_file, "",
          "--publish-server over mutual TLS: client key (PEM).");
ABSL_FLAG(std::string, publish_tls_server_name, "",
          "--publish-server over TLS: name to check the certificate against.");
ABSL_FLAG(std::string, publish_token_file, "",
          "--publish-server: file whose first line is the admin bearer token.");
ABSL_FLAG(double, min_publish_accuracy, 0,
          "Quality gate: publish only if the test accuracy (the engine's, "
          "when --verify) is at least this many percent; else exit 8 and "
          "publish nothing. 0: no gate.");

namespace flexor::trainer {
namespace {

enum ExitCode {
  kExitOk = 0,
  kExitBadFlags = 2,
  kExitData = 3,
  kExitTraining = 4,
  kExitExport = 5,
  kExitContract = 6,
  kExitPublish = 7,
  kExitQualityGate = 8,
};

template <typename... Args>
void Log(const absl::FormatSpec<Args...>& format, const Args&... args) {
  const std::string time =
      absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::Now(), absl::LocalTimeZone());
  std::fprintf(stderr, "[flexor_train %s] %s\n", time.c_str(),
               absl::StrFormat(format, args...).c_str());
  std::fflush(stderr);
}

server::ClientAuthOptions PublishAuth() {
  server::ClientAuthOptions auth;
  auth.ca_file = absl::GetFlag(FLAGS_publish_tls_ca_file);
  auth.cert_file = absl::GetFlag(FLAGS_publish_tls_cert_file);
  auth.key_file = absl::GetFlag(FLAGS_publish_tls_key_file);
  auth.server_name = absl::GetFlag(FLAGS_publish_tls_server_name);
  auth.token_file = absl::GetFlag(FLAGS_publish_token_file);
  return auth;
}

int Fail(ExitCode code, const absl::Status& status) {
  Log("error: %s", status.ToString());
  return code;
}

ImageSet Limit(const ImageSet& set, int64_t limit) {
  if (limit <= 0 || limit >= set.size()) return set;
  return ImageSet{set.pixels.narrow(0, 0, limit),
                  set.labels.narrow(0, 0, limit)};
}

absl::Status ParseFloatLayers(const std::string& value, Arch arch,
                              ArchConfig& config) {
  if (value == "auto") {
    const ArchConfig defaults = DefaultArchConfig(arch);
    config.float_first_layer = defaults.float_first_layer;
    config.float_last_layer = defaults.float_last_layer;
    return absl::OkStatus();
  }
  if (value == "none") {
    config.float_first_layer = config.float_last_layer = false;
  } else if (value == "first") {
    config.float_first_layer = true;
    config.float_last_layer = false;
  } else if (value == "last") {
    config.float_first_layer = false;
    config.float_last_layer = true;
  } else if (value == "first,last") {
    config.float_first_layer = config.float_last_layer = true;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--float_layers must be auto, none, first, last or first,last; got '",
        value, "'"));
  }
  return absl::OkStatus();
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

int Run(int argc, char** argv) {
  std::vector<std::string> arg_storage;
  std::vector<char*> normalized = NormalizeFlagNames(argc, argv, &arg_storage);
  absl::SetProgramUsageMessage(
      "Trains a FleXOR (fractional bits per weight) or baseline classifier on "
      "Fashion-MNIST with libtorch, exports it in the engine's model format, "
      "checks the file with the engine and optionally publishes it.\n"
      "Example (the default model):\n"
      "  flexor_train --arch=lenet --method=flexor --n_in=16 --n_out=20 "
      "--n_tap=2 --epochs=10 --output=model.flexor "
      "--publish-dir=models\n"
      "Exit codes: 0 ok, 2 bad flags, 3 data, 4 training, 5 export, "
      "6 contract check, 7 publish, 8 below --min-publish-accuracy.");
  const std::vector<char*> positional = absl::ParseCommandLine(
      static_cast<int>(normalized.size()) - 1, normalized.data());
  if (positional.size() > 1) {
    return Fail(kExitBadFlags,
                absl::InvalidArgumentError(
                    absl::StrCat("unexpected argument '", positional[1], "'")));
  }
  const std::string command_line =
      absl::StrJoin(std::vector<std::string>(argv, argv + argc), " ");

  // ---- configuration
  absl::StatusOr<Arch> arch = ParseArch(absl::GetFlag(FLAGS_arch));
  if (!arch.ok()) return Fail(kExitBadFlags, arch.status());
  absl::StatusOr<QuantMethod> method =
      ParseQuantMethod(absl::GetFlag(FLAGS_method));
  if (!method.ok()) return Fail(kExitBadFlags, method.status());
  ArchConfig arch_config = DefaultArchConfig(*arch);
  arch_config.quant.method = *method;
  arch_config.quant.n_in = absl::GetFlag(FLAGS_n_in);
  arch_config.quant.n_out = absl::GetFlag(FLAGS_n_out);
  arch_config.quant.n_tap = absl::GetFlag(FLAGS_n_tap);
  arch_config.quant.planes = absl::GetFlag(FLAGS_planes);
  arch_config.quant.xor_seed = absl::GetFlag(FLAGS_xor_seed);
  arch_config.quant.exact_tanh_grad = absl::GetFlag(FLAGS_exact_tanh_grad);
  arch_config.quant.row_aligned_slices =
      absl::GetFlag(FLAGS_row_aligned_slices);
  arch_config.quant.dst_m = absl::GetFlag(FLAGS_dst_m);
  absl::Status parsed =
      ParseFloatLayers(absl::GetFlag(FLAGS_float_layers), *arch, arch_config);
  if (!parsed.ok()) return Fail(kExitBadFlags, parsed);

  TrainOptions options;
  options.epochs = absl::GetFlag(FLAGS_epochs);
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.learning_rate = absl::GetFlag(FLAGS_lr);
  options.s_tanh = absl::GetFlag(FLAGS_s_tanh);
  options.s_tanh_start = absl::GetFlag(FLAGS_s_tanh_start);
  options.s_tanh_warmup_epochs = absl::GetFlag(FLAGS_s_tanh_warmup_epochs);
  options.latent_clip = absl::GetFlag(FLAGS_latent_clip);
  options.max_steps = absl::GetFlag(FLAGS_max_steps);
  if (options.epochs < 0 || options.batch_size < 1 ||
      !(options.learning_rate > 0) || !(options.s_tanh > 0)) {
    return Fail(kExitBadFlags,
                absl::InvalidArgumentError(
                    "--epochs must be >= 0, --batch_size >= 1, --lr > 0, "
                    "--s_tanh > 0"));
  }
  const std::string device_name = absl::GetFlag(FLAGS_device);
  if (device_name == "cuda") {
    if (!torch::cuda::is_available()) {
      return Fail(kExitBadFlags,
                  absl::FailedPreconditionError(
                      "--device=cuda but this libtorch has no usable CUDA"));
    }
    options.device = torch::kCUDA;
  } else if (device_name != "cpu") {
    return Fail(kExitBadFlags,
                absl::InvalidArgumentError(absl::StrCat(
                    "--device must be cpu or cuda, got '", device_name, "'")));
  }
  std::string model_name = absl::GetFlag(FLAGS_model_name);
  if (model_name.empty()) model_name = "fashion_" + ArchName(*arch);
  const int threads = absl::GetFlag(FLAGS_threads);
  if (threads < 1) {
    return Fail(kExitBadFlags,
                absl::InvalidArgumentError("--threads must be >= 1"));
  }
  torch::set_num_threads(threads);
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  torch::manual_seed(seed);

  // ---- data
  absl::StatusOr<FashionMnist> data =
      LoadFashionMnist(absl::GetFlag(FLAGS_data_dir));
  if (!data.ok()) return Fail(kExitData, data.status());
  const ImageSet train = Limit(data->train, absl::GetFlag(FLAGS_train_limit));
  const ImageSet test = Limit(data->test, absl::GetFlag(FLAGS_test_limit));
  Log("data: %d train, %d test images", train.size(), test.size());

  // ---- model
  absl::StatusOr<std::shared_ptr<Classifier>> model =
      MakeClassifier(arch_config);
  if (!model.ok()) return Fail(kExitBadFlags, model.status());
  Classifier& classifier = **model;
  Log("model: arch=%s method=%s%s float_layers=%s%s weights=%d quantized=%d "
      "bits/quantized weight=%.3f",
      ArchName(*arch), QuantMethodName(*method),
      *method == QuantMethod::kFlexor
          ? absl::StrFormat(" N_in=%d N_out=%d N_tap=%d q=%d",
                            arch_config.quant.n_in, arch_config.quant.n_out,
                            arch_config.quant.n_tap, arch_config.quant.planes)
          : std::string(),
      arch_config.float_first_layer ? "first" : "",
      arch_config.float_last_layer
          ? (arch_config.float_first_layer ? ",last" : "last")
          : "",
      classifier.weight_count(), classifier.quantized_weight_count(),
      classifier.bits_per_quantized_weight());
  const std::string load_path = absl::GetFlag(FLAGS_load_checkpoint);
  if (!load_path.empty()) {
    absl::Status loaded = LoadCheckpoint(classifier, load_path);
    if (!loaded.ok()) return Fail(kExitBadFlags, loaded);
    Log("loaded checkpoint %s", load_path);
  }

  // ---- training
  const absl::Time train_start = absl::Now();
  if (options.epochs > 0) {
    absl::Status trained =
        Train(classifier, train, test, options, [](const EpochReport& r) {
          Log("epoch %d/%d steps %d loss %.4f train_acc %.2f test_acc %.2f "
              "lr %.2e s_tanh %.2f time %.1fs",
              r.epoch, r.epochs, r.steps, r.train_loss, r.train_accuracy,
              r.test_accuracy, r.learning_rate, r.s_tanh, r.seconds);
        });
    if (!trained.ok()) return Fail(kExitTraining, trained);
  }
  const double train_seconds = absl::ToDoubleSeconds(absl::Now() - train_start);
  const std::string save_path = absl::GetFlag(FLAGS_save_checkpoint);
  if (!save_path.empty()) {
    absl::Status saved = SaveCheckpoint(classifier, save_path);
    if (!saved.ok()) return Fail(kExitTraining, saved);
  }
  classifier.to(torch::kCPU);
  const Evaluation evaluation = Evaluate(classifier, test, torch::kCPU);
  Log("trainer test accuracy %.2f%% (%d images), training took %.0fs",
      evaluation.accuracy, test.size(), train_seconds);

  // ---- export
  const std::string output = absl::GetFlag(FLAGS_output);
  {
    ModelWriter writer(model_name);
    model::v1::Metadata& metadata = writer.metadata();
    metadata.set_name(model_name);
    metadata.set_description(
        absl::StrFormat("Fashion-MNIST %s, %s weights, trained by flexor_train",
                        ArchName(*arch), QuantMethodName(*method)));
    metadata.set_method(QuantMethodName(*method));
    metadata.set_bits_per_weight(classifier.bits_per_quantized_weight());
    auto& provenance = *metadata.mutable_provenance();
    provenance["trainer"] = "flexor_train (libtorch " TORCH_VERSION ")";
    provenance["command"] = command_line;
    provenance["dataset"] =
        "fashion-mnist (" + absl::GetFlag(FLAGS_data_dir) + ")";
    provenance["arch"] = ArchName(*arch);
    provenance["seed"] = absl::StrCat(seed);
    provenance["epochs"] = absl::StrCat(options.epochs);
    provenance["trainer_test_accuracy"] =
        absl::StrFormat("%.2f", evaluation.accuracy);
    for (const std::string& label : FashionMnistLabels()) {
      metadata.add_labels(label);
    }
    GraphExporter exporter(&writer, absl::GetFlag(FLAGS_fold_batchnorm));
    classifier.Export(exporter);
    absl::Status written = writer.WriteFile(output);
    if (!written.ok()) return Fail(kExitExport, written);
    Log("exported %s", output);
  }

  // ---- contract check with the engine
  EngineCheck check;
  bool checked = false;
  if (absl::GetFlag(FLAGS_verify)) {
    absl::StatusOr<EngineCheck> result =
        CheckWithEngine(output, test, evaluation);
    if (!result.ok()) return Fail(kExitContract, result.status());
    check = *result;
    checked = true;
    const double diff =
        std::abs(check.engine_accuracy - check.trainer_accuracy);
    Log("engine check: engine accuracy %.2f%%, trainer %.2f%%, diff %.2f "
        "points, agreement %.2f%%, file %d bytes (%.1f KiB), %.3f bits per "
        "quantized weight",
        check.engine_accuracy, check.trainer_accuracy, diff, check.agreement,
        check.file_bytes, check.file_bytes / 1024.0,
        check.engine_bits_per_weight);
    if (diff > absl::GetFlag(FLAGS_max_accuracy_diff) ||
        check.agreement < absl::GetFlag(FLAGS_min_agreement)) {
      return Fail(kExitContract,
                  absl::InternalError("engine and trainer disagree beyond the "
                                      "contract tolerance"));
    }
  }

  // ---- serving precision: the fastest activation precision that keeps
  // the predictions (as a config.pbtxt for the model repository)
  std::string serving = "-";
  std::string serving_config;  // config.pbtxt text, "" if not searched
  const double serving_target = absl::GetFlag(FLAGS_serving_agreement);
  if (checked && serving_target > 0) {
    absl::StatusOr<PrecisionSearchResult> rec =
        RecommendServingPrecision(output, test, serving_target);
    if (!rec.ok()) return Fail(kExitContract, rec.status());
    const std::string config_text =
        rec->reached
            ? PrecisionConfigText(ActivationPrecision::kInt8, rec->layers)
            : PrecisionConfigText(ActivationPrecision::kFloat32, {});
    serving = rec->reached
                  ? ActivationsLabel(ActivationPrecision::kInt8, rec->layers)
                  : "fp32";
    const std::string config_path = output + ".config.pbtxt";
    if (absl::Status s = WriteFileAtomically(config_path, config_text);
        !s.ok()) {
      return Fail(kExitExport, s);
    }
    serving_config = config_text;
    Log("serving precision: %s (int8 agreement with fp32 %.2f%%%s, target "
        "%.1f%%), written to %s",
        serving, rec->agreement.percent(),
        rec->layers.empty()
            ? ""
            : absl::StrCat(" with ", rec->layers.size(), " layer(s) in int16"),
        serving_target, config_path);
  }

  const std::string results_path = absl::GetFlag(FLAGS_results_json);
  if (!results_path.empty()) {
    std::ofstream results(results_path, std::ios::app);
    results << absl::StrFormat(
        "{\"arch\":\"%s\",\"method\":\"%s\",\"n_in\":%d,\"n_out\":%d,"
        "\"n_tap\":%d,\"planes\":%d,\"bits_per_weight\":%.4f,"
        "\"weights\":%d,\"quantized_weights\":%d,\"epochs\":%d,\"seed\":%d,"
        "\"trainer_accuracy\":%.2f,\"engine_accuracy\":%.2f,"
        "\"agreement\":%.3f,\"file_bytes\":%d,\"train_seconds\":%.0f,"
        "\"serving_precision\":\"%s\",\"output\":\"%s\"}\n",
        ArchName(*arch), QuantMethodName(*method), arch_config.quant.n_in,
        arch_config.quant.n_out, arch_config.quant.n_tap,
        arch_config.quant.planes, classifier.bits_per_quantized_weight(),
        classifier.weight_count(), classifier.quantized_weight_count(),
        options.epochs, seed, evaluation.accuracy,
        checked ? check.engine_accuracy : -1.0,
        checked ? check.agreement : -1.0, checked ? check.file_bytes : -1,
        train_seconds, JsonEscape(serving), JsonEscape(output));
  }

  // ---- publish
  const std::string publish_dir = absl::GetFlag(FLAGS_publish_dir);
  const std::string publish_server = absl::GetFlag(FLAGS_publish_server);
  // A scheduled retraining must not replace a good serving model with a
  // worse one: the gate reads the accuracy the engine itself measured.
  const double accuracy = checked ? check.engine_accuracy : evaluation.accuracy;
  const double min_accuracy = absl::GetFlag(FLAGS_min_publish_accuracy);
  if ((!publish_dir.empty() || !publish_server.empty()) &&
      accuracy < min_accuracy) {
    return Fail(kExitQualityGate,
                absl::FailedPreconditionError(absl::StrFormat(
                    "test accuracy %.2f%% is below --min_publish_accuracy "
                    "%.2f%%: not publishing %s",
                    accuracy, min_accuracy, output)));
  }
  if (const std::string key = absl::GetFlag(FLAGS_sign_key); !key.empty()) {
    absl::StatusOr<std::string> key_id = SignModelFile(output, key);
    if (!key_id.ok()) return Fail(kExitPublish, key_id.status());
    Log("signed %s with key %s", output, *key_id);
  }
  if (!publish_dir.empty()) {
    absl::StatusOr<std::string> published =
        PublishToDirectory(output, publish_dir, model_name, serving_config);
    if (!published.ok()) return Fail(kExitPublish, published.status());
    Log("published %s%s", *published,
        serving_config.empty()
            ? ""
            : " (the serving precision goes into the model's config.pbtxt "
              "only if it has none)");
  }
  if (!publish_server.empty()) {
    absl::StatusOr<int64_t> version =
        PublishToServer(output, publish_server, model_name,
                        absl::GetFlag(FLAGS_publish_timeout), PublishAuth());
    if (!version.ok()) return Fail(kExitPublish, version.status());
    Log("published %s version %d to %s", model_name, *version, publish_server);
  }
  return kExitOk;
}

}  // namespace
}  // namespace flexor::trainer

int main(int argc, char** argv) { return flexor::trainer::Run(argc, argv); }
