#include "server/grpc/tensor_codec.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace flexor::server {
namespace {

std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

std::string Printable(const std::string& s) {
  return absl::CEscape(s.substr(0, 100));
}

// A requested output's "binary_data" parameter (Triton), if set.
bool WantsBinary(
    const inference::ModelInferRequest::InferRequestedOutputTensor& out,
    bool fallback) {
  auto it = out.parameters().find("binary_data");
  if (it == out.parameters().end()) return fallback;
  return it->second.bool_param();
}

// The "class_count" parameter of a requested output (0: absent). Triton's
// clients send it as int64_param; classification needs one score per class,
// i.e. an output of rank 1 per sample.
absl::StatusOr<int64_t> ClassCount(
    const inference::ModelInferRequest::InferRequestedOutputTensor& out,
    const Model& model, const std::string& model_name) {
  auto it = out.parameters().find("class_count");
  if (it == out.parameters().end()) return 0;
  const inference::InferParameter& p = it->second;
  int64_t count = 0;
  if (p.parameter_choice_case() == inference::InferParameter::kInt64Param) {
    count = p.int64_param();
  } else if (p.parameter_choice_case() ==
             inference::InferParameter::kUint64Param) {
    count = static_cast<int64_t>(
        std::min<uint64_t>(p.uint64_param(), uint64_t{1} << 62));
  } else {
    return absl::InvalidArgumentError(
        "parameter 'class_count' of requested output must be an int64_param");
  }
  if (count < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("class_count ", count, " of output '", out.name(),
                     "' must be at least 1 (leave it out for the raw scores)"));
  }
  if (model.output().shape_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output '", out.name(), "' of model '", model_name, "' has shape [N, ",
        absl::StrJoin(model.output().shape(), ", "),
        "]; classification (class_count) needs one score per class, [N, C]"));
  }
  // As in Triton, more classes than the output has means all of them.
  return std::min<int64_t>(count, model.output().shape(0));
}

// Triton's classification: per sample, the top `k` scores, highest first,
// as "score:index" plus ":label" where the model names its classes.
void EncodeClassification(
    const Model& model, const float* output, int64_t batch, int64_t k, bool raw,
    inference::ModelInferResponse::InferOutputTensor* tensor,
    std::string* raw_out) {
  const ModelFile& file = model.file();
  const int64_t classes = model.output().shape(0);
  tensor->set_datatype("BYTES");
  tensor->add_shape(batch);
  tensor->add_shape(k);
  std::vector<int64_t> order(static_cast<size_t>(classes));
  for (int64_t b = 0; b < batch; ++b) {
    const float* row = output + b * classes;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [row](int64_t x, int64_t y) {
                        return row[x] > row[y] || (row[x] == row[y] && x < y);
                      });
    for (int64_t i = 0; i < k; ++i) {
      const int64_t c = order[static_cast<size_t>(i)];
      // std::to_string's "%f", as Triton formats the score.
      std::string entry = absl::StrCat(std::to_string(row[c]), ":", c);
      if (c < file.num_labels() && !file.label(static_cast<int>(c)).empty()) {
        absl::StrAppend(&entry, ":", file.label(static_cast<int>(c)));
      }
      if (raw) {
        // BYTES in raw form: 4-byte little-endian length, then the bytes.
        const uint32_t n = static_cast<uint32_t>(entry.size());
        const char len[4] = {static_cast<char>(n & 0xff),
                             static_cast<char>((n >> 8) & 0xff),
                             static_cast<char>((n >> 16) & 0xff),
                             static_cast<char>((n >> 24) & 0xff)};
        raw_out->append(len, 4);
        raw_out->append(entry);
      } else {
        tensor->mutable_contents()->add_bytes_contents(std::move(entry));
      }
    }
  }
}

}  // namespace

std::string DatatypeName(model::v1::DType dtype) {
  switch (dtype) {
    case model::v1::FLOAT32:
      return "FP32";
    case model::v1::UINT8:
      return "UINT8";
    case model::v1::UINT64:
      return "UINT64";
    default:
      return "INVALID";
  }
}

