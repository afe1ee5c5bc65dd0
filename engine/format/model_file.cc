#include "engine/format/model_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace flexor {

namespace {

uint32_t ReadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);  // The format is little endian, as is x86.
  return v;
}
uint64_t ReadU64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

uint32_t Crc32(const uint8_t* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths; feed large buffers in chunks.
  while (size > 0) {
    const uInt chunk = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = crc32(crc, data, chunk);
    data += chunk;
    size -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

size_t DTypeSize(model::v1::DType dtype) {
  switch (dtype) {
    case model::v1::FLOAT32:
      return 4;
    case model::v1::UINT8:
      return 1;
    case model::v1::UINT64:
      return 8;
    default:
      return 0;
  }
}

int64_t TensorView::num_elements() const {
  int64_t n = 1;
  for (int64_t d : info->shape()) n *= d;
  return n;
}

uint32_t ModelCrc32(const uint8_t* data, size_t size) {
  return Crc32(data, size);
}

const char* ModelFileAccessName(ModelFileAccess access) {
  switch (access) {
    case ModelFileAccess::kCopy:
      return "copy";
    case ModelFileAccess::kMap:
      return "map";
  }
  return "?";
}

absl::StatusOr<ModelFileAccess> ParseModelFileAccess(absl::string_view text) {
  for (ModelFileAccess a : {ModelFileAccess::kCopy, ModelFileAccess::kMap}) {
    if (text == ModelFileAccessName(a)) return a;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("model file access '", text, "' is not copy or map"));
}

absl::StatusOr<std::shared_ptr<const ModelFile>> ModelFile::Open(
    const std::string& path, ModelFileAccess access) {
  // O_NONBLOCK: a FIFO without a writer is refused below instead of
  // blocking here (it changes nothing for regular files).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    const std::string msg =
        absl::StrCat("model file '", path, "': cannot open: ", strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg)
                         : absl::PermissionDeniedError(msg);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("model file '", path, "': fstat: ", strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("model file '", path, "': not a regular file",
                     S_ISDIR(st.st_mode) ? " (a directory)" : ""));
  }
  std::shared_ptr<ModelFile> file(new ModelFile());
  file->source_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  // By default the file is read into memory the process owns rather than
  // mapped: a served file that is truncated or rewritten in place (by hand,
  // by another tool) must neither kill the process with SIGBUS nor change
  // what a validated version computes. kMap trades that for no copy (see
  // ModelFileAccess). Resident memory of the model is the file size (kMap)
  // or the payload's size (kCopy) once the checksums have touched every
  // page.
  absl::Status read =
      access == ModelFileAccess::kMap ? file->MapFrom(fd) : file->ReadInto(fd);
  ::close(fd);
  if (!read.ok()) return read;
  return std::shared_ptr<const ModelFile>(std::move(file));
}

absl::Status ModelFile::ReadAt(int fd, size_t offset, size_t length,
                               uint8_t* dst) const {
  size_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(fd, dst + done, length - done,
                              static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : 0;
      return absl::InvalidArgumentError(absl::StrCat(
          "model file '", source_, "': read ", offset + done, " of ", size_,
          " bytes",
          err ? absl::StrCat(": ", strerror(err)) : " (truncated while read)"));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ModelFile::ReadInto(int fd) {
  // The preamble and header are read into a temporary buffer and parsed;
  // only the payload (the tensors the compiled operators point into) is
  // kept. The header's bytes (graph, description, provenance) would
  // otherwise stay resident next to the payload for the life of the model:
  // 1.7 KB of an 88 KB LeNet, about a fifth of its cost over the file when
  // a server holds thousands (docs/performance.md, "Many models").
  std::vector<uint8_t> head(std::min(size_, kPreambleSize));
  if (absl::Status s = ReadAt(fd, 0, head.size(), head.data()); !s.ok()) {
    return s;
  }
  if (head.size() == kPreambleSize) {
    // Read the header only where ParseHead will look at it; otherwise it
    // reports the preamble's error from the preamble alone.
    const uint32_t header_size = ReadU32(head.data() + 12);
    if (header_size <= kMaxHeaderSize && kPreambleSize + header_size <= size_) {
      head.resize(kPreambleSize + header_size);
      if (absl::Status s = ReadAt(fd, kPreambleSize, header_size,
                                  head.data() + kPreambleSize);
          !s.ok()) {
        return s;
      }
    }
  }
  if (absl::Status s = ParseHead(head.data()); !s.ok()) return s;
  const size_t payload_size = size_ - payload_offset_;
  if (payload_size > 0) {
    uint8_t* buf = Allocate(payload_size);
    if (buf == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat("model file '", source_,
                                                       "': cannot allocate ",
                                                       payload_size, " bytes"));
    }
    if (absl::Status s = ReadAt(fd, payload_offset_, payload_size, buf);
        !s.ok()) {
      return s;
    }
    payload_ = buf;
  }
  return CheckTensors();
}

absl::Status ModelFile::MapFrom(int fd) {
  // An empty file cannot be mapped (EINVAL); ParseWhole reports it as too
  // short, as for kCopy.
  if (size_ == 0) return ParseWhole();
  // MAP_POPULATE fills the page tables from the page cache (reading what is
  // not cached) in one call instead of page faults while the checksums run.
  // Measured on 1,000 cached 1.2 MB files (open, map, CRC, unmap): 1.2-1.4
  // ms per file with it, 1.55-1.6 ms without; on evicted files 2.2-3.0 ms
  // either way. MADV_WILLNEED on top changed nothing measurable.
  void* p =
      ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    const std::string msg =
        absl::StrCat("model file '", source_, "': cannot map ", size_,
                     " bytes: ", strerror(err));
    return err == ENOMEM ? absl::ResourceExhaustedError(msg)
                         : absl::InvalidArgumentError(msg);
  }
  mapping_ = p;
  mapping_size_ = size_;
  whole_ = static_cast<const uint8_t*>(p);
  // A file that shrank since fstat would SIGBUS the checksums below; one
  // that changed size at all is being written in place. Refuse both. (A
  // truncation after this check still raises SIGBUS: files served with
  // kMap must be replaced by rename, never rewritten in place.)
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model file '", source_, "': fstat after mapping: ", strerror(errno)));
  }
  if (static_cast<size_t>(st.st_size) != size_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model file '", source_, "': changed size from ", size_, " to ",
        st.st_size,
        " bytes while being mapped (rewritten in place? replace model "
        "files by rename)"));
  }
  return ParseWhole();
}

