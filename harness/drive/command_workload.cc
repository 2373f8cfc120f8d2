#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "base/subprocess.h"
#include "base/units.h"
#include "harness/drive/workload.h"

extern char** environ;

namespace leakgate::harness {
namespace {

using SteadyClock = std::chrono::steady_clock;

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

// True once `pid` has exited; the zombie is kept (WNOWAIT) so its process group id cannot be reused
// before the group is killed.
bool HasExited(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno == ECHILD;  // already reaped elsewhere: nothing left to wait for
  }
  return info.si_pid == pid;
}

// Waits until `pid` exits or `seconds` pass (or `cancel`, when given, is set); true when it exited.
bool WaitForExit(pid_t pid, double seconds, const std::atomic<bool>* cancel) {
  const auto until = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                              std::chrono::duration<double>(seconds));
  auto pause = std::chrono::microseconds(500);
  while (true) {
    if (HasExited(pid)) return true;
    if (cancel != nullptr && cancel->load()) return false;
    const auto now = SteadyClock::now();
    if (now >= until) return false;
    std::this_thread::sleep_for(std::min<SteadyClock::duration>(pause, until - now));
    pause = std::min(pause * 2, std::chrono::microseconds(10000));
  }
}

// Reaps the killed group's leader and, when leakgate is a child subreaper, the members that were
// reparented to it, so none is left as a zombie. False when the leader's status was not there (only
// when SIGCHLD is ignored or another waiter took it).
bool ReapGroup(pid_t leader, int& status) {
  bool reaped_leader = false;
  const auto until = SteadyClock::now() + std::chrono::seconds(1);
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
      // Members killed a moment ago are still dying.
      if (SteadyClock::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
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
void KillGroupAndReap(pid_t pid, double grace_s) {
  ::kill(-pid, SIGTERM);
  WaitForExit(pid, grace_s, nullptr);
  ::kill(-pid, SIGKILL);
  int status = 0;
  ReapGroup(pid, status);
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
                                 std::string output_dir, double kill_grace_s)
    : config_(std::move(config)),
      values_(std::move(values)),
      output_dir_(std::move(output_dir)),
      kill_grace_s_(kill_grace_s) {
  // Strings from a scenario were expanded once at load time; this is the final pass.
  values_.for_later_pass = false;
  values_.deferred.clear();
}

std::string CommandWorkload::Describe() const { return "command: " + CommandLine(config_.argv); }

Result<WorkloadRunInfo> CommandWorkload::Run(int run_index, const std::atomic<bool>& cancel) {
  const auto start = SteadyClock::now();
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

  // Where the command's output goes.
  std::string stdout_path;
  std::string stderr_path;
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  int stdout_fd = devnull.get();
  int stderr_raw = -1;
  if (!output_dir_.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(output_dir_, ec);
    const std::string stem = output_dir_ + "/workload-run-" + std::to_string(run_index);
    stdout_path = stem + ".stdout";
    stderr_path = stem + ".stderr";
    stdout_fd = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (stdout_fd < 0) {
      return Fail(ErrorCode::kIo, "cannot create " + stdout_path + ": " + SystemErrorText(errno));
    }
    stderr_raw = ::open(stderr_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (stderr_raw < 0) {
      const int error = errno;
      ::close(stdout_fd);
      return Fail(ErrorCode::kIo, "cannot create " + stderr_path + ": " + SystemErrorText(error));
    }
  } else {
    stderr_raw = ::memfd_create("leakgate-workload-stderr", MFD_CLOEXEC);
  }
  UniqueFd stdout_file(stdout_fd == devnull.get() ? -1 : stdout_fd);
  UniqueFd stderr_file(stderr_raw);
  const int stderr_fd = stderr_raw >= 0 ? stderr_raw : devnull.get();

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, devnull.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());

  // A new process group, default signal dispositions and an empty mask, whatever leakgate's own
  // handlers and mask are.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attributes, 0);
  sigset_t all_signals;
  sigfillset(&all_signals);
  sigdelset(&all_signals, SIGKILL);
  sigdelset(&all_signals, SIGSTOP);
  posix_spawnattr_setsigdefault(&attributes, &all_signals);
  sigset_t no_signals;
  sigemptyset(&no_signals);
  posix_spawnattr_setsigmask(&attributes, &no_signals);

  std::vector<char*> argv_pointers;
  for (auto& arg : argv) argv_pointers.push_back(arg.data());
  argv_pointers.push_back(nullptr);
  std::vector<char*> env_pointers;
  for (auto& entry : environment) env_pointers.push_back(entry.data());
  env_pointers.push_back(nullptr);

  pid_t pid = 0;
  const bool search_path = argv[0].find('/') == std::string::npos;
  const int spawn_error = search_path ? ::posix_spawnp(&pid, argv[0].c_str(), &actions, &attributes,
                                                       argv_pointers.data(), env_pointers.data())
                                      : ::posix_spawn(&pid, argv[0].c_str(), &actions, &attributes,
                                                      argv_pointers.data(), env_pointers.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawn_error != 0) {
    const std::string where =
        search_path ? " (searched on PATH)"
                    : (cwd.empty() ? std::string() : " (relative to cwd " + cwd + ")");
    const ErrorCode code = spawn_error == ENOENT   ? ErrorCode::kNotFound
                           : spawn_error == EACCES ? ErrorCode::kPermissionDenied
                                                   : ErrorCode::kIo;
    return Fail(code,
                label + ": cannot start " + argv[0] + where + ": " + SystemErrorText(spawn_error));
  }

  const bool exited = WaitForExit(pid, config_.timeout_s, &cancel);
  const double duration = std::chrono::duration<double>(SteadyClock::now() - start).count();
  const auto stderr_note = [&] {
    std::string tail = Tail(stderr_file.get());
    std::string note = tail.empty() ? "; stderr empty" : "; stderr: " + tail;
    if (!stderr_path.empty()) note += " (full output in " + stderr_path + ")";
    return note;
  };
  if (!exited) {
    KillGroupAndReap(pid, kill_grace_s_);
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
  ::kill(-pid, SIGKILL);
  int status = 0;
  if (!ReapGroup(pid, status)) {
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
  info.description =
      command + ": exit " + std::to_string(WEXITSTATUS(status)) + " in " + FormatSecondsShort(duration, 3);
  return info;
}

}  // namespace leakgate::harness
