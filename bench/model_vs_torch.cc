// Whole models: the engine against the same network in FP32 libtorch, in one
// process, same threads, same inputs. Prints a ratio table (libtorch time /
// engine time; > 1: the engine is faster), with libtorch timed before and
// after the engine so its drift shows (spread).
//
//   build/bench/model_vs_torch [--models=lenet,mlp,resnet] [--batches=...]
//       [--threads=1,2] [--min_time_s=0.5] [--lenet=FILE]
//
// lenet is the shipped model file (trained, FleXOR 0.8 bit); mlp and resnet
// are the trainer's architectures as flexor_train makes them by default
// (trainer::DefaultArchConfig: float32 first and last layers for resnet, last
// only for mlp), with FleXOR 0.8-bit weights at their random initialisation
// (speed does not depend on the values).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/torch_net.h"
#include "engine/format/model_file.h"
#include "engine/graph/model.h"
#include "engine/kernels/matmul.h"
#include "tbb/task_arena.h"
#include "trainer/models.h"

ABSL_FLAG(std::string, models, "lenet,mlp,resnet", "Models to compare.");
ABSL_FLAG(std::string, batches, "1,8,32,128", "Batch sizes.");
ABSL_FLAG(std::string, threads, "", "Thread counts (default 1 and all).");
ABSL_FLAG(double, min_time_s, 0.5, "Seconds per measurement.");
ABSL_FLAG(std::string, activations, "fp32,int8",
          "Engine activation precisions to compare (fp32, int8, int16: the "
          "per-model activation_precision choice; mixed: int8 with "
          "--mixed_layers set apart, for the models that have them).");
ABSL_FLAG(std::string, mixed_layers, "block1_conv1=int16",
          "Layers set apart from int8 in the 'mixed' rows "
          "(layer_activation_precision; the ResNet's first FleXOR "
          "convolution by default, see docs/performance.md).");
ABSL_FLAG(std::string, save_models, "",
          "Directory to write the compared model files to (for flexorctl "
          "model bench --profile).");
ABSL_FLAG(std::string, lenet,
          FLEXOR_SOURCE_DIR "/models/fashion_lenet/1/model.flexor",
          "The LeNet model file.");

