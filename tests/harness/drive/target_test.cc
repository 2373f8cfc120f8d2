// Targets on real processes: /bin/sh scripts, sleep, and the reference backtest_server. Every test
// checks /proc or kill(2) itself rather than trusting what the Target says.
#include "harness/drive/target.h"

#include "base/ports.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace leakgate::harness {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// True while /proc/PID exists and is not a zombie.
bool ProcessRuns(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.empty()) return false;
  auto paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

// Polls `condition` every 5 ms for up to `seconds`.
template <class F>
bool WaitFor(F condition, double seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

std::string BacktestServer() { return std::string(LEAKGATE_BINARY_DIR) + "/bin/backtest_server"; }

class TargetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Orphaned grandchildren come back to this process, so that the tests can reap them and check
    // that nothing is left (PID 1 of a container may never reap).
    ASSERT_TRUE(BecomeChildSubreaper().has_value());
  }

  void SetUp() override {
    char tmpl[] = "/tmp/leakgate-target-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  SpawnOptions Shell(const std::string& script, ReadyCheck ready = ReadyCheck::Immediate()) {
    SpawnOptions options;
    options.argv = {"/bin/sh", "-c", script};
    options.output_dir = dir_ + "/out";
    options.ready = std::move(ready);
    options.ready_timeout_s = 3;
    options.stop_timeout_s = 2;
    return options;
  }

  std::unique_ptr<Target> MustSpawn(SpawnOptions options) {
    auto target = SpawnTarget(std::move(options), Clock::Real());
    EXPECT_TRUE(target.has_value()) << target.error().ToString();
    return target ? std::move(*target) : nullptr;
  }

  std::string dir_;
};

TEST_F(TargetTest, StdoutLineReadinessKeepsOutputAndStopEndsTheTarget) {
  auto target = MustSpawn(Shell(
      // The warning comes before the ready line: the target is stopped as soon as it is ready.
      "echo starting; echo 'a warning' >&2; echo 'listening on http://127.0.0.1:1234'; exec sleep 30",
      ReadyCheck::StdoutLine("listening on")));
  ASSERT_TRUE(target);
  auto started = target->Start();
  ASSERT_TRUE(started.has_value()) << started.error().ToString();
  EXPECT_EQ(target->ready_line(), "listening on http://127.0.0.1:1234");
  EXPECT_TRUE(target->Alive());
  EXPECT_TRUE(ProcessRuns(target->pid()));
  EXPECT_EQ(target->process_group(), target->pid());
  EXPECT_EQ(::getpgid(target->pid()), target->pid()) << "the target leads its own process group";
  EXPECT_THAT(ChildProcessRegistry::Snapshot(), Contains(target->pid()));

  pid_t pid = target->pid();
  auto stopped = target->Stop();
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_EQ(stopped->signal, SIGTERM);
  EXPECT_FALSE(stopped->exited_before_stop);
  EXPECT_FALSE(stopped->killed_after_timeout);
  EXPECT_THAT(stopped->description, HasSubstr("SIGTERM"));
  EXPECT_FALSE(ProcessRuns(pid));
  EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(pid))) << "reaped, not a zombie";
  EXPECT_THAT(ChildProcessRegistry::Snapshot(), Not(Contains(pid)));
  EXPECT_FALSE(target->Alive());

  EXPECT_EQ(ReadWholeFile(target->stdout_path()), "starting\nlistening on http://127.0.0.1:1234\n");
  EXPECT_EQ(ReadWholeFile(target->stderr_path()), "a warning\n");
  EXPECT_EQ(target->stdout_path(), dir_ + "/out/stdout.log");

  auto again = target->Stop();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->description, stopped->description) << "Stop is idempotent";
}

TEST_F(TargetTest, RegexReadinessCapturesTheLine) {
  auto target = MustSpawn(Shell("echo 'noise'; echo 'serving on port 40123'; exec sleep 30",
                                ReadyCheck::StdoutLine(R"(port [0-9]+$)", /*is_regex=*/true)));
  ASSERT_TRUE(target);
  ASSERT_TRUE(target->Start().has_value());
  EXPECT_EQ(target->ready_line(), "serving on port 40123");
}

