// Turns a WeightCodec of a model file into a validated LayerWeights view.
#ifndef FLEXOR_ENGINE_OPS_WEIGHT_LOADER_H_
#define FLEXOR_ENGINE_OPS_WEIGHT_LOADER_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/format/model_file.h"
#include "engine/kernels/layer_weights.h"
#include "proto/model.pb.h"

namespace flexor {

inline constexpr int kMaxBitPlanes = 8;

// O x K weights in `codec` plus an optional FLOAT32 [O] bias tensor.
absl::StatusOr<LayerWeights> LoadLayerWeights(
    const model::v1::WeightCodec& codec, const std::string& bias,
    int64_t out_features, int64_t in_features, const ModelFile& file);

// "flexor q=1 N_in/N_out=16/20 rank 15 (0.80 bit/w)" and similar.
std::string DescribeWeights(const LayerWeights& w);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_OPS_WEIGHT_LOADER_H_
