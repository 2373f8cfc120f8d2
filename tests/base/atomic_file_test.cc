#include "base/atomic_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace leakgate {
namespace {

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(WriteFileAtomicallyTest, ReplacesTheFileAndLeavesNoTemporary) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("leakgate-atomic-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / "result.json";
  ASSERT_TRUE(WriteFileAtomically(path.string(), "old"));
  ASSERT_TRUE(WriteFileAtomically(path.string(), "new content"));
  EXPECT_EQ(Slurp(path), "new content");
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
  std::filesystem::remove_all(dir);
}

TEST(WriteFileAtomicallyTest, AMissingFolderIsAnIoErrorNamingThePath) {
  auto written = WriteFileAtomically("/nonexistent-leakgate-dir/result.json", "x");
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().code, ErrorCode::kIo);
  EXPECT_NE(written.error().message.find("/nonexistent-leakgate-dir/result.json"), std::string::npos);
}

}  // namespace
}  // namespace leakgate