namespace flexor::bench {
namespace {

std::vector<int> ParseList(const std::string& text) {
  std::vector<int> out;
  for (absl::string_view s : absl::StrSplit(text, ',')) {
    int v = 0;
    if (absl::SimpleAtoi(s, &v) && v > 0) out.push_back(v);
  }
  return out;
}

// Median seconds per call of `fn` over at least `min_time`.
double Median(const std::function<void()>& fn, double min_time) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) fn();
  std::vector<double> runs;
  const auto until = Clock::now() + std::chrono::duration<double>(min_time);
  while (runs.size() < 5 || Clock::now() < until) {
    const auto start = Clock::now();
    fn();
    runs.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

absl::StatusOr<std::string> TrainerModelBytes(trainer::Arch arch,
                                              const std::string& name) {
  // What flexor_train makes by default (for the MLP: a FleXOR first layer).
  trainer::ArchConfig config = trainer::DefaultArchConfig(arch);
  config.quant.method = trainer::QuantMethod::kFlexor;
  absl::StatusOr<std::shared_ptr<trainer::Classifier>> clf =
      trainer::MakeClassifier(config);
  if (!clf.ok()) return clf.status();
  (*clf)->eval();
  ModelWriter writer(name);
  trainer::GraphExporter exporter(&writer, /*fold_batchnorm=*/true);
  (*clf)->Export(exporter);
  return writer.Serialize();
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

int Main() {
  torch::NoGradGuard no_grad;
  const double min_time = absl::GetFlag(FLAGS_min_time_s);
  std::vector<int> threads = ParseList(absl::GetFlag(FLAGS_threads));
  if (threads.empty()) {
    threads = {1};
    const int all = static_cast<int>(std::thread::hardware_concurrency());
    if (all > 1) threads.push_back(all);
  }
  const std::vector<int> batches = ParseList(absl::GetFlag(FLAGS_batches));
  std::printf("load average at start: %s; engine kernels: %s; libtorch %s\n",
              LoadAverage().c_str(), SelectedKernelIsaName(), TORCH_VERSION);
  // One row per entry: a precision, and for "mixed" the layers set apart.
  struct Variant {
    std::string label;
    ActivationPrecision precision;
    std::vector<LayerActivations> layers;
  };
  std::vector<Variant> variants;
  const absl::StatusOr<std::vector<LayerActivations>> mixed_layers =
      ParseLayerActivations(absl::GetFlag(FLAGS_mixed_layers));
  if (!mixed_layers.ok()) {
    std::fprintf(stderr, "--mixed_layers: %s\n",
                 std::string(mixed_layers.status().message()).c_str());
    return 2;
  }
  for (absl::string_view a :
       absl::StrSplit(absl::GetFlag(FLAGS_activations), ',')) {
    if (a == "mixed") {
      variants.push_back({"mix", ActivationPrecision::kInt8, *mixed_layers});
      continue;
    }
    const absl::StatusOr<ActivationPrecision> parsed =
        ParseActivationPrecision(a);
    if (!parsed.ok()) {
      std::fprintf(stderr, "--activations: %s\n",
                   std::string(parsed.status().message()).c_str());
      return 2;
    }
    variants.push_back({ActivationPrecisionName(*parsed), *parsed, {}});
  }
  std::printf("%-7s %4s %3s %5s %12s %12s %12s %8s %8s %7s\n", "model", "act",
              "thr", "batch", "torch us/s", "engine us/s", "torch spread",
              "speedup", "top1 agr", "max|d|");
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_models), ',')) {
    absl::StatusOr<std::string> bytes;
    if (name == "lenet") {
      std::ifstream in(absl::GetFlag(FLAGS_lenet), std::ios::binary);
      bytes = std::string(std::istreambuf_iterator<char>(in), {});
    } else if (name == "mlp") {
      bytes = TrainerModelBytes(trainer::Arch::kMlp, "mlp");
    } else if (name == "resnet") {
      bytes = TrainerModelBytes(trainer::Arch::kResNet, "resnet");
    } else {
      std::fprintf(stderr, "unknown model %s\n", std::string(name).c_str());
      return 2;
    }
    if (!bytes.ok()) {
      std::fprintf(stderr, "%s\n", bytes.status().ToString().c_str());
      return 1;
    }
    if (const std::string dir = absl::GetFlag(FLAGS_save_models);
        !dir.empty()) {
      std::ofstream(absl::StrCat(dir, "/", name, ".flexor"), std::ios::binary)
          << *bytes;
    }
    absl::StatusOr<std::shared_ptr<const ModelFile>> file =
        ModelFile::FromBytes(*bytes, std::string(name));
    if (!file.ok()) {
      std::fprintf(stderr, "%s\n", file.status().ToString().c_str());
      return 1;
    }
    absl::StatusOr<std::shared_ptr<const Model>> model = Model::Compile(*file);
    absl::StatusOr<TorchNet> net = TorchNet::FromModelFile(*file);
    if (!model.ok() || !net.ok()) {
      std::fprintf(stderr, "%s %s\n", model.status().ToString().c_str(),
                   net.status().ToString().c_str());
      return 1;
    }
    const Model& engine = **model;
    for (int t : threads) {
      tbb::task_arena arena(t);
      for (int batch : batches) {
        for (const Variant& variant : variants) {
          const absl::StatusOr<std::vector<ActivationPrecision>> steps =
              engine.StepActivations(variant.precision, variant.layers);
          if (!steps.ok()) continue;  // a model without those layers
          torch::manual_seed(batch);
          torch::Tensor input =
              torch::rand({batch, engine.input_size()}) * 255.0f;
          std::vector<float> out(
              static_cast<size_t>(batch * engine.output_size()));
          torch::Tensor torch_out;
          at::set_num_threads(t);
          auto run_torch = [&] { torch_out = net->Forward(input); };
          RunOptions options;
          options.matmul.activations = variant.precision;
          options.step_activations = *steps;
          auto run_engine = [&] {
            arena.execute([&] {
              (void)engine.Run(input.data_ptr<float>(), batch, out.data(),
                               options);
            });
          };
          const double torch_before = Median(run_torch, min_time);
          const double ours = Median(run_engine, min_time);
          const double torch_after = Median(run_torch, min_time);
          const double torch_time = 0.5 * (torch_before + torch_after);
          const double spread = std::abs(torch_before - torch_after) /
                                std::min(torch_before, torch_after);
          // Agreement of the two outputs (same weights; int8 rows carry the
          // activation quantisation error).
          torch::Tensor ours_t =
              torch::from_blob(out.data(), torch_out.sizes(), torch::kFloat32);
          const double max_diff =
              (ours_t - torch_out).abs().max().item<double>();
          const double agree = ours_t.view({batch, -1})
                                   .argmax(1)
                                   .eq(torch_out.view({batch, -1}).argmax(1))
                                   .to(torch::kFloat32)
                                   .mean()
                                   .item<double>();
          std::printf(
              "%-7s %4s %3d %5d %12.1f %12.1f %11.1f%% %7.2fx %7.1f%% %7.1e\n",
              std::string(name).c_str(), variant.label.c_str(), t, batch,
              torch_time * 1e6 / batch, ours * 1e6 / batch, 100 * spread,
              torch_time / ours, 100 * agree, max_diff);
          std::fflush(stdout);
        }
      }
    }
  }
  std::printf("load average at end: %s\n", LoadAverage().c_str());
  return 0;
}

}  // namespace
}  // namespace flexor::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return flexor::bench::Main();
}
