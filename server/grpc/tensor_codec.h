// Open Inference Protocol tensors <-> the engine's FP32 rows. Every check a
// client's request can fail is here, with a message that says what to fix.
#ifndef FLEXOR_SERVER_GRPC_TENSOR_CODEC_H_
#define FLEXOR_SERVER_GRPC_TENSOR_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/graph/model.h"
#include "proto/grpc_service.pb.h"

namespace flexor::server {

// "FP32", "UINT8", ... for the model file's dtypes.
std::string DatatypeName(model::v1::DType dtype);

struct DecodedRequest {
  std::vector<float> input;  // [batch, input_size]
  int64_t batch = 0;
  // Answer in raw_output_contents (the request used raw inputs, or asked
  // for binary_data); otherwise in typed contents.
  bool raw_output = false;
  // Triton's classification extension: > 0 answers the top class_count
  // classes of each sample as BYTES "score:index[:label]" instead of the
  // scores.
  int64_t class_count = 0;
};

// Validates `request` against `model` (one input; name, datatype, shape and
// byte length; requested outputs and their parameters) and converts the
// input to FP32.
absl::StatusOr<DecodedRequest> DecodeInferRequest(
    const inference::ModelInferRequest& request, const Model& model,
    int max_batch_size);

// Fills `response` with the output rows [decoded.batch, output_size], or
// their classification when decoded.class_count > 0.
void EncodeInferResponse(const inference::ModelInferRequest& request,
                         const Model& model, const std::string& model_name,
                         const std::string& version, const float* output,
                         const DecodedRequest& decoded,
                         inference::ModelInferResponse* response);

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_GRPC_TENSOR_CODEC_H_
