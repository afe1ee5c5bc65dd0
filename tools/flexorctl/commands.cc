#include "tools/flexorctl/commands.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/atomic_file.h"
#include "engine/format/model_signature.h"
#include "engine/format/model_writer.h"
#include "engine/graph/model.h"
#include "proto/health.grpc.pb.h"
#include "tools/flexorctl/bench.h"
#include "tools/flexorctl/client.h"
#include "tools/flexorctl/idx.h"
#include "tools/flexorctl/mesh.h"
#include "tools/flexorctl/model_bench.h"
#include "tools/flexorctl/model_eval.h"

namespace flexor::tools {
namespace {

constexpr const char* kFashionClasses[] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

absl::Status NeedArgs(const std::vector<std::string>& args, size_t min,
                      size_t max, const char* usage) {
  if (args.size() < min || args.size() > max) {
    return absl::InvalidArgumentError(absl::StrCat("usage: flexorctl ", usage));
  }
  return absl::OkStatus();
}

// The model to use: --model, or the only one the server serves.
absl::StatusOr<std::string> ResolveModel(const CommandContext& ctx,
                                         Client& client) {
  if (!ctx.model.empty()) return ctx.model;
  inference::RepositoryIndexRequest request;
  request.set_ready(true);
  absl::StatusOr<inference::RepositoryIndexResponse> index = client.Call(
      &inference::GRPCInferenceService::Stub::RepositoryIndex, request);
  if (!index.ok()) return index.status();
  std::vector<std::string> names;
  for (const auto& m : index->models()) {
    if (std::find(names.begin(), names.end(), m.name()) == names.end()) {
      names.push_back(m.name());
    }
  }
  if (names.size() == 1) return names[0];
  return absl::InvalidArgumentError(
      absl::StrCat("pass --model; the server serves ", names.size(),
                   " models (", absl::StrJoin(names, ", "), ")"));
}

struct Input {
  std::string datatype;        // FP32 / UINT8
  std::vector<int64_t> shape;  // with batch
  std::string raw;             // little-endian bytes
};

// Builds the ModelInfer request for `samples` rows taken from `input`.
inference::ModelInferRequest MakeRequest(const CommandContext& ctx,
                                         const std::string& model,
                                         const std::string& input_name,
                                         const Input& input) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  request.set_model_version(ctx.model_version);
  auto* tensor = request.add_inputs();
  tensor->set_name(input_name);
  tensor->set_datatype(input.datatype);
  for (int64_t d : input.shape) tensor->add_shape(d);
  if (ctx.typed) {
    if (input.datatype == "UINT8") {
      for (unsigned char c : input.raw) {
        tensor->mutable_contents()->add_uint_contents(c);
      }
    } else {
      const size_t n = input.raw.size() / sizeof(float);
      auto* f = tensor->mutable_contents()->mutable_fp32_contents();
      f->Resize(static_cast<int>(n), 0.0f);
      std::memcpy(f->mutable_data(), input.raw.data(), n * sizeof(float));
    }
  } else {
    request.add_raw_input_contents(input.raw);
  }
  return request;
}

// Images [index, index + n) of an IDX file as one input.
absl::StatusOr<Input> ImagesInput(const CommandContext& ctx,
                                  const IdxTensor& images, int64_t first,
                                  int64_t n,
                                  const inference::ModelMetadataResponse& md) {
  if (first < 0 || first + n > images.items()) {
    return absl::OutOfRangeError(
        absl::StrCat("images [", first, ", ", first + n,
                     ") are outside the file's ", images.items()));
  }
  Input input;
  input.shape.push_back(n);
  const auto& model_shape = md.inputs(0).shape();
  int64_t model_elems = 1;
  for (int i = 1; i < model_shape.size(); ++i) {
    input.shape.push_back(model_shape[i]);
    model_elems *= model_shape[i];
  }
  if (model_elems != images.item_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model takes ", model_elems, " values per sample, the images have ",
        images.item_size()));
  }
  const uint8_t* src = images.data.data() + first * images.item_size();
  const int64_t total = n * images.item_size();
  if (ctx.uint8) {
    input.datatype = "UINT8";
    input.raw.assign(reinterpret_cast<const char*>(src), total);
  } else {
    input.datatype = "FP32";
    input.raw.resize(total * sizeof(float));
    float* dst = reinterpret_cast<float*>(input.raw.data());
    for (int64_t i = 0; i < total; ++i) dst[i] = static_cast<float>(src[i]);
  }
  return input;
}

