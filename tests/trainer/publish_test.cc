// --publish-dir: <root>/<model>/<next version>/model.flexor, atomically.
#include "trainer/publish.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

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

}  // namespace
}  // namespace flexor::trainer