uint8_t* ModelFile::Allocate(size_t bytes) {
  const size_t alloc =
      (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
  auto* buf =
      static_cast<uint8_t*>(std::aligned_alloc(kTensorAlignment, alloc));
  if (buf == nullptr) return nullptr;
  owned_ = std::unique_ptr<uint8_t[], void (*)(uint8_t*)>(
      buf, [](uint8_t* p) { std::free(p); });
  return buf;
}

absl::StatusOr<std::shared_ptr<const ModelFile>> ModelFile::FromBytes(
    absl::string_view bytes, std::string source_name) {
  std::shared_ptr<ModelFile> file(new ModelFile());
  file->source_ = std::move(source_name);
  file->size_ = bytes.size();
  if (!bytes.empty()) {
    uint8_t* buf = file->Allocate(bytes.size());
    if (buf == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("model file '", file->source_, "': cannot allocate ",
                       bytes.size(), " bytes"));
    }
    std::memcpy(buf, bytes.data(), bytes.size());
    file->whole_ = buf;
  }
  if (absl::Status s = file->ParseWhole(); !s.ok()) return s;
  return std::shared_ptr<const ModelFile>(std::move(file));
}

ModelFile::~ModelFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

absl::Status ModelFile::ParseWhole() {
  if (absl::Status s = ParseHead(whole_); !s.ok()) return s;
  payload_ = whole_ + payload_offset_;
  return CheckTensors();
}

absl::Status ModelFile::FieldError(absl::string_view field,
                                   absl::string_view reason) const {
  const std::string& model = header_.metadata().name();
  return absl::InvalidArgumentError(
      absl::StrCat("model file '", source_, "'",
                   model.empty() ? "" : absl::StrCat(" (model '", model, "')"),
                   ": ", field, ": ", reason));
}