absl::StatusOr<std::vector<float>> OutputValues(
    const inference::ModelInferResponse& response) {
  if (response.outputs_size() != 1) {
    return absl::InternalError("the response has no single output");
  }
  std::vector<float> values;
  if (response.raw_output_contents_size() == 1) {
    const std::string& raw = response.raw_output_contents(0);
    values.resize(raw.size() / sizeof(float));
    std::memcpy(values.data(), raw.data(), values.size() * sizeof(float));
  } else {
    const auto& f = response.outputs(0).contents().fp32_contents();
    values.assign(f.begin(), f.end());
  }
  return values;
}

absl::Status Infer(const CommandContext& ctx) {
  Client client(ctx.server, ctx.timeout, ctx.auth);
  absl::StatusOr<std::string> model = ResolveModel(ctx, client);
  if (!model.ok()) return model.status();
  inference::ModelMetadataRequest md_request;
  md_request.set_name(*model);
  md_request.set_version(ctx.model_version);
  absl::StatusOr<inference::ModelMetadataResponse> md = client.Call(
      &inference::GRPCInferenceService::Stub::ModelMetadata, md_request);
  if (!md.ok()) return md.status();

  IdxTensor images, labels;
  std::vector<Input> inputs;
  std::vector<int64_t> firsts;
  if (!ctx.raw.empty()) {
    absl::StatusOr<std::string> bytes = ReadFile(ctx.raw);
    if (!bytes.ok()) return bytes.status();
    int64_t per_sample = 1;
    for (int i = 1; i < md->inputs(0).shape_size(); ++i) {
      per_sample *= md->inputs(0).shape(i);
    }
    const int64_t sample_bytes = per_sample * 4;
    if (bytes->empty() || bytes->size() % sample_bytes != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          ctx.raw, " has ", bytes->size(), " bytes, not a multiple of one ",
          "FP32 sample (", sample_bytes, " bytes)"));
    }
    Input input;
    input.datatype = "FP32";
    input.shape.push_back(static_cast<int64_t>(bytes->size()) / sample_bytes);
    for (int i = 1; i < md->inputs(0).shape_size(); ++i) {
      input.shape.push_back(md->inputs(0).shape(i));
    }
    input.raw = *std::move(bytes);
    inputs.push_back(std::move(input));
    firsts.push_back(-1);
  } else {
    if (ctx.images.empty()) {
      return absl::InvalidArgumentError("pass --images=IDX or --raw=FILE");
    }
    absl::StatusOr<IdxTensor> read = ReadIdx(ctx.images);
    if (!read.ok()) return read.status();
    images = *std::move(read);
    if (!ctx.labels.empty()) {
      absl::StatusOr<IdxTensor> l = ReadIdx(ctx.labels);
      if (!l.ok()) return l.status();
      labels = *std::move(l);
    }
    for (int64_t first = ctx.index; first < ctx.index + ctx.count;
         first += ctx.batch) {
      const int64_t n =
          std::min<int64_t>(ctx.batch, ctx.index + ctx.count - first);
      absl::StatusOr<Input> input = ImagesInput(ctx, images, first, n, *md);
      if (!input.ok()) return input.status();
      inputs.push_back(*std::move(input));
      firsts.push_back(first);
    }
  }
  int64_t correct = 0, total = 0;
  for (size_t r = 0; r < inputs.size(); ++r) {
    inference::ModelInferRequest request =
        MakeRequest(ctx, *model, md->inputs(0).name(), inputs[r]);
    absl::StatusOr<inference::ModelInferResponse> response = client.Call(
        &inference::GRPCInferenceService::Stub::ModelInfer, request);
    if (!response.ok()) return response.status();
    absl::StatusOr<std::vector<float>> values = OutputValues(*response);
    if (!values.ok()) return values.status();
    const int64_t n = inputs[r].shape[0];
    const int64_t classes = static_cast<int64_t>(values->size()) / n;
    for (int64_t i = 0; i < n; ++i) {
      const float* p = values->data() + i * classes;
      const int64_t predicted = std::max_element(p, p + classes) - p;
      const int64_t image = firsts[r] < 0 ? i : firsts[r] + i;
      const bool has_label =
          firsts[r] >= 0 && !labels.data.empty() && image < labels.items();
      const int label = has_label ? labels.data[image] : -1;
      ++total;
      if (has_label && label == predicted) ++correct;
      const bool fashion = classes == 10;
      if (ctx.json) {
        std::cout << absl::StrFormat(
            "{\"model\": \"%s\", \"version\": \"%s\", \"sample\": %d, "
            "\"predicted\": %d, \"label\": %d, \"probabilities\": [%s]}\n",
            response->model_name(), response->model_version(), image, predicted,
            label,
            absl::StrJoin(p, p + classes, ", ", [](std::string* out, float v) {
              absl::StrAppend(out, absl::StrFormat("%.6g", v));
            }));
      } else {
        std::cout << absl::StrFormat(
            "%s v%s sample %d: predicted %d%s%s\n", response->model_name(),
            response->model_version(), image, predicted,
            fashion ? absl::StrCat(" (", kFashionClasses[predicted], ")") : "",
            has_label
                ? absl::StrCat(
                      ", label ", label,
                      fashion ? absl::StrCat(" (", kFashionClasses[label], ")")
                              : "")
                : "");
        for (int64_t c = 0; c < classes; ++c) {
          std::cout << absl::StrFormat("    %2d %-12s %.4f\n", c,
                                       fashion ? kFashionClasses[c] : "", p[c]);
        }
      }
    }
  }
  if (!labels.data.empty() && !ctx.json && total > 1) {
    std::cout << absl::StrFormat("accuracy %d/%d = %.2f%%\n", correct, total,
                                 100.0 * correct / total);
  }
  return absl::OkStatus();
}

