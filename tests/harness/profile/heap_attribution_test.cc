// Tests of heap attribution in the calling process: InProcessHeapProfiles writes this process's
// profiles through the allocation agent (linked into this test), and AttributeHeapGrowth names the
// function whose allocations stay, as a growth item with a stable signature, its file and line.
#include "harness/profile/heap_attribution.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <leakgate/agent.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "harness/scenario/suppressions.h"
#include "harness/profile/symbolizer.h"

namespace leakgate::harness {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;

// Kept for the whole test: what a leak looks like.
std::vector<std::unique_ptr<char[]>>& Kept() {
  static auto* kept = new std::vector<std::unique_ptr<char[]>>();
  return *kept;
}

// Keeps 64 blocks of 4 KiB each time it is called, and frees as much garbage.
__attribute__((noinline)) void KeepSomeBlocks() {
  for (int i = 0; i < 64; ++i) {
    Kept().push_back(std::make_unique<char[]>(4096));
    Kept().back()[0] = static_cast<char>(i);
    auto garbage = std::make_unique<char[]>(4096);
    garbage[0] = 1;
  }
}

class InProcessHeapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("leakgate-inprocess-heap-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    leakgate_agent_set_sample_period(0);  // every allocation: exact figures
  }
  void TearDown() override {
    leakgate_agent_set_sample_period(512 * 1024);
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
};

TEST_F(InProcessHeapTest, NamesTheFunctionWhoseAllocationsStay) {
  InProcessHeapProfiles profiles(dir_.string());
  ASSERT_TRUE(profiles.available()) << "the agent is linked into this test";
  EXPECT_EQ(profiles.name(), "agent");
  std::vector<std::string> paths;
  std::vector<int64_t> heap;
  for (int round = 0; round < 5; ++round) {
    if (round > 0) KeepSomeBlocks();
    auto sample = profiles.Read();
    ASSERT_TRUE(sample) << sample.error().message;
    ASSERT_TRUE(sample->has_value());
    ASSERT_TRUE((*sample)->allocated_bytes.has_value());
    heap.push_back(*(*sample)->allocated_bytes);
    paths.push_back(profiles.LastProfile());
    EXPECT_TRUE(std::filesystem::exists(paths.back())) << paths.back();
  }
  // The exact totals grow by at least what was kept (the vector's own growth comes on top).
  EXPECT_GE(heap.back() - heap.front(), 4 * 64 * 4096);

  Addr2lineSymbolizer symbolizer;
  HeapAttribution attribution = AttributeHeapGrowth(paths, Suppressions{}, symbolizer);
  EXPECT_FALSE(attribution.sampled);
  ASSERT_FALSE(attribution.growth.empty()) << ::testing::PrintToString(attribution.notes);
  const GrowthItem& top = attribution.growth.front();
  EXPECT_EQ(top.kind, "heap");
  EXPECT_THAT(top.site, HasSubstr("KeepSomeBlocks"));
  EXPECT_THAT(top.site, HasSubstr("(heap_attribution_test.cc)"));
  EXPECT_THAT(top.location, HasSubstr("heap_attribution_test.cc:"));
  EXPECT_EQ(top.id.size(), 12u);
  EXPECT_NEAR(top.per_run, 64 * 4096, 64 * 4096 * 0.05);
  EXPECT_NEAR(top.total, 4 * 64 * 4096, 4 * 64 * 4096 * 0.05);
  EXPECT_TRUE(top.suppressed.empty());
  // The garbage freed each round is not named.
  for (const GrowthItem& item : attribution.growth) {
    EXPECT_THAT(item.site, ::testing::Not(HasSubstr("operator new"))) << item.site;
  }
}

TEST_F(InProcessHeapTest, ASuppressedSiteStaysListedWithItsReason) {
  InProcessHeapProfiles profiles(dir_.string());
  ASSERT_TRUE(profiles.available());
  std::vector<std::string> paths;
  for (int round = 0; round < 4; ++round) {
    if (round > 0) KeepSomeBlocks();
    ASSERT_TRUE(profiles.Read());
    paths.push_back(profiles.LastProfile());
  }
  Suppressions suppressions;
  suppressions.entries.push_back({"heap", "*KeepSomeBlocks*", "a cache filled on purpose"});
  Addr2lineSymbolizer symbolizer;
  HeapAttribution attribution = AttributeHeapGrowth(paths, suppressions, symbolizer);
  bool listed = false;
  for (const GrowthItem& item : attribution.growth) {
    if (item.site.find("KeepSomeBlocks") == std::string::npos) continue;
    listed = true;
    EXPECT_EQ(item.suppressed, "a cache filled on purpose");
  }
  EXPECT_TRUE(listed);
}

TEST(HeapAttributionTest, FewerThanTwoReadableProfilesSayWhy) {
  Addr2lineSymbolizer symbolizer;
  const std::vector<std::string> paths = {"/nonexistent/a.heap"};
  HeapAttribution attribution = AttributeHeapGrowth(paths, Suppressions{}, symbolizer);
  EXPECT_TRUE(attribution.growth.empty());
  ASSERT_GE(attribution.notes.size(), 2u);
  EXPECT_THAT(attribution.notes[0], HasSubstr("/nonexistent/a.heap"));
  EXPECT_THAT(attribution.notes.back(), HasSubstr("at least two are needed"));
}

}  // namespace
}  // namespace leakgate::harness
