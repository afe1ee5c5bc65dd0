// flexor_server: serves FleXOR-compressed models over the Open Inference
// Protocol (KServe v2) gRPC API, with Prometheus metrics. See docs/server.md.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "base/atomic_file.h"
#include "base/flag_names.h"
#include "server/common/log.h"
#include "server/server.h"

ABSL_FLAG(std::string, model_repository, "",
          "Model repository directory: <dir>/<model>/<version>/model.flexor "
          "(+ optional <dir>/<model>/config.pbtxt). Required.");
ABSL_FLAG(std::string, model_control_mode, "none",
          "none: load every model at startup, never change; poll: also "
          "follow repository changes every --repository-poll-secs; explicit: "
          "load only --load-model at startup, then RepositoryModelLoad / "
          "RepositoryModelUnload RPCs decide (as in Triton).");
ABSL_FLAG(int, repository_poll_secs, 15,
          "Poll interval of --model-control-mode=poll, in seconds.");
ABSL_FLAG(std::vector<std::string>, load_model, {},
          "Explicit mode: models to load at startup, comma separated; '*' "
          "loads all.");
ABSL_FLAG(std::string, address, "0.0.0.0",
          "Address to listen on (gRPC and metrics).");
ABSL_FLAG(int, grpc_port, 8001, "gRPC port; 0 picks a free port.");
ABSL_FLAG(std::string, metrics_address, "127.0.0.1",
          "Listen address of the Prometheus metrics endpoint. Loopback by "
          "default (metrics are unauthenticated); set 0.0.0.0 where a "
          "Prometheus on another host scrapes it (the container image and "
          "the Kubernetes manifests do).");
ABSL_FLAG(int, metrics_port, 8002,
          "Prometheus metrics port (GET /metrics); 0 picks a free port, -1 "
          "disables.");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound ports are written there (atomically) as "
          "'grpc=<port>' and 'metrics=<port>' lines once the server is "
          "ready (the startup models are loaded).");
ABSL_FLAG(std::string, listening_port_file, "",
          "As --port-file, but written as soon as the ports listen, while "
          "the startup models may still be loading (ServerLive and "
          "grpc.health answer from then on).");
ABSL_FLAG(std::string, memory_budget, "0",
          "Memory for resident model versions (bytes, or 2GiB, 512MiB, "
          "1.5G...); 0: none, every model stays loaded. With a budget, "
          "models not pinned in their config.pbtxt are loaded by their "
          "first request and evicted least-recently-used.");
ABSL_FLAG(int, threads, 0,
          "Compute threads (the oneTBB arena); 0: one per CPU.");
ABSL_FLAG(int, max_concurrent_batches, 0,
          "Model executions running at once across all models; 0: --threads.");
ABSL_FLAG(int, max_batch_size, 32,
          "Default max_batch_size (samples per request and per execution) for "
          "models whose config.pbtxt does not set it.");
ABSL_FLAG(bool, dynamic_batching, true,
          "Default for models whose config.pbtxt has no dynamic_batching "
          "section: combine concurrent requests of a model into one "
          "execution. On by default: on the shipped model it doubles "
          "throughput at concurrency 64 and costs nothing at concurrency 1 "
          "(--dispatch-when-idle); docs/performance.md, \"## Server\".");
ABSL_FLAG(int64_t, max_queue_delay_us, 200,
          "Default dynamic batching delay: how long the first request of a "
          "batch may wait for others, in microseconds.");
ABSL_FLAG(bool, dispatch_when_idle, true,
          "Dynamic batching: run a request at once when no model execution "
          "is running (no --max-queue-delay-us wait on an idle server); "
          "false: always wait up to the delay for a fuller batch, as Triton.");
ABSL_FLAG(int, max_queue_size, 1024,
          "Default bound of each model's request queue; beyond it requests "
          "get RESOURCE_EXHAUSTED.");
