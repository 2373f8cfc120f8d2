#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <utility>
#include <vector>

#include "base/subprocess.h"
#include "base/units.h"
#include "harness/drive/workload.h"

extern char** environ;

namespace leakgate::harness {
namespace {

constexpr size_t kStderrTailChars = 400;

std::string CommandLine(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !arg.empty() && arg.find_first_of(" \t\"'\\$") == std::string::npos;
    out += plain ? arg : nlohmann::json(arg).dump();
  }
  return out;
}

// The last `kStderrTailChars` bytes of what `fd` holds, on one line.
std::string Tail(int fd) {
  if (fd < 0) return "";
  struct stat info {};
  if (::fstat(fd, &info) != 0 || info.st_size == 0) return "";
  const off_t size = info.st_size;
  const off_t start =
      size > static_cast<off_t>(kStderrTailChars) ? size - static_cast<off_t>(kStderrTailChars) : 0;
  std::string text(static_cast<size_t>(size - start), '\0');
  const ssize_t got = ::pread(fd, text.data(), text.size(), start);
  if (got <= 0) return "";
  text.resize(static_cast<size_t>(got));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return (start > 0 ? "..." : "") + text;
}

// Waits until `child` exits or `seconds` pass on `clock` (or `cancel`, when given, is set); true
// when it exited. The child stays a zombie (Child::Exited), so its process group id cannot be reused
// before the group is killed.
bool WaitForExit(const Child& child, Clock& clock, double seconds,
                 const std::atomic<bool>* cancel) {
  const double until = clock.NowSeconds() + seconds;
  double pause = 0.0005;
  while (true) {
    if (child.Exited()) return true;
    if (cancel != nullptr && cancel->load()) return false;
    const double now = clock.NowSeconds();
    if (now >= until) return false;
    clock.SleepFor(std::min(pause, until - now));
    pause = std::min(pause * 2, 0.01);
  }
}

// Reaps the killed group's leader and, when leakgate is a child subreaper, the members that were
// reparented to it, so none is left as a zombie. False when the leader's status was not there (only
// when SIGCHLD is ignored or another waiter took it). Members killed a moment ago are given up to a
// second to die, on the real clock: it is the kernel's time, which a fake clock cannot shorten.
bool ReapGroup(Child& child, int& status) {
  const pid_t leader = child.Release();
  bool reaped_leader = false;
  Clock& real = Clock::Real();
  const double until = real.NowSeconds() + 1.0;
  while (true) {
    int member_status = 0;
    const pid_t reaped = ::waitpid(-leader, &member_status, WNOHANG);
    if (reaped == leader) {
      status = member_status;
      reaped_leader = true;
    } else if (reaped < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: no child of ours is left in the group
    } else if (reaped == 0) {
      if (real.NowSeconds() >= until) break;
      real.SleepFor(0.001);
    }
  }
  if (!reaped_leader) {
    pid_t reaped = -1;
    while ((reaped = ::waitpid(leader, &status, 0)) < 0 && errno == EINTR) {
    }
    reaped_leader = reaped == leader;
  }
  return reaped_leader;
}

// SIGTERM to the group, SIGKILL after `grace_s` (for the members that ignore SIGTERM or outlive the
// leader), then reaps.
void KillGroupAndReap(Child& child, Clock& clock, double grace_s) {
  child.Signal(SIGTERM);
  WaitForExit(child, clock, grace_s, nullptr);
  child.Signal(SIGKILL);
  int status = 0;
  ReapGroup(child, status);
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    const char* name = ::sigabbrev_np(signal);
    return "was killed by signal " + std::to_string(signal) +
           (name != nullptr ? " (SIG" + std::string(name) + ")" : "");
  }
  return "ended with wait status " + std::to_string(status);
}

}  // namespace

CommandWorkload::CommandWorkload(CommandWorkloadConfig config, PlaceholderValues values,
                                 std::string output_dir, double kill_grace_s, Clock& clock)
    : config_(std::move(config)),
      values_(std::move(values)),
      output_dir_(std::move(output_dir)),
      kill_grace_s_(kill_grace_s),
      clock_(clock) {
  // Strings from a scenario were expanded once at load time; this is the final pass.
  values_.for_later_pass = false;
  values_.deferred.clear();
}

std::string CommandWorkload::Describe() const { return "command: " + CommandLine(config_.argv); }

