#include "tools/flexorctl/model_bench.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/graph/model.h"
#include "engine/kernels/matmul.h"
#include "tbb/task_arena.h"

namespace flexor::tools {
namespace {

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * v.size()));
  return v[i];
}

struct LayerTotal {
  std::string describe;
  int64_t macs_per_sample = 0;
  double seconds = 0;
  double decrypt_seconds = 0;
};

}  // namespace

absl::Status ModelBench(const std::string& path,
                        const ModelBenchOptions& options) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError("--threads must be at least 1");
  }
  absl::StatusOr<std::shared_ptr<const Model>> loaded = Model::Load(path);
  if (!loaded.ok()) return loaded.status();
  const Model& model = **loaded;
  absl::StatusOr<std::vector<ActivationPrecision>> step_activations =
      model.StepActivations(options.activations, options.layer_activations);
  if (!step_activations.ok()) return step_activations.status();
  tbb::task_arena arena(options.threads);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> pixel(0.0f, 255.0f);
  if (!options.json) {
    std::cout << absl::StrFormat(
        "model %s (%s), kernel ISA %s, %s activations, %d thread(s)\n"
        "%6s %8s %12s %12s %12s %14s\n",
        model.name(), path, SelectedKernelIsaName(),
        ActivationsLabel(options.activations, options.layer_activations),
        options.threads, "batch", "runs", "p50 run us", "p90 run us",
        "us/sample", "samples/s");
  }
  for (int batch : options.batches) {
    if (batch < 1)
      return absl::InvalidArgumentError("batch sizes must be >= 1");
    std::vector<float> input(static_cast<size_t>(batch * model.input_size()));
    for (float& v : input) v = pixel(rng);
    std::vector<float> output(static_cast<size_t>(batch * model.output_size()));
    std::vector<double> runs;
    std::map<int, LayerTotal> layers;  // by step index
    std::vector<std::string> names;
    absl::Status status;
    RunOptions run_options;
    run_options.matmul.activations = options.activations;
    run_options.step_activations = *step_activations;
    arena.execute([&] {
      using Clock = std::chrono::steady_clock;
      for (int i = 0; i < 3 && status.ok(); ++i) {  // warm-up
        status = model.Run(input.data(), batch, output.data(), run_options);
      }
      const auto until =
          Clock::now() + absl::ToChronoNanoseconds(options.min_time);
      std::vector<Model::StepProfile> profile;
      while (status.ok() && (runs.size() < 10 || Clock::now() < until)) {
        const auto start = Clock::now();
        status =
            options.profile
                ? model.RunProfiled(input.data(), batch, output.data(),
                                    &profile, run_options)
                : model.Run(input.data(), batch, output.data(), run_options);
        runs.push_back(
            std::chrono::duration<double>(Clock::now() - start).count());
        for (size_t s = 0; s < profile.size(); ++s) {
          LayerTotal& t = layers[static_cast<int>(s)];
          if (names.size() <= s) names.push_back(profile[s].name);
          t.describe = profile[s].describe;
          t.macs_per_sample = profile[s].macs_per_sample;
          t.seconds += profile[s].seconds;
          t.decrypt_seconds += profile[s].decrypt_seconds;
        }
      }
    });
    if (!status.ok()) return status;
    const double p50 = Percentile(runs, 0.5), p90 = Percentile(runs, 0.9);
    if (options.json) {
      std::cout << absl::StrFormat(
          "{\"model\": \"%s\", \"isa\": \"%s\", \"threads\": %d, \"batch\": "
          "%d, \"runs\": %d, \"p50_us\": %.1f, \"p90_us\": %.1f, "
          "\"us_per_sample\": %.2f, \"samples_per_s\": %.1f}\n",
          model.name(), SelectedKernelIsaName(), options.threads, batch,
          runs.size(), p50 * 1e6, p90 * 1e6, p50 * 1e6 / batch, batch / p50);
    } else {
      std::cout << absl::StrFormat("%6d %8d %12.1f %12.1f %12.2f %14.1f\n",
                                   batch, runs.size(), p50 * 1e6, p90 * 1e6,
                                   p50 * 1e6 / batch, batch / p50);
    }
    if (!options.profile || options.json) continue;
    double total = 0;
    for (const auto& [s, t] : layers) total += t.seconds;
    std::cout << absl::StrFormat("  %-26s %10s %7s %10s %10s  %s\n", "layer",
                                 "us/run", "share", "GFLOP/s", "decrypt us",
                                 "op");
    for (const auto& [s, t] : layers) {
      const double per_run = t.seconds / runs.size();
      const double gflops = t.macs_per_sample > 0 ? 2.0 * t.macs_per_sample *
                                                        batch / per_run / 1e9
                                                  : 0.0;
      const double decrypt = t.decrypt_seconds / runs.size();
      std::cout << absl::StrFormat(
          "  %-26s %10.1f %6.1f%% %10s %10s  %s\n", names[s], per_run * 1e6,
          100.0 * t.seconds / total,
          gflops > 0 ? absl::StrFormat("%.1f", gflops) : std::string("-"),
          decrypt > 0 ? absl::StrFormat("%.1f", decrypt * 1e6)
                      : std::string("-"),
          t.describe);
    }
  }
  return absl::OkStatus();
}

}  // namespace flexor::tools
