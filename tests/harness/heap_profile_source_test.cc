// Reading the totals of gperftools heap profiles, and the environment that makes a target dump them.
#include "harness/heap_profile_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace leakgate::harness {
namespace {

using ::testing::HasSubstr;

TEST(HeapProfileHeaderTest, ReadsInUseAndAllocatedTotals) {
  // The first lines of a dump taken from backtest_server with HEAPPROFILE.
  auto totals = ParseHeapProfileHeader(
      "heap profile:  1431:   308741 [ 61025: 26877385] @ heapprofile\n"
      "     1:    65536 [     1:    65536] @ 0x7f 0x55\n",
      "target.0002.heap");
  ASSERT_TRUE(totals) << totals.error().message;
  EXPECT_EQ(totals->inuse_objects, 1431);
  EXPECT_EQ(totals->inuse_bytes, 308741);
  EXPECT_EQ(totals->alloc_objects, 61025);
  EXPECT_EQ(totals->alloc_bytes, 26877385);
}

TEST(HeapProfileHeaderTest, AcceptsAHeaderWithoutCumulativeTotals) {
  auto totals = ParseHeapProfileHeader("heap profile: 3: 96 @ heapprofile\n", "x.heap");
  ASSERT_TRUE(totals);
  EXPECT_EQ(totals->inuse_bytes, 96);
  EXPECT_EQ(totals->alloc_bytes, 0);
}

TEST(HeapProfileHeaderTest, RejectsOtherTextNamingTheFile) {
  for (const char* text : {"", "--- heapz 1 ---\n", "heap profile: x: 1 @ heapprofile",
                           "heap profile: 1 2 [3: 4]"}) {
    auto totals = ParseHeapProfileHeader(text, "/out/heap/target.0001.heap");
    ASSERT_FALSE(totals) << text;
    EXPECT_EQ(totals.error().code, ErrorCode::kParse);
    EXPECT_THAT(totals.error().message, HasSubstr("/out/heap/target.0001.heap"));
    EXPECT_THAT(totals.error().message, HasSubstr("heap profile: N: BYTES"));
  }
}

TEST(HeapProfileEnvironmentTest, PreloadsTcmallocAndDumpsOnlyOnTheSignal) {
  if (FindTcmallocLibrary().empty()) GTEST_SKIP() << "libtcmalloc.so.4 is not installed";
  auto env = HeapProfileEnvironment("/out/heap/target", 12, {{"LD_PRELOAD", "/lib/other.so"}});
  ASSERT_TRUE(env) << env.error().message;
  EXPECT_THAT((*env)["LD_PRELOAD"], HasSubstr("/lib/other.so:"));
  EXPECT_THAT((*env)["LD_PRELOAD"], HasSubstr("libtcmalloc.so.4"));
  EXPECT_EQ((*env)["HEAPPROFILE"], "/out/heap/target");
  EXPECT_EQ((*env)["HEAPPROFILESIGNAL"], "12");
  EXPECT_EQ((*env)["TCMALLOC_STACKTRACE_METHOD"], "libgcc");
}

}  // namespace
}  // namespace leakgate::harness
