#include "base/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace leakgate {
namespace {

TEST(RunCommandTest, CollectsStdoutStderrAndTheExitStatus) {
  auto output = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"}, 10);
  ASSERT_TRUE(output) << output.error().ToString();
  EXPECT_EQ(output->out, "out\n");
  EXPECT_EQ(output->err, "err\n");
  EXPECT_EQ(output->status, 3);
}

TEST(RunCommandTest, AMissingProgramIsNotFound) {
  auto output = RunCommand({"leakgate-no-such-program"}, 10);
  ASSERT_FALSE(output);
  EXPECT_EQ(output.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(output.error().message, "leakgate-no-such-program could not be started");
}

TEST(RunCommandTest, AProgramPastItsTimeoutIsKilled) {
  auto output = RunCommand({"sleep", "30"}, 0.2);
  ASSERT_FALSE(output);
  EXPECT_EQ(output.error().code, ErrorCode::kInternal);
}

TEST(SpawnTest, AFailedExecIsReportedWithTheSystemsReason) {
  ChildOptions options;
  options.argv = {"/nonexistent/leakgate-program"};
  auto child = Spawn(options);
  ASSERT_FALSE(child);
  EXPECT_EQ(child.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(child.error().message, SystemErrorText(ENOENT));
}

TEST(SpawnTest, EnvCwdAndOutputAreTheOnesGiven) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  ChildOptions options;
  options.argv = {"/bin/sh", "-c", "echo \"$LEAKGATE_X $(pwd)\""};
  options.env = std::vector<std::string>{"LEAKGATE_X=seen", "PATH=/usr/bin:/bin"};
  options.cwd = "/";
  options.stdout_fd = write_end.get();
  auto child = Spawn(options);
  write_end.Reset();
  ASSERT_TRUE(child) << child.error().ToString();
  const auto status = child->Wait();
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  char buffer[64] = {};
  ASSERT_GT(::read(read_end.get(), buffer, sizeof buffer - 1), 0);
  EXPECT_STREQ(buffer, "seen /\n");
}

TEST(SpawnTest, AChildInItsOwnGroupIsSignalledAsAGroup) {
  ChildOptions options;
  options.argv = {"sleep", "30"};
  options.own_process_group = true;
  options.default_signals = true;
  auto child = Spawn(options);
  ASSERT_TRUE(child) << child.error().ToString();
  EXPECT_EQ(::getpgid(child->pid()), child->pid());
  EXPECT_FALSE(child->Exited());
  child->Signal(SIGKILL);
  const auto status = child->Wait();
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
  EXPECT_TRUE(child->Exited());
}

}  // namespace
}  // namespace leakgate
