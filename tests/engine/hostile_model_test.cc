// The engine's defences against hostile model files: checked shape
// arithmetic at compile time and a bounded, failure-safe run.
#include <memory>
#include <string>
#include <vector>

#include "engine/format/model_file.h"
#include "engine/graph/model.h"
#include "engine/ops/operator.h"
#include "engine/testing/hostile_models.h"
#include "gtest/gtest.h"

namespace flexor {
namespace {

absl::StatusOr<std::shared_ptr<const Model>> CompileBytes(
    const std::string& bytes) {
  absl::StatusOr<std::shared_ptr<const ModelFile>> file =
      ModelFile::FromBytes(bytes, "hostile.flexor");
  if (!file.ok()) return file.status();
  return Model::Compile(*std::move(file));
}

TEST(HostileModelTest, ShapeProductsSaturateInsteadOfWrapping) {
  EXPECT_EQ(NumElements({int64_t{1} << 22, int64_t{1} << 21, int64_t{1} << 21}),
            kShapeOverflow);
  EXPECT_EQ(NumElements({INT64_MAX, 2}), kShapeOverflow);
  EXPECT_EQ(NumElements({3, -1}), -1);
  EXPECT_EQ(NumElements({3, 5, 7}), 105);
}

TEST(HostileModelTest, OverflowingInputShapeIsRefusedAtCompile) {
  // The file itself is well formed: only the graph compiler can catch it.
  ASSERT_TRUE(ModelFile::FromBytes(OverflowingInputShapeModel(), "x").ok());
  absl::StatusOr<std::shared_ptr<const Model>> model =
      CompileBytes(OverflowingInputShapeModel());
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find("inputs[0].shape"), std::string::npos)
      << model.status();
}

TEST(HostileModelTest, ActivationBombIsBoundedBeforeAllocation) {
  absl::StatusOr<std::shared_ptr<const Model>> model =
      CompileBytes(ActivationBombModel());
  ASSERT_TRUE(model.ok()) << model.status();
  // 4032 x 129 x 129 floats per sample: the plan knows it up front.
  const int64_t per_sample = (*model)->ActivationBytes(1, 1);
  EXPECT_GE(per_sample, int64_t{4032} * 129 * 129 * 4);
  EXPECT_LT(per_sample, int64_t{300} << 20);
  EXPECT_GT((*model)->ActivationBytes(64, 1), kMaxRunActivationBytes);
  // A batch past the engine's hard limit is refused without allocating.
  std::vector<float> input(64, 1.0f), output(64 * 4032);
  absl::Status status = (*model)->Run(input.data(), 64, output.data());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_NE(status.message().find("bytes of activations"), std::string::npos);
}

TEST(HostileModelTest, ActivationBytesGrowLinearlyAndNeverOverflow) {
  absl::StatusOr<std::shared_ptr<const Model>> model =
      CompileBytes(ActivationBombModel());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->ActivationBytes(int64_t{1} << 62, 1), INT64_MAX);
  EXPECT_EQ((*model)->ActivationBytes(0, 1), 0);
  EXPECT_LT((*model)->ActivationBytes(2, 1),
            2 * (*model)->ActivationBytes(1, 1) + 1);
}

}  // namespace
}  // namespace flexor
