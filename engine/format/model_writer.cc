#include "engine/format/model_writer.h"

#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "engine/format/model_file.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace flexor {

namespace mv1 = model::v1;

ModelWriter::ModelWriter(std::string model_name) {
  header_.mutable_metadata()->set_name(std::move(model_name));
}

std::string ModelWriter::AddTensor(std::string name, mv1::DType dtype,
                                   std::vector<int64_t> shape, const void* data,
                                   size_t bytes) {
  mv1::TensorInfo* info = header_.add_tensors();
  info->set_name(name);
  info->set_dtype(dtype);
  for (int64_t d : shape) info->add_shape(d);
  info->set_length(bytes);
  payloads_.push_back(
      PendingTensor{std::string(static_cast<const char*>(data), bytes)});
  return name;
}

std::string ModelWriter::AddFloat(std::string name, std::vector<int64_t> shape,
                                  absl::Span<const float> values) {
  return AddTensor(std::move(name), mv1::FLOAT32, std::move(shape),
                   values.data(), values.size() * sizeof(float));
}

std::string ModelWriter::AddWords(std::string name, std::vector<int64_t> shape,
                                  absl::Span<const uint64_t> words) {
  return AddTensor(std::move(name), mv1::UINT64, std::move(shape), words.data(),
                   words.size() * sizeof(uint64_t));
}

void ModelWriter::AddInput(std::string name, std::vector<int64_t> shape,
                           bool accepts_uint8) {
  mv1::ValueInfo* v = header_.add_inputs();
  v->set_name(std::move(name));
  v->set_dtype(mv1::FLOAT32);
  for (int64_t d : shape) v->add_shape(d);
  v->set_accepts_uint8(accepts_uint8);
}

void ModelWriter::AddOutput(std::string name, std::vector<int64_t> shape) {
  mv1::ValueInfo* v = header_.add_outputs();
  v->set_name(std::move(name));
  v->set_dtype(mv1::FLOAT32);
  for (int64_t d : shape) v->add_shape(d);
}

mv1::Node* ModelWriter::AddNode(std::string name,
                                std::vector<std::string> inputs,
                                std::string output) {
  mv1::Node* node = header_.add_nodes();
  node->set_name(std::move(name));
  for (std::string& in : inputs) node->add_inputs(std::move(in));
  node->set_output(std::move(output));
  return node;
}

void ModelWriter::SetFloat32Weights(mv1::WeightCodec* codec,
                                    const std::string& prefix,
                                    int64_t out_features, int64_t in_features,
                                    absl::Span<const float> w) {
  codec->mutable_float32()->set_weights(
      AddFloat(prefix + ".weight", {out_features, in_features}, w));
}

void ModelWriter::SetBinaryWeights(mv1::WeightCodec* codec,
                                   const std::string& prefix,
                                   const std::vector<Plane>& planes) {
  mv1::BinaryCodedWeights* bin = codec->mutable_binary();
  for (size_t p = 0; p < planes.size(); ++p) {
    const Plane& plane = planes[p];
    mv1::BitPlane* bp = bin->add_planes();
    const std::string name = absl::StrCat(prefix, ".plane", p);
    bp->set_scales(AddFloat(name + ".scales",
                            {static_cast<int64_t>(plane.scales.size())},
                            plane.scales));
    bp->set_bits(AddWords(name + ".bits",
                          {plane.net.n_in, plane.bits.words_per_vector},
                          plane.bits.words));
    if (plane.bits.slices !=
        SliceCount(plane.bits.num_weights, plane.net.n_out)) {
      bp->set_slices(static_cast<uint64_t>(plane.bits.slices));
    }
    mv1::XorNetwork* x = bp->mutable_xor_();
    x->set_n_in(plane.net.n_in);
    x->set_n_out(plane.net.n_out);
    for (uint64_t row : plane.net.rows) x->add_rows(row);
  }
}

void ModelWriter::SetTernaryWeights(mv1::WeightCodec* codec,
                                    const std::string& prefix,
                                    int64_t out_features, int64_t in_features,
                                    absl::Span<const int8_t> t,
                                    absl::Span<const float> scales) {
  const int64_t words = WordsForBits(in_features);
  std::vector<uint64_t> mask(out_features * words, 0);
  std::vector<uint64_t> sign(out_features * words, 0);
  for (int64_t o = 0; o < out_features; ++o) {
    for (int64_t k = 0; k < in_features; ++k) {
      const int8_t v = t[o * in_features + k];
      if (v != 0) SetBit(&mask[o * words], k, true);
      if (v < 0) SetBit(&sign[o * words], k, true);
    }
  }
  mv1::TernaryWeights* tw = codec->mutable_ternary();
  tw->set_nonzero_mask(
      AddWords(prefix + ".nonzero", {out_features, words}, mask));
  tw->set_sign(AddWords(prefix + ".sign", {out_features, words}, sign));
  tw->set_scales(AddFloat(prefix + ".scales", {out_features}, scales));
}

absl::StatusOr<std::string> ModelWriter::Serialize() const {
  mv1::ModelHeader header = header_;
  absl::flat_hash_set<std::string> names;
  uint64_t payload_size = 0;
  for (int i = 0; i < header.tensors_size(); ++i) {
    mv1::TensorInfo* t = header.mutable_tensors(i);
    if (!names.insert(t->name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate tensor name '", t->name(), "'"));
    }
    const std::string& bytes = payloads_[i].bytes;
    t->set_offset(payload_size);
    t->set_crc32(ModelCrc32(reinterpret_cast<const uint8_t*>(bytes.data()),
                            bytes.size()));
    payload_size += (bytes.size() + kTensorAlignment - 1) / kTensorAlignment *
                    kTensorAlignment;
  }
  std::string header_bytes;
  // Deterministic: map fields (provenance) in key order, so the same model
  // always gives the same bytes (reproducible files; a re-published version
  // is recognised as the same one, see ModelRepository::VersionHolds).
  bool serialized = false;
  {
    google::protobuf::io::StringOutputStream stream(&header_bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    serialized = header.SerializeToCodedStream(&coded) && !coded.HadError();
  }
  if (!serialized) {
    return absl::InternalError("cannot serialize model header");
  }
  const uint64_t payload_offset =
      (kPreambleSize + header_bytes.size() + kTensorAlignment - 1) /
      kTensorAlignment * kTensorAlignment;
  std::string out(payload_offset + payload_size, '\0');
  auto put32 = [&out](size_t at, uint32_t v) { std::memcpy(&out[at], &v, 4); };
  std::memcpy(&out[0], kModelMagic, sizeof kModelMagic);
  put32(8, kModelFormatVersion);
  put32(12, static_cast<uint32_t>(header_bytes.size()));
  put32(16, ModelCrc32(reinterpret_cast<const uint8_t*>(header_bytes.data()),
                       header_bytes.size()));
  put32(20, 0);
  std::memcpy(&out[24], &payload_offset, 8);
  std::memcpy(&out[kPreambleSize], header_bytes.data(), header_bytes.size());
  for (int i = 0; i < header.tensors_size(); ++i) {
    const std::string& bytes = payloads_[i].bytes;
    std::memcpy(&out[payload_offset + header.tensors(i).offset()], bytes.data(),
                bytes.size());
  }
  return out;
}

absl::Status ModelWriter::WriteFile(const std::string& path) const {
  absl::StatusOr<std::string> bytes = Serialize();
  if (!bytes.ok()) return bytes.status();
  return WriteFileAtomically(path, *bytes);
}

}  // namespace flexor