TEST_F(TargetTest, StdoutIsDrainedAfterReadinessSoTheTargetNeverBlocks) {
  // 3 MB after the ready line: far more than a pipe holds. The target can only finish if the reader
  // keeps draining.
  auto target = MustSpawn(
      Shell("echo ready; head -c 3000000 /dev/zero | tr '\\0' x; echo; echo finished",
            ReadyCheck::StdoutLine("ready")));
  ASSERT_TRUE(target);
  ASSERT_TRUE(target->Start().has_value());
  ASSERT_TRUE(WaitFor([&] { return target->ExitStatus().has_value(); }, 5)) << "target blocked on stdout";
  EXPECT_TRUE(target->ExitStatus()->exited);
  EXPECT_EQ(target->ExitStatus()->code, 0);
  auto stopped = target->Stop();
  ASSERT_TRUE(stopped.has_value());
  EXPECT_TRUE(stopped->exited_before_stop);
  std::string out = ReadWholeFile(target->stdout_path());
  EXPECT_EQ(out.size(), std::string("ready\n").size() + 3000000 + std::string("\nfinished\n").size());
  EXPECT_TRUE(out.ends_with("\nfinished\n"));
}

TEST_F(TargetTest, EnvironmentIsAddedToOursAndCwdIsApplied) {
  ::setenv("LEAKGATE_TARGET_TEST_INHERITED", "from-parent", 1);
  SpawnOptions options = Shell(
      "echo \"$LEAKGATE_TARGET_TEST_ADDED|$LEAKGATE_TARGET_TEST_INHERITED|$(pwd)\"; cat; echo stdin-closed");
  options.env = {{"LEAKGATE_TARGET_TEST_ADDED", "value with spaces"}};
  options.cwd = dir_;
  auto target = MustSpawn(std::move(options));
  ASSERT_TRUE(target);
  ASSERT_TRUE(target->Start().has_value());
  ASSERT_TRUE(WaitFor([&] { return !target->Alive(); }, 3)) << "stdin should be /dev/null, so cat ends";
  EXPECT_EQ(ReadWholeFile(target->stdout_path()),
            "value with spaces|from-parent|" + std::filesystem::canonical(dir_).string() + "\nstdin-closed\n");
  ::unsetenv("LEAKGATE_TARGET_TEST_INHERITED");
}

TEST_F(TargetTest, ProgramThatDoesNotExistIsNamed) {
  SpawnOptions options;
  options.argv = {"leakgate-no-such-program", "--flag"};
  options.output_dir = dir_ + "/out";
  auto target = MustSpawn(options);
  ASSERT_TRUE(target);
  auto started = target->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(started.error().message, AllOf(HasSubstr("'leakgate-no-such-program'"), HasSubstr("PATH")));

  options.argv = {dir_ + "/missing/server"};
  target = MustSpawn(options);
  started = target->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(started.error().message,
              AllOf(HasSubstr(dir_ + "/missing/server"), HasSubstr("No such file or directory")));

  // A file that exists but cannot be executed: exec fails with EACCES.
  std::ofstream(dir_ + "/not-executable") << "data\n";
  options.argv = {dir_ + "/not-executable"};
  target = MustSpawn(options);
  started = target->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_THAT(started.error().message, AllOf(HasSubstr("not-executable"), HasSubstr("Permission denied")));
}

TEST_F(TargetTest, TargetThatExitsBeforeReadyReportsStatusAndStderrTail) {
  auto target = MustSpawn(Shell(
      "echo 'reading config' >&2; echo 'fatal: no database given' >&2; exit 3",
      ReadyCheck::StdoutLine("listening on")));
  ASSERT_TRUE(target);
  auto begin = std::chrono::steady_clock::now();
  auto started = target->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(2)) << "fails fast, not at timeout";
  EXPECT_EQ(started.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(started.error().message,
              AllOf(HasSubstr("exited with status 3"), HasSubstr("before it was ready"),
                    HasSubstr("fatal: no database given"), HasSubstr("reading config"),
                    HasSubstr("'listening on'")));
}