ABSL_FLAG(std::string, version_policy, "latest:1",
          "Default version policy: latest:N, all, or specific:V1,V2.");
ABSL_FLAG(int, grpc_max_message_bytes, 64 << 20,
          "Largest gRPC message accepted or sent, in bytes (model uploads "
          "travel in one message).");
ABSL_FLAG(std::string, activation_precision, "fp32",
          "Default activation precision of binary-coded and ternary layers: "
          "fp32 (exact), int8 (faster at small batches, within the error "
          "bound of docs/performance.md) or int16 (convolutions in two int8 "
          "passes, about 16-bit inputs); config.pbtxt's "
          "activation_precision overrides it per model.");
ABSL_FLAG(std::string, model_file_access, "copy",
          "How model files are loaded. copy: read into memory the process "
          "owns (a file changed on disk later cannot affect a loaded "
          "version). map: mapped read-only, sharing the page cache (no "
          "second copy of each file, about half the memory and the fastest "
          "startup with many models); every checksum is still verified. With "
          "map, served files must be replaced atomically: publish a new "
          "version directory or rename a new file over the old one (flexorctl "
          "load, RepositoryModelLoad and flexor_train --publish-dir do), "
          "never truncate or rewrite a served file in place (a truncated "
          "mapped file kills the server with SIGBUS). Not used with "
          "--model-trusted-keys: verified files are always read into memory, "
          "so that the bytes verified are the bytes compiled.");
ABSL_FLAG(double, decrypt_sample_rate, 0.01,
          "Fraction of model executions timed for "
          "flexor_inference_decrypt_duration_seconds (0: off, 1: all).");
ABSL_FLAG(int64_t, max_activation_bytes, int64_t{512} << 20,
          "Activation memory one request may use: a model version that needs "
          "more at its max_batch_size is refused at load, with the largest "
          "max_batch_size that would fit.");
ABSL_FLAG(int, shutdown_grace_secs, 30,
          "On SIGTERM/SIGINT, how long in-flight requests may take to "
          "finish before they are cancelled.");
ABSL_FLAG(std::string, log_level, "info", "info, warning or error.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "TLS for gRPC: the server's certificate chain (PEM). With "
          "--tls-key-file; re-read every --tls-reload-secs, so a renewed "
          "certificate needs no restart. Unset: plaintext.");
ABSL_FLAG(std::string, tls_key_file, "",
          "TLS: the private key of --tls-cert-file (PEM, unencrypted).");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "Mutual TLS: CA bundle that client certificates must chain to. A "
          "client certificate that does not verify fails the handshake.");
ABSL_FLAG(bool, tls_require_client_cert, false,
          "Mutual TLS: refuse connections without a client certificate "
          "(otherwise one is requested but optional, for open inference or "
          "bearer tokens).");
ABSL_FLAG(int, tls_reload_secs, 60,
          "How often the TLS files are re-read, in seconds.");
ABSL_FLAG(std::string, auth_token_file, "",
          "Admin bearer tokens, one per line (re-read on change): admin RPCs "
          "(RepositoryModelLoad/Unload, uploads) need 'authorization: Bearer "
          "<token>' metadata with one of them (or an identity of "
          "--auth-admin-identities). Unset, with no identities: admin RPCs "
          "are open.");
ABSL_FLAG(std::vector<std::string>, auth_admin_identities, {},
          "Client-certificate identities (SAN, or CN without SANs) allowed "
          "to call admin RPCs, comma separated; needs --tls-client-ca-file.");
ABSL_FLAG(std::string, auth_inference, "open",
          "open: inference RPCs (ModelInfer, metadata, readiness, "
          "statistics, index) need no credential; authenticated: they need an "
          "admin credential, a token of --auth-inference-token-file or a "
          "verified client certificate.");