absl::Status ModelFile::ParseHead(const uint8_t* data) {
  auto error = [this](absl::string_view field, absl::string_view reason) {
    return FieldError(field, reason);
  };
  if (size_ < kPreambleSize) {
    return error("preamble",
                 absl::StrCat("file is ", size_, " bytes, shorter than the ",
                              kPreambleSize, "-byte preamble"));
  }
  if (std::memcmp(data, kModelMagic, sizeof kModelMagic) != 0) {
    return error("magic", "not a FleXOR model file (expected \"FLXMODEL\")");
  }
  const uint32_t version = ReadU32(data + 8);
  const uint32_t header_size = ReadU32(data + 12);
  const uint32_t header_crc = ReadU32(data + 16);
  const uint32_t reserved = ReadU32(data + 20);
  const uint64_t payload_offset = ReadU64(data + 24);
  if (version != kModelFormatVersion) {
    return error("version", absl::StrCat("format version ", version,
                                         " is not supported (this build reads ",
                                         kModelFormatVersion, ")"));
  }
  if (reserved != 0) return error("reserved", "must be 0");
  if (header_size > kMaxHeaderSize || kPreambleSize + header_size > size_) {
    return error(
        "header_size",
        absl::StrCat(header_size, " bytes of header do not fit in the ", size_,
                     "-byte file (truncated?)"));
  }
  const uint8_t* header_bytes = data + kPreambleSize;
  if (Crc32(header_bytes, header_size) != header_crc) {
    return error("header_crc32", "checksum mismatch (corrupt header)");
  }
  if (!header_.ParseFromArray(header_bytes, static_cast<int>(header_size))) {
    return error("header", "protobuf does not parse");
  }
  if (header_.metadata().name().empty()) {
    return error("metadata.name", "is empty");
  }
  if (payload_offset % kTensorAlignment != 0 ||
      payload_offset < kPreambleSize + header_size || payload_offset > size_) {
    return error("payload_offset",
                 absl::StrCat(payload_offset,
                              " must be 64-byte aligned, after the header and "
                              "inside the ",
                              size_, "-byte file"));
  }
  payload_offset_ = static_cast<size_t>(payload_offset);
  header_size_ = header_size;
  header_crc_ = header_crc;
  return absl::OkStatus();
}

absl::Status ModelFile::CheckTensors() {
  auto error = [this](absl::string_view field, absl::string_view reason) {
    return FieldError(field, reason);
  };
  const size_t payload_size = size_ - payload_offset_;
  for (int i = 0; i < header_.tensors_size(); ++i) {
    const model::v1::TensorInfo& t = header_.tensors(i);
    const std::string field = absl::StrCat("tensors[", i, "] '", t.name(), "'");
    if (t.name().empty()) return error(field, "has no name");
    if (!tensor_index_.emplace(t.name(), i).second) {
      return error(field, "duplicate tensor name");
    }
    const size_t elem = DTypeSize(t.dtype());
    if (elem == 0) return error(field, "unknown dtype");
    if (t.shape_size() == 0) return error(field, "has no shape");
    uint64_t count = 1;
    for (int64_t d : t.shape()) {
      if (d <= 0 || d > (int64_t{1} << 40)) {
        return error(field, absl::StrCat("shape dimension ", d,
                                         " out of range (1 .. 2^40)"));
      }
      count *= static_cast<uint64_t>(d);
      if (count > (uint64_t{1} << 40)) {
        return error(field, "shape has more than 2^40 elements");
      }
    }
    if (t.length() != count * elem) {
      return error(field,
                   absl::StrCat("length ", t.length(), " != shape elements ",
                                count, " x ", elem, " bytes"));
    }
    if (t.offset() % kTensorAlignment != 0) {
      return error(field, absl::StrCat("offset ", t.offset(),
                                       " is not 64-byte aligned"));
    }
    if (t.offset() > payload_size || t.length() > payload_size - t.offset()) {
      return error(
          field,
          absl::StrCat("bytes [", t.offset(), ", ", t.offset() + t.length(),
                       ") lie past the end of the ", payload_size,
                       "-byte payload (truncated?)"));
    }
    if (Crc32(payload_ + t.offset(), t.length()) != t.crc32()) {
      return error(field, "crc32 mismatch (corrupt payload)");
    }
  }
  return absl::OkStatus();
}