TEST_F(TargetTest, HttpReadinessFailsFastWhenTheTargetDies) {
  auto target = MustSpawn(Shell("sleep 0.1; kill -ABRT $$", ReadyCheck::HttpGet("http://127.0.0.1:9/healthz")));
  ASSERT_TRUE(target);
  auto begin = std::chrono::steady_clock::now();
  auto started = target->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(2));
  EXPECT_THAT(started.error().message, AllOf(HasSubstr("SIGABRT"), HasSubstr("GET http://127.0.0.1:9/healthz")));
}

TEST_F(TargetTest, NeverReadyOnStdoutTimesOutNamingThePatternAndLeavesNothing) {
  SpawnOptions options = Shell("echo 'still loading'; sleep 30 & sleep 30", ReadyCheck::StdoutLine("listening on"));
  options.ready_timeout_s = 0.3;
  auto target = MustSpawn(std::move(options));
  ASSERT_TRUE(target);
  auto started = target->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(started.error().message,
              AllOf(HasSubstr("not ready within 0.30 s"), HasSubstr("'listening on'"), HasSubstr("still loading")));
  EXPECT_THAT(LiveProcessGroupMembers(target->pid()), IsEmpty());
  EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(target->pid())));
}

TEST_F(TargetTest, NeverReadyOverHttpTimesOutNamingTheUrlAndLastError) {
  auto port = FreePort();
  ASSERT_TRUE(port.has_value());
  std::string url = "http://127.0.0.1:" + std::to_string(*port) + "/healthz";
  SpawnOptions options = Shell("exec sleep 30", ReadyCheck::HttpGet(url));
  options.ready_timeout_s = 0.3;
  auto target = MustSpawn(std::move(options));
  ASSERT_TRUE(target);
  auto started = target->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_THAT(started.error().message,
              AllOf(HasSubstr("not ready within 0.30 s"), HasSubstr("GET " + url), HasSubstr("connection failed")));
  EXPECT_FALSE(ProcessRuns(target->pid()));
}

TEST_F(TargetTest, DelayReadiness) {
  auto sleeper = MustSpawn(Shell("exec sleep 30", ReadyCheck::Delay(0.1)));
  ASSERT_TRUE(sleeper);
  auto begin = std::chrono::steady_clock::now();
  ASSERT_TRUE(sleeper->Start().has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - begin, std::chrono::milliseconds(100));

  auto quitter = MustSpawn(Shell("exit 0", ReadyCheck::Delay(1)));
  auto started = quitter->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_THAT(started.error().message, HasSubstr("exited with status 0 before it was ready"));
}