ABSL_FLAG(std::vector<std::string>, model_trusted_keys, {},
          "Ed25519 public keys (PEM files, comma separated) whose model "
          "signatures (<version>/model.flexor.sig) are trusted. A version "
          "that has a signature must verify against one of them.");
ABSL_FLAG(bool, require_signed_models, false,
          "Refuse every model version (repository or upload) without a valid "
          "signature from --model-trusted-keys; the version already serving "
          "keeps serving.");
ABSL_FLAG(int64_t, max_upload_bytes, int64_t{64} << 20,
          "Largest RepositoryModelLoad (model files + signatures + config) "
          "in bytes; larger ones get RESOURCE_EXHAUSTED. Also bounded by "
          "--grpc-max-message-bytes.");
ABSL_FLAG(int64_t, max_inflight_upload_bytes, int64_t{256} << 20,
          "Bytes that queued and running uploads may hold together; an "
          "upload beyond it gets RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, max_pending_admin_rpcs, 8,
          "Admin RPCs (loads, unloads, uploads) queued or running at once; "
          "more get RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, grpc_memory_quota_bytes, 0,
          "Memory gRPC may use for its own buffers (requests being "
          "received), as a grpc::ResourceQuota; 0: 4 x "
          "--grpc-max-message-bytes. gRPC receives a message whole before it "
          "checks --grpc-max-message-bytes; the quota bounds how much of "
          "several oversized ones it buffers at once (measured: 4 x 200 MiB "
          "requests left 563 MiB resident without it, 26 MiB with 16 MiB). "
          "Under pressure gRPC refuses streams with RESOURCE_EXHAUSTED, so "
          "keep it several times the largest legitimate message.");
ABSL_FLAG(std::string, auth_inference_token_file, "",
          "Bearer tokens that allow inference RPCs only (with "
          "--auth-inference=authenticated).");

ABSL_FLAG(std::string, per_model_histograms, "none",
          "Which models get their own latency and batch-size histograms, "
          "in-flight and weight-size gauges (about 80 series per version): "
          "none (server-wide histograms only; docs/metrics.md), all, or a "
          "comma list of model names. A model's config.pbtxt `metrics { "
          "per_model_histograms: ... }` overrides it.");
ABSL_FLAG(bool, modelmesh, false,
          "Serve KServe ModelMesh's model-runtime SPI (mmesh.ModelRuntime) "
          "on the gRPC port and route ModelInfer by the mm-model-id header "
          "(docs/modelmesh.md). Needs --model-control-mode=explicit.");
ABSL_FLAG(std::string, modelmesh_model_root, "/models",
          "ModelMesh: loadModel's modelPath must lie under this directory "
          "(where the puller places models).");
ABSL_FLAG(int64_t, modelmesh_capacity_bytes, int64_t{256} << 20,
          "ModelMesh: memory for loaded models reported by runtimeStatus "
          "(capacityInBytes).");
ABSL_FLAG(int64_t, modelmesh_default_model_size_bytes, int64_t{1} << 20,
          "ModelMesh: the conservative default model size reported by "
          "runtimeStatus.");
ABSL_FLAG(int, modelmesh_load_timeout_ms, 90000,
          "ModelMesh: modelLoadingTimeoutMs reported by runtimeStatus.");