absl::Status List(const CommandContext& ctx) {
  Client client(ctx.server, ctx.timeout, ctx.auth);
  absl::StatusOr<inference::RepositoryIndexResponse> index =
      client.Call(&inference::GRPCInferenceService::Stub::RepositoryIndex,
                  inference::RepositoryIndexRequest());
  if (!index.ok()) return index.status();
  for (const auto& m : index->models()) {
    if (ctx.json) {
      std::cout << absl::StrFormat(
          "{\"name\": \"%s\", \"version\": \"%s\", \"state\": \"%s\", "
          "\"reason\": \"%s\"}\n",
          m.name(), m.version(), m.state(), absl::CEscape(m.reason()));
    } else {
      std::cout << absl::StrFormat("%-24s %-8s %-12s %s\n", m.name(),
                                   m.version().empty() ? "-" : m.version(),
                                   m.state(), m.reason());
    }
  }
  return absl::OkStatus();
}

absl::Status Load(const CommandContext& ctx,
                  const std::vector<std::string>& args) {
  if (absl::Status s = NeedArgs(args, 2, 3, "load MODEL [FILE]"); !s.ok()) {
    return s;
  }
  inference::RepositoryModelLoadRequest request;
  request.set_model_name(args[1]);
  if (args.size() == 3) {
    absl::StatusOr<std::string> bytes = ReadFile(args[2]);
    if (!bytes.ok()) return bytes.status();
    (*request.mutable_parameters())[absl::StrCat("file:", ctx.version,
                                                 "/model.flexor")]
        .set_bytes_param(*bytes);
    // A detached signature next to the file travels with it, for servers
    // that require signed models.
    absl::StatusOr<std::string> sig =
        ReadSmallFile(args[2] + kSignatureSuffix, kMaxSignatureFileBytes);
    if (sig.ok()) {
      (*request.mutable_parameters())[absl::StrCat("file:", ctx.version,
                                                   "/model.flexor",
                                                   kSignatureSuffix)]
          .set_bytes_param(*sig);
      std::cerr << "flexorctl load: sending signature " << args[2]
                << kSignatureSuffix << "\n";
    } else if (!absl::IsNotFound(sig.status())) {
      return sig.status();
    }
  }
  if (!ctx.config.empty()) {
    absl::StatusOr<std::string> text = ReadFile(ctx.config);
    if (!text.ok()) return text.status();
    (*request.mutable_parameters())["config"].set_string_param(*text);
  }
  Client client(ctx.server, ctx.timeout, ctx.auth);
  absl::StatusOr<inference::RepositoryModelLoadResponse> response = client.Call(
      &inference::GRPCInferenceService::Stub::RepositoryModelLoad, request);
  if (!response.ok()) return response.status();
  std::cout << "model '" << args[1] << "' loaded"
            << (args.size() == 3
                    ? absl::StrCat(" (published ", args[2], " as version ",
                                   ctx.version, ")")
                    : "")
            << "\n";
  return absl::OkStatus();
}

