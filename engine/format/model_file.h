// Reading a model file (format v1, docs/model-format.md): the file is read
// once into an aligned buffer the model owns; every field of the preamble,
// header and tensor index is validated before use. Graph-level validation (ops,
// shapes, codecs) happens when the graph is compiled (engine/graph/model.h).
#ifndef FLEXOR_ENGINE_FORMAT_MODEL_FILE_H_
#define FLEXOR_ENGINE_FORMAT_MODEL_FILE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/model.pb.h"

namespace flexor {

// File preamble: magic[8] "FLXMODEL", u32 version, u32 header_size,
// u32 header_crc32, u32 reserved (0), u64 payload_offset. Little endian.
inline constexpr char kModelMagic[8] = {'F', 'L', 'X', 'M', 'O', 'D', 'E', 'L'};
inline constexpr uint32_t kModelFormatVersion = 1;
inline constexpr size_t kPreambleSize = 32;
inline constexpr size_t kTensorAlignment = 64;
// Refuse absurd headers before parsing them.
inline constexpr uint32_t kMaxHeaderSize = 64u << 20;

struct TensorView {
  const model::v1::TensorInfo* info = nullptr;
  const uint8_t* data = nullptr;
  size_t size = 0;  // bytes

  template <typename T>
  const T* as() const {
    return reinterpret_cast<const T*>(data);
  }
  int64_t num_elements() const;
};

size_t DTypeSize(model::v1::DType dtype);  // 0 for DTYPE_UNSPECIFIED

// CRC-32 (IEEE, zlib) used for the header and tensor checksums.
uint32_t ModelCrc32(const uint8_t* data, size_t size);

class ModelFile {
 public:
  // Reads `path` into a 64-byte aligned buffer owned by the result (not a
  // mapping: truncating or rewriting the file later cannot affect a loaded
  // model) and validates it. Errors name the file, the field and the reason.
  static absl::StatusOr<std::shared_ptr<const ModelFile>> Open(
      const std::string& path);
  // Same validation over bytes already in memory (uploaded via RPC, tests).
  // The bytes are copied into a 64-byte aligned buffer owned by the result.
  static absl::StatusOr<std::shared_ptr<const ModelFile>> FromBytes(
      absl::string_view bytes, std::string source_name);

  ~ModelFile();
  ModelFile(const ModelFile&) = delete;
  ModelFile& operator=(const ModelFile&) = delete;

  const model::v1::ModelHeader& header() const { return header_; }
  const std::string& name() const { return header_.metadata().name(); }
  const std::string& source() const { return source_; }
  size_t file_size() const { return size_; }
  size_t payload_size() const { return size_ - payload_offset_; }

  // Looks a tensor up by name; NOT_FOUND names the tensor and model.
  absl::StatusOr<TensorView> tensor(absl::string_view name) const;

  // Frees the parsed graph (nodes) and the tensor table once a Model has
  // been compiled from this file: the compiled operators keep views of the
  // payload, not of the header. Metadata, inputs and outputs stay; tensor()
  // answers NOT_FOUND afterwards. About 8 KB of a LeNet-size model's
  // resident cost. Model::Compile calls it only when it holds the only
  // reference to the file, so no other holder sees the change.
  void ReleaseGraph();

 private:
  ModelFile() = default;
  absl::Status Parse();
  // Owned, aligned storage for the file's bytes (data_); null on failure.
  uint8_t* Allocate(size_t bytes);

  std::string source_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t payload_offset_ = 0;
  std::unique_ptr<uint8_t[], void (*)(uint8_t*)> owned_{nullptr, nullptr};

  model::v1::ModelHeader header_;
  absl::flat_hash_map<std::string, int> tensor_index_;
};

}  // namespace flexor

#endif  // FLEXOR_ENGINE_FORMAT_MODEL_FILE_H_
