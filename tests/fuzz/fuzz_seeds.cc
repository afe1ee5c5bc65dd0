// Writes the fuzzer's seed corpus: one random model per architecture and
// codec, and the hostile files of the issue 12 audit.
#include <fstream>
#include <iostream>
#include <string>

#include "engine/testing/hostile_models.h"
#include "engine/testing/random_model.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_seeds DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  int n = 0;
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
    ++n;
  };
  for (flexor::RandomArch arch :
       {flexor::RandomArch::kMlp, flexor::RandomArch::kLeNet,
        flexor::RandomArch::kResNet}) {
    for (const char* method :
         {"fp32", "binary1", "binary2", "ternary", "flexor"}) {
      flexor::RandomModelSpec spec;
      spec.arch = arch;
      spec.method = method;
      absl::StatusOr<std::string> bytes = flexor::BuildRandomModel(spec);
      if (!bytes.ok()) {
        std::cerr << bytes.status() << "\n";
        return 1;
      }
      write(std::string(method) + "_" + std::to_string(static_cast<int>(arch)) +
                ".flexor",
            *bytes);
    }
  }
  write("overflow.flexor", flexor::OverflowingInputShapeModel());
  write("bomb.flexor", flexor::ActivationBombModel());
  std::cout << "wrote " << n << " seeds to " << dir << "\n";
  return 0;
}
