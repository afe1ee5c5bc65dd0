#include "trainer/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/graph/model.h"

namespace flexor::trainer {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int64_t kEvalBatch = 1000;

torch::Tensor ImagesAsFloat(const torch::Tensor& pixels, torch::Device device) {
  return pixels.to(device).to(torch::kFloat32).unsqueeze(1);
}

}  // namespace

absl::Status Train(Classifier& model, const ImageSet& train,
                   const ImageSet& test, const TrainOptions& options,
                   const std::function<void(const EpochReport&)>& on_epoch) {
  if (options.epochs < 1 || options.batch_size < 1) {
    return absl::InvalidArgumentError("epochs and batch size must be >= 1");
  }
  model.to(options.device);
  const torch::Tensor images = ImagesAsFloat(train.pixels, options.device);
  const torch::Tensor labels = train.labels.to(options.device);
  const int64_t num_images = train.size();
  const int64_t steps_per_epoch =
      (num_images + options.batch_size - 1) / options.batch_size;
  int64_t total_steps = steps_per_epoch * options.epochs;
  if (options.max_steps > 0) {
    total_steps = std::min(total_steps, options.max_steps);
  }
  torch::optim::Adam optimizer(
      model.parameters(),
      torch::optim::AdamOptions(options.learning_rate).weight_decay(0));
  const double warmup_steps =
      std::max(1.0, options.s_tanh_warmup_epochs * steps_per_epoch);

  int64_t step = 0;
  for (int epoch = 1; epoch <= options.epochs && step < total_steps; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    model.train();
    const torch::Tensor order =
        torch::randperm(num_images, torch::kInt64).to(options.device);
    double loss_sum = 0;
    int64_t correct = 0;
    int64_t seen = 0;
    double learning_rate = options.learning_rate;
    double s_tanh = options.s_tanh;
    for (int64_t b = 0; b < steps_per_epoch && step < total_steps; ++b) {
      // Cosine decay to 0 over the whole run, updated every step.
      learning_rate = 0.5 * options.learning_rate *
                      (1.0 + std::cos(kPi * static_cast<double>(step) /
                                      static_cast<double>(total_steps)));
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamOptions&>(group.options())
            .lr(learning_rate);
      }
      const double warm =
          std::min(1.0, static_cast<double>(step) / warmup_steps);
      s_tanh =
          options.s_tanh_start + (options.s_tanh - options.s_tanh_start) * warm;
      model.SetTanhScale(s_tanh);

      const int64_t begin = b * options.batch_size;
      const int64_t count =
          std::min<int64_t>(options.batch_size, num_images - begin);
      const torch::Tensor index = order.narrow(0, begin, count);
      const torch::Tensor batch_images = images.index_select(0, index);
      const torch::Tensor batch_labels = labels.index_select(0, index);

      optimizer.zero_grad();
      const torch::Tensor logits = model.forward(batch_images);
      const torch::Tensor loss =
          torch::nn::functional::cross_entropy(logits, batch_labels);
      const double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value)) {
        return absl::InternalError(absl::StrCat(
            "loss is ", loss_value, " at epoch ", epoch, " step ", step));
      }
      loss.backward();
      optimizer.step();
      model.ClipLatentBits(options.latent_clip);
      model.ApplyDiscreteTransitions();

      loss_sum += loss_value * count;
      correct += logits.argmax(1).eq(batch_labels).sum().item<int64_t>();
      seen += count;
      ++step;
    }
    EpochReport report;
    report.epoch = epoch;
    report.epochs = options.epochs;
    report.steps = step;
    report.train_loss = loss_sum / std::max<int64_t>(seen, 1);
    report.train_accuracy = 100.0 * correct / std::max<int64_t>(seen, 1);
    report.learning_rate = learning_rate;
    report.s_tanh = s_tanh;
    if (options.eval_every_epoch) {
      report.test_accuracy = Evaluate(model, test, options.device).accuracy;
    }
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (on_epoch) on_epoch(report);
  }
  return absl::OkStatus();
}

