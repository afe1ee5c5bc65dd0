// flexorctl: command-line client of the FleXOR inference server (KServe v2
// gRPC) and offline model tool. Run `flexorctl --help`.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/flag_names.h"
#include "tools/flexorctl/client.h"
#include "tools/flexorctl/commands.h"

ABSL_FLAG(std::string, server, "localhost:8001", "Server address host:port.");
ABSL_FLAG(std::string, model, "", "Model name (infer, bench, status).");
ABSL_FLAG(std::string, model_version, "",
          "Model version; empty: the latest the server serves.");
ABSL_FLAG(int, timeout_ms, 30000, "Per-RPC deadline in milliseconds.");
ABSL_FLAG(std::string, images, "",
          "infer/bench: IDX images file (.gz or not), e.g. "
          "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
ABSL_FLAG(std::string, labels, "",
          "infer: IDX labels file, to print the true class and accuracy.");
ABSL_FLAG(int, index, 0, "infer: first image index.");
ABSL_FLAG(int, count, 1, "infer: number of images (one request each).");
ABSL_FLAG(std::string, batch, "",
          "infer/bench: images per request (default 1). model bench: "
          "comma-separated batch sizes (default 1,8,32,128).");
ABSL_FLAG(int, threads, 1, "model bench: threads of the TBB arena.");
ABSL_FLAG(bool, profile, false, "model bench: per-layer time table.");
ABSL_FLAG(double, min_time_s, 1, "model bench: seconds to measure per batch.");
ABSL_FLAG(std::string, activations, "",
          "model bench/eval: activation precision of bit-coded layers, "
          "fp32, int8 or int16 (default fp32).");
ABSL_FLAG(std::string, layer_activations, "",
          "model bench/eval: layers whose activation precision differs from "
          "--activations, e.g. block1_conv1=int16 (mixed precision).");
ABSL_FLAG(bool, sensitivity, false,
          "model eval: also one line per layer with that layer alone in "
          "int16 (which layers need it).");
ABSL_FLAG(double, target_agreement, 0,
          "model eval: set layers apart in int16, the most helpful first, "
          "until the top-1 agreement with fp32 reaches this percentage "
          "(e.g. 99.9); prints the config.pbtxt lines.");
ABSL_FLAG(bool, int8_activations, false,
          "model bench/eval: --activations=int8.");
ABSL_FLAG(std::string, raw, "",
          "infer: raw little-endian FP32 input file [N, input size] instead "
          "of --images.");
ABSL_FLAG(bool, uint8, false,
          "infer/bench: send images as UINT8 instead of FP32 (if the model "
          "accepts it).");
ABSL_FLAG(bool, typed, false,
          "infer/bench: send typed contents (fp32_contents) instead of "
          "raw_input_contents.");
ABSL_FLAG(bool, json, false, "Print JSON instead of text.");
ABSL_FLAG(int64_t, version, 1, "load: version number of the published file.");
ABSL_FLAG(std::string, config, "",
          "load: model config for this load only (Triton's JSON or "
          "config.pbtxt text); the repository's config is not changed.");
ABSL_FLAG(std::string, concurrency, "1",
          "bench: requests in flight; a comma list runs one after another, "
          "e.g. 1,8,64.");
ABSL_FLAG(double, duration_s, 10, "bench: seconds to measure per run.");
ABSL_FLAG(int64_t, requests, 0,
          "bench: stop after this many requests (0: only --duration-s).");
ABSL_FLAG(double, warmup_s, 1, "bench: seconds of warm-up per run.");
ABSL_FLAG(std::string, tls_ca_file, "",
          "TLS: CA bundle that signed the server's certificate (PEM); unset: "
          "plaintext.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "Mutual TLS: this client's certificate chain (PEM).");
ABSL_FLAG(std::string, tls_key_file, "",
          "Mutual TLS: the private key of --tls-cert-file (PEM).");
ABSL_FLAG(std::string, tls_server_name, "",
          "TLS: the name to check the server certificate against, when it "
          "differs from the host of --server.");
ABSL_FLAG(std::string, token_file, "",
          "File whose first line is a bearer token, sent as 'authorization: "
          "Bearer <token>' (admin RPCs on a server with --auth-token-file).");
ABSL_FLAG(std::string, key, "",
          "model sign: Ed25519 private key (PEM) to sign with.");
ABSL_FLAG(std::vector<std::string>, pubkey, {},
          "model verify: trusted Ed25519 public keys (PEM), comma separated.");
ABSL_FLAG(std::string, out, "flexor-signing",
          "keygen: writes <out>.pem (private) and <out>.pub.pem (public).");
ABSL_FLAG(int, spread_models, 0,
          "bench: send the requests round robin to the first N ready models "
          "(by name; RepositoryIndex) instead of one --model (0: off).");
ABSL_FLAG(std::string, rpc, "infer",
          "bench: infer (ModelInfer), live (ServerLive, the empty-RPC "
          "baseline) or index (RepositoryIndex).");

ABSL_FLAG(int, zipf_models, 0,
          "bench: send each ModelInfer to one of N models drawn from a Zipf "
          "distribution (rank k with probability ~ 1/k^--zipf-s); names from "
          "--zipf-model-format. 0: only --model.");
ABSL_FLAG(double, zipf_s, 1.1, "bench: exponent of --zipf-models.");
ABSL_FLAG(std::string, zipf_model_format, "m%06d",
          "bench: printf format of the model of rank k (1..N).");

namespace {

constexpr char kUsage[] =
    "Client of the FleXOR inference server and offline model tool.\n\n"
    "Usage: flexorctl [flags] <command> [args]\n\n"
    "Commands (server, --server=host:port):\n"
    "  infer                 classify --images (IDX) / --raw FP32 inputs\n"
    "  list                  models in the repository and their state\n"
    "  load MODEL [FILE]     load/reload MODEL; with FILE, publish it as "
    "--version first\n"
    "  unload MODEL          unload MODEL (waits for in-flight requests)\n"
    "  status [MODEL]        server health, models, statistics\n"
    "  health [SERVICE]      grpc.health.v1 check (\"\": server, or a model);"
    " exit 0 if SERVING\n"
    "  bench                 load generator: latency percentiles, "
    "throughput\n"
    "                        (--spread-models=N: round robin over the "
    "first N ready models)\n"
    "  mesh status|load ID PATH|unload ID|size ID|predict-size ID PATH\n"
    "                        ModelMesh model-runtime SPI calls "
    "(flexor_server --modelmesh)\n"
    "Commands (offline):\n"
    "  model sign FILE       write FILE.sig, an Ed25519 signature, with "
    "--key\n"
    "  model verify FILE     check FILE.sig against --pubkey=PUB[,PUB]\n"
    "  keygen                new Ed25519 key pair: --out.pem, --out.pub.pem\n"
    "  model inspect FILE    graph, codecs, bits per weight, sizes\n"
    "  model validate FILE   exit 0 if FILE loads, else print why\n"
    "  model bench FILE      in-process latency per --batch=1,8,32,128 at\n"
    "                        --threads=N; --profile adds a per-layer table\n"
    "  model eval FILE       accuracy on --images/--labels; with\n"
    "                        --activations=int8|int16, agreement with fp32;\n"
    "                        --layer_activations=LAYER=int16,... mixes,\n"
    "                        --sensitivity tries each layer in int16,\n"
    "                        --target_agreement=99.9 picks layers for it\n\n"
    "Flags may be spelled with dashes or underscores.";

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<std::string> storage;
  std::vector<char*> normalized =
      flexor::NormalizeFlagNames(argc, argv, &storage);
  std::vector<char*> positional = absl::ParseCommandLine(
      static_cast<int>(normalized.size()) - 1, normalized.data());
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  if (args.empty()) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  flexor::tools::CommandContext ctx;
  ctx.server = absl::GetFlag(FLAGS_server);
  ctx.timeout = absl::Milliseconds(absl::GetFlag(FLAGS_timeout_ms));
  ctx.model = absl::GetFlag(FLAGS_model);
  ctx.model_version = absl::GetFlag(FLAGS_model_version);
  ctx.json = absl::GetFlag(FLAGS_json);
  ctx.images = absl::GetFlag(FLAGS_images);
  ctx.labels = absl::GetFlag(FLAGS_labels);
  ctx.index = absl::GetFlag(FLAGS_index);
  ctx.count = absl::GetFlag(FLAGS_count);
  const std::string batch_flag = absl::GetFlag(FLAGS_batch);
  for (absl::string_view b :
       absl::StrSplit(batch_flag.empty() ? "1,8,32,128" : batch_flag, ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(b, &n) || n < 1 || n > 4096) {
      std::cerr << "--batch: '" << b << "' is not an integer in [1, 4096]\n";
      return 2;
    }
    ctx.batches.push_back(n);
  }
  ctx.batch = batch_flag.empty() ? 1 : ctx.batches.front();
  if (!batch_flag.empty() && ctx.batches.size() > 1 && args[0] != "model") {
    std::cerr << "--batch: one value only for " << args[0] << "\n";
    return 2;
  }
  ctx.threads = absl::GetFlag(FLAGS_threads);
  ctx.profile = absl::GetFlag(FLAGS_profile);
  ctx.min_time = absl::Seconds(absl::GetFlag(FLAGS_min_time_s));
  if (absl::GetFlag(FLAGS_int8_activations)) {
    ctx.activations = flexor::ActivationPrecision::kInt8;
  }
  if (const std::string a = absl::GetFlag(FLAGS_activations); !a.empty()) {
    const absl::StatusOr<flexor::ActivationPrecision> parsed =
        flexor::ParseActivationPrecision(a);
    if (!parsed.ok()) {
      std::cerr << "--activations: " << parsed.status().message() << "\n";
      return 2;
    }
    ctx.activations = *parsed;
  }
  {
    absl::StatusOr<std::vector<flexor::LayerActivations>> layers =
        flexor::ParseLayerActivations(absl::GetFlag(FLAGS_layer_activations));
    if (!layers.ok()) {
      std::cerr << "--layer_activations: " << layers.status().message() << "\n";
      return 2;
    }
    ctx.layer_activations = *std::move(layers);
  }
  ctx.sensitivity = absl::GetFlag(FLAGS_sensitivity);
  ctx.target_agreement = absl::GetFlag(FLAGS_target_agreement);
  ctx.raw = absl::GetFlag(FLAGS_raw);
  ctx.uint8 = absl::GetFlag(FLAGS_uint8);
  ctx.typed = absl::GetFlag(FLAGS_typed);
  ctx.version = absl::GetFlag(FLAGS_version);
  ctx.config = absl::GetFlag(FLAGS_config);
  for (absl::string_view c :
       absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(c, &n) || n < 1 || n > 10000) {
      std::cerr << "--concurrency: '" << c
                << "' is not an integer in [1, 10000]\n";
      return 2;
    }
    ctx.concurrency.push_back(n);
  }
  ctx.duration = absl::Seconds(absl::GetFlag(FLAGS_duration_s));
  ctx.requests = absl::GetFlag(FLAGS_requests);
  ctx.warmup = absl::Seconds(absl::GetFlag(FLAGS_warmup_s));
  ctx.rpc = absl::GetFlag(FLAGS_rpc);
  ctx.spread_models = absl::GetFlag(FLAGS_spread_models);
  if (ctx.spread_models < 0) {
    std::cerr << "--spread-models must be >= 0\n";
    return 2;
  }
  ctx.zipf_models = absl::GetFlag(FLAGS_zipf_models);
  ctx.zipf_s = absl::GetFlag(FLAGS_zipf_s);
  ctx.zipf_format = absl::GetFlag(FLAGS_zipf_model_format);
  ctx.auth.ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  ctx.auth.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  ctx.auth.key_file = absl::GetFlag(FLAGS_tls_key_file);
  ctx.auth.server_name = absl::GetFlag(FLAGS_tls_server_name);
  ctx.auth.token_file = absl::GetFlag(FLAGS_token_file);
  ctx.key = absl::GetFlag(FLAGS_key);
  ctx.pubkeys = absl::GetFlag(FLAGS_pubkey);
  ctx.out = absl::GetFlag(FLAGS_out);
  if (absl::Status s = flexor::tools::CheckClientAuth(ctx.server, ctx.auth);
      !s.ok()) {
    std::cerr << "flexorctl: " << s.message() << "\n";
    return 2;
  }

  absl::Status status = flexor::tools::RunCommand(ctx, args);
  if (!status.ok()) {
    std::cerr << "flexorctl " << args[0] << ": " << status.message() << " ("
              << absl::StatusCodeToString(status.code()) << ")\n";
    return 1;
  }
  return 0;
}
