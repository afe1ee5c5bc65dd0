// Building a model file (format v1). The trainer and the tests use this; the
// layout rules (alignment, checksums, preamble) live only here and in the
// reader.
#ifndef FLEXOR_ENGINE_FORMAT_MODEL_WRITER_H_
#define FLEXOR_ENGINE_FORMAT_MODEL_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/codec/bit_layout.h"
#include "engine/codec/xor_network.h"
#include "proto/model.pb.h"

namespace flexor {

class ModelWriter {
 public:
  explicit ModelWriter(std::string model_name);

  model::v1::ModelHeader& header() { return header_; }
  model::v1::Metadata& metadata() { return *header_.mutable_metadata(); }

  // Tensors: each returns the tensor's name for use in op fields. Names must
  // be unique (checked by Serialize).
  std::string AddTensor(std::string name, model::v1::DType dtype,
                        std::vector<int64_t> shape, const void* data,
                        size_t bytes);
  std::string AddFloat(std::string name, std::vector<int64_t> shape,
                       absl::Span<const float> values);
  std::string AddWords(std::string name, std::vector<int64_t> shape,
                       absl::Span<const uint64_t> words);

  // Graph I/O; shapes exclude the batch dimension.
  void AddInput(std::string name, std::vector<int64_t> shape,
                bool accepts_uint8);
  void AddOutput(std::string name, std::vector<int64_t> shape);
  // Appends a node (execution order). Fill its op through the pointer.
  model::v1::Node* AddNode(std::string name, std::vector<std::string> inputs,
                           std::string output);

  // Weight codec builders; `prefix` names the tensors they add.
  void SetFloat32Weights(model::v1::WeightCodec* codec,
                         const std::string& prefix, int64_t out_features,
                         int64_t in_features, absl::Span<const float> w);
  // One plane per element: scales [O] and stored bits under `net`.
  struct Plane {
    std::vector<float> scales;
    XorNetwork net;
    EncryptedBits bits;
  };
  void SetBinaryWeights(model::v1::WeightCodec* codec,
                        const std::string& prefix,
                        const std::vector<Plane>& planes);
  // t[o*K + k] in {-1, 0, +1}.
  void SetTernaryWeights(model::v1::WeightCodec* codec,
                         const std::string& prefix, int64_t out_features,
                         int64_t in_features, absl::Span<const int8_t> t,
                         absl::Span<const float> scales);

  // Serializes to the file format (preamble, header, aligned payload).
  absl::StatusOr<std::string> Serialize() const;
  // Writes atomically: temp file in the same directory, fsync, rename.
  absl::Status WriteFile(const std::string& path) const;

 private:
  struct PendingTensor {
    std::string bytes;
  };
  model::v1::ModelHeader header_;
  std::vector<PendingTensor> payloads_;  // parallel to header_.tensors()
};

}  // namespace flexor

#endif  // FLEXOR_ENGINE_FORMAT_MODEL_WRITER_H_