void ModelFile::ReleaseGraph() {
  if (graph_released_) return;
  graph_released_ = true;
  // What stays is copied into a fresh header rather than cleared in place:
  // the parser leaves spare capacity behind (repeated fields, map buckets)
  // and Clear() keeps elements for reuse, while a copy allocates exactly.
  // (The provenance alone, a protobuf map, costs about 1.3 KB of heap on a
  // LeNet-size model, more than a tenth of its fixed memory.)
  model::v1::Metadata* metadata = header_.mutable_metadata();
  // Offsets fit in 32 bits: the labels lie in a header under kMaxHeaderSize.
  size_t text = 0;
  for (const std::string& label : metadata->labels()) text += label.size();
  label_text_.reserve(text);
  label_ends_.reserve(static_cast<size_t>(metadata->labels_size()));
  for (const std::string& label : metadata->labels()) {
    label_text_ += label;
    label_ends_.push_back(static_cast<uint32_t>(label_text_.size()));
  }
  metadata->clear_labels();
  metadata->clear_description();
  metadata->clear_provenance();
  model::v1::ModelHeader kept;
  *kept.mutable_metadata() = *metadata;
  *kept.mutable_inputs() = header_.inputs();
  *kept.mutable_outputs() = header_.outputs();
  header_.Swap(&kept);  // `kept`, now the full header, is freed here
  tensor_index_ = absl::flat_hash_map<std::string, int>();
}

int ModelFile::num_labels() const {
  return graph_released_ ? static_cast<int>(label_ends_.size())
                         : header_.metadata().labels_size();
}

absl::string_view ModelFile::label(int i) const {
  if (!graph_released_) return header_.metadata().labels(i);
  const size_t begin = i == 0 ? 0 : label_ends_[static_cast<size_t>(i - 1)];
  return absl::string_view(label_text_)
      .substr(begin, label_ends_[static_cast<size_t>(i)] - begin);
}

absl::StatusOr<model::v1::Metadata> ModelFile::FullMetadata() const {
  if (!graph_released_) return header_.metadata();
  // Mapped or given as bytes: the header's bytes are still in memory, the
  // ones Parse checked (mapped: the same unless the file was rewritten in
  // place, which kMap forbids). Read (kCopy): they were not kept, so read
  // them again from the file and accept them only if they are the header
  // checked at open (same size and checksum).
  std::vector<uint8_t> read;
  const uint8_t* bytes = whole_ == nullptr ? nullptr : whole_ + kPreambleSize;
  if (bytes == nullptr) {
    const int fd = ::open(source_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      return absl::NotFoundError(absl::StrCat(
          "model file '", source_, "': cannot open again: ", strerror(errno),
          " (description and provenance are "
          "read from the file on demand)"));
    }
    read.resize(header_size_);
    absl::Status s = ReadAt(fd, kPreambleSize, header_size_, read.data());
    ::close(fd);
    if (!s.ok()) return s;
    if (Crc32(read.data(), read.size()) != header_crc_) {
      return absl::DataLossError(
          absl::StrCat("model file '", source_,
                       "': its header changed since the model was loaded"));
    }
    bytes = read.data();
  }
  model::v1::ModelHeader header;
  if (!header.ParseFromArray(bytes, static_cast<int>(header_size_))) {
    return absl::DataLossError(absl::StrCat("model file '", source_,
                                            "': the header no longer parses"));
  }
  return std::move(*header.mutable_metadata());
}

absl::StatusOr<TensorView> ModelFile::tensor(absl::string_view name) const {
  auto it = tensor_index_.find(name);
  if (it == tensor_index_.end()) {
    return absl::NotFoundError(absl::StrCat("model '", this->name(),
                                            "': no tensor named '", name, "'"));
  }
  TensorView view;
  view.info = &header_.tensors(it->second);
  view.data = payload_ + view.info->offset();
  view.size = static_cast<size_t>(view.info->length());
  return view;
}

}  // namespace flexor
