// Model files built to attack the server (found in the issue 12 audit); each
// passes the file-level checks (magic, checksums, tensor bounds) so that it
// reaches the graph compiler and the run planner. The tests, the fuzz seed
// corpus and the attack scripts share them.
#ifndef FLEXOR_ENGINE_TESTING_HOSTILE_MODELS_H_
#define FLEXOR_ENGINE_TESTING_HOSTILE_MODELS_H_

#include <functional>
#include <string>

#include "proto/model.pb.h"

namespace flexor {

// Input shape [2^22, 2^21, 2^21]: every dimension is in range but the
// element count wraps int64 (to 0); a GlobalAvgPool then sums "H * W"
// floats of a tiny request. Must be refused at compile time.
std::string OverflowingInputShapeModel();

// A 1x1 convolution with padding 64 and 4032 output channels on a [1, 1, 1]
// input: a 4-byte sample becomes 256 MiB of activations. Compiles (each
// activation is under the per-value limit); a server must refuse it unless
// its max_batch_size fits the activation budget.
std::string ActivationBombModel();

// `bytes` (a valid model file) with every checksum recomputed after
// `edit` changed the header and/or the payload: what an attacker who edits
// a file does, so that it still passes every file-level check. `edit` gets
// the parsed header and the payload (after the header, 64-byte aligned).
std::string RewriteModel(
    const std::string& bytes,
    const std::function<void(model::v1::ModelHeader& header,
                             std::string& payload)>& edit);

// Tampered copies of a valid model file, checksums valid: one payload byte
// of the first tensor flipped (different weights), and the provenance entry
// "accuracy" set to "99.99" (a lie about the model).
std::string TamperWeights(const std::string& bytes);
std::string TamperProvenance(const std::string& bytes);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_TESTING_HOSTILE_MODELS_H_
