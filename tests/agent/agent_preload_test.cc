// The agent preloaded into real programs (tests/agent/agent_target.cc, tcmalloc_target.cc): what it
// counts and samples, the profiles it writes on a signal and at exit, and that the program keeps
// its allocator, its exception speed, its threads and its children.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "agent_test_support.h"

namespace leakgate::agent_test {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kBlocksPerRound = 100;      // as in agent_target.cc
constexpr int64_t kBlockBytes = 64 * 1024;    // as in agent_target.cc

class AgentPreloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    target_ = std::string(LEAKGATE_BINARY_DIR) + "/tests/agent_target";
    ASSERT_TRUE(fs::exists(AgentLibrary())) << AgentLibrary() << " has not been built";
    ASSERT_TRUE(fs::exists(target_)) << target_ << " has not been built";
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("agent_preload_test_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    prefix_ = (dir_ / "profile").string();
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::map<std::string, std::string> AgentEnv(const std::string& sample = "") const {
    std::map<std::string, std::string> env = {{"LD_PRELOAD", AgentLibrary()},
                                              {"LEAKGATE_AGENT_PREFIX", prefix_}};
    if (!sample.empty()) env["LEAKGATE_AGENT_SAMPLE"] = sample;
    return env;
  }

  ProgramRun RunTarget(const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env, double timeout_s = 30) {
    std::vector<std::string> argv = {target_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, env, dir_, timeout_s);
  }

  std::string ProfilePath(int sequence, const std::string& prefix = "") const {
    char number[16];
    snprintf(number, sizeof(number), ".%04d.heap", sequence);
    return (prefix.empty() ? prefix_ : prefix) + number;
  }

  // Sum of the stacks passing through `function`.
  static ProfileFigures SumThrough(const Profile& profile, const ProgramSymbols& symbols,
                                   const std::string& function) {
    return SumThrough(profile.stacks, symbols, function);
  }
  static ProfileFigures SumThrough(const std::vector<ProfileStack>& stacks,
                                   const ProgramSymbols& symbols, const std::string& function) {
    ProfileFigures sum;
    for (const ProfileStack& stack : stacks) {
      if (!symbols.StackHas(stack.frames, function)) continue;
      sum.live_objects += stack.figures.live_objects;
      sum.live_bytes += stack.figures.live_bytes;
      sum.alloc_objects += stack.figures.alloc_objects;
      sum.alloc_bytes += stack.figures.alloc_bytes;
    }
    return sum;
  }

  static void ExpectHeaderIsSumOfStacks(const Profile& profile) {
    ProfileFigures sum;
    for (const ProfileStack& stack : profile.stacks) {
      sum.live_objects += stack.figures.live_objects;
      sum.live_bytes += stack.figures.live_bytes;
      sum.alloc_objects += stack.figures.alloc_objects;
      sum.alloc_bytes += stack.figures.alloc_bytes;
    }
    EXPECT_EQ(profile.header.live_objects, sum.live_objects);
    EXPECT_EQ(profile.header.live_bytes, sum.live_bytes);
    EXPECT_EQ(profile.header.alloc_objects, sum.alloc_objects);
    EXPECT_EQ(profile.header.alloc_bytes, sum.alloc_bytes);
  }

  // The peak lines: their sums in the peak_total line, largest first, and (like stack lines) the
  // bracket repeating the live figures.
  static void ExpectPeakLinesAreWellFormed(const Profile& profile) {
    ASSERT_TRUE(profile.has_peak_total);
    ProfileFigures sum;
    int64_t previous_bytes = INT64_MAX;
    for (const ProfileStack& stack : profile.peak_stacks) {
      sum.live_objects += stack.figures.live_objects;
      sum.live_bytes += stack.figures.live_bytes;
      EXPECT_EQ(stack.figures.alloc_objects, stack.figures.live_objects);
      EXPECT_EQ(stack.figures.alloc_bytes, stack.figures.live_bytes);
      EXPECT_LE(stack.figures.live_bytes, previous_bytes) << "peak lines not largest first";
      EXPECT_FALSE(stack.frames.empty());
      previous_bytes = stack.figures.live_bytes;
    }
    EXPECT_EQ(profile.peak_total.live_objects, sum.live_objects);
    EXPECT_EQ(profile.peak_total.live_bytes, sum.live_bytes);
  }

  // The second profile of `transient`: nothing was allocated since the first but the dump
  // requests' strings, so its peak is the live state (the window restarted with the first).
  void ExpectPeakRestartedAtTheLiveState(const Profile& second, const ProgramSymbols& symbols) {
    ASSERT_TRUE(second.valid) << second.error;
    ExpectPeakLinesAreWellFormed(second);
    EXPECT_EQ(SumThrough(second.peak_stacks, symbols, "BuildTransientRows").live_objects, 0);
    EXPECT_EQ(SumThrough(second.peak_stacks, symbols, "WriteRowsAtOnce").live_objects, 0);
    EXPECT_NEAR(second.peak_total.live_bytes, second.header.live_bytes, 64 * 1024);
    EXPECT_NEAR(second.peak_total.live_objects, second.header.live_objects, 16);
  }

  std::string target_;
  fs::path dir_;
  std::string prefix_;
};

TEST_F(AgentPreloadTest, ExactModeProfilesCountEveryLeakedBlockOnItsStack) {
  const ProgramRun run = RunTarget({"leak", "3", "1"}, AgentEnv("0"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  for (int round = 1; round <= 3; ++round) {
    SCOPED_TRACE("profile " + std::to_string(round));
    const Profile profile = ReadProfile(ProfilePath(round));
    ASSERT_TRUE(profile.valid) << profile.error;
    EXPECT_EQ(profile.kind, "heapprofile");
    EXPECT_TRUE(profile.has_mapped_libraries);
    ExpectHeaderIsSumOfStacks(profile);
    const ProgramSymbols symbols(target_, profile);
    ASSERT_TRUE(symbols.loaded());

    const ProfileFigures leak = SumThrough(profile, symbols, "LeakOneRound");
    EXPECT_EQ(leak.live_objects, round * kBlocksPerRound);
    EXPECT_EQ(leak.live_bytes, round * kBlocksPerRound * kBlockBytes);
    EXPECT_EQ(leak.alloc_bytes, round * kBlocksPerRound * kBlockBytes);
    // Garbage is freed within its round: none of it is live.
    const ProfileFigures garbage = SumThrough(profile, symbols, "MakeGarbage");
    EXPECT_EQ(garbage.live_objects, 0);

    // Exact totals: every allocation of the program, in usable sizes.
    ASSERT_EQ(profile.exact.count("exact_inuse_bytes"), 1u);
    EXPECT_GE(profile.exact.at("exact_inuse_bytes"), round * kBlocksPerRound * kBlockBytes);
    EXPECT_LT(profile.exact.at("exact_inuse_bytes"),
              round * kBlocksPerRound * kBlockBytes + 2 * 1024 * 1024);
    EXPECT_GE(profile.exact.at("exact_alloc_objects"), round * (kBlocksPerRound + 20000));
    EXPECT_EQ(profile.exact.at("sample_period"), 0);
    // In exact mode every allocation after start-up is on a stack: the profile and the counters
    // agree but for what the C++ runtime allocated before the agent was ready.
    EXPECT_LE(profile.exact.at("exact_inuse_objects") - profile.header.live_objects, 8);
    EXPECT_GE(profile.exact.at("exact_inuse_objects"), profile.header.live_objects);
  }
  EXPECT_FALSE(fs::exists(ProfilePath(4)));
  for (const auto& entry : fs::directory_iterator(dir_)) {
    EXPECT_NE(entry.path().extension(), ".tmp") << entry.path();
  }
}

TEST_F(AgentPreloadTest, SampledProfileEstimatesTheLeakAndOmitsFreedMemory) {
  const int rounds = 10;
  const ProgramRun run = RunTarget({"leak", std::to_string(rounds), "0"}, AgentEnv());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const Profile profile = ReadProfile(ProfilePath(1));
  ASSERT_TRUE(profile.valid) << profile.error;
  EXPECT_EQ(profile.kind, "heap_v2");
  EXPECT_EQ(profile.period, 512 * 1024);
  ExpectHeaderIsSumOfStacks(profile);
  const ProgramSymbols symbols(target_, profile);
  ASSERT_TRUE(symbols.loaded());

  double leak_estimate = 0;
  for (const ProfileStack& stack : profile.stacks) {
    EXPECT_FALSE(symbols.StackHas(stack.frames, "MakeGarbage"))
        << "freed garbage still listed: " << stack.figures.live_objects << " objects";
    if (symbols.StackHas(stack.frames, "LeakOneRound")) {
      leak_estimate += UnsampledBytes(stack.figures, profile.period);
    }
  }
  const double leaked = static_cast<double>(rounds * kBlocksPerRound * kBlockBytes);
  // About 117 samples of 64 KiB blocks: the estimate's standard deviation is under 9%.
  EXPECT_NEAR(leak_estimate, leaked, 0.35 * leaked);
  // The exact totals are exact whatever the sampling.
  EXPECT_GE(profile.exact.at("exact_inuse_bytes"), rounds * kBlocksPerRound * kBlockBytes);
  EXPECT_LT(profile.exact.at("exact_inuse_bytes"),
            rounds * kBlocksPerRound * kBlockBytes + 2 * 1024 * 1024);
}

TEST_F(AgentPreloadTest, PprofReadsTheDiffBetweenTwoProfiles) {
  if (std::system("command -v google-pprof >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "google-pprof is not installed (Debian package google-perftools)";
  }
  const ProgramRun run = RunTarget({"leak", "3", "1"}, AgentEnv("0"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string command = "google-pprof --text --base='" + ProfilePath(1) + "' '" + target_ +
                              "' '" + ProfilePath(3) + "' 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  pclose(pipe);
  // Two rounds of 100 blocks of 64 KiB: 12.5 MB, all of it under LeakOneRound.
  EXPECT_THAT(output, ::testing::HasSubstr("Total: 12.5 MB")) << output;
  EXPECT_THAT(output, ::testing::ContainsRegex("12\\.5 +100\\.0% +100\\.0% +12\\.5 +100\\.0% "
                                               "+[^ ]*LeakOneRound"))
      << output;
}

TEST_F(AgentPreloadTest, DumpAtExitWritesAProfile) {
  auto env = AgentEnv();
  env["LEAKGATE_AGENT_DUMP_AT_EXIT"] = "1";
  env["LEAKGATE_AGENT_SIGNAL"] = "0";
  const ProgramRun run = RunTarget({"throw", "10"}, env);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const Profile profile = ReadProfile(ProfilePath(1));
  ASSERT_TRUE(profile.valid) << profile.error;
  EXPECT_GT(profile.exact.at("exact_alloc_objects"), 10);  // one exception object per throw
  EXPECT_FALSE(fs::exists(ProfilePath(2)));
}

TEST_F(AgentPreloadTest, ThrowsAreNotSlowedByTheAgent) {
  const int iterations = 20000;
  const ProgramRun plain = RunTarget({"throw", std::to_string(iterations)}, {});
  const ProgramRun agent = RunTarget({"throw", std::to_string(iterations)}, AgentEnv());
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  ASSERT_EQ(agent.exit_code, 0) << agent.err;
  const auto plain_ns = OutputValue(plain.out, "ns_per_throw");
  const auto agent_ns = OutputValue(agent.out, "ns_per_throw");
  ASSERT_TRUE(plain_ns && agent_ns) << plain.out << agent.out;
  // libunwind in the global scope would make this 20-35x; a busy machine moves it by far less.
  EXPECT_LT(*agent_ns / *plain_ns, 3.0) << "plain " << *plain_ns << " ns, agent " << *agent_ns;
}

TEST_F(AgentPreloadTest, ProgramLinkedWithTcmallocKeepsTcmalloc) {
  const std::string program = std::string(LEAKGATE_BINARY_DIR) + "/tests/agent_tcmalloc_target";
  if (!fs::exists(program)) GTEST_SKIP() << "tcmalloc is not installed: " << program;
  const ProgramRun run = RunProgram({program}, AgentEnv(), dir_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const double allocated = OutputValue(run.out, "allocated_bytes").value_or(0);
  ASSERT_GT(allocated, 0) << run.out;
  EXPECT_EQ(OutputValue(run.out, "agent_present"), 1.0) << run.out;
  // tcmalloc served every block (malloc and operator new) and still accounts for them.
  EXPECT_NEAR(OutputValue(run.out, "tcmalloc_delta").value_or(0), allocated, 0.05 * allocated)
      << run.out;
  EXPECT_NEAR(OutputValue(run.out, "tcmalloc_after_free_delta").value_or(allocated), 0,
              0.05 * allocated)
      << run.out;
  // The agent saw both kinds of allocation, including tcmalloc's own operator new.
  EXPECT_NEAR(OutputValue(run.out, "agent_delta").value_or(0), allocated, 0.05 * allocated)
      << run.out;
}

TEST_F(AgentPreloadTest, ThreadsAllocatingWhileProfilesAreWrittenNeitherCrashNorDeadlock) {
  const int dumps = 8;
  for (const std::string sample : {"64KiB", "0"}) {
    SCOPED_TRACE("sample period " + sample);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const int threads = 8;
    const int ops = sample == "0" ? 40000 : 150000;
    const ProgramRun run =
        RunTarget({"stress", std::to_string(threads), std::to_string(ops), std::to_string(dumps)},
                  AgentEnv(sample), 60);
    ASSERT_FALSE(run.timed_out) << "deadlock or hang";
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(OutputValue(run.out, "dumps"), dumps);
    // Each operation allocates at least once; the exited threads' counters were folded, not lost.
    EXPECT_GE(OutputValue(run.out, "alloc_objects_delta").value_or(0), threads * ops) << run.out;
    // Every thread freed what it allocated. What stays is glibc's per-thread bookkeeping kept with
    // its cache of thread stacks (one or two blocks a thread) and the main thread's vectors.
    const double inuse_delta = OutputValue(run.out, "inuse_objects_delta").value_or(1e9);
    EXPECT_GE(inuse_delta, 0) << run.out;
    EXPECT_LE(inuse_delta, 2 * threads + 8) << run.out;
    EXPECT_LE(OutputValue(run.out, "sampled_live_delta").value_or(1e9), inuse_delta) << run.out;
    for (int sequence = 1; sequence <= dumps + 1; ++sequence) {
      const Profile profile = ReadProfile(ProfilePath(sequence));
      ASSERT_TRUE(profile.valid) << profile.error;
      ExpectHeaderIsSumOfStacks(profile);
      EXPECT_EQ(profile.period, sample == "0" ? 0 : 64 * 1024);
    }
    const Profile last = ReadProfile(ProfilePath(dumps + 1));
    const ProgramSymbols symbols(target_, last);
    EXPECT_EQ(SumThrough(last, symbols, "StressWorker").live_objects, 0);
  }
}

TEST_F(AgentPreloadTest, ForkedChildrenNeitherDeadlockNorOverwriteTheParentsProfiles) {
  // A small period keeps the agent's locks busy in the parent's threads while it forks.
  const ProgramRun run = RunTarget({"fork", "12"}, AgentEnv("4KiB"), 60);
  ASSERT_FALSE(run.timed_out) << "deadlock or hang";
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(OutputValue(run.out, "failures"), 0);
  const Profile parent = ReadProfile(ProfilePath(1));
  ASSERT_TRUE(parent.valid) << parent.error;
  EXPECT_EQ(parent.exact.count("pid"), 1u);
  // Each child that did not exec wrote PREFIX_PID.0001.heap with its own pid.
  int child_profiles = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("profile_", 0) != 0) continue;
    const Profile child = ReadProfile(entry.path());
    ASSERT_TRUE(child.valid) << child.error;
    EXPECT_EQ(name, "profile_" + std::to_string(child.exact.at("pid")) + ".0001.heap");
    EXPECT_NE(child.exact.at("pid"), parent.exact.at("pid"));
    ++child_profiles;
  }
  EXPECT_EQ(child_profiles, 6);
}

TEST_F(AgentPreloadTest, ProfileNamesTheCreationStacksOfLiveThreadsAndOpenSockets) {
  const ProgramRun run = RunTarget({"resources"}, AgentEnv());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const Profile profile = ReadProfile(ProfilePath(1));
  ASSERT_TRUE(profile.valid) << profile.error;
  const ProgramSymbols symbols(target_, profile);
  ASSERT_TRUE(symbols.loaded());

  int sleepers = 0;
  for (const ResourceLine& thread : profile.threads) {
    EXPECT_NE(thread.name, "leakgate-agent");
    EXPECT_FALSE(symbols.StackHas(thread.frames, "FinishedThread")) << "an ended thread is listed";
    if (thread.name == "lg-sleeper") {
      ++sleepers;
      EXPECT_TRUE(symbols.StackHas(thread.frames, "StartSleeper"));
    }
  }
  EXPECT_EQ(sleepers, 1);

  const int listener = static_cast<int>(OutputValue(run.out, "listener_fd").value_or(-1));
  int listeners = 0;
  for (const ResourceLine& fd : profile.fds) {
    EXPECT_FALSE(symbols.StackHas(fd.frames, "OpenAndCloseSocket")) << "a closed socket is listed";
    if (fd.id == listener) {
      ++listeners;
      EXPECT_TRUE(symbols.StackHas(fd.frames, "OpenListener"));
    }
  }
  EXPECT_EQ(listeners, 1);
}

TEST_F(AgentPreloadTest, ExactModePeakLinesHoldATransientStructureTheStackLinesNoLongerShow) {
  const ProgramRun run = RunTarget({"transient", "1"}, AgentEnv("0"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto rows = OutputValue(run.out, "transient_objects");
  const auto row_bytes = OutputValue(run.out, "transient_bytes");
  ASSERT_TRUE(rows && row_bytes) << run.out;
  const Profile first = ReadProfile(ProfilePath(1));
  ASSERT_TRUE(first.valid) << first.error;
  const ProgramSymbols symbols(target_, first);
  ASSERT_TRUE(symbols.loaded());
  ExpectHeaderIsSumOfStacks(first);
  ExpectPeakLinesAreWellFormed(first);

  // Freed before the profile: not among the live stacks.
  EXPECT_EQ(SumThrough(first, symbols, "BuildTransientRows").live_objects, 0);
  // Writing the rows at once was the peak: every row and the buffer were live.
  const ProfileFigures peak_rows = SumThrough(first.peak_stacks, symbols, "BuildTransientRows");
  EXPECT_EQ(peak_rows.live_objects, static_cast<int64_t>(*rows));
  EXPECT_EQ(peak_rows.live_bytes, static_cast<int64_t>(*row_bytes));
  EXPECT_EQ(SumThrough(first.peak_stacks, symbols, "WriteRowsAtOnce").live_bytes,
            static_cast<int64_t>(*row_bytes) / 4);
  EXPECT_GE(first.peak_total.live_bytes, static_cast<int64_t>(*row_bytes * 1.25));

  ExpectPeakRestartedAtTheLiveState(ReadProfile(ProfilePath(2)), symbols);

  if (std::system("command -v google-pprof >/dev/null 2>&1") == 0) {
    // pprof skips the '#' lines: it reads the profile, and only its live stacks.
    const std::string command = "google-pprof --text '" + target_ + "' '" + ProfilePath(1) +
                                "' 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string output;
    char buffer[4096];
    while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
    EXPECT_EQ(pclose(pipe), 0) << output;
    EXPECT_THAT(output, ::testing::HasSubstr("Total:")) << output;
    EXPECT_THAT(output, ::testing::Not(::testing::HasSubstr("BuildTransientRows"))) << output;
  }
}

TEST_F(AgentPreloadTest, SampledPeakLinesEstimateATransientStructure) {
  const ProgramRun run = RunTarget({"transient", "1"}, AgentEnv());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const double row_bytes = OutputValue(run.out, "transient_bytes").value_or(0);
  ASSERT_GT(row_bytes, 0) << run.out;
  const Profile first = ReadProfile(ProfilePath(1));
  ASSERT_TRUE(first.valid) << first.error;
  ASSERT_EQ(first.period, 512 * 1024);
  const ProgramSymbols symbols(target_, first);
  ASSERT_TRUE(symbols.loaded());
  ExpectPeakLinesAreWellFormed(first);

  EXPECT_EQ(SumThrough(first, symbols, "BuildTransientRows").live_objects, 0);
  double estimate = 0;
  for (const ProfileStack& stack : first.peak_stacks) {
    if (symbols.StackHas(stack.frames, "BuildTransientRows")) {
      estimate += UnsampledBytes(stack.figures, first.period);
    }
  }
  // About 80 samples: the estimate's standard deviation is about 11%.
  EXPECT_NEAR(estimate, row_bytes, 0.35 * row_bytes);

  ExpectPeakRestartedAtTheLiveState(ReadProfile(ProfilePath(2)), symbols);
}

TEST_F(AgentPreloadTest, PeakSnapshotLagsThePeakByAtMostOneStep) {
  // Without the write, the peak is the last row built. A snapshot is taken each time the estimate
  // grows by more than max(4 periods (exact: 1 MiB), 1/8): the last one holds at least 8/9 of the
  // rows, less a ninth of what was live besides them (about 1 MiB).
  for (const std::string sample : {"0", ""}) {
    SCOPED_TRACE("sample period '" + sample + "'");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const ProgramRun run = RunTarget({"transient", "0"}, AgentEnv(sample));
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const double row_bytes = OutputValue(run.out, "transient_bytes").value_or(0);
    ASSERT_GT(row_bytes, 0) << run.out;
    const Profile first = ReadProfile(ProfilePath(1));
    ASSERT_TRUE(first.valid) << first.error;
    const ProgramSymbols symbols(target_, first);
    ASSERT_TRUE(symbols.loaded());
    ExpectPeakLinesAreWellFormed(first);
    EXPECT_EQ(SumThrough(first, symbols, "BuildTransientRows").live_objects, 0);
    double estimate = 0;
    for (const ProfileStack& stack : first.peak_stacks) {
      if (symbols.StackHas(stack.frames, "BuildTransientRows")) {
        estimate += UnsampledBytes(stack.figures, first.period);
      }
    }
    if (sample == "0") {
      EXPECT_GE(estimate, row_bytes * 8 / 9 - 1024 * 1024);
      EXPECT_LE(estimate, row_bytes);
    } else {
      // Sampled, the step is measured on the estimate of the sampled rows (about 11% off the
      // truth): the bound is 8/9 of an estimate within 35%.
      EXPECT_GE(estimate, 0.65 * (row_bytes * 8 / 9 - 1024 * 1024));
      EXPECT_LE(estimate, 1.35 * row_bytes);
    }
  }
}

TEST_F(AgentPreloadTest, ProgramsWithoutAPrefixRunUnchanged) {
  const ProgramRun run = RunProgram({"/bin/sh", "-c", "echo hello | tr a-z A-Z"},
                                    {{"LD_PRELOAD", AgentLibrary()}}, dir_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "HELLO\n");
  EXPECT_EQ(run.err, "");
}

}  // namespace
}  // namespace leakgate::agent_test