absl::Status Unload(const CommandContext& ctx,
                    const std::vector<std::string>& args) {
  if (absl::Status s = NeedArgs(args, 2, 2, "unload MODEL"); !s.ok()) return s;
  Client client(ctx.server, ctx.timeout, ctx.auth);
  inference::RepositoryModelUnloadRequest request;
  request.set_model_name(args[1]);
  absl::StatusOr<inference::RepositoryModelUnloadResponse> response =
      client.Call(&inference::GRPCInferenceService::Stub::RepositoryModelUnload,
                  request);
  if (!response.ok()) return response.status();
  std::cout << "model '" << args[1] << "' unloaded\n";
  return absl::OkStatus();
}

absl::Status Status(const CommandContext& ctx,
                    const std::vector<std::string>& args) {
  if (absl::Status s = NeedArgs(args, 1, 2, "status [MODEL]"); !s.ok()) {
    return s;
  }
  Client client(ctx.server, ctx.timeout, ctx.auth);
  using Stub = inference::GRPCInferenceService::Stub;
  absl::StatusOr<inference::ServerLiveResponse> live =
      client.Call(&Stub::ServerLive, inference::ServerLiveRequest());
  if (!live.ok()) return live.status();
  absl::StatusOr<inference::ServerReadyResponse> ready =
      client.Call(&Stub::ServerReady, inference::ServerReadyRequest());
  if (!ready.ok()) return ready.status();
  absl::StatusOr<inference::ServerMetadataResponse> md =
      client.Call(&Stub::ServerMetadata, inference::ServerMetadataRequest());
  if (!md.ok()) return md.status();
  std::cout << absl::StrFormat(
      "server %s %s at %s: live=%d ready=%d "
      "extensions=[%s]\n",
      md->name(), md->version(), ctx.server, live->live(), ready->ready(),
      absl::StrJoin(md->extensions(), ", "));
  inference::ModelStatisticsRequest request;
  request.set_name(args.size() == 2 ? args[1] : ctx.model);
  absl::StatusOr<inference::ModelStatisticsResponse> stats =
      client.Call(&Stub::ModelStatistics, request);
  if (!stats.ok()) return stats.status();
  for (const auto& m : stats->model_stats()) {
    const auto& s = m.inference_stats();
    auto avg_us = [](const inference::StatisticDuration& d) {
      return d.count() == 0 ? 0.0 : d.ns() / 1000.0 / d.count();
    };
    std::cout << absl::StrFormat(
        "  %s v%s: %d samples in %d executions; requests ok %d (avg %.0f us), "
        "failed %d; avg queue %.0f us, compute %.0f us; %d bytes resident\n",
        m.name(), m.version(), m.inference_count(), m.execution_count(),
        s.success().count(), avg_us(s.success()), s.fail().count(),
        avg_us(s.queue()), avg_us(s.compute_infer()),
        m.memory_usage_size() > 0 ? m.memory_usage(0).byte_size() : 0);
    if (ctx.json) continue;
    for (const auto& b : m.batch_stats()) {
      std::cout << absl::StrFormat(
          "      batch %3d: %d executions, avg %.0f us\n", b.batch_size(),
          b.compute_infer().count(), avg_us(b.compute_infer()));
    }
  }
  return absl::OkStatus();
}

