// Fixtures and golden files of the report tests: result files under tests/reports/testdata and the
// expected renderings under testdata/expected (heaptrack's .expected files, compared whole).
// LEAKGATE_UPDATE_GOLDEN=1 rewrites the expected files instead of comparing.
#ifndef LEAKGATE_TESTS_REPORTS_GOLDEN_H_
#define LEAKGATE_TESTS_REPORTS_GOLDEN_H_

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "reports/report.h"

namespace leakgate::reports::golden {

inline const std::filesystem::path kData =
    std::filesystem::path(LEAKGATE_SOURCE_DIR) / "tests/reports/testdata";

inline std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A result file of testdata, read as `leakgate report` reads it.
inline nlohmann::json Fixture(const std::string& name) {
  auto result = ReadResultFile((kData / name).string());
  EXPECT_TRUE(result.has_value()) << result.error().message;
  return result.value_or(nlohmann::json());
}

inline bool UpdateGolden() {
  const char* update = std::getenv("LEAKGATE_UPDATE_GOLDEN");
  return update != nullptr && std::string(update) == "1";
}

inline void ExpectGolden(const std::string& actual, const std::string& expected_name) {
  const std::filesystem::path expected = kData / "expected" / expected_name;
  if (UpdateGolden()) {
    std::ofstream(expected, std::ios::binary) << actual;
    return;
  }
  ASSERT_TRUE(std::filesystem::exists(expected))
      << expected << " is missing; run with LEAKGATE_UPDATE_GOLDEN=1 to write it";
  EXPECT_EQ(actual, ReadText(expected))
      << "output differs from " << expected
      << "; if the change is intended, run with LEAKGATE_UPDATE_GOLDEN=1";
}

}  // namespace leakgate::reports::golden

#endif  // LEAKGATE_TESTS_REPORTS_GOLDEN_H_
