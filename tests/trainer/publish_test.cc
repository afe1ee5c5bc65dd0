// --publish-dir: <root>/<model>/<next version>/model.flexor, atomically.
#include "trainer/publish.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/format/model_signature.h"

namespace flexor::trainer {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

TEST(PublishToDirectoryTest, WritesNextVersionAndLeavesNoStaging) {
  const fs::path root = fs::path(::testing::TempDir()) /
                        ("publish_test_" + std::to_string(getpid()));
  fs::remove_all(root);
  const fs::path source = root / "source.flexor";
  fs::create_directories(root);
  std::ofstream(source, std::ios::binary) << "model bytes";
  fs::create_directories(root / "repo" / "m" / "not_a_version");

  absl::StatusOr<std::string> first =
      PublishToDirectory(source.string(), (root / "repo").string(), "m");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, (root / "repo" / "m" / "1" / kModelFileName).string());
  fs::create_directories(root / "repo" / "m" / "7");
  absl::StatusOr<std::string> second =
      PublishToDirectory(source.string(), (root / "repo").string(), "m");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, (root / "repo" / "m" / "8" / kModelFileName).string());
  EXPECT_EQ(ReadAll(*second), "model bytes");
  for (const auto& entry : fs::directory_iterator(root / "repo" / "m")) {
    EXPECT_NE(entry.path().filename().string().rfind(".staging", 0), 0u)
        << entry.path();
  }
  EXPECT_FALSE(
      PublishToDirectory((root / "missing").string(), root.string(), "m").ok());
  fs::remove_all(root);
}

// The recommended serving config becomes the model's config.pbtxt when it
// has none, and never replaces the operator's.
TEST(PublishToDirectoryTest, WritesTheConfigOnlyWhenTheModelHasNone) {
  const fs::path root = fs::path(::testing::TempDir()) /
                        ("publish_config_test_" + std::to_string(getpid()));
  fs::remove_all(root);
  const fs::path source = root / "source.flexor";
  fs::create_directories(root);
  std::ofstream(source, std::ios::binary) << "model bytes";
  const std::string repo = (root / "repo").string();
  ASSERT_TRUE(PublishToDirectory(source.string(), repo, "m",
                                 "activation_precision: INT8\n")
                  .ok());
  EXPECT_EQ(ReadAll((root / "repo" / "m" / "config.pbtxt").string()),
            "activation_precision: INT8\n");
  ASSERT_TRUE(PublishToDirectory(source.string(), repo, "m",
                                 "activation_precision: FP32\n")
                  .ok());
  EXPECT_EQ(ReadAll((root / "repo" / "m" / "config.pbtxt").string()),
            "activation_precision: INT8\n");
  EXPECT_TRUE(fs::exists(root / "repo" / "m" / "2" / kModelFileName));
  // No config text: none written.
  ASSERT_TRUE(PublishToDirectory(source.string(), repo, "other").ok());
  EXPECT_FALSE(fs::exists(root / "repo" / "other" / "config.pbtxt"));
  fs::remove_all(root);
}

// --sign-key: SignModelFile writes <file>.sig, and the published version
// directory gets it next to the model; the signature verifies there.
TEST(PublishToDirectoryTest, SignedFilesArePublishedWithTheirSignature) {
  const fs::path root = fs::path(::testing::TempDir()) /
                        ("publish_sign_test_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const fs::path source = root / "source.flexor";
  std::ofstream(source, std::ios::binary) << "model bytes";
  absl::StatusOr<SigningKeyPair> pair = GenerateSigningKeyPair();
  ASSERT_TRUE(pair.ok());
  std::ofstream(root / "key.pem") << pair->private_pem;
  absl::StatusOr<std::string> key_id =
      SignModelFile(source.string(), (root / "key.pem").string());
  ASSERT_TRUE(key_id.ok()) << key_id.status();
  absl::StatusOr<std::string> published =
      PublishToDirectory(source.string(), (root / "repo").string(), "m");
  ASSERT_TRUE(published.ok()) << published.status();
  const std::string signature = ReadAll(*published + kSignatureSuffix);
  EXPECT_NE(signature.find(*key_id), std::string::npos) << signature;
  absl::StatusOr<ModelVerifier> verifier =
      ModelVerifier::FromPublicPems({pair->public_pem});
  ASSERT_TRUE(verifier.ok());
  EXPECT_TRUE(verifier->Verify(ReadAll(*published), signature).ok());
  EXPECT_FALSE(verifier->Verify("other bytes", signature).ok());
  EXPECT_FALSE(
      SignModelFile(source.string(), (root / "missing.pem").string()).ok());
  fs::remove_all(root);
}

}  // namespace
}  // namespace flexor::trainer
