#include "trainer/fashion_mnist.h"

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace flexor::trainer {
namespace {

absl::StatusOr<std::string> ReadGzipFile(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "cannot open ", path,
        " (install the dataset-fashion-mnist package or pass --data_dir)"));
  }
  std::string bytes;
  char buffer[1 << 16];
  while (true) {
    const int read = gzread(file, buffer, sizeof(buffer));
    if (read < 0) {
      int errnum = 0;
      const std::string message = gzerror(file, &errnum);
      gzclose(file);
      return absl::DataLossError(
          absl::StrCat("cannot decompress ", path, ": ", message));
    }
    if (read == 0) break;
    bytes.append(buffer, read);
  }
  gzclose(file);
  return bytes;
}

uint32_t ReadBigEndian32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data()) + offset;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// IDX: magic 0x0000 0x08 (uint8) <rank>, then rank big-endian uint32 dims.
absl::StatusOr<torch::Tensor> ReadIdxUint8(const std::string& path,
                                           int expected_rank) {
  absl::StatusOr<std::string> bytes = ReadGzipFile(path);
  if (!bytes.ok()) return bytes.status();
  const size_t header_bytes = 4 + 4 * static_cast<size_t>(expected_rank);
  if (bytes->size() < header_bytes) {
    return absl::DataLossError(absl::StrCat(path, ": truncated IDX header"));
  }
  const uint32_t magic = ReadBigEndian32(*bytes, 0);
  if (magic != (0x0800u | static_cast<uint32_t>(expected_rank))) {
    return absl::DataLossError(absl::StrCat(path, ": bad IDX magic ", magic,
                                            ", expected uint8 data of rank ",
                                            expected_rank));
  }
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (int d = 0; d < expected_rank; ++d) {
    shape.push_back(ReadBigEndian32(*bytes, 4 + 4 * d));
    count *= shape.back();
  }
  if (bytes->size() != header_bytes + static_cast<size_t>(count)) {
    return absl::DataLossError(absl::StrCat(path, ": payload has ",
                                            bytes->size() - header_bytes,
                                            " bytes, header says ", count));
  }
  torch::Tensor tensor = torch::empty(shape, torch::kUInt8);
  std::memcpy(tensor.data_ptr<uint8_t>(), bytes->data() + header_bytes, count);
  return tensor;
}

absl::StatusOr<ImageSet> LoadSplit(const std::string& dir,
                                   const std::string& prefix) {
  absl::StatusOr<torch::Tensor> images =
      ReadIdxUint8(absl::StrCat(dir, "/", prefix, "-images-idx3-ubyte.gz"), 3);
  if (!images.ok()) return images.status();
  absl::StatusOr<torch::Tensor> labels =
      ReadIdxUint8(absl::StrCat(dir, "/", prefix, "-labels-idx1-ubyte.gz"), 1);
  if (!labels.ok()) return labels.status();
  if (images->size(1) != kImageSide || images->size(2) != kImageSide) {
    return absl::DataLossError(
        absl::StrCat(prefix, " images are not 28x28 in ", dir));
  }
  if (images->size(0) != labels->size(0)) {
    return absl::DataLossError(absl::StrCat(prefix, ": ", images->size(0),
                                            " images but ", labels->size(0),
                                            " labels in ", dir));
  }
  torch::Tensor labels64 = labels->to(torch::kInt64);
  if (labels64.max().item<int64_t>() >= kNumClasses) {
    return absl::DataLossError(absl::StrCat(prefix, ": label out of range"));
  }
  return ImageSet{*images, labels64};
}

}  // namespace

absl::StatusOr<FashionMnist> LoadFashionMnist(const std::string& dir) {
  absl::StatusOr<ImageSet> train = LoadSplit(dir, "train");
  if (!train.ok()) return train.status();
  absl::StatusOr<ImageSet> test = LoadSplit(dir, "t10k");
  if (!test.ok()) return test.status();
  return FashionMnist{*std::move(train), *std::move(test)};
}

const std::vector<std::string>& FashionMnistLabels() {
  static const auto* const kLabels = new std::vector<std::string>{
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return *kLabels;
}

}  // namespace flexor::trainer
