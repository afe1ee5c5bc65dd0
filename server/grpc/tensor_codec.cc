#include "server/grpc/tensor_codec.h"

#include <cstring>

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
  // Requested outputs: names must exist; binary_data picks the encoding.
  for (const auto& requested : request.outputs()) {
    if (requested.name() != model.output().name()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", model_name, "' has no output named '",
                       Printable(requested.name()), "'; its output is '",
                       model.output().name(), "'"));
    }
    out.raw_output = WantsBinary(requested, out.raw_output);
  }
  return out;
}

void EncodeInferResponse(const inference::ModelInferRequest& request,
                         const Model& model, const std::string& model_name,
                         const std::string& version, const float* output,
                         int64_t batch, bool raw_output,
                         inference::ModelInferResponse* response) {
  response->set_model_name(model_name);
  response->set_model_version(version);
  response->set_id(request.id());
  auto* tensor = response->add_outputs();
  tensor->set_name(model.output().name());
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
