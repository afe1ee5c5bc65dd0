// The contract between trainer and engine, fast version: train tiny models
// for a few hundred steps on part of Fashion-MNIST, export them, reload the
// file with the engine and require the same test accuracy (within 0.1 point)
// and the same predictions on >= 99.9% of the test images.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "engine/format/model_writer.h"
#include "engine/graph/model.h"
#include "trainer/fashion_mnist.h"
#include "trainer/models.h"
#include "trainer/trainer.h"

namespace flexor::trainer {
namespace {

class ContractTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<FashionMnist> data =
        LoadFashionMnist(kDefaultFashionMnistDir);
    if (data.ok()) {
      data_ = new FashionMnist(*std::move(data));
    } else {
      load_error_ = new std::string(data.status().ToString());
    }
  }
  static void TearDownTestSuite() {
    delete data_;
    data_ = nullptr;
  }

  void SetUp() override {
    if (data_ == nullptr) GTEST_SKIP() << "no Fashion-MNIST: " << *load_error_;
    torch::set_num_threads(1);
  }

  // Trains `config` for `steps` steps, exports, checks with the engine.
  void TrainExportAndCheck(const ArchConfig& config, int64_t steps,
                           int64_t train_images, int64_t test_images,
                           double min_trainer_accuracy, bool fold_batchnorm) {
    torch::manual_seed(1);
    const ImageSet train{data_->train.pixels.narrow(0, 0, train_images),
                         data_->train.labels.narrow(0, 0, train_images)};
    const ImageSet test{data_->test.pixels.narrow(0, 0, test_images),
                        data_->test.labels.narrow(0, 0, test_images)};
    absl::StatusOr<std::shared_ptr<Classifier>> model = MakeClassifier(config);
    ASSERT_TRUE(model.ok()) << model.status();
    TrainOptions options;
    options.epochs = 100;
    options.batch_size = 64;
    options.max_steps = steps;
    options.s_tanh_warmup_epochs = 0.5;
    options.eval_every_epoch = false;
    ASSERT_TRUE(Train(**model, train, test, options, nullptr).ok());
    const Evaluation evaluation = Evaluate(**model, test, torch::kCPU);
    EXPECT_GE(evaluation.accuracy, min_trainer_accuracy);

    const std::string path = ::testing::TempDir() + "/contract_" +
                             std::to_string(getpid()) + ".flexor";
    ModelWriter writer("contract");
    writer.metadata().set_name("contract");
    writer.metadata().set_method(QuantMethodName(config.quant.method));
    GraphExporter exporter(&writer, fold_batchnorm);
    (*model)->Export(exporter);
    ASSERT_TRUE(writer.WriteFile(path).ok());
    absl::StatusOr<EngineCheck> check = CheckWithEngine(path, test, evaluation);
    // The serving precision flexor_train recommends: what it reports is what
    // it measured, and a target no model reaches ends with every bit-coded
    // layer set apart in int16.
    absl::StatusOr<PrecisionSearchResult> recommended =
        RecommendServingPrecision(path, test, 99.9);
    ASSERT_TRUE(recommended.ok()) << recommended.status();
    EXPECT_EQ(recommended->reached, recommended->agreement.percent() >= 99.9);
    EXPECT_EQ(recommended->agreement.samples, test.size());
    absl::StatusOr<PrecisionSearchResult> unreachable =
        RecommendServingPrecision(path, test, 100.5);
    ASSERT_TRUE(unreachable.ok()) << unreachable.status();
    EXPECT_FALSE(unreachable->reached);
    absl::StatusOr<std::shared_ptr<const Model>> engine = Model::Load(path);
    ASSERT_TRUE(engine.ok()) << engine.status();
    EXPECT_EQ(unreachable->layers.size(),
              (*engine)->WeightLayerNames(/*quantized_only=*/true).size());
    std::remove(path.c_str());
    ASSERT_TRUE(check.ok()) << check.status();
    std::printf("%s %s: trainer %.2f%% engine %.2f%% agreement %.2f%%\n",
                ArchName(config.arch).c_str(),
                QuantMethodName(config.quant.method).c_str(),
                check->trainer_accuracy, check->engine_accuracy,
                check->agreement);
    EXPECT_LE(std::abs(check->engine_accuracy - check->trainer_accuracy), 0.1);
    EXPECT_GE(check->agreement, 99.9);
  }

  static FashionMnist* data_;
  static std::string* load_error_;
};

FashionMnist* ContractTest::data_ = nullptr;
std::string* ContractTest::load_error_ = nullptr;

// flexor_train's MLP (a quantized first layer, a float32 last one), narrower.
ArchConfig TinyMlp(QuantMethod method, int n_in) {
  ArchConfig config = DefaultArchConfig(Arch::kMlp);
  config.mlp_hidden = 64;
  config.quant.method = method;
  config.quant.n_in = n_in;
  config.quant.n_out = 20;
  config.quant.n_tap = 2;
  return config;
}

TEST_F(ContractTest, FlexorMlpTrainsAndEngineAgrees) {
  TrainExportAndCheck(TinyMlp(QuantMethod::kFlexor, 16), /*steps=*/300,
                      /*train_images=*/12000, /*test_images=*/2000,
                      /*min_trainer_accuracy=*/70.0, /*fold_batchnorm=*/true);
}

// Row-aligned slices: the file carries BitPlane.slices and the engine (with
// FLEXOR_KERNEL_ISA=avx2, the int8 LUT over taps kept transposed) agrees.
TEST_F(ContractTest, FlexorRowAlignedSlicesEngineAgrees) {
  ArchConfig config = TinyMlp(QuantMethod::kFlexor, 16);
  config.quant.row_aligned_slices = true;
  TrainExportAndCheck(config, 100, 6000, 1000, 60.0, /*fold=*/true);
}

TEST_F(ContractTest, FlexorTwoPlanesWithBatchNormNodes) {
  ArchConfig config = TinyMlp(QuantMethod::kFlexor, 12);
  config.quant.planes = 2;
  config.quant.n_tap = 3;
  TrainExportAndCheck(config, 100, 6000, 1000, 60.0, /*fold=*/false);
}

TEST_F(ContractTest, BaselinesEngineAgrees) {
  for (QuantMethod method :
       {QuantMethod::kFloat32, QuantMethod::kBinary1, QuantMethod::kBinary2Ls,
        QuantMethod::kTernary, QuantMethod::kTernaryDst}) {
    TrainExportAndCheck(TinyMlp(method, 0), 100, 6000, 1000, 60.0, true);
  }
}

// Convolutions (LeNet layout, quantized conv2 and fc1) and the residual graph.
TEST_F(ContractTest, FlexorConvNetsEngineAgrees) {
  ArchConfig lenet = DefaultArchConfig(Arch::kLeNet);
  lenet.quant.method = QuantMethod::kFlexor;
  TrainExportAndCheck(lenet, 30, 3000, 500, 40.0, true);
  ArchConfig resnet = DefaultArchConfig(Arch::kResNet);
  resnet.quant.method = QuantMethod::kFlexor;
  TrainExportAndCheck(resnet, 10, 1000, 300, 0.0, true);
}

}  // namespace
}  // namespace flexor::trainer