absl::Status Bench(const CommandContext& ctx) {
  Client client(ctx.server, ctx.timeout, ctx.auth);
  BenchOptions options;
  if (ctx.rpc == "live") {
    options.rpc = BenchOptions::Rpc::kLive;
  } else if (ctx.rpc == "index") {
    options.rpc = BenchOptions::Rpc::kIndex;
  } else if (ctx.rpc != "infer") {
    return absl::InvalidArgumentError("--rpc must be infer, live or index");
  }
  options.duration = ctx.duration;
  options.max_requests = ctx.requests;
  options.warmup = ctx.warmup;
  options.timeout = ctx.timeout;
  if (ctx.zipf_models > 0 && ctx.spread_models > 0) {
    return absl::InvalidArgumentError(
        "--zipf-models and --spread-models: one or the other");
  }
  if (ctx.zipf_models > 0) {
    options.zipf_s = ctx.zipf_s;
    if (ctx.zipf_format.empty() || ctx.zipf_format.size() > 64 ||
        !(ctx.zipf_s > 0)) {
      return absl::InvalidArgumentError(
          "--zipf-models needs --zipf-s > 0 and a --zipf-model-format");
    }
    // One "%d" or "%0<width>d" in the format.
    const std::string& f = ctx.zipf_format;
    const size_t pct = f.find('%');
    size_t end = pct == std::string::npos ? pct : pct + 1;
    while (end != std::string::npos && end < f.size() &&
           std::isdigit(static_cast<unsigned char>(f[end]))) {
      ++end;
    }
    if (end == std::string::npos || end >= f.size() || f[end] != 'd' ||
        f.find('%', end) != std::string::npos) {
      return absl::InvalidArgumentError(
          "--zipf-model-format must hold one %d or %0<width>d");
    }
    int width = 0;
    const std::string digits = f.substr(pct + 1, end - pct - 1);
    if (!digits.empty() && (!absl::SimpleAtoi(digits, &width) || width > 32)) {
      return absl::InvalidArgumentError("--zipf-model-format: bad width");
    }
    for (int k = 1; k <= ctx.zipf_models; ++k) {
      std::string number = absl::StrCat(k);
      if (static_cast<int>(number.size()) < width) {
        number.insert(0, static_cast<size_t>(width) - number.size(), '0');
      }
      options.models.push_back(
          absl::StrCat(f.substr(0, pct), number, f.substr(end + 1)));
    }
  }
  inference::ModelInferRequest request;
  if (options.rpc == BenchOptions::Rpc::kInfer) {
    absl::StatusOr<std::string> model =
        options.models.empty() ? ResolveModel(ctx, client)
                               : absl::StatusOr<std::string>(options.models[0]);
    if (ctx.spread_models > 0) {
      // The first N ready models by name; they must take the same input.
      inference::RepositoryIndexRequest index_request;
      index_request.set_ready(true);
      absl::StatusOr<inference::RepositoryIndexResponse> index =
          client.Call(&inference::GRPCInferenceService::Stub::RepositoryIndex,
                      index_request);
      if (!index.ok()) return index.status();
      std::vector<std::string> names;
      for (const auto& m : index->models()) names.push_back(m.name());
      std::sort(names.begin(), names.end());
      names.erase(std::unique(names.begin(), names.end()), names.end());
      if (static_cast<int>(names.size()) < ctx.spread_models) {
        return absl::FailedPreconditionError(
            absl::StrCat("--spread-models=", ctx.spread_models,
                         ": the server "
                         "has only ",
                         names.size(), " ready models"));
      }
      names.resize(static_cast<size_t>(ctx.spread_models));
      options.models = names;
      model = names.front();
    }
    if (!model.ok()) return model.status();
    inference::ModelMetadataRequest md_request;
    md_request.set_name(*model);
    md_request.set_version(ctx.model_version);
    absl::StatusOr<inference::ModelMetadataResponse> md = client.Call(
        &inference::GRPCInferenceService::Stub::ModelMetadata, md_request);
    if (!md.ok()) return md.status();
    IdxTensor images;
    if (!ctx.images.empty()) {
      absl::StatusOr<IdxTensor> read = ReadIdx(ctx.images);
      if (!read.ok()) return read.status();
      images = *std::move(read);
    } else {  // Random pixels of the model's input shape.
      int64_t per_sample = 1;
      images.shape.push_back(ctx.batch);
      for (int i = 1; i < md->inputs(0).shape_size(); ++i) {
        per_sample *= md->inputs(0).shape(i);
        images.shape.push_back(md->inputs(0).shape(i));
      }
      std::mt19937 rng(42);
      images.data.resize(static_cast<size_t>(per_sample * ctx.batch));
      for (auto& v : images.data) v = static_cast<uint8_t>(rng());
    }
    absl::StatusOr<Input> input =
        ImagesInput(ctx, images, ctx.index, ctx.batch, *md);
    if (!input.ok()) return input.status();
    request = MakeRequest(ctx, *model, md->inputs(0).name(), *input);
  }
  bool failed = false;
  for (int concurrency : ctx.concurrency) {
    options.concurrency = concurrency;
    BenchResult result = RunBench(&client.stub(), request, options);
    std::cout << (ctx.json ? result.ToJson() : result.ToText()) << std::endl;
    failed |= !result.errors.empty() || result.ok == 0;
  }
  if (failed) {
    return absl::UnavailableError("some requests failed (see errors above)");
  }
  return absl::OkStatus();
}