absl::StatusOr<DecodedRequest> DecodeInferRequest(
    const inference::ModelInferRequest& request, const Model& model,
    int max_batch_size) {
  const model::v1::ValueInfo& info = model.input();
  const std::string& model_name = request.model_name();
  if (request.inputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", model_name, "' takes exactly 1 input ('", info.name(),
        "'), the request has ", request.inputs_size()));
  }
  const auto& input = request.inputs(0);
  if (input.name() != info.name()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", model_name, "' has no input named '",
        Printable(input.name()), "'; its input is '", info.name(), "'"));
  }
  const bool is_fp32 = input.datatype() == "FP32";
  const bool is_uint8 = input.datatype() == "UINT8";
  if (!is_fp32 && !(is_uint8 && info.accepts_uint8())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", info.name(), "' of model '", model_name,
        "' has datatype FP32", info.accepts_uint8() ? " or UINT8" : "",
        ", the request says '", Printable(input.datatype()), "'"));
  }
  // Shape: [batch, <model input shape>].
  const auto& shape = input.shape();
  std::string expected = "[N";
  for (int64_t d : info.shape()) absl::StrAppend(&expected, ", ", d);
  absl::StrAppend(&expected, "]");
  bool shape_ok = shape.size() == info.shape_size() + 1;
  for (int i = 0; shape_ok && i < info.shape_size(); ++i) {
    shape_ok = shape[i + 1] == info.shape(i);
  }
  if (!shape_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", info.name(), "' of model '", model_name, "' has shape ",
        expected, " (N = batch size), the request says ", ShapeString(shape)));
  }
  const int64_t batch = shape[0];
  if (batch < 1 || batch > max_batch_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch size ", batch, " of input '", info.name(), "' of model '",
        model_name, "' is outside [1, ", max_batch_size,
        "] (the model's max_batch_size); split the request"));
  }
  const int64_t elements = batch * model.input_size();

  DecodedRequest out;
  out.batch = batch;
  out.input.resize(static_cast<size_t>(elements));
  const bool has_raw = request.raw_input_contents_size() > 0;
  const auto& contents = input.contents();
  const int typed_count =
      contents.fp32_contents_size() + contents.uint_contents_size() +
      contents.int_contents_size() + contents.int64_contents_size() +
      contents.bytes_contents_size();
  if (has_raw && typed_count > 0) {
    return absl::InvalidArgumentError(
        "the request has both raw_input_contents and typed contents; send "
        "the input one way only");
  }
  if (has_raw) {
    if (request.raw_input_contents_size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw_input_contents has ", request.raw_input_contents_size(),
          " entries; it needs one per input (1)"));
    }
    const std::string& raw = request.raw_input_contents(0);
    const int64_t expected_bytes = elements * (is_fp32 ? 4 : 1);
    if (static_cast<int64_t>(raw.size()) != expected_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("raw_input_contents[0] has ", raw.size(),
                       " bytes; input '", info.name(), "' ", input.datatype(),
                       " ", ShapeString(shape), " needs ", expected_bytes));
    }
    if (is_fp32) {
      std::memcpy(out.input.data(), raw.data(), raw.size());
    } else {
      const auto* bytes = reinterpret_cast<const uint8_t*>(raw.data());
      for (int64_t i = 0; i < elements; ++i) out.input[i] = bytes[i];
    }
    out.raw_output = true;
  } else if (is_fp32) {
    if (contents.fp32_contents_size() != elements) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", info.name(), "' FP32 ", ShapeString(shape), " needs ",
          elements, " values in contents.fp32_contents, the request has ",
          contents.fp32_contents_size()));
    }
    std::memcpy(out.input.data(), contents.fp32_contents().data(),
                static_cast<size_t>(elements) * sizeof(float));
  } else {
    if (contents.uint_contents_size() != elements) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", info.name(), "' UINT8 ", ShapeString(shape), " needs ",
          elements, " values in contents.uint_contents, the request has ",
          contents.uint_contents_size()));
    }
    for (int64_t i = 0; i < elements; ++i) {
      const uint32_t v = contents.uint_contents(static_cast<int>(i));
      if (v > 255) {
        return absl::InvalidArgumentError(
            absl::StrCat("contents.uint_contents[", i, "] = ", v,
                         " is not a UINT8 value (0..255)"));
      }
      out.input[i] = static_cast<float>(v);
    }
  }
  // Requested outputs: names must exist; binary_data picks the encoding,
  // class_count asks for classification.
  for (const auto& requested : request.outputs()) {
    if (requested.name() != model.output().name()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", model_name, "' has no output named '",
                       Printable(requested.name()), "'; its output is '",
                       model.output().name(), "'"));
    }
    out.raw_output = WantsBinary(requested, out.raw_output);
    absl::StatusOr<int64_t> class_count =
        ClassCount(requested, model, model_name);
    if (!class_count.ok()) return class_count.status();
    out.class_count = *class_count;
  }
  return out;
}

void EncodeInferResponse(const inference::ModelInferRequest& request,
                         const Model& model, const std::string& model_name,
                         const std::string& version, const float* output,
                         const DecodedRequest& decoded,
                         inference::ModelInferResponse* response) {
  const int64_t batch = decoded.batch;
  const bool raw_output = decoded.raw_output;
  response->set_model_name(model_name);
  response->set_model_version(version);
  response->set_id(request.id());
  auto* tensor = response->add_outputs();
  tensor->set_name(model.output().name());
  if (decoded.class_count > 0) {
    std::string* raw =
        raw_output ? response->add_raw_output_contents() : nullptr;
    EncodeClassification(model, output, batch, decoded.class_count, raw_output,
                         tensor, raw);
    return;
  }
  tensor->set_datatype("FP32");
  tensor->add_shape(batch);
  for (int64_t d : model.output().shape()) tensor->add_shape(d);
  const size_t n = static_cast<size_t>(batch * model.output_size());
  if (raw_output) {
    response->add_raw_output_contents()->assign(
        reinterpret_cast<const char*>(output), n * sizeof(float));
  } else {
    tensor->mutable_contents()->mutable_fp32_contents()->Add(output,
                                                             output + n);
  }
}

}  // namespace flexor::server