namespace {

using flexor::server::ModelControlMode;

int Fail(const std::string& message) {
  FLEXOR_LOG(ERROR) << message;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves FleXOR-compressed models over the Open Inference Protocol "
      "(KServe v2) gRPC API with Prometheus metrics.\n\n"
      "  flexor_server --model-repository=models/ [--grpc-port=8001] "
      "[--metrics-port=8002] [--model-control-mode=none|poll|explicit]\n\n"
      "Flags may be spelled with dashes or underscores. See docs/server.md.");
  std::vector<std::string> storage;
  std::vector<char*> args = flexor::NormalizeFlagNames(argc, argv, &storage);
  std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(args.size()) - 1, args.data());
  if (positional.size() > 1) {
    return Fail(
        absl::StrCat("unexpected argument '", positional[1], "'; see --help"));
  }
  const std::string level = absl::GetFlag(FLAGS_log_level);
  if (level == "warning") {
    flexor::server::SetMinLogLevel(flexor::server::LogLevel::kWarning);
  } else if (level == "error") {
    flexor::server::SetMinLogLevel(flexor::server::LogLevel::kError);
  }

  flexor::server::ServerOptions options;
  options.model_repository = absl::GetFlag(FLAGS_model_repository);
  if (options.model_repository.empty()) {
    return Fail("--model-repository is required; see --help");
  }
  const std::string mode = absl::GetFlag(FLAGS_model_control_mode);
  if (mode == "none") {
    options.control_mode = ModelControlMode::kNone;
  } else if (mode == "poll") {
    options.control_mode = ModelControlMode::kPoll;
  } else if (mode == "explicit") {
    options.control_mode = ModelControlMode::kExplicit;
  } else {
    return Fail(absl::StrCat("--model-control-mode='", mode,
                             "' is not one of none, poll, explicit"));
  }
  if (absl::GetFlag(FLAGS_repository_poll_secs) < 1) {
    return Fail("--repository-poll-secs must be >= 1");
  }
  options.poll_interval =
      absl::Seconds(absl::GetFlag(FLAGS_repository_poll_secs));
  options.startup_models = absl::GetFlag(FLAGS_load_model);
  options.address = absl::GetFlag(FLAGS_address);
  options.grpc_port = absl::GetFlag(FLAGS_grpc_port);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.max_concurrent_batches = absl::GetFlag(FLAGS_max_concurrent_batches);
  options.max_message_bytes = absl::GetFlag(FLAGS_grpc_max_message_bytes);
  if (options.max_message_bytes < 1) {
    return Fail("--grpc-max-message-bytes must be positive");
  }
  absl::StatusOr<flexor::ModelFileAccess> file_access =
      flexor::ParseModelFileAccess(absl::GetFlag(FLAGS_model_file_access));
  if (!file_access.ok()) {
    return Fail(
        absl::StrCat("--model-file-access: ", file_access.status().message()));
  }
  options.model_file_access = *file_access;
  options.decrypt_sample_rate = absl::GetFlag(FLAGS_decrypt_sample_rate);
  if (!(options.decrypt_sample_rate >= 0 && options.decrypt_sample_rate <= 1)) {
    return Fail("--decrypt-sample-rate must be in [0, 1]");
  }
  options.max_activation_bytes = absl::GetFlag(FLAGS_max_activation_bytes);
  if (options.max_activation_bytes < 1) {
    return Fail("--max-activation-bytes must be positive");
  }
  options.dispatch_when_idle = absl::GetFlag(FLAGS_dispatch_when_idle);
  options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
  options.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  options.tls.require_client_cert =
      absl::GetFlag(FLAGS_tls_require_client_cert);
  options.tls.reload_secs = absl::GetFlag(FLAGS_tls_reload_secs);
  options.auth.admin_token_file = absl::GetFlag(FLAGS_auth_token_file);
  options.auth.inference_token_file =
      absl::GetFlag(FLAGS_auth_inference_token_file);
  for (const std::string& id : absl::GetFlag(FLAGS_auth_admin_identities)) {
    if (!id.empty()) options.auth.admin_identities.push_back(id);
  }
  const std::string inference_auth = absl::GetFlag(FLAGS_auth_inference);
  if (inference_auth != "open" && inference_auth != "authenticated") {
    return Fail(absl::StrCat("--auth-inference='", inference_auth,
                             "' is not one of open, authenticated"));
  }
  options.auth.inference_open = inference_auth == "open";
  for (const std::string& key : absl::GetFlag(FLAGS_model_trusted_keys)) {
    if (!key.empty()) options.trusted_key_files.push_back(key);
  }
  options.require_signed_models = absl::GetFlag(FLAGS_require_signed_models);
  absl::StatusOr<int64_t> budget =
      flexor::server::ParseByteSize(absl::GetFlag(FLAGS_memory_budget));
  if (!budget.ok()) {
    return Fail(absl::StrCat("--memory-budget: ", budget.status().message()));
  }
  options.memory_budget_bytes = *budget;
  options.admin_limits.max_upload_bytes = absl::GetFlag(FLAGS_max_upload_bytes);
  options.admin_limits.max_inflight_upload_bytes =
      absl::GetFlag(FLAGS_max_inflight_upload_bytes);
  options.admin_limits.max_pending =
      absl::GetFlag(FLAGS_max_pending_admin_rpcs);
  options.grpc_memory_quota_bytes =
      absl::GetFlag(FLAGS_grpc_memory_quota_bytes);
  if (options.grpc_memory_quota_bytes == 0) {
    options.grpc_memory_quota_bytes = int64_t{4} * options.max_message_bytes;
  }
  if (options.admin_limits.max_upload_bytes < 1 ||
      options.admin_limits.max_inflight_upload_bytes < 1 ||
      options.admin_limits.max_pending < 1) {
    return Fail(
        "--max-upload-bytes, --max-inflight-upload-bytes and "
        "--max-pending-admin-rpcs must be positive");
  }
  if (options.admin_limits.max_inflight_upload_bytes <
      options.admin_limits.max_upload_bytes) {
    return Fail(
        "--max-inflight-upload-bytes must be at least --max-upload-bytes");
  }
  if (options.grpc_memory_quota_bytes < 0) {
    return Fail("--grpc-memory-quota-bytes must be >= 0");
  }
  if (options.threads < 0 || options.max_concurrent_batches < 0 ||
      absl::GetFlag(FLAGS_shutdown_grace_secs) < 0) {
    return Fail(
        "--threads, --max-concurrent-batches and --shutdown-grace-secs must "
        "be >= 0");
  }
  if (options.grpc_port < 0 || options.grpc_port > 65535 ||
      options.metrics_port < -1 || options.metrics_port > 65535) {
    return Fail(
        "--grpc-port must be in [0, 65535] and --metrics-port in [-1, 65535]");
  }
  flexor::server::ModelConfigDefaults& defaults = options.model_defaults;
  defaults.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  absl::StatusOr<flexor::ActivationPrecision> precision =
      flexor::ParseActivationPrecision(
          absl::GetFlag(FLAGS_activation_precision));
  if (!precision.ok()) {
    return Fail(
        absl::StrCat("--activation-precision: ", precision.status().message()));
  }
  defaults.activations = *precision;
  defaults.dynamic_batching = absl::GetFlag(FLAGS_dynamic_batching);
  defaults.max_queue_delay =
      absl::Microseconds(absl::GetFlag(FLAGS_max_queue_delay_us));
  defaults.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  if (defaults.max_batch_size < 1 || defaults.max_batch_size > 4096 ||
      defaults.max_queue_size < 1 ||
      absl::GetFlag(FLAGS_max_queue_delay_us) < 0) {
    return Fail(
        "--max-batch-size must be in [1, 4096], --max-queue-size >= 1 and "
        "--max-queue-delay-us >= 0");
  }
  absl::StatusOr<flexor::server::VersionPolicySpec> policy =
      flexor::server::VersionPolicySpec::Parse(
          absl::GetFlag(FLAGS_version_policy));
  if (!policy.ok()) return Fail(std::string(policy.status().message()));
  defaults.version_policy = *policy;
  absl::StatusOr<flexor::server::PerModelHistograms> per_model =
      flexor::server::PerModelHistograms::Parse(
          absl::GetFlag(FLAGS_per_model_histograms));
  if (!per_model.ok()) return Fail(std::string(per_model.status().message()));
  options.per_model_histograms = *std::move(per_model);
  options.modelmesh.enabled = absl::GetFlag(FLAGS_modelmesh);
  options.modelmesh.model_root = absl::GetFlag(FLAGS_modelmesh_model_root);
  options.modelmesh.capacity_bytes =
      absl::GetFlag(FLAGS_modelmesh_capacity_bytes);
  options.modelmesh.default_model_size_bytes =
      absl::GetFlag(FLAGS_modelmesh_default_model_size_bytes);
  options.modelmesh.load_timeout_ms =
      absl::GetFlag(FLAGS_modelmesh_load_timeout_ms);
  if (options.modelmesh.enabled) {
    if (options.control_mode != ModelControlMode::kExplicit) {
      return Fail("--modelmesh needs --model-control-mode=explicit");
    }
    if (options.modelmesh.model_root.empty() ||
        options.modelmesh.model_root[0] != '/' ||
        options.modelmesh.capacity_bytes <= 0 ||
        options.modelmesh.default_model_size_bytes <= 0 ||
        options.modelmesh.load_timeout_ms <= 0) {
      return Fail(
          "--modelmesh-model-root must be an absolute path and "
          "--modelmesh-capacity-bytes, --modelmesh-default-model-size-bytes "
          "and --modelmesh-load-timeout-ms positive");
    }
  }

  // Signals are taken synchronously by this thread (sigwait), so they are
  // blocked before any other thread exists and inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  FLEXOR_LOG(INFO) << "starting: repository " << options.model_repository
                   << ", model control mode " << mode << ", model file access "
                   << flexor::ModelFileAccessName(options.model_file_access);
  absl::StatusOr<std::unique_ptr<flexor::server::Server>> server =
      flexor::server::Server::Start(options);
  if (!server.ok()) {
    FLEXOR_LOG(ERROR) << "cannot start: " << server.status();
    return 1;
  }
  const int grpc_port = (*server)->grpc_port();
  const int metrics_port = (*server)->metrics_port();
  const std::string ports =
      absl::StrCat("grpc=", grpc_port, "\nmetrics=", metrics_port, "\n");
  FLEXOR_LOG(INFO) << "live: gRPC (KServe v2, health, reflection) on "
                   << options.address << ":" << grpc_port;
  if (metrics_port >= 0) {
    FLEXOR_LOG(INFO) << "metrics on http://" << options.metrics_address << ":"
                     << metrics_port << "/metrics";
  }
  const std::string listening_file = absl::GetFlag(FLAGS_listening_port_file);
  if (!listening_file.empty()) {
    absl::Status s = flexor::WriteFileAtomically(listening_file, ports);
    if (!s.ok()) {
      FLEXOR_LOG(ERROR) << "cannot write --listening-port-file: " << s;
    }
  }
  // Startup loads run in the background; a signal meanwhile stops them.
  int signal_number = 0;
  const timespec tick = {0, 50 * 1000 * 1000};
  while (!(*server)->WaitUntilReady(absl::ZeroDuration())) {
    signal_number = sigtimedwait(&signals, nullptr, &tick);
    if (signal_number > 0) break;
    signal_number = 0;
  }
  if (signal_number == 0) {
    FLEXOR_LOG(INFO) << "ready: startup models loaded";
    const std::string port_file = absl::GetFlag(FLAGS_port_file);
    if (!port_file.empty()) {
      absl::Status s = flexor::WriteFileAtomically(port_file, ports);
      if (!s.ok()) FLEXOR_LOG(ERROR) << "cannot write --port-file: " << s;
    }
    sigwait(&signals, &signal_number);
  }
  FLEXOR_LOG(INFO) << "received "
                   << (signal_number == SIGTERM ? "SIGTERM" : "SIGINT")
                   << "; shutting down gracefully";
  (*server)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_secs)));
  server->reset();
  FLEXOR_LOG(INFO) << "exiting";
  return 0;
}