// model sign --key=KEY FILE: writes FILE.sig. model verify --pubkey=PUB[,..]
// FILE: checks FILE.sig.
absl::Status SignOrVerify(const CommandContext& ctx, const std::string& verb,
                          const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  const std::string sig_path = path + kSignatureSuffix;
  if (verb == "sign") {
    if (ctx.key.empty()) {
      return absl::InvalidArgumentError(
          "model sign needs --key=PRIVATE_KEY.pem (flexorctl keygen)");
    }
    absl::StatusOr<ModelSigner> signer =
        ModelSigner::FromPrivateKeyFile(ctx.key);
    if (!signer.ok()) return signer.status();
    absl::StatusOr<std::string> sig = signer->Sign(*bytes);
    if (!sig.ok()) return sig.status();
    if (absl::Status s = WriteFileAtomically(sig_path, *sig); !s.ok()) {
      return s;
    }
    std::cout << sig_path << ": signed with key " << signer->key_id() << "\n";
    return absl::OkStatus();
  }
  if (ctx.pubkeys.empty()) {
    return absl::InvalidArgumentError(
        "model verify needs --pubkey=PUBLIC_KEY.pem[,...]");
  }
  absl::StatusOr<ModelVerifier> verifier =
      ModelVerifier::FromPublicKeyFiles(ctx.pubkeys);
  if (!verifier.ok()) return verifier.status();
  absl::StatusOr<std::string> sig =
      ReadSmallFile(sig_path, kMaxSignatureFileBytes);
  if (!sig.ok()) return sig.status();
  if (absl::Status s = verifier->Verify(*bytes, *sig); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  }
  std::cout << path << ": signature OK\n";
  return absl::OkStatus();
}