TEST_F(TargetTest, CrashAfterStartIsReportedByCheckAlive) {
  auto target = MustSpawn(Shell("echo 'about to crash' >&2; sleep 0.3; kill -SEGV $$"));
  ASSERT_TRUE(target);
  ASSERT_TRUE(target->Start().has_value());
  EXPECT_TRUE(target->CheckAlive("during run 1").has_value());
  EXPECT_FALSE(target->ExitStatus().has_value());
  ASSERT_TRUE(WaitFor([&] { return !target->Alive(); }, 3));
  auto check = target->CheckAlive("during run 3");
  ASSERT_FALSE(check.has_value());
  EXPECT_EQ(check.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(check.error().message,
              AllOf(HasSubstr("killed by SIGSEGV"), HasSubstr("during run 3"), HasSubstr("about to crash")));
  ASSERT_TRUE(target->ExitStatus().has_value());
  EXPECT_EQ(target->ExitStatus()->signal, SIGSEGV);
  EXPECT_FALSE(target->ExitStatus()->exited);

  auto stopped = target->Stop();
  ASSERT_TRUE(stopped.has_value());
  EXPECT_TRUE(stopped->exited_before_stop);
  EXPECT_EQ(stopped->signal, SIGSEGV) << "Stop reports the crash, not its own signal";
}

TEST_F(TargetTest, StopKillsTheWholeGroupIncludingGrandchildren) {
  auto target = MustSpawn(Shell("sleep 100 & echo \"background $!\"; sleep 100", ReadyCheck::StdoutLine("background")));
  ASSERT_TRUE(target);
  ASSERT_TRUE(target->Start().has_value());
  pid_t background = std::stoi(target->ready_line().substr(std::string("background ").size()));
  ASSERT_TRUE(WaitFor([&] { return LiveProcessGroupMembers(target->pid()).size() == 3; }, 2))
      << "sh, its background sleep and its foreground sleep";
  std::vector<pid_t> members = LiveProcessGroupMembers(target->pid());
  EXPECT_THAT(members, Contains(background));

  auto stopped = target->Stop();
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_FALSE(stopped->killed_after_timeout);
  for (pid_t pid : members) {
    EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(pid))) << "pid " << pid << " survived";
  }
  EXPECT_EQ(::kill(-members.front(), 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(TargetTest, TargetIgnoringSigtermGetsSigkillAfterStopTimeout) {
  // An ignored signal stays ignored across fork and exec: the whole group ignores SIGTERM.
  SpawnOptions options = Shell("trap '' TERM; echo ready; sleep 100 & sleep 100", ReadyCheck::StdoutLine("ready"));
  options.stop_timeout_s = 0.3;
  auto target = MustSpawn(std::move(options));
  ASSERT_TRUE(target);
  ASSERT_TRUE(target->Start().has_value());
  ASSERT_TRUE(WaitFor([&] { return LiveProcessGroupMembers(target->pid()).size() == 3; }, 2));
  std::vector<pid_t> members = LiveProcessGroupMembers(target->pid());

  auto begin = std::chrono::steady_clock::now();
  auto stopped = target->Stop();
  auto took = std::chrono::steady_clock::now() - begin;
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_TRUE(stopped->killed_after_timeout);
  EXPECT_EQ(stopped->signal, SIGKILL);
  EXPECT_THAT(stopped->description, HasSubstr("after ignoring SIGTERM for 0.30 s"));
  for (pid_t pid : members) EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(pid)));
}

TEST_F(TargetTest, ConfigurableStopSignal) {
  SpawnOptions options = Shell("trap 'echo got-int; exit 7' INT; echo ready; while :; do sleep 0.02; done",
                               ReadyCheck::StdoutLine("ready"));
  options.stop_signal = SIGINT;
  auto target = MustSpawn(std::move(options));
  ASSERT_TRUE(target);
  ASSERT_TRUE(target->Start().has_value());
  auto stopped = target->Stop();
  ASSERT_TRUE(stopped.has_value());
  EXPECT_TRUE(stopped->exited);
  EXPECT_EQ(stopped->code, 7);
  EXPECT_THAT(ReadWholeFile(target->stdout_path()), HasSubstr("got-int"));
}

TEST_F(TargetTest, DestroyingASpawnedTargetStopsIt) {
  pid_t pid;
  {
    auto target = MustSpawn(Shell("exec sleep 30"));
    ASSERT_TRUE(target);
    ASSERT_TRUE(target->Start().has_value());
    pid = target->pid();
    ASSERT_TRUE(ProcessRuns(pid));
  }
  EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(pid)));
  EXPECT_THAT(ChildProcessRegistry::Snapshot(), Not(Contains(pid)));
}

TEST_F(TargetTest, AttachedTargetIsObservedButNeverStopped) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/bin/sleep", "sleep", "30", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_TRUE(WaitFor([&] { return ProcessRuns(pid) && ReadWholeFile("/proc/" + std::to_string(pid) + "/comm") == "sleep\n"; }, 2));
  auto target = AttachTarget(pid);
  ASSERT_TRUE(target.has_value()) << target.error().ToString();
  ASSERT_TRUE((*target)->Start().has_value());
  EXPECT_EQ((*target)->pid(), pid);
  EXPECT_EQ((*target)->process_group(), -1);
  EXPECT_THAT((*target)->Describe(), HasSubstr("sleep"));
  EXPECT_TRUE((*target)->Alive());
  EXPECT_TRUE((*target)->stdout_path().empty());

  auto stopped = (*target)->Stop();
  ASSERT_TRUE(stopped.has_value());
  EXPECT_THAT(stopped->description, HasSubstr("left running"));
  EXPECT_TRUE(ProcessRuns(pid)) << "leakgate must not kill what it did not start";
  target->reset();
  EXPECT_TRUE(ProcessRuns(pid)) << "nor when the target is destroyed";

  auto again = AttachTarget(pid);
  ASSERT_TRUE(again.has_value());
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  EXPECT_FALSE((*again)->Alive());
  auto check = (*again)->CheckAlive("during run 2");
  ASSERT_FALSE(check.has_value());
  EXPECT_THAT(check.error().message, AllOf(HasSubstr("ended"), HasSubstr("during run 2")));
}

