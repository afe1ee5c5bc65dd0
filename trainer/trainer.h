// The training loop (Adam, cosine learning rate updated every step, S_tanh
// warm-up), evaluation, checkpoints, and the contract check against the
// engine.
#ifndef FLEXOR_TRAINER_TRAINER_H_
#define FLEXOR_TRAINER_TRAINER_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/graph/precision_search.h"
#include "trainer/fashion_mnist.h"
#include "trainer/models.h"

namespace flexor::trainer {

struct TrainOptions {
  int epochs = 10;
  int batch_size = 256;
  double learning_rate = 1e-3;
  // S_tanh rises linearly from s_tanh_start to s_tanh over the first
  // s_tanh_warmup_epochs (fractional epochs allowed).
  double s_tanh = 10.0;
  double s_tanh_start = 5.0;
  double s_tanh_warmup_epochs = 1.0;
  // > 0: FleXOR latent bits are clamped to |x| <= latent_clip / S_tanh.
  double latent_clip = 0.0;
  // > 0: stop after this many steps (the schedule is laid over them).
  int64_t max_steps = 0;
  // Evaluate on the test set after every epoch (for the progress line).
  bool eval_every_epoch = true;
  torch::Device device = torch::kCPU;
};

struct EpochReport {
  int epoch = 0;
  int epochs = 0;
  int64_t steps = 0;
  double train_loss = 0;
  double train_accuracy = 0;  // percent, running over the epoch
  double test_accuracy = -1;  // percent, -1 if not evaluated
  double learning_rate = 0;   // at the end of the epoch
  double s_tanh = 0;
  double seconds = 0;
};

// Trains in place. `on_epoch` is called after every epoch (progress lines).
absl::Status Train(Classifier& model, const ImageSet& train,
                   const ImageSet& test, const TrainOptions& options,
                   const std::function<void(const EpochReport&)>& on_epoch);

struct Evaluation {
  double accuracy = 0;        // percent
  torch::Tensor predictions;  // int64 [N] on the CPU
};
Evaluation Evaluate(Classifier& model, const ImageSet& images,
                    torch::Device device);

// Parameters and buffers (including each layer's XOR network rows).
absl::Status SaveCheckpoint(Classifier& model, const std::string& path);
absl::Status LoadCheckpoint(Classifier& model, const std::string& path);

// Loads `model_path` with the engine, runs the test images through it and
// compares with the trainer's predictions.
struct EngineCheck {
  double engine_accuracy = 0;   // percent
  double trainer_accuracy = 0;  // percent
  double agreement = 0;         // percent of images with equal predictions
  int64_t file_bytes = 0;
  double engine_bits_per_weight = 0;
};
absl::StatusOr<EngineCheck> CheckWithEngine(const std::string& model_path,
                                            const ImageSet& images,
                                            const Evaluation& trainer_eval);

// The serving precision to recommend for an exported model: int8
// activations with as few layers in int16 as bring the top-1 agreement with
// the exact FP32 path to `target_agreement` percent on `images`
// (SearchLayerActivations). Not reached even with every bit-coded layer
// apart: `reached` is false and FP32 is the safe choice.
absl::StatusOr<PrecisionSearchResult> RecommendServingPrecision(
    const std::string& model_path, const ImageSet& images,
    double target_agreement);

}  // namespace flexor::trainer

#endif  // FLEXOR_TRAINER_TRAINER_H_