// keygen --out=PREFIX: PREFIX.pem (private, mode 0600) and PREFIX.pub.pem.
absl::Status Keygen(const CommandContext& ctx) {
  const std::string prefix = ctx.out.empty() ? "flexor-signing" : ctx.out;
  absl::StatusOr<SigningKeyPair> pair = GenerateSigningKeyPair();
  if (!pair.ok()) return pair.status();
  const std::string private_path = prefix + ".pem";
  const std::string public_path = prefix + ".pub.pem";
  for (const std::string& p : {private_path, public_path}) {
    if (std::ifstream(p).good()) {
      return absl::AlreadyExistsError(
          absl::StrCat(p, " exists; not overwriting a key"));
    }
  }
  if (absl::Status s = WriteFileAtomically(private_path, pair->private_pem);
      !s.ok()) {
    return s;
  }
  chmod(private_path.c_str(), 0600);
  if (absl::Status s = WriteFileAtomically(public_path, pair->public_pem);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<ModelSigner> signer =
      ModelSigner::FromPrivatePem(pair->private_pem);
  std::cout << "private key " << private_path << " (keep secret), public key "
            << public_path << ", key id "
            << (signer.ok() ? signer->key_id() : "?") << "\n";
  return absl::OkStatus();
}

absl::Status ModelCommand(const CommandContext& ctx,
                          const std::vector<std::string>& args) {
  if (args.size() == 3 && (args[1] == "sign" || args[1] == "verify")) {
    return SignOrVerify(ctx, args[1], args[2]);
  }
  if (args.size() != 3 || (args[1] != "inspect" && args[1] != "validate" &&
                           args[1] != "bench" && args[1] != "eval")) {
    return absl::InvalidArgumentError(
        "usage: flexorctl model inspect|validate|bench|eval|sign|verify FILE");
  }
  if (args[1] == "eval") {
    ModelEvalOptions options;
    options.images = ctx.images;
    options.labels = ctx.labels;
    options.activations = ctx.activations;
    options.layer_activations = ctx.layer_activations;
    options.sensitivity = ctx.sensitivity;
    options.target_agreement = ctx.target_agreement;
    options.json = ctx.json;
    return ModelEval(args[2], options);
  }
  if (args[1] == "bench") {
    ModelBenchOptions options;
    options.batches = ctx.batches;
    options.threads = ctx.threads;
    options.profile = ctx.profile;
    options.json = ctx.json;
    options.min_time = ctx.min_time;
    options.activations = ctx.activations;
    options.layer_activations = ctx.layer_activations;
    return ModelBench(args[2], options);
  }
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Load(args[2]);
  if (!model.ok()) return model.status();
  const ModelStats& s = (*model)->stats();
  if (args[1] == "validate") {
    std::cout << absl::StrFormat(
        "%s: OK (model '%s', %d layers, %.3f bits/weight, %d bytes)\n", args[2],
        (*model)->name(), s.num_layers, s.bits_per_weight, s.file_bytes);
    return absl::OkStatus();
  }
  std::cout << (*model)->Describe();
  std::cout << absl::StrFormat(
      "\nfile %d bytes; compressed weights %d bytes; dense FP32 equivalent "
      "%d bytes (%.1fx); %d weights in %d layers; %.3f bits/weight\n",
      s.file_bytes, s.compressed_weight_bytes, s.dense_fp32_bytes,
      s.compressed_weight_bytes > 0
          ? static_cast<double>(s.dense_fp32_bytes) / s.compressed_weight_bytes
          : 0.0,
      s.num_weights, s.num_layers, s.bits_per_weight);
  return absl::OkStatus();
}

// grpc.health.v1 Check: "" is the whole server, a model name that model.
// Anything but SERVING is an error, so the exit code can drive a container
// HEALTHCHECK or a load balancer probe.
absl::Status Health(const CommandContext& ctx,
                    const std::vector<std::string>& args) {
  if (absl::Status s = NeedArgs(args, 1, 2, "health [SERVICE]"); !s.ok()) {
    return s;
  }
  const std::string service = args.size() == 2 ? args[1] : ctx.model;
  Client client(ctx.server, ctx.timeout, ctx.auth);
  auto stub = grpc::health::v1::Health::NewStub(client.channel());
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + ctx.timeout));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  const std::string what =
      service.empty() ? "server" : absl::StrCat("service '", service, "'");
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("health check of ", what, " at ", ctx.server,
                     " failed: ", status.error_message()));
  }
  const std::string state =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
          response.status());
  if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError(absl::StrCat(what, " is ", state));
  }
  std::cout << what << " at " << ctx.server << ": " << state << "\n";
  return absl::OkStatus();
}

}  // namespace

absl::Status RunCommand(const CommandContext& ctx,
                        const std::vector<std::string>& args) {
  const std::string& command = args[0];
  if (command == "infer") return Infer(ctx);
  if (command == "list") return List(ctx);
  if (command == "load") return Load(ctx, args);
  if (command == "unload") return Unload(ctx, args);
  if (command == "status") return Status(ctx, args);
  if (command == "health") return Health(ctx, args);
  if (command == "bench") return Bench(ctx);
  if (command == "model") return ModelCommand(ctx, args);
  if (command == "keygen") return Keygen(ctx);
  if (command == "mesh") return MeshCommand(ctx, args);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown command '", command, "'; see flexorctl --help"));
}

}  // namespace flexor::tools