TEST_F(TargetTest, AttachToMissingProcessFails) {
  // Pid numbers above the kernel's pid_max do not exist.
  auto target = AttachTarget(99999999);
  ASSERT_FALSE(target.has_value());
  EXPECT_EQ(target.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(target.error().message, HasSubstr("/proc/99999999"));
  EXPECT_EQ(AttachTarget(0).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(TargetTest, InvalidOptionsAreRejectedBeforeAnythingRuns) {
  SpawnOptions options;
  options.output_dir = dir_;
  EXPECT_EQ(SpawnTarget(options, Clock::Real()).error().code, ErrorCode::kInvalidArgument);
  options.argv = {"/bin/true"};
  options.ready = ReadyCheck::StdoutLine("([unclosed", /*is_regex=*/true);
  auto bad_regex = SpawnTarget(options, Clock::Real());
  ASSERT_FALSE(bad_regex.has_value());
  EXPECT_THAT(bad_regex.error().message, HasSubstr("([unclosed"));
  options.ready = ReadyCheck::HttpGet("127.0.0.1:8080/healthz");
  EXPECT_THAT(SpawnTarget(options, Clock::Real()).error().message, HasSubstr("not an http://"));
  options.ready = ReadyCheck::Immediate();
  options.output_dir.clear();
  EXPECT_THAT(SpawnTarget(options, Clock::Real()).error().message, HasSubstr("output_dir"));
}

TEST_F(TargetTest, StartingTwiceIsRefused) {
  auto target = MustSpawn(Shell("exec sleep 30"));
  ASSERT_TRUE(target->Start().has_value());
  auto again = target->Start();
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kFailedPrecondition);
}

TEST_F(TargetTest, BacktestServerReadyOnItsListeningLine) {
  if (!std::filesystem::exists(BacktestServer())) GTEST_SKIP() << BacktestServer() << " is not built";
  SpawnOptions options;
  options.argv = {BacktestServer(), "--host", "127.0.0.1", "--port", "0", "--db", dir_ + "/backtest.db"};
  options.output_dir = dir_ + "/server";
  options.ready = ReadyCheck::StdoutLine(R"(^listening on http://127\.0\.0\.1:[0-9]+$)", true);
  options.ready_timeout_s = 5;
  auto target = MustSpawn(std::move(options));
  ASSERT_TRUE(target);
  auto started = target->Start();
  ASSERT_TRUE(started.has_value()) << started.error().ToString();
  std::string line = target->ready_line();
  int port = std::stoi(line.substr(line.rfind(':') + 1));
  httplib::Client client("127.0.0.1", port);
  auto res = client.Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);

  auto stopped = target->Stop();
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_FALSE(stopped->killed_after_timeout) << stopped->description;
  EXPECT_THAT(ReadWholeFile(target->stdout_path()), HasSubstr(line));
}

TEST_F(TargetTest, BacktestServerReadyOverHttp) {
  if (!std::filesystem::exists(BacktestServer())) GTEST_SKIP() << BacktestServer() << " is not built";
  auto port = FreePort();
  ASSERT_TRUE(port.has_value()) << port.error().ToString();
  std::string base = "http://127.0.0.1:" + std::to_string(*port);
  SpawnOptions options;
  options.argv = {BacktestServer(), "--host", "127.0.0.1", "--port", std::to_string(*port),
                  "--db", dir_ + "/backtest.db", "--faults", "none"};
  options.output_dir = dir_ + "/server";
  options.ready = ReadyCheck::HttpGet(base + "/healthz");
  options.ready_timeout_s = 5;
  auto target = MustSpawn(std::move(options));
  ASSERT_TRUE(target);
  auto started = target->Start();
  ASSERT_TRUE(started.has_value()) << started.error().ToString();
  httplib::Client client(base);
  auto res = client.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(target->CheckAlive("after readiness").has_value());
  ASSERT_TRUE(target->Stop().has_value());
  EXPECT_FALSE(client.Get("/healthz")) << "the server is gone after Stop";
}

// The termination handlers: a process that spawned a target (and its grandchild) receives SIGINT. It
// must die of SIGINT, and nothing of the target's group may remain.
TEST_F(TargetTest, SigintKillsEveryRegisteredGroupAndEndsWithSigint) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string out_dir = dir_ + "/child";
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    InstallTerminationHandlers();
    SpawnOptions options;
    options.argv = {"/bin/sh", "-c", "sleep 100 & echo ready; sleep 100"};
    options.output_dir = out_dir;
    options.ready = ReadyCheck::StdoutLine("ready");
    options.ready_timeout_s = 3;
    auto target = SpawnTarget(options, Clock::Real());
    if (!target || !(*target)->Start()) ::_exit(10);
    pid_t pgid = (*target)->process_group();
    if (::write(fds[1], &pgid, sizeof pgid) != sizeof pgid) ::_exit(11);
    while (true) ::pause();
  }
  ::close(fds[1]);
  pid_t pgid = -1;
  pollfd pfd{fds[0], POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  ssize_t n = ::read(fds[0], &pgid, sizeof pgid);
  ::close(fds[0]);
  if (n != sizeof pgid) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    FAIL() << "the child process could not start its target";
  }
  ASSERT_TRUE(WaitFor([&] { return LiveProcessGroupMembers(pgid).size() == 3; }, 2));

  ASSERT_EQ(::kill(child, SIGINT), 0);
  int status = 0;
  bool ended = WaitFor([&] { return ::waitpid(child, &status, WNOHANG) == child; }, 5);
  if (!ended) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ::kill(-pgid, SIGKILL);
  }
  ASSERT_TRUE(ended) << "the child did not end on SIGINT";
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGINT);

  // The group's processes were reparented to this test process (a subreaper): reap them until the
  // group no longer exists.
  bool gone = WaitFor([&] {
    while (::waitpid(-pgid, nullptr, WNOHANG) > 0) {
    }
    return ::kill(-pgid, 0) == -1 && errno == ESRCH;
  }, 3);
  if (!gone) ::kill(-pgid, SIGKILL);
  EXPECT_TRUE(gone) << "processes of group " << pgid << " outlived the SIGINT";
}

TEST(FreePortTest, ReturnsABindablePort) {
  auto port = FreePort();
  ASSERT_TRUE(port.has_value());
  EXPECT_GT(*port, 0);
  EXPECT_LT(*port, 65536);
  httplib::Server server;
  EXPECT_TRUE(server.bind_to_port("127.0.0.1", *port));
}

TEST(ChildProcessRegistryTest, AddRemoveAndCapacity) {
  std::vector<pid_t> before = ChildProcessRegistry::Snapshot();
  std::vector<pid_t> added;
  // Fake group ids far above pid_max: KillAll is never called here.
  for (pid_t g = 500000000; added.size() + before.size() < ChildProcessRegistry::kCapacity; ++g) {
    ASSERT_TRUE(ChildProcessRegistry::Add(g));
    added.push_back(g);
  }
  EXPECT_FALSE(ChildProcessRegistry::Add(600000000)) << "the table is full";
  EXPECT_THAT(ChildProcessRegistry::Snapshot(), Contains(added.front()));
  for (pid_t g : added) ChildProcessRegistry::Remove(g);
  EXPECT_EQ(ChildProcessRegistry::Snapshot(), before);
}

}  // namespace
}  // namespace leakgate::harness
