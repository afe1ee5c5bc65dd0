// libFuzzer target: arbitrary bytes as a model file, through the reader, the
// graph compiler and a run, as the server does with an upload. Mutations of
// the header would almost all die at the checksums, so the fuzzer first
// re-computes them (header CRC, tensor CRCs, preamble): what reaches the
// compiler is every mutated graph, shape and codec, not just broken CRCs.
// Built and run by tests/fuzz/run_fuzz.sh (clang, ASan + UBSan).
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/format/model_file.h"
#include "engine/graph/model.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/model.pb.h"

namespace {

// The input with its checksums made valid, or as it was when its header
// does not parse.
std::string WithValidChecksums(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  if (size < flexor::kPreambleSize) return in;
  uint32_t header_size;
  uint64_t payload_offset;
  std::memcpy(&header_size, data + 12, 4);
  std::memcpy(&payload_offset, data + 24, 8);
  if (header_size > size - flexor::kPreambleSize || payload_offset > size) {
    return in;
  }
  flexor::model::v1::ModelHeader header;
  if (!header.ParseFromArray(data + flexor::kPreambleSize,
                             static_cast<int>(header_size))) {
    return in;
  }
  const uint8_t* payload = data + payload_offset;
  const uint64_t payload_size = size - payload_offset;
  for (auto& t : *header.mutable_tensors()) {
    if (t.offset() <= payload_size && t.length() <= payload_size - t.offset()) {
      t.set_crc32(flexor::ModelCrc32(payload + t.offset(), t.length()));
    }
  }
  std::string bytes;
  if (!header.SerializeToString(&bytes)) return in;
  const uint64_t new_offset =
      (flexor::kPreambleSize + bytes.size() + flexor::kTensorAlignment - 1) /
      flexor::kTensorAlignment * flexor::kTensorAlignment;
  std::string out(new_offset, '\0');
  std::memcpy(&out[0], data, 12);  // magic and version as they were
  const uint32_t new_size = static_cast<uint32_t>(bytes.size());
  const uint32_t crc = flexor::ModelCrc32(
      reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  std::memcpy(&out[12], &new_size, 4);
  std::memcpy(&out[16], &crc, 4);
  std::memcpy(&out[24], &new_offset, 8);
  std::memcpy(&out[flexor::kPreambleSize], bytes.data(), bytes.size());
  out.append(reinterpret_cast<const char*>(payload), payload_size);
  return out;
}

void Exercise(const std::string& bytes) {
  absl::StatusOr<std::shared_ptr<const flexor::ModelFile>> file =
      flexor::ModelFile::FromBytes(bytes, "fuzz");
  if (!file.ok()) return;
  absl::StatusOr<std::shared_ptr<const flexor::Model>> model =
      flexor::Model::Compile(*std::move(file));
  if (!model.ok()) return;
  const flexor::Model& m = **model;
  // What a server with a 64 MiB activation budget would accept.
  for (int64_t batch : {1, 3}) {
    if (m.ActivationBytes(batch, 2) > (int64_t{64} << 20)) return;
    std::vector<float> input(static_cast<size_t>(batch * m.input_size()));
    for (size_t i = 0; i < input.size(); ++i) {
      input[i] = static_cast<float>(i % 255);
    }
    std::vector<float> output(static_cast<size_t>(batch * m.output_size()));
    (void)m.Run(input.data(), batch, output.data());
    for (flexor::ActivationPrecision precision :
         {flexor::ActivationPrecision::kInt8,
          flexor::ActivationPrecision::kInt16}) {
      flexor::RunOptions options;
      options.matmul.activations = precision;
      (void)m.Run(input.data(), batch, output.data(), options);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Mutated strings are often invalid UTF-8; protobuf logs each one.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Exercise(std::string(reinterpret_cast<const char*>(data), size));
  Exercise(WithValidChecksums(data, size));
  return 0;
}
