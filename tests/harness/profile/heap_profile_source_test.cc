// Reading the totals of gperftools heap profiles, and the environment that makes a target dump them.
#include "harness/profile/heap_profile_source.h"
#include "harness/profile/preload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>

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

namespace leakgate::harness {
namespace {

using ::testing::HasSubstr;

// A folder with a stand-in agent library, set as LEAKGATE_AGENT_LIBRARY for the test's duration.
class AgentLibraryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/leakgate-agent-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    library_ = dir_ + "/libleakgate_agent.so";
    std::ofstream(library_) << "not really a library";
    const char* previous = std::getenv("LEAKGATE_AGENT_LIBRARY");
    if (previous != nullptr) previous_ = previous;
  }
  void TearDown() override {
    if (previous_) {
      ::setenv("LEAKGATE_AGENT_LIBRARY", previous_->c_str(), 1);
    } else {
      ::unsetenv("LEAKGATE_AGENT_LIBRARY");
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string dir_;
  std::string library_;
  std::optional<std::string> previous_;
};

TEST_F(AgentLibraryTest, TheEnvironmentVariableWinsWhenItNamesAFile) {
  ::setenv("LEAKGATE_AGENT_LIBRARY", library_.c_str(), 1);
  EXPECT_EQ(FindAgentLibrary(), library_);
  ::setenv("LEAKGATE_AGENT_LIBRARY", (dir_ + "/missing.so").c_str(), 1);
  EXPECT_NE(FindAgentLibrary(), dir_ + "/missing.so");
  ::setenv("LEAKGATE_AGENT_LIBRARY", dir_.c_str(), 1);  // a folder is not a library
  EXPECT_NE(FindAgentLibrary(), dir_);
}

TEST_F(AgentLibraryTest, EnvironmentPreloadsTheAgentAndConfiguresIt) {
  ::setenv("LEAKGATE_AGENT_LIBRARY", library_.c_str(), 1);
  auto env = AgentProfileEnvironment("/out/heap/target", 12, 524288,
                                     {{"LD_PRELOAD", "/lib/other.so"}, {"KEEP", "1"}});
  ASSERT_TRUE(env) << env.error().message;
  EXPECT_EQ((*env)["LD_PRELOAD"], "/lib/other.so:" + library_);
  EXPECT_EQ((*env)["LEAKGATE_AGENT_PREFIX"], "/out/heap/target");
  EXPECT_EQ((*env)["LEAKGATE_AGENT_SIGNAL"], "12");
  EXPECT_EQ((*env)["LEAKGATE_AGENT_SAMPLE"], "524288");
  EXPECT_EQ((*env)["KEEP"], "1");
  EXPECT_EQ(env->count("HEAPPROFILE"), 0u);

  auto exact = AgentProfileEnvironment("/out/heap/target", 10, 0, {});
  ASSERT_TRUE(exact) << exact.error().message;
  EXPECT_EQ((*exact)["LEAKGATE_AGENT_SAMPLE"], "0");
  EXPECT_THAT((*exact)["LD_PRELOAD"], HasSubstr(library_));

  auto negative = AgentProfileEnvironment("/out/heap/target", 12, -1, {});
  ASSERT_FALSE(negative);
  EXPECT_EQ(negative.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(AgentLibraryTest, AMissingAgentIsNotFoundWithWhereItWasLookedFor) {
  ::setenv("LEAKGATE_AGENT_LIBRARY", (dir_ + "/missing.so").c_str(), 1);
  if (!FindAgentLibrary().empty()) {
    GTEST_SKIP() << "an agent is installed at " << FindAgentLibrary();
  }
  auto env = AgentProfileEnvironment("/out/heap/target", 12, 524288, {});
  ASSERT_FALSE(env);
  EXPECT_EQ(env.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(env.error().message, HasSubstr("libleakgate_agent.so"));
  EXPECT_THAT(env.error().message, HasSubstr(dir_ + "/missing.so"));
}

// A stand-in target: on SIGUSR2 it renames `profile` into place as `dir`/target.0001.heap, the
// way the agent publishes a finished profile. Killed and reaped on destruction.
class ProfileWritingTarget {
 public:
  ProfileWritingTarget(const std::string& dir, const std::string& profile) {
    const std::string ready = dir + "/ready.heap.tmp";
    std::ofstream(ready) << profile;
    const std::string script = "trap 'mv " + ready + " " + dir +
                               "/target.0001.heap' USR2; echo up > " + dir +
                               "/up; while :; do sleep 0.02; done";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 500 && !std::filesystem::exists(dir + "/up"); ++i) ::usleep(10000);
  }
  ~ProfileWritingTarget() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

class HeapProfileSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/leakgate-profile-source-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_;
};

// The source reads the agent's exact in-use total, not the sampled header.
TEST_F(HeapProfileSourceTest, ReadsTheAgentsExactTotalFromANewProfile) {
  ProfileWritingTarget target(
      dir_,
      "heap profile:      2:  1048576 [     2:  1048576] @ heap_v2/524288\n"
      "# leakgate-agent exact_inuse_objects=77 exact_inuse_bytes=3145728 exact_alloc_objects=90 "
      "exact_alloc_bytes=4000000 sample_period=524288 pid=1\n"
      "# leakgate-agent thread 12 worker @ 0x1000\n"
      "     2:  1048576 [     2:  1048576] @ 0x1000 0x2000\n"
      "MAPPED_LIBRARIES:\n"
      "00001000-00003000 r-xp 00000000 08:01 1   /srv/app\n");
  ASSERT_GT(target.pid(), 0);
  HeapProfileSource source(target.pid(), dir_ + "/target", SIGUSR2, Clock::Real(), 3.0, 3);
  auto sample = source.Read();
  ASSERT_TRUE(sample) << sample.error().message;
  ASSERT_TRUE(sample->has_value());
  EXPECT_EQ((*sample)->allocated_bytes, 3145728);
  EXPECT_EQ(source.LastProfile(), dir_ + "/target.0001.heap");
  ASSERT_TRUE(source.last_parsed());
  EXPECT_EQ(source.last_parsed()->kind, HeapProfileKind::kSampled);
  EXPECT_TRUE(source.warnings().empty());
}

// A dump that stays cut short is used, with its header's total, and a warning that says so.
TEST_F(HeapProfileSourceTest, ACutDumpIsUsedWithAWarning) {
  ProfileWritingTarget target(dir_,
                              "heap profile:   3:   4096 [   9:  9000] @ heapprofile\n"
                              "     2:     2048 [     2:     2048] @ 0x1000 0x2000\n");
  ASSERT_GT(target.pid(), 0);
  HeapProfileSource source(target.pid(), dir_ + "/target", SIGUSR2, Clock::Real(), 3.0, 3);
  const auto started = std::chrono::steady_clock::now();
  auto sample = source.Read();
  ASSERT_TRUE(sample) << sample.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(800));
  ASSERT_TRUE(sample->has_value());
  EXPECT_EQ((*sample)->allocated_bytes, 4096);
  ASSERT_EQ(source.warnings().size(), 1u);
  EXPECT_THAT(source.warnings()[0], HasSubstr("target.0001.heap is truncated"));
}

}  // namespace
}  // namespace leakgate::harness
