// Tests of CommandWorkload with real processes (/bin/sh), and of CallbackWorkload and MakeWorkload.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness/scenario/scenario.h"
#include "harness/drive/workload.h"

namespace leakgate::harness {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using SteadyClock = std::chrono::steady_clock;

double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "/command-workload-XXXXXX";
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<pid_t> ReadPids(const std::string& path) {
  std::vector<pid_t> pids;
  std::ifstream in(path);
  pid_t pid = 0;
  while (in >> pid) pids.push_back(pid);
  return pids;
}

// Gone: no such process, or a zombie waiting for whoever adopted it (it runs no more).
bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  return paren == std::string::npos || (paren + 2 < text.size() && text[paren + 2] == 'Z');
}

bool AllGoneWithin(const std::vector<pid_t>& pids, double seconds) {
  const auto start = SteadyClock::now();
  while (SecondsSince(start) < seconds) {
    if (std::all_of(pids.begin(), pids.end(), ProcessGone)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::all_of(pids.begin(), pids.end(), ProcessGone);
}

CommandWorkloadConfig Shell(const std::string& script, double timeout_s = 10) {
  CommandWorkloadConfig config;
  config.argv = {"/bin/sh", "-c", script};
  config.timeout_s = timeout_s;
  return config;
}

TEST(CommandWorkloadTest, SucceedsWhenTheCommandExitsWithZero) {
  CommandWorkload workload(Shell("exit 0"), PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(1, cancel);
  ASSERT_TRUE(run) << run.error().ToString();
  EXPECT_EQ(run->exit_status, 0);
  EXPECT_GT(run->duration_s, 0);
  EXPECT_THAT(run->description, HasSubstr("exit 0"));
  EXPECT_EQ(workload.Describe(), "command: /bin/sh -c \"exit 0\"");
}

TEST(CommandWorkloadTest, NonZeroExitFailsWithStatusAndStderr) {
  CommandWorkload workload(Shell("echo 'backtest refused: no data' >&2; exit 3"),
                           PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(2, cancel);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(run.error().message,
              AllOf(HasSubstr("run 2, command /bin/sh -c"), HasSubstr("exited with status 3"),
                    HasSubstr("expected 0"), HasSubstr("stderr: backtest refused: no data")));
}

TEST(CommandWorkloadTest, ExpectedExitStatusesAreSuccess) {
  CommandWorkloadConfig config = Shell("exit 3");
  config.expect_exit = {0, 3};
  CommandWorkload workload(config, PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(1, cancel);
  ASSERT_TRUE(run) << run.error().ToString();
  EXPECT_EQ(run->exit_status, 3);
}

TEST(CommandWorkloadTest, DeathBySignalIsNamed) {
  CommandWorkload workload(Shell("kill -SEGV $$"), PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(1, cancel);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(run.error().message, HasSubstr("was killed by signal 11 (SIGSEGV)"));
}

TEST(CommandWorkloadTest, SubstitutesRunAndWritesOutputPerRun) {
  TempDir dir;
  CommandWorkloadConfig config;
  config.argv = {"/bin/sh", "-c", "echo run=${RUN} port=$1; echo warn-${RUN} >&2", "sh", "${PORT}"};
  PlaceholderValues values;
  values.values["PORT"] = "8123";
  CommandWorkload workload(config, values, dir.path());
  std::atomic<bool> cancel{false};
  ASSERT_TRUE(workload.Run(1, cancel));
  ASSERT_TRUE(workload.Run(2, cancel));
  EXPECT_EQ(ReadFile(dir.path() + "/workload-run-1.stdout"), "run=1 port=8123\n");
  EXPECT_EQ(ReadFile(dir.path() + "/workload-run-2.stdout"), "run=2 port=8123\n");
  EXPECT_EQ(ReadFile(dir.path() + "/workload-run-2.stderr"), "warn-2\n");
}

TEST(CommandWorkloadTest, FailureMessagePointsAtTheStderrFile) {
  TempDir dir;
  CommandWorkload workload(Shell("echo oops >&2; exit 1"), PlaceholderValues{}, dir.path());
  std::atomic<bool> cancel{false};
  auto run = workload.Run(4, cancel);
  ASSERT_FALSE(run);
  EXPECT_THAT(run.error().message,
              AllOf(HasSubstr("stderr: oops"),
                    HasSubstr("(full output in " + dir.path() + "/workload-run-4.stderr)")));
}

TEST(CommandWorkloadTest, UsesEnvironmentAndWorkingDirectory) {
  TempDir dir;
  TempDir out;
  CommandWorkloadConfig config = Shell("echo \"$GREETING $(pwd) $HOME_KEPT\"");
  config.env = {{"GREETING", "hello-${RUN}"}};
  config.cwd = dir.path();
  ::setenv("HOME_KEPT", "inherited", 1);
  CommandWorkload workload(config, PlaceholderValues{}, out.path());
  std::atomic<bool> cancel{false};
  auto run = workload.Run(3, cancel);
  ::unsetenv("HOME_KEPT");
  ASSERT_TRUE(run) << run.error().ToString();
  EXPECT_EQ(ReadFile(out.path() + "/workload-run-3.stdout"),
            "hello-3 " + std::filesystem::canonical(dir.path()).string() + " inherited\n");
}

TEST(CommandWorkloadTest, TimeoutKillsTheWholeProcessGroup) {
  TempDir dir;
  const std::string pids = dir.path() + "/pids";
  // The grandchild ignores SIGTERM, so only the escalation to SIGKILL ends it.
  CommandWorkloadConfig config =
      Shell("(trap '' TERM; exec sleep 30) & echo $! > " + pids + "; echo $$ >> " + pids + "; wait",
            /*timeout_s=*/0.3);
  CommandWorkload workload(config, PlaceholderValues{}, "", /*kill_grace_s=*/0.2);
  std::atomic<bool> cancel{false};
  const auto start = SteadyClock::now();
  auto run = workload.Run(1, cancel);
  const double elapsed = SecondsSince(start);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(run.error().message,
              AllOf(HasSubstr("still running after 0.3 s"), HasSubstr("process group was killed")));
  EXPECT_LT(elapsed, 2.0);
  const auto started = ReadPids(pids);
  ASSERT_EQ(started.size(), 2u) << "the script did not record its processes";
  EXPECT_TRUE(AllGoneWithin(started, 2.0))
      << "child " << started[1] << " or grandchild " << started[0] << " survived";
}

TEST(CommandWorkloadTest, WhatTheCommandLeftRunningIsKilled) {
  TempDir dir;
  const std::string pids = dir.path() + "/pids";
  CommandWorkload workload(Shell("sleep 30 & echo $! > " + pids + "; exit 0"), PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(1, cancel);
  ASSERT_TRUE(run) << run.error().ToString();
  const auto started = ReadPids(pids);
  ASSERT_EQ(started.size(), 1u);
  EXPECT_TRUE(AllGoneWithin(started, 2.0)) << "background process " << started[0] << " survived";
}

// leakgate makes itself a child subreaper, so what a command leaves behind is reparented to it:
// those processes must be reaped, not left as zombies of leakgate.
TEST(CommandWorkloadTest, ReapsLeftoversReparentedToASubreaper) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
  TempDir dir;
  const std::string pids = dir.path() + "/pids";
  CommandWorkload workload(Shell("sleep 30 & echo $! > " + pids + "; exit 0"), PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(1, cancel);
  ::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
  ASSERT_TRUE(run) << run.error().ToString();
  const auto started = ReadPids(pids);
  ASSERT_EQ(started.size(), 1u);
  // Not even a zombie: it was a child of this process, and it has been reaped.
  EXPECT_EQ(::kill(started[0], 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST(CommandWorkloadTest, CancelKillsTheCommandPromptly) {
  TempDir dir;
  const std::string pids = dir.path() + "/pids";
  CommandWorkload workload(Shell("echo $$ > " + pids + "; sleep 30"), PlaceholderValues{}, "",
                           /*kill_grace_s=*/0.5);
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    cancel = true;
  });
  const auto start = SteadyClock::now();
  auto run = workload.Run(1, cancel);
  const double elapsed = SecondsSince(start);
  canceller.join();
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(run.error().message, HasSubstr("cancelled"));
  EXPECT_LT(elapsed, 1.0);
  const auto started = ReadPids(pids);
  ASSERT_EQ(started.size(), 1u);
  EXPECT_TRUE(AllGoneWithin(started, 1.0));
}

TEST(CommandWorkloadTest, MissingProgramIsNotFound) {
  CommandWorkloadConfig config;
  config.argv = {"/nonexistent/leakgate-load"};
  CommandWorkload absolute(config, PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = absolute.Run(1, cancel);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(run.error().message, HasSubstr("cannot start /nonexistent/leakgate-load"));

  config.argv = {"leakgate-no-such-program"};
  CommandWorkload searched(config, PlaceholderValues{});
  auto on_path = searched.Run(1, cancel);
  ASSERT_FALSE(on_path);
  EXPECT_EQ(on_path.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(on_path.error().message, HasSubstr("(searched on PATH)"));
}

TEST(CommandWorkloadTest, SearchesPathForABareProgramName) {
  CommandWorkloadConfig config;
  config.argv = {"true"};
  CommandWorkload workload(config, PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(1, cancel);
  EXPECT_TRUE(run) << run.error().ToString();
}

TEST(CommandWorkloadTest, ComesFromAScenario) {
  const nlohmann::json document = {
      {"schema", "leakgate.scenario/1"},
      {"target", {{"attach", {{"pid", 1}}}}},
      {"workload",
       {{"command",
         {{"argv",
           {"/bin/sh", "-c", "test \"$1\" = \"${OUT}/run-${RUN}\"", "sh", "${OUT}/run-${RUN}"}},
          {"timeout_s", 5}}}}},
  };
  LoadOptions options;
  options.out_dir = "/tmp/out-dir";
  options.bin_dir = "/bin";
  auto scenario = LoadScenarioFromText(document.dump(), "/s/cmd.json", options);
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  auto workload = MakeWorkload(scenario->workload, scenario->placeholders);
  ASSERT_TRUE(workload) << workload.error().ToString();
  std::atomic<bool> cancel{false};
  auto run = (*workload)->Run(6, cancel);
  EXPECT_TRUE(run) << run.error().ToString();
}

TEST(MakeWorkloadTest, NeedsExactlyOneKind) {
  auto none = MakeWorkload(WorkloadConfig{}, PlaceholderValues{});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(none.error().message, HasSubstr("neither"));
}

TEST(CallbackWorkloadTest, CallsTheCallbackWithTheRunIndex) {
  std::vector<int> seen;
  CallbackWorkload workload(
      [&](int run_index, const std::atomic<bool>&) -> Result<WorkloadRunInfo> {
        seen.push_back(run_index);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (run_index == 3) return Fail(ErrorCode::kTargetFailed, "third run refused");
        WorkloadRunInfo info;
        info.requests = run_index * 10;
        return info;
      },
      "in-process backtests");
  std::atomic<bool> cancel{false};
  auto first = workload.Run(1, cancel);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->requests, 10);
  EXPECT_GE(first->duration_s, 0.004);
  EXPECT_EQ(first->description, "in-process backtests");
  ASSERT_TRUE(workload.Run(2, cancel));
  auto third = workload.Run(3, cancel);
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().message, "third run refused");
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));

  cancel = true;
  auto cancelled = workload.Run(4, cancel);
  ASSERT_FALSE(cancelled);
  EXPECT_EQ(cancelled.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(seen.size(), 3u);
}

}  // namespace
}  // namespace leakgate::harness
