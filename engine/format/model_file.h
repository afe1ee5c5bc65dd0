// Reading a model file (format v1, docs/model-format.md): by default the file
// is read once into an aligned buffer the model owns; optionally it is mapped
// read-only instead (ModelFileAccess::kMap). Either way every field of the
// preamble, header and tensor index, and every checksum, is validated before
// use. Graph-level validation (ops, shapes, codecs) happens when the graph is
// compiled (engine/graph/model.h).
#ifndef FLEXOR_ENGINE_FORMAT_MODEL_FILE_H_
#define FLEXOR_ENGINE_FORMAT_MODEL_FILE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

// How ModelFile::Open gets a file's bytes.
enum class ModelFileAccess {
  // Read (pread) into a private, 64-byte aligned buffer; once the header is
  // parsed and checked, only the payload's bytes are kept. The default: the
  // loaded model is independent of the file from then on, so a file that is
  // truncated or rewritten in place later can neither crash the process nor
  // change what the validated model computes. Costs a second copy of every
  // file next to its page cache, and writing fresh anonymous pages, which is
  // slow on some VMs (docs/performance.md, "Many models").
  kCopy,
  // mmap the file read-only (PROT_READ, MAP_PRIVATE): the model's payload is
  // the page cache itself, with no copy; many models start several times
  // faster and take half the memory (file pages are shared with the page
  // cache and counted once). The checksums are verified exactly as with
  // kCopy. The price: the file must never be truncated or rewritten in place
  // while it is served. A truncated mapping raises SIGBUS (the process dies)
  // on the next access past the new end, and bytes rewritten in place change
  // the weights a validated model computes with (MAP_PRIVATE does not
  // snapshot pages that were never written). Replacing the file by rename(2)
  // or publishing a new version directory is safe: the mapping keeps the old
  // inode alive. Every publisher of this project does that (flexorctl load /
  // RepositoryModelLoad and the trainer write a temporary file and rename).
  kMap,
};

// "copy", "map".
const char* ModelFileAccessName(ModelFileAccess access);
// The inverse of ModelFileAccessName (lower case only).
absl::StatusOr<ModelFileAccess> ParseModelFileAccess(absl::string_view text);

// CRC-32 (IEEE, zlib) used for the header and tensor checksums.
uint32_t ModelCrc32(const uint8_t* data, size_t size);

class ModelFile {
 public:
  // Reads `path` into a 64-byte aligned buffer owned by the result (kCopy:
  // truncating or rewriting the file later cannot affect a loaded model), or
  // maps it read-only for the lifetime of the result (kMap, see
  // ModelFileAccess for the trade-off), and validates it. Errors name the
  // file, the field and the reason; both modes give the same validation
  // errors for the same bytes.
  static absl::StatusOr<std::shared_ptr<const ModelFile>> Open(
      const std::string& path, ModelFileAccess access = ModelFileAccess::kCopy);
  // Same validation over bytes already in memory (uploaded via RPC, tests).
  // The bytes are copied into a 64-byte aligned buffer owned by the result.
  static absl::StatusOr<std::shared_ptr<const ModelFile>> FromBytes(
      absl::string_view bytes, std::string source_name);

  ~ModelFile();
  ModelFile(const ModelFile&) = delete;
  ModelFile& operator=(const ModelFile&) = delete;

  // The whole parsed header, until ReleaseGraph (see there for what stays).
  const model::v1::ModelHeader& header() const { return header_; }
  // The output's class names (metadata.labels), before and after
  // ReleaseGraph; served with classification results.
  int num_labels() const;
  absl::string_view label(int i) const;
  const std::string& name() const { return header_.metadata().name(); }
  const std::string& source() const { return source_; }
  size_t file_size() const { return size_; }
  size_t payload_size() const { return size_ - payload_offset_; }
  // Whether the bytes are a read-only mapping of the file (kMap).
  bool mapped() const { return mapping_ != nullptr; }

  // Looks a tensor up by name; NOT_FOUND names the tensor and model.
  absl::StatusOr<TensorView> tensor(absl::string_view name) const;

  // Frees the parsed graph (nodes) and the tensor table once a Model has
  // been compiled from this file: the compiled operators keep views of the
  // payload, not of the header. Also drops the metadata's description and
  // provenance, which nothing reads while serving (FullMetadata() reads them
  // again from the file's bytes), and moves the labels out of the header
  // into one string (label(); a repeated string field costs a heap block per
  // label); the name, method, bits_per_weight, inputs and outputs stay in
  // header(), as an exact-size copy. tensor() answers NOT_FOUND afterwards.
  // About 10 KB of a LeNet-size model's resident cost.
  // Model::Compile calls it only when it holds the only reference to the
  // file, so no other holder sees the change.
  void ReleaseGraph();
  // The metadata as written in the file, description, provenance and labels
  // included (header().metadata() lacks them after ReleaseGraph): then
  // parsed again from the header bytes, which stay resident when the file
  // is mapped or came as bytes, and are read again from the file when it
  // was read (kCopy keeps only the payload; DATA_LOSS if the file's header
  // changed since). For rare callers (Model::Describe), not per request.
  absl::StatusOr<model::v1::Metadata> FullMetadata() const;

 private:
  ModelFile() = default;
  // Validates the preamble and parses the header from `data`, the file's
  // first bytes: at least the preamble, and the header too where the
  // preamble's header_size fits in the size_-byte file (`data` may be null
  // when size_ < kPreambleSize). Sets header_, payload_offset_ and co.
  absl::Status ParseHead(const uint8_t* data);
  // Validates every tensor of the header against payload_.
  absl::Status CheckTensors();
  // ParseHead and CheckTensors over whole_, the whole file in memory.
  absl::Status ParseWhole();
  absl::Status FieldError(absl::string_view field,
                          absl::string_view reason) const;
  // kCopy: reads and parses the preamble and header of the open file `fd`
  // (size_ is set), then reads only the payload into an owned buffer.
  absl::Status ReadInto(int fd);
  absl::Status MapFrom(int fd);
  // Reads `length` bytes at `offset` of the open file into `dst`; a short
  // read is an error naming the file.
  absl::Status ReadAt(int fd, size_t offset, size_t length, uint8_t* dst) const;
  // Owned (owned_), aligned storage of `bytes`; null on failure.
  uint8_t* Allocate(size_t bytes);

  std::string source_;
  // The whole file's bytes when mapped or copied from bytes (FromBytes);
  // null when read (kCopy), which keeps only the payload.
  const uint8_t* whole_ = nullptr;
  const uint8_t* payload_ = nullptr;  // tensor offsets count from here
  size_t size_ = 0;
  size_t payload_offset_ = 0;
  size_t header_size_ = 0;  // serialized header, after the preamble
  uint32_t header_crc_ = 0;
  bool graph_released_ = false;
  std::unique_ptr<uint8_t[], void (*)(uint8_t*)> owned_{nullptr, nullptr};
  // kMap: the mapping (munmap'ed by the destructor) and its length.
  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;

  model::v1::ModelHeader header_;
  absl::flat_hash_map<std::string, int> tensor_index_;
  // After ReleaseGraph: the labels back to back, and where each one ends.
  std::string label_text_;
  std::vector<uint32_t> label_ends_;
};

}  // namespace flexor

#endif  // FLEXOR_ENGINE_FORMAT_MODEL_FILE_H_