Evaluation Evaluate(Classifier& model, const ImageSet& images,
                    torch::Device device) {
  torch::NoGradGuard no_grad;
  model.to(device);
  model.eval();
  std::vector<torch::Tensor> predictions;
  for (int64_t begin = 0; begin < images.size(); begin += kEvalBatch) {
    const int64_t count = std::min(kEvalBatch, images.size() - begin);
    const torch::Tensor batch =
        ImagesAsFloat(images.pixels.narrow(0, begin, count), device);
    predictions.push_back(model.forward(batch).argmax(1).to(torch::kCPU));
  }
  Evaluation result;
  result.predictions = torch::cat(predictions);
  result.accuracy = 100.0 *
                    result.predictions.eq(images.labels).sum().item<int64_t>() /
                    static_cast<double>(images.size());
  return result;
}

absl::Status SaveCheckpoint(Classifier& model, const std::string& path) {
  try {
    torch::serialize::OutputArchive archive;
    model.save(archive);
    archive.save_to(path);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("cannot save checkpoint ", path, ": ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status LoadCheckpoint(Classifier& model, const std::string& path) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    model.load(archive);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot load checkpoint ", path,
        " (was it trained with the same --arch/--method flags?): ", e.what()));
  }
  return model.SyncNetworks();
}

absl::StatusOr<EngineCheck> CheckWithEngine(const std::string& model_path,
                                            const ImageSet& images,
                                            const Evaluation& trainer_eval) {
  absl::StatusOr<std::shared_ptr<const Model>> engine_model =
      Model::Load(model_path);
  if (!engine_model.ok()) return engine_model.status();
  const Model& engine = **engine_model;
  const int64_t input_size = engine.input_size();
  const int64_t output_size = engine.output_size();
  if (input_size != kImageSide * kImageSide || output_size != kNumClasses) {
    return absl::FailedPreconditionError(absl::StrCat(
        "engine model has input size ", input_size, " and output size ",
        output_size, ", expected 784 and 10"));
  }
  const torch::Tensor pixels = images.pixels.to(torch::kFloat32)
                                   .reshape({images.size(), -1})
                                   .contiguous();
  std::vector<float> probabilities(kEvalBatch * output_size);
  int64_t engine_correct = 0;
  int64_t agree = 0;
  const int64_t* labels = images.labels.data_ptr<int64_t>();
  const torch::Tensor trainer_predictions =
      trainer_eval.predictions.contiguous();
  const int64_t* trainer_pred = trainer_predictions.data_ptr<int64_t>();
  for (int64_t begin = 0; begin < images.size(); begin += kEvalBatch) {
    const int64_t count = std::min(kEvalBatch, images.size() - begin);
    absl::Status status =
        engine.Run(pixels.data_ptr<float>() + begin * input_size, count,
                   probabilities.data());
    if (!status.ok()) return status;
    for (int64_t i = 0; i < count; ++i) {
      const float* row = probabilities.data() + i * output_size;
      const int64_t predicted = std::max_element(row, row + output_size) - row;
      engine_correct += predicted == labels[begin + i];
      agree += predicted == trainer_pred[begin + i];
    }
  }
  EngineCheck check;
  check.engine_accuracy = 100.0 * engine_correct / images.size();
  check.trainer_accuracy = trainer_eval.accuracy;
  check.agreement = 100.0 * agree / images.size();
  check.file_bytes = engine.stats().file_bytes;
  check.engine_bits_per_weight = engine.stats().bits_per_weight;
  return check;
}

absl::StatusOr<PrecisionSearchResult> RecommendServingPrecision(
    const std::string& model_path, const ImageSet& images,
    double target_agreement) {
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Load(model_path);
  if (!model.ok()) return model.status();
  const torch::Tensor pixels = images.pixels.to(torch::kFloat32)
                                   .reshape({images.size(), -1})
                                   .contiguous();
  if (pixels.size(1) != (*model)->input_size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("engine model takes ", (*model)->input_size(),
                     " inputs per sample, the images have ", pixels.size(1)));
  }
  const torch::Tensor labels = images.labels.contiguous();
  PrecisionSearchOptions options;
  options.base = ActivationPrecision::kInt8;
  options.target_agreement = target_agreement;
  return SearchLayerActivations(**model, pixels.data_ptr<float>(),
                                labels.data_ptr<int64_t>(), images.size(),
                                options);
}

}  // namespace flexor::trainer
