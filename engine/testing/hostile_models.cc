#include "engine/testing/hostile_models.h"

#include <cstring>
#include <vector>

#include "engine/format/model_file.h"
#include "engine/format/model_writer.h"

namespace flexor {

namespace mv1 = model::v1;

std::string OverflowingInputShapeModel() {
  ModelWriter w("overflow");
  w.AddInput("x", {int64_t{1} << 22, int64_t{1} << 21, int64_t{1} << 21},
             false);
  w.AddNode("gap", {"x"}, "y")->mutable_global_avg_pool();
  w.AddOutput("y", {int64_t{1} << 22});
  return *w.Serialize();
}

std::string ActivationBombModel() {
  constexpr int64_t kChannels = 4032;
  ModelWriter w("bomb");
  w.AddInput("x", {1, 1, 1}, false);
  mv1::Conv2dOp* c = w.AddNode("conv", {"x"}, "c")->mutable_conv2d();
  c->set_in_channels(1);
  c->set_out_channels(kChannels);
  c->set_kernel_h(1);
  c->set_kernel_w(1);
  c->set_pad_h(64);
  c->set_pad_w(64);
  w.SetFloat32Weights(c->mutable_weights(), "conv", kChannels, 1,
                      std::vector<float>(kChannels, 1.0f));
  w.AddNode("gap", {"c"}, "y")->mutable_global_avg_pool();
  w.AddOutput("y", {kChannels});
  return *w.Serialize();
}

std::string RewriteModel(
    const std::string& bytes,
    const std::function<void(mv1::ModelHeader& header, std::string& payload)>&
        edit) {
  uint32_t header_size = 0;
  uint64_t payload_offset = 0;
  std::memcpy(&header_size, bytes.data() + 12, 4);
  std::memcpy(&payload_offset, bytes.data() + 24, 8);
  mv1::ModelHeader header;
  header.ParseFromArray(bytes.data() + kPreambleSize,
                        static_cast<int>(header_size));
  std::string payload = bytes.substr(payload_offset);
  edit(header, payload);
  for (auto& t : *header.mutable_tensors()) {
    if (t.offset() + t.length() <= payload.size()) {
      t.set_crc32(ModelCrc32(
          reinterpret_cast<const uint8_t*>(payload.data()) + t.offset(),
          t.length()));
    }
  }
  std::string serialized;
  header.SerializeToString(&serialized);
  const uint64_t new_offset =
      (kPreambleSize + serialized.size() + kTensorAlignment - 1) /
      kTensorAlignment * kTensorAlignment;
  std::string out(new_offset, '\0');
  std::memcpy(&out[0], bytes.data(), 12);  // magic and format version
  const uint32_t new_size = static_cast<uint32_t>(serialized.size());
  const uint32_t crc = ModelCrc32(
      reinterpret_cast<const uint8_t*>(serialized.data()), serialized.size());
  std::memcpy(&out[12], &new_size, 4);
  std::memcpy(&out[16], &crc, 4);
  std::memcpy(&out[24], &new_offset, 8);
  std::memcpy(&out[kPreambleSize], serialized.data(), serialized.size());
  return out + payload;
}

std::string TamperWeights(const std::string& bytes) {
  return RewriteModel(
      bytes, [](mv1::ModelHeader& header, std::string& payload) {
        if (header.tensors_size() > 0 && header.tensors(0).length() > 0) {
          payload[header.tensors(0).offset()] ^= 0x5a;
        }
      });
}

std::string TamperProvenance(const std::string& bytes) {
  return RewriteModel(bytes, [](mv1::ModelHeader& header, std::string&) {
    (*header.mutable_metadata()->mutable_provenance())["accuracy"] = "99.99";
  });
}

}  // namespace flexor
