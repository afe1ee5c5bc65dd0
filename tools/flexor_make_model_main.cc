// flexor_make_model: writes a model file with random weights (the engine's
// BuildRandomModel) for demos, tests and the memory measurement. The
// architecture matches the trainer's; only the weights are random.
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "base/atomic_file.h"
#include "base/flag_names.h"
#include "engine/testing/random_model.h"

ABSL_FLAG(std::string, out, "", "Output file (written atomically).");
ABSL_FLAG(std::string, name, "random", "Model name in the file's metadata.");
ABSL_FLAG(std::string, arch, "lenet", "mlp, lenet or resnet.");
ABSL_FLAG(std::string, method, "flexor",
          "fp32, binary1, binary2, ternary or flexor.");
ABSL_FLAG(int, n_in, 16, "FleXOR N_in.");
ABSL_FLAG(int, n_out, 20, "FleXOR N_out.");
ABSL_FLAG(int, n_tap, 2, "FleXOR taps per output.");
ABSL_FLAG(int, planes, 1, "Bit planes q.");
ABSL_FLAG(int, width, 1, "Width multiplier of the hidden layers.");
ABSL_FLAG(uint64_t, seed, 1, "Random seed.");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Writes a FleXOR model file with random weights:\n"
      "  flexor_make_model --out=repo/demo/1/model.flexor [--arch=lenet] "
      "[--method=flexor]");
  std::vector<std::string> storage;
  std::vector<char*> args = flexor::NormalizeFlagNames(argc, argv, &storage);
  absl::ParseCommandLine(static_cast<int>(args.size()) - 1, args.data());
  flexor::RandomModelSpec spec;
  spec.name = absl::GetFlag(FLAGS_name);
  const std::string arch = absl::GetFlag(FLAGS_arch);
  if (arch == "mlp") {
    spec.arch = flexor::RandomArch::kMlp;
  } else if (arch == "lenet") {
    spec.arch = flexor::RandomArch::kLeNet;
  } else if (arch == "resnet") {
    spec.arch = flexor::RandomArch::kResNet;
  } else {
    std::cerr << "--arch must be mlp, lenet or resnet\n";
    return 2;
  }
  spec.method = absl::GetFlag(FLAGS_method);
  spec.n_in = absl::GetFlag(FLAGS_n_in);
  spec.n_out = absl::GetFlag(FLAGS_n_out);
  spec.n_tap = absl::GetFlag(FLAGS_n_tap);
  spec.planes = absl::GetFlag(FLAGS_planes);
  spec.width = absl::GetFlag(FLAGS_width);
  spec.seed = absl::GetFlag(FLAGS_seed);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::cerr << "--out is required\n";
    return 2;
  }
  absl::StatusOr<std::string> bytes = flexor::BuildRandomModel(spec);
  if (!bytes.ok()) {
    std::cerr << "flexor_make_model: " << bytes.status() << "\n";
    return 1;
  }
  if (absl::Status s = flexor::WriteFileAtomically(out, *bytes); !s.ok()) {
    std::cerr << "flexor_make_model: " << s << "\n";
    return 1;
  }
  std::cout << "wrote " << out << " (" << bytes->size() << " bytes)\n";
  return 0;
}
