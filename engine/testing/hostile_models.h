// Model files built to attack the server (found in the issue 12 audit); each
// passes the file-level checks (magic, checksums, tensor bounds) so that it
// reaches the graph compiler and the run planner. The tests, the fuzz seed
// corpus and the attack scripts share them.
#ifndef FLEXOR_ENGINE_TESTING_HOSTILE_MODELS_H_
#define FLEXOR_ENGINE_TESTING_HOSTILE_MODELS_H_

#include <string>

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

}  // namespace flexor

#endif  // FLEXOR_ENGINE_TESTING_HOSTILE_MODELS_H_