Result<WorkloadRunInfo> CommandWorkload::Run(int run_index, const std::atomic<bool>& cancel) {
  const double start = clock_.NowSeconds();
  const std::string run = "run " + std::to_string(run_index);
  if (cancel.load())
    return Fail(ErrorCode::kFailedPrecondition, run + " cancelled before it started");
  if (config_.argv.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "the command workload has an empty argv");
  }

  PlaceholderValues values = values_;
  values.values["RUN"] = std::to_string(run_index);
  std::vector<std::string> argv;
  for (size_t i = 0; i < config_.argv.size(); ++i) {
    auto arg = ExpandPlaceholders(config_.argv[i], values);
    if (!arg) {
      return Fail(ErrorCode::kInvalidArgument,
                  "/workload/command/argv/" + std::to_string(i) + ": " + arg.error().message);
    }
    argv.push_back(std::move(*arg));
  }
  const std::string command = CommandLine(argv);
  const std::string label = run + ", command " + command;

  // The environment: leakgate's own, with the workload's variables added or replaced.
  std::vector<std::string> environment;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const std::string name(text.substr(0, text.find('=')));
    if (!config_.env.contains(name)) environment.emplace_back(text);
  }
  for (const auto& [name, value] : config_.env) {
    auto expanded = ExpandPlaceholders(value, values);
    if (!expanded) {
      return Fail(ErrorCode::kInvalidArgument,
                  "/workload/command/env/" + name + ": " + expanded.error().message);
    }
    environment.push_back(name + "=" + *expanded);
  }
  std::string cwd;
  if (!config_.cwd.empty()) {
    auto expanded = ExpandPlaceholders(config_.cwd, values);
    if (!expanded) {
      return Fail(ErrorCode::kInvalidArgument,
                  "/workload/command/cwd: " + expanded.error().message);
    }
    cwd = std::move(*expanded);
  }

  // Where the command's output goes: files, or stdout discarded and stderr kept in memory.
  std::string stdout_path;
  std::string stderr_path;
  UniqueFd stdout_file;
  UniqueFd stderr_file;
  if (!output_dir_.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(output_dir_, ec);
    const std::string stem = output_dir_ + "/workload-run-" + std::to_string(run_index);
    stdout_path = stem + ".stdout";
    stderr_path = stem + ".stderr";
    stdout_file.Reset(::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!stdout_file.valid()) {
      return Fail(ErrorCode::kIo, "cannot create " + stdout_path + ": " + SystemErrorText(errno));
    }
    stderr_file.Reset(::open(stderr_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!stderr_file.valid()) {
      return Fail(ErrorCode::kIo, "cannot create " + stderr_path + ": " + SystemErrorText(errno));
    }
  } else {
    stderr_file.Reset(::memfd_create("leakgate-workload-stderr", MFD_CLOEXEC));
  }

  // A new process group, default signal dispositions and an empty mask, whatever leakgate's own
  // handlers and mask are.
  ChildOptions options;
  options.argv = argv;
  options.env = std::move(environment);
  options.cwd = cwd;
  options.stdout_fd = stdout_file.get();
  options.stderr_fd = stderr_file.get();
  options.own_process_group = true;
  options.default_signals = true;
  auto child = Spawn(options);
  if (!child) {
    const bool search_path = argv[0].find('/') == std::string::npos;
    const std::string where =
        search_path ? " (searched on PATH)"
                    : (cwd.empty() ? std::string() : " (relative to cwd " + cwd + ")");
    return Fail(child.error().code,
                label + ": cannot start " + argv[0] + where + ": " + child.error().message);
  }

  const bool exited = WaitForExit(*child, clock_, config_.timeout_s, &cancel);
  const double duration = clock_.NowSeconds() - start;
  const auto stderr_note = [&] {
    std::string tail = Tail(stderr_file.get());
    std::string note = tail.empty() ? "; stderr empty" : "; stderr: " + tail;
    if (!stderr_path.empty()) note += " (full output in " + stderr_path + ")";
    return note;
  };
  if (!exited) {
    KillGroupAndReap(*child, clock_, kill_grace_s_);
    if (cancel.load()) {
      return Fail(ErrorCode::kFailedPrecondition,
                  label + ": cancelled; its process group was killed");
    }
    return Fail(ErrorCode::kTargetFailed,
                label + ": still running after " + FormatSecondsShort(config_.timeout_s, 3) +
                    " (timeout_s); its process group was killed" + stderr_note());
  }
  // Whatever the command left running in its group goes with it; the leader is still a zombie here,
  // so the group id cannot belong to anyone else yet.
  child->Signal(SIGKILL);
  int status = 0;
  if (!ReapGroup(*child, status)) {
    // Happens only when SIGCHLD is ignored or another waiter took the status.
    return Fail(ErrorCode::kInternal,
                label +
                    ": its exit status was collected elsewhere (SIGCHLD ignored, or another "
                    "waitpid took it); cannot tell whether it succeeded");
  }

  const bool expected_exit =
      WIFEXITED(status) && std::find(config_.expect_exit.begin(), config_.expect_exit.end(),
                                     WEXITSTATUS(status)) != config_.expect_exit.end();
  if (!expected_exit) {
    std::string expected;
    for (int code : config_.expect_exit) {
      expected += (expected.empty() ? "" : " or ") + std::to_string(code);
    }
    return Fail(ErrorCode::kTargetFailed,
                label + ": " + DescribeStatus(status) + ", expected " + expected + stderr_note());
  }

  WorkloadRunInfo info;
  info.duration_s = duration;
  info.exit_status = WEXITSTATUS(status);
  info.description = command + ": exit " + std::to_string(WEXITSTATUS(status)) + " in " +
                     FormatSecondsShort(duration, 3);
  return info;
}

}  // namespace leakgate::harness
