#include "harness/drive/target.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>
#include <utility>

#include "base/subprocess.h"
#include "base/units.h"
#include "harness/sample/proc_parser.h"

extern char** environ;

namespace leakgate::harness {
namespace {

// How often the readiness and stop loops look at the process.
constexpr double kProcessPollS = 0.005;
constexpr double kHttpPollS = 0.02;
// A GET during readiness: refused at once while nothing listens; a server that accepted but is busy
// starting gets this long to answer.
constexpr time_t kHttpConnectTimeoutUs = 250'000;
constexpr time_t kHttpReadTimeoutS = 1;
// After SIGKILL a process ends within milliseconds unless it is stuck in the kernel; this bounds the
// wait (on the real clock: a fake clock must not turn it into zero).
constexpr double kKillGraceS = 5.0;
constexpr std::size_t kStderrTailLines = 10;
constexpr std::size_t kTailBytes = 4096;
// A stdout "line" longer than this without a newline is matched in pieces.
constexpr std::size_t kMaxPendingLine = 64 * 1024;


std::string SignalDescription(int sig) {
  const char* text = sigdescr_np(sig);
  std::string out = SignalName(sig);
  if (text != nullptr) out += std::string(" (") + text + ")";
  return out;
}

ExitInfo ExitFromWaitStatus(int status) {
  ExitInfo info;
  if (WIFEXITED(status)) {
    info.exited = true;
    info.code = WEXITSTATUS(status);
    info.description = "exited with status " + std::to_string(info.code);
  } else if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
    info.core_dumped = WCOREDUMP(status);
    info.description = "killed by " + SignalDescription(info.signal);
    if (info.core_dumped) info.description += ", core dumped";
  } else {
    info.description = "ended with wait status " + std::to_string(status);
  }
  return info;
}

ExitInfo ExitFromSiginfo(const siginfo_t& si) {
  ExitInfo info;
  switch (si.si_code) {
    case CLD_EXITED:
      info.exited = true;
      info.code = si.si_status;
      info.description = "exited with status " + std::to_string(info.code);
      break;
    case CLD_KILLED:
    case CLD_DUMPED:
      info.signal = si.si_status;
      info.core_dumped = si.si_code == CLD_DUMPED;
      info.description = "killed by " + SignalDescription(info.signal);
      if (info.core_dumped) info.description += ", core dumped";
      break;
    default:
      info.description = "ended (si_code " + std::to_string(si.si_code) + ")";
  }
  return info;
}

// The last lines of a file, each indented, or "" when it is empty or unreadable.
std::string FileTail(const std::string& path, std::size_t max_lines) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  struct stat st {};
  std::string data;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    off_t start = st.st_size > static_cast<off_t>(kTailBytes) ? st.st_size - kTailBytes : 0;
    data.resize(static_cast<std::size_t>(st.st_size - start));
    ssize_t n = ::pread(fd, data.data(), data.size(), start);
    data.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    if (start > 0) {
      auto nl = data.find('\n');
      data.erase(0, nl == std::string::npos ? 0 : nl + 1);
    }
  }
  ::close(fd);
  while (!data.empty() && (data.back() == '\n' || data.back() == '\r')) data.pop_back();
  if (data.empty()) return "";
  std::vector<std::string> lines;
  std::istringstream in(data);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::size_t first = lines.size() > max_lines ? lines.size() - max_lines : 0;
  std::string out;
  for (std::size_t i = first; i < lines.size(); ++i) out += "\n  " + lines[i];
  return out;
}

std::string StderrTailSuffix(const std::string& stderr_path) {
  std::string tail = FileTail(stderr_path, kStderrTailLines);
  if (tail.empty()) return "; its stderr is empty (" + stderr_path + ")";
  return "; last lines of its stderr (" + stderr_path + "):" + tail;
}

// /proc/PID/stat read with one plain read (the fields up to rss fit in 1 KiB) and parsed by
// ParseStat; nullopt when the process is gone or the text is not as expected. No ProcReader: it
// would keep a file open for every process that LiveProcessGroupMembers looks at.
std::optional<ProcStat> ReadProcStat(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  char buf[1024];
  const ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n <= 0) return std::nullopt;
  auto stat = ParseStat(std::string_view(buf, static_cast<std::size_t>(n)), path);
  if (!stat) return std::nullopt;
  return std::move(*stat);
}

// argv[0] as posix_spawn needs it: unchanged when it holds a '/', else the first executable file of
// that name in `path_var`.
Result<std::string> ResolveProgram(const std::string& program, const std::string& path_var) {
  if (program.find('/') != std::string::npos) return program;
  std::string search = path_var;
  if (search.empty()) {
    std::size_t n = ::confstr(_CS_PATH, nullptr, 0);
    search.resize(n);
    ::confstr(_CS_PATH, search.data(), n);
    if (!search.empty() && search.back() == '\0') search.pop_back();
  }
  std::string not_executable;
  std::size_t start = 0;
  while (start <= search.size()) {
    auto colon = search.find(':', start);
    if (colon == std::string::npos) colon = search.size();
    std::string dir = search.substr(start, colon - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + program;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
      if (not_executable.empty()) not_executable = candidate;
    }
    start = colon + 1;
  }
  if (!not_executable.empty()) {
    return Fail(ErrorCode::kTargetFailed, "cannot start target: '" + not_executable +
                                              "' (found for '" + program +
                                              "' in PATH) is not executable");
  }
  return Fail(ErrorCode::kTargetFailed, "cannot start target: program '" + program +
                                            "' not found in PATH (" + search +
                                            "); give an absolute path or fix PATH");
}

bool WriteAll(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Reads the target's stdout from a pipe, appends everything to stdout.log, and watches each line for
// the readiness pattern. It keeps draining after the match so that the target never blocks on a full
// pipe; it ends at end of file (every writer closed the pipe) or when asked to, after reading what is
// already in the pipe.
class StdoutTee {
 public:
  StdoutTee(UniqueFd pipe_read, UniqueFd log_file, const ReadyCheck& ready)
      : pipe_(std::move(pipe_read)), log_(std::move(log_file)), ready_(ready) {
    if (ready_.pattern_is_regex) regex_.emplace(ready_.pattern, std::regex::ECMAScript);
  }
  ~StdoutTee() { Finish(); }

  Result<void> Launch() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
      return Fail(ErrorCode::kIo, "cannot create a pipe: " + SystemErrorText(errno));
    }
    wake_read_ = UniqueFd(fds[0]);
    wake_write_ = UniqueFd(fds[1]);
    thread_ = std::thread([this] { Run(); });
    return {};
  }

  bool matched() const { return matched_.load(std::memory_order_acquire); }

  std::string matched_line() const {
    std::lock_guard lock(mutex_);
    return matched_line_;
  }

  // "12 lines read; last: 'foo'" for a timeout message.
  std::string Progress() const {
    std::lock_guard lock(mutex_);
    if (lines_ == 0) return "nothing on its stdout yet";
    return std::to_string(lines_) + " line(s) on its stdout; last: '" + last_line_ + "'";
  }

  // Drains what is in the pipe, then stops the reader thread. Idempotent.
  void Finish() {
    if (!thread_.joinable()) return;
    char byte = 1;
    (void)!::write(wake_write_.get(), &byte, 1);
    thread_.join();
  }

 private:
  void Run() {
    char buf[65536];
    pollfd fds[2] = {{pipe_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
    bool draining = false;
    while (true) {
      if (!draining) {
        int rc = ::poll(fds, 2, -1);
        if (rc < 0) {
          if (errno == EINTR) continue;
          break;
        }
        if (fds[1].revents != 0) draining = true;
      }
      ssize_t n = ::read(pipe_.get(), buf, sizeof buf);
      if (n > 0) {
        WriteAll(log_.get(), buf, static_cast<std::size_t>(n));
        Feed(std::string_view(buf, static_cast<std::size_t>(n)));
        continue;
      }
      if (n == 0) break;  // end of file
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (draining) break;
        continue;
      }
      break;
    }
    if (!pending_.empty()) Line(pending_);
    pending_.clear();
  }

  void Feed(std::string_view data) {
    while (!data.empty()) {
      auto nl = data.find('\n');
      if (nl == std::string_view::npos) {
        pending_.append(data);
        if (pending_.size() > kMaxPendingLine) {
          Line(pending_);
          pending_.clear();
        }
        return;
      }
      pending_.append(data.substr(0, nl));
      Line(pending_);
      pending_.clear();
      data.remove_prefix(nl + 1);
    }
  }

  void Line(std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    bool hit = false;
    if (!matched()) {
      if (regex_) {
        hit = std::regex_search(line, *regex_);
      } else {
        hit = line.find(ready_.pattern) != std::string::npos;
      }
    }
    std::lock_guard lock(mutex_);
    ++lines_;
    last_line_ = line.size() > 200 ? line.substr(0, 200) + "..." : line;
    if (hit) {
      matched_line_ = std::move(line);
      matched_.store(true, std::memory_order_release);
    }
  }

  UniqueFd pipe_;
  UniqueFd log_;
  UniqueFd wake_read_;
  UniqueFd wake_write_;
  ReadyCheck ready_;
  std::optional<std::regex> regex_;
  std::thread thread_;
  std::string pending_;  // reader thread only
  std::atomic<bool> matched_{false};
  mutable std::mutex mutex_;
  std::string matched_line_;
  std::string last_line_;
  int64_t lines_ = 0;
};

// One GET of the readiness URL; "" on a 2xx answer, else what went wrong.
class HttpProbe {
 public:
  static Result<HttpProbe> Create(const std::string& url) {
    static const std::regex kUrl(R"(^(https?://[^/?#]+)(.*)$)", std::regex::icase);
    std::smatch m;
    if (!std::regex_match(url, m, kUrl)) {
      return Fail(ErrorCode::kInvalidArgument,
                  "readiness URL '" + url + "' is not an http:// or https:// URL");
    }
    HttpProbe probe;
    probe.origin_ = m[1].str();
    probe.path_ = m[2].str().empty() ? "/" : m[2].str();
    return probe;
  }

  std::string Get() const {
    try {
      httplib::Client client(origin_);
      client.set_connection_timeout(0, kHttpConnectTimeoutUs);
      client.set_read_timeout(kHttpReadTimeoutS, 0);
      client.set_write_timeout(kHttpReadTimeoutS, 0);
      client.set_keep_alive(false);
      client.set_tcp_nodelay(true);
      auto res = client.Get(path_);
      if (!res) return DescribeError(res.error());
      if (res->status >= 200 && res->status < 300) return "";
      return "HTTP " + std::to_string(res->status);
    } catch (const std::exception& e) {
      return std::string("request failed: ") + e.what();
    }
  }

 private:
  static std::string DescribeError(httplib::Error error) {
    switch (error) {
      case httplib::Error::Connection:
        return "connection failed (refused or unreachable)";
      case httplib::Error::ConnectionTimeout:
        return "connection timed out";
      case httplib::Error::Read:
        return "no complete answer (read failed or timed out)";
      case httplib::Error::Write:
        return "request could not be sent";
      default:
        return "request failed (" + httplib::to_string(error) + ")";
    }
  }

  std::string origin_;
  std::string path_;
};

class SpawnedTarget final : public Target {
 public:
  SpawnedTarget(SpawnOptions options, Clock& clock) : options_(std::move(options)), clock_(clock) {
    auto slash = options_.argv[0].rfind('/');
    name_ = slash == std::string::npos ? options_.argv[0] : options_.argv[0].substr(slash + 1);
  }

  ~SpawnedTarget() override {
    if (pid_ > 0) (void)Stop();
  }

  Result<void> Start() override;

  pid_t pid() const override { return pid_; }
  pid_t process_group() const override { return pid_; }
  std::string Describe() const override {
    if (pid_ <= 0) return name_ + " (not started)";
    return name_ + " (pid " + std::to_string(pid_) + ")";
  }

  bool Alive() override { return pid_ > 0 && !ObserveExit().has_value(); }
  std::optional<ExitInfo> ExitStatus() override {
    if (pid_ <= 0) return std::nullopt;
    return ObserveExit();
  }
  Result<void> CheckAlive(std::string_view context) override;
  Result<ExitInfo> Stop() override;

  std::string stdout_path() const override { return stdout_path_; }
  std::string stderr_path() const override { return stderr_path_; }
  std::string ready_line() const override { return tee_ ? tee_->matched_line() : std::string(); }

 private:
  Result<void> Spawn();
  Result<void> WaitUntilReady();
  // Stops what was started and returns `message` as kTargetFailed.
  Result<void> FailStart(std::string message);
  // How the leader ended, without reaping it (its zombie keeps the process group id reserved, so
  // signalling the group can never hit an unrelated process); nullopt while it runs.
  std::optional<ExitInfo> ObserveExit();

  SpawnOptions options_;
  Clock& clock_;
  std::string name_;
  pid_t pid_ = -1;
  bool start_called_ = false;
  std::string stdout_path_;
  std::string stderr_path_;
  std::unique_ptr<StdoutTee> tee_;

  std::mutex exit_mutex_;
  std::optional<ExitInfo> exit_;  // guarded by exit_mutex_
  bool reaped_ = false;           // guarded by exit_mutex_
  std::optional<ExitInfo> stop_result_;
};

std::optional<ExitInfo> SpawnedTarget::ObserveExit() {
  std::lock_guard lock(exit_mutex_);
  if (exit_ || reaped_) return exit_;
  siginfo_t si{};
  int rc = ::waitid(P_PID, static_cast<id_t>(pid_), &si, WEXITED | WNOHANG | WNOWAIT);
  if (rc == 0 && si.si_pid == pid_) {
    exit_ = ExitFromSiginfo(si);
  } else if (rc != 0 && errno == ECHILD) {
    ExitInfo info;
    info.description = "ended (exit status unknown: the process was reaped by someone else)";
    exit_ = info;
  }
  return exit_;
}

Result<void> SpawnedTarget::Start() {
  if (start_called_) {
    return Fail(ErrorCode::kFailedPrecondition, "target " + Describe() + " was already started");
  }
  start_called_ = true;
  if (auto spawned = Spawn(); !spawned) return spawned;
  return WaitUntilReady();
}

Result<void> SpawnedTarget::Spawn() {
  std::error_code ec;
  std::filesystem::create_directories(options_.output_dir, ec);
  if (ec) {
    return Fail(ErrorCode::kIo, "cannot create the output folder '" + options_.output_dir +
                                    "' for the target's stdout and stderr: " + ec.message());
  }
  stdout_path_ = (std::filesystem::path(options_.output_dir) / "stdout.log").string();
  stderr_path_ = (std::filesystem::path(options_.output_dir) / "stderr.log").string();
  constexpr int kLogFlags = O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC;
  UniqueFd stdout_file(::open(stdout_path_.c_str(), kLogFlags, 0644));
  if (stdout_file.get() < 0) {
    return Fail(ErrorCode::kIo, "cannot create '" + stdout_path_ + "': " + SystemErrorText(errno));
  }
  UniqueFd stderr_file(::open(stderr_path_.c_str(), kLogFlags, 0644));
  if (stderr_file.get() < 0) {
    return Fail(ErrorCode::kIo, "cannot create '" + stderr_path_ + "': " + SystemErrorText(errno));
  }

  if (!options_.cwd.empty()) {
    struct stat st {};
    if (::stat(options_.cwd.c_str(), &st) != 0) {
      return Fail(ErrorCode::kTargetFailed, "cannot start target " + name_ + ": working directory '" +
                                                options_.cwd + "': " + SystemErrorText(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
      return Fail(ErrorCode::kTargetFailed, "cannot start target " + name_ + ": working directory '" +
                                                options_.cwd + "' is not a directory");
    }
  }

  // The environment: leakgate's own, with the given names added or replaced.
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  for (const auto& [name, value] : options_.env) env[name] = value;
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);

  auto path_it = env.find("PATH");
  auto program = ResolveProgram(options_.argv[0], path_it == env.end() ? "" : path_it->second);
  if (!program) return std::unexpected(program.error());

  // stdout: straight into stdout.log, or through a pipe when its lines decide readiness.
  UniqueFd pipe_read;
  UniqueFd pipe_write;
  bool tee_stdout = options_.ready.kind == ReadyCheck::Kind::kStdoutLine;
  if (tee_stdout) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      return Fail(ErrorCode::kIo,
                  "cannot create a pipe for the target's stdout: " + SystemErrorText(errno));
    }
    pipe_read = UniqueFd(fds[0]);
    pipe_write = UniqueFd(fds[1]);
    int flags = ::fcntl(pipe_read.get(), F_GETFL);
    ::fcntl(pipe_read.get(), F_SETFL, flags | O_NONBLOCK);
  }
  int child_stdout = tee_stdout ? pipe_write.get() : stdout_file.get();

  // Its own process group (so Stop() reaches what it starts), an empty signal mask and default
  // dispositions for every signal: leakgate's handlers and ignored signals (SIGPIPE, SIGHUP under
  // nohup) must not leak into the target. stdin is /dev/null.
  ChildOptions spawn;
  spawn.argv = options_.argv;
  spawn.program = *program;
  spawn.search_path = false;
  spawn.env = std::move(env_strings);
  spawn.cwd = options_.cwd;
  spawn.stdout_fd = child_stdout;
  spawn.stderr_fd = stderr_file.get();
  spawn.own_process_group = true;
  spawn.default_signals = true;
  // glibc's posix_spawn reports a failed exec (or chdir) as its return value, not as exit status 127.
  auto child = leakgate::Spawn(spawn);
  pipe_write.Reset();
  if (!child) {
    std::string how = *program == options_.argv[0] ? "" : " (found in PATH for '" + options_.argv[0] + "')";
    return Fail(ErrorCode::kTargetFailed, "cannot start target: exec of '" + *program + "'" + how +
                                              " failed: " + child.error().message);
  }
  // From here the target's own exit and stop code waits for it.
  const pid_t pid = child->Release();
  pid_ = pid;
  if (!ChildProcessRegistry::Add(pid_)) {
    // Without a registry slot a signal to leakgate could orphan it: refuse to run it.
    return FailStart("cannot track target " + Describe() + ": more than " +
                     std::to_string(ChildProcessRegistry::kCapacity) +
                     " process groups are running at once");
  }
  if (tee_stdout) {
    tee_ = std::make_unique<StdoutTee>(std::move(pipe_read), std::move(stdout_file), options_.ready);
    if (auto launched = tee_->Launch(); !launched) return FailStart(launched.error().message);
  }
  return {};
}

Result<void> SpawnedTarget::WaitUntilReady() {
  const ReadyCheck& ready = options_.ready;
  std::optional<HttpProbe> probe;
  if (ready.kind == ReadyCheck::Kind::kHttpGet) {
    auto created = HttpProbe::Create(ready.url);
    if (!created) return FailStart(created.error().message);
    probe = std::move(*created);
  }
  const double start = clock_.NowSeconds();
  const double limit = ready.kind == ReadyCheck::Kind::kDelay ? ready.delay_s : options_.ready_timeout_s;
  const double deadline = start + limit;
  std::string last_error;
  while (true) {
    if (auto exit = ObserveExit()) {
      return FailStart("target " + Describe() + " " + exit->description + " before it was ready (" +
                       ready.Describe() + ", after " + FormatSeconds(clock_.NowSeconds() - start) + ")" +
                       StderrTailSuffix(stderr_path_));
    }
    const double now = clock_.NowSeconds();
    switch (ready.kind) {
      case ReadyCheck::Kind::kImmediate:
        return {};
      case ReadyCheck::Kind::kDelay:
        if (now >= deadline) return {};
        break;
      case ReadyCheck::Kind::kStdoutLine:
        if (tee_->matched()) return {};
        break;
      case ReadyCheck::Kind::kHttpGet: {
        last_error = probe->Get();
        if (last_error.empty()) return {};
        break;
      }
    }
    if (clock_.NowSeconds() >= deadline) {
      std::string what;
      if (ready.kind == ReadyCheck::Kind::kHttpGet) {
        what = "GET " + ready.url + " did not answer 2xx (last error: " + last_error + ")";
      } else {
        what = "no line of its stdout " + std::string(ready.pattern_is_regex ? "matched /" : "contained '") +
               ready.pattern + (ready.pattern_is_regex ? "/" : "'") + " (" + tee_->Progress() + ")";
      }
      std::string tail = FileTail(stderr_path_, kStderrTailLines);
      return FailStart("target " + Describe() + " was not ready within " + FormatSeconds(limit) + ": " +
                       what + (tail.empty() ? "" : "; last lines of its stderr:" + tail));
    }
    double interval = ready.kind == ReadyCheck::Kind::kHttpGet ? kHttpPollS : kProcessPollS;
    clock_.SleepFor(std::min(interval, std::max(0.0, deadline - clock_.NowSeconds())));
  }
}

Result<void> SpawnedTarget::FailStart(std::string message) {
  if (pid_ > 0) (void)Stop();
  return Fail(ErrorCode::kTargetFailed, std::move(message));
}

Result<void> SpawnedTarget::CheckAlive(std::string_view context) {
  if (pid_ <= 0) {
    return Fail(ErrorCode::kFailedPrecondition, "target " + Describe() + " was never started");
  }
  auto exit = ObserveExit();
  if (!exit) return {};
  std::string message = "target " + Describe() + " " + exit->description;
  if (!context.empty()) message += " " + std::string(context);
  return Fail(ErrorCode::kTargetFailed, message + StderrTailSuffix(stderr_path_));
}

Result<ExitInfo> SpawnedTarget::Stop() {
  if (stop_result_) return *stop_result_;
  if (pid_ <= 0) {
    ExitInfo info;
    info.description = "not started";
    return info;
  }
  const pid_t pgid = pid_;
  const bool ended_before = ObserveExit().has_value();
  // Live processes left to end: the group's members, and the leader if it moved to another group
  // (setsid) while still running.
  auto remaining = [&] {
    std::vector<pid_t> left = LiveProcessGroupMembers(pgid);
    if (!ObserveExit() && std::find(left.begin(), left.end(), pid_) == left.end()) left.push_back(pid_);
    return left;
  };
  auto signal_all = [&](int sig) {
    ::kill(-pgid, sig);
    auto leader = ReadProcStat(pid_);
    if (leader && leader->pgrp != pgid && !ObserveExit()) ::kill(pid_, sig);
  };
  signal_all(options_.stop_signal);
  const double deadline = clock_.NowSeconds() + options_.stop_timeout_s;
  bool forced = false;
  while (!remaining().empty()) {
    if (clock_.NowSeconds() >= deadline) {
      signal_all(SIGKILL);
      forced = true;
      break;
    }
    clock_.SleepFor(kProcessPollS);
  }
  std::vector<pid_t> survivors;
  if (forced) {
    Clock& real = Clock::Real();
    const double kill_deadline = real.NowSeconds() + kKillGraceS;
    while (!(survivors = remaining()).empty() && real.NowSeconds() < kill_deadline) {
      real.SleepFor(kProcessPollS);
    }
  }
  if (!survivors.empty()) {
    std::string pids;
    for (pid_t p : survivors) pids += (pids.empty() ? "" : ", ") + std::to_string(p);
    // Still registered, so the exit path tries SIGKILL once more.
    return Fail(ErrorCode::kTargetFailed, "target " + Describe() + ": process group " +
                                              std::to_string(pgid) + " still has live processes (" +
                                              pids + ") " + FormatSeconds(kKillGraceS) +
                                              " after SIGKILL; they are stuck in the kernel");
  }

  // Every member has ended; forget the group before reaping the leader frees its id for reuse, so a
  // termination handler can never signal an unrelated group of the same number.
  ChildProcessRegistry::Remove(pgid);
  ExitInfo info;
  {
    std::lock_guard lock(exit_mutex_);
    int status = 0;
    pid_t rc;
    do {
      rc = ::waitpid(pid_, &status, 0);
    } while (rc < 0 && errno == EINTR);
    if (rc == pid_ && !exit_) exit_ = ExitFromWaitStatus(status);
    if (!exit_) {
      ExitInfo unknown;
      unknown.description = "ended (exit status unknown: the process was reaped by someone else)";
      exit_ = unknown;
    }
    reaped_ = true;
    info = *exit_;
  }
  // Members of the group that outlived their parent and were reparented to leakgate (a subreaper).
  while (::waitpid(-pgid, nullptr, WNOHANG) > 0) {
  }
  if (tee_) tee_->Finish();

  info.exited_before_stop = ended_before;
  info.killed_after_timeout = forced;
  if (forced) {
    info.description += " after ignoring " + SignalName(options_.stop_signal) + " for " +
                        FormatSeconds(options_.stop_timeout_s);
  }
  stop_result_ = info;
  return info;
}

class AttachedTarget final : public Target {
 public:
  AttachedTarget(pid_t pid, ProcStat stat) : pid_(pid), stat_(std::move(stat)) {}

  Result<void> Start() override { return CheckAlive("when attaching"); }
  pid_t pid() const override { return pid_; }
  pid_t process_group() const override { return -1; }
  std::string Describe() const override {
    return stat_.comm + " (pid " + std::to_string(pid_) + ", attached)";
  }

  // The same pid with the same start time: a reused pid is not our process.
  bool Alive() override {
    auto now = ReadProcStat(pid_);
    return now && now->starttime_ticks == stat_.starttime_ticks && now->state != 'Z' &&
           now->state != 'X';
  }
  std::optional<ExitInfo> ExitStatus() override {
    if (Alive()) return std::nullopt;
    return Gone();
  }
  Result<void> CheckAlive(std::string_view context) override {
    if (Alive()) return {};
    std::string message = "target " + Describe() + " " + Gone().description;
    if (!context.empty()) message += " " + std::string(context);
    return Fail(ErrorCode::kTargetFailed, message);
  }
  Result<ExitInfo> Stop() override {
    if (!Alive()) return Gone();
    ExitInfo info;
    info.description = "left running (attached: leakgate does not stop a process it did not start)";
    return info;
  }

  std::string stdout_path() const override { return ""; }
  std::string stderr_path() const override { return ""; }
  std::string ready_line() const override { return ""; }

 private:
  static ExitInfo Gone() {
    ExitInfo info;
    info.description = "ended (exit status unknown: it is not a child of leakgate)";
    return info;
  }

  pid_t pid_;
  ProcStat stat_;
};

}  // namespace

ReadyCheck ReadyCheck::HttpGet(std::string url) {
  ReadyCheck r;
  r.kind = Kind::kHttpGet;
  r.url = std::move(url);
  return r;
}

ReadyCheck ReadyCheck::StdoutLine(std::string pattern, bool is_regex) {
  ReadyCheck r;
  r.kind = Kind::kStdoutLine;
  r.pattern = std::move(pattern);
  r.pattern_is_regex = is_regex;
  return r;
}

ReadyCheck ReadyCheck::Delay(double seconds) {
  ReadyCheck r;
  r.kind = Kind::kDelay;
  r.delay_s = seconds;
  return r;
}

std::string ReadyCheck::Describe() const {
  switch (kind) {
    case Kind::kImmediate:
      return "ready at once";
    case Kind::kHttpGet:
      return "waiting for GET " + url + " to answer 2xx";
    case Kind::kStdoutLine:
      return pattern_is_regex ? "waiting for a stdout line matching /" + pattern + "/"
                              : "waiting for a stdout line containing '" + pattern + "'";
    case Kind::kDelay:
      return "waiting " + FormatSeconds(delay_s);
  }
  return "";
}

Result<std::unique_ptr<Target>> SpawnTarget(SpawnOptions options, Clock& clock) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return Fail(ErrorCode::kInvalidArgument, "target argv is empty: give the program and its arguments");
  }
  if (options.output_dir.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                "target output_dir is empty: the target's stdout.log and stderr.log need a folder");
  }
  if (options.ready_timeout_s < 0 || options.stop_timeout_s < 0 || options.ready.delay_s < 0) {
    return Fail(ErrorCode::kInvalidArgument, "target timeouts and delays must be >= 0 seconds");
  }
  if (options.stop_signal <= 0 || options.stop_signal >= NSIG || options.stop_signal == SIGSTOP) {
    return Fail(ErrorCode::kInvalidArgument,
                "target stop_signal " + std::to_string(options.stop_signal) +
                    " is not a signal that ends a process (SIGTERM is 15)");
  }
  switch (options.ready.kind) {
    case ReadyCheck::Kind::kHttpGet:
      if (auto probe = HttpProbe::Create(options.ready.url); !probe) return std::unexpected(probe.error());
      break;
    case ReadyCheck::Kind::kStdoutLine:
      if (options.ready.pattern.empty()) {
        return Fail(ErrorCode::kInvalidArgument, "target readiness stdout pattern is empty");
      }
      if (options.ready.pattern_is_regex) {
        try {
          std::regex check(options.ready.pattern, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
          return Fail(ErrorCode::kInvalidArgument, "target readiness pattern /" + options.ready.pattern +
                                                       "/ is not a valid regular expression: " + e.what());
        }
      }
      break;
    default:
      break;
  }
  return std::unique_ptr<Target>(new SpawnedTarget(std::move(options), clock));
}

Result<std::unique_ptr<Target>> AttachTarget(pid_t pid) {
  if (pid <= 0) {
    return Fail(ErrorCode::kInvalidArgument, "cannot attach to pid " + std::to_string(pid) +
                                                 ": a process id is a positive number");
  }
  const std::string proc = "/proc/" + std::to_string(pid);
  auto stat = ReadProcStat(pid);
  if (!stat || stat->state == 'Z' || stat->state == 'X') {
    return Fail(ErrorCode::kNotFound, "cannot attach to pid " + std::to_string(pid) + ": " + proc +
                                          "/stat " + (stat ? "shows a process that has ended" : "does not exist") +
                                          "; is the process running?");
  }
  DIR* fds = ::opendir((proc + "/fd").c_str());
  if (fds == nullptr) {
    int err = errno;
    if (err == EACCES || err == EPERM) {
      return Fail(ErrorCode::kPermissionDenied,
                  "cannot attach to pid " + std::to_string(pid) + " (" + stat->comm + "): " + proc +
                      "/fd: " + SystemErrorText(err) +
                      "; run leakgate as the process's user or with CAP_SYS_PTRACE");
    }
    return Fail(ErrorCode::kNotFound, "cannot attach to pid " + std::to_string(pid) + ": " + proc +
                                          "/fd: " + SystemErrorText(err));
  }
  ::closedir(fds);
  return std::unique_ptr<Target>(new AttachedTarget(pid, std::move(*stat)));
}

std::vector<pid_t> LiveProcessGroupMembers(pid_t pgid) {
  std::vector<pid_t> members;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return members;
  while (dirent* entry = ::readdir(dir)) {
    pid_t pid = 0;
    const char* name = entry->d_name;
    auto [end, ec] = std::from_chars(name, name + std::strlen(name), pid);
    if (ec != std::errc() || *end != '\0' || pid <= 0) continue;
    auto stat = ReadProcStat(pid);
    if (stat && stat->pgrp == pgid && stat->state != 'Z' && stat->state != 'X') members.push_back(pid);
  }
  ::closedir(dir);
  std::sort(members.begin(), members.end());
  return members;
}


static_assert(std::atomic<pid_t>::is_always_lock_free, "the registry is used from signal handlers");
constinit std::atomic<pid_t> ChildProcessRegistry::groups_[ChildProcessRegistry::kCapacity] = {};

bool ChildProcessRegistry::Add(pid_t pgid) {
  if (pgid <= 0) return false;
  for (auto& slot : groups_) {
    pid_t expected = 0;
    if (slot.compare_exchange_strong(expected, pgid)) return true;
  }
  return false;
}

void ChildProcessRegistry::Remove(pid_t pgid) {
  if (pgid <= 0) return;
  for (auto& slot : groups_) {
    pid_t expected = pgid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

void ChildProcessRegistry::KillAll(int signal) {
  for (auto& slot : groups_) {
    pid_t pgid = slot.load();
    if (pgid > 0) ::kill(-pgid, signal);
  }
}

std::vector<pid_t> ChildProcessRegistry::Snapshot() {
  std::vector<pid_t> out;
  for (auto& slot : groups_) {
    pid_t pgid = slot.load();
    if (pgid > 0) out.push_back(pgid);
  }
  return out;
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  if (abbrev == nullptr) return "signal " + std::to_string(sig);
  return std::string("SIG") + abbrev;
}

namespace {

std::terminate_handler previous_terminate = nullptr;
constinit std::atomic<bool> record_termination{false};
constinit std::atomic<int> termination_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "read and written by signal handlers");

// Kills every registered group, then ends the process by `sig` as its default action would (the
// exit status a shell reads: 130 for SIGINT). Async-signal-safe.
void KillChildrenAndDieBy(int sig) {
  ChildProcessRegistry::KillAll(SIGKILL);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  sigset_t unblock;
  sigemptyset(&unblock);
  sigaddset(&unblock, sig);
  ::pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);
  ::raise(sig);
}

extern "C" void KillChildrenOnSignal(int sig) {
  int saved_errno = errno;
  if (record_termination.load()) {
    int none = 0;
    // The first signal is recorded before the targets are killed, so a loop that then sees its
    // target gone also sees why.
    if (termination_signal.compare_exchange_strong(none, sig)) {
      ChildProcessRegistry::KillAll(SIGKILL);
      errno = saved_errno;
      return;
    }
  }
  KillChildrenAndDieBy(sig);
  errno = saved_errno;
}

void KillChildrenAtExit() { ChildProcessRegistry::KillAll(SIGKILL); }

void KillChildrenOnTerminate() {
  ChildProcessRegistry::KillAll(SIGKILL);
  if (previous_terminate != nullptr) previous_terminate();
  std::abort();
}

}  // namespace

void InstallTerminationHandlers() { InstallTerminationHandlers(TerminationPolicy::kExit); }

void InstallTerminationHandlers(TerminationPolicy policy) {
  static std::once_flag once;
  std::call_once(once, [policy] {
    record_termination = policy == TerminationPolicy::kRecord;
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction old {};
      if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
      struct sigaction sa {};
      sa.sa_handler = KillChildrenOnSignal;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESTART;
      ::sigaction(sig, &sa, nullptr);
    }
    std::atexit(KillChildrenAtExit);
    previous_terminate = std::set_terminate(KillChildrenOnTerminate);
  });
}

int TerminationSignal() { return termination_signal.load(); }

void RaiseTerminationSignal() {
  const int sig = termination_signal.load();
  if (sig == 0) return;
  KillChildrenAndDieBy(sig);
}

Result<void> BecomeChildSubreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    return Fail(ErrorCode::kFailedPrecondition,
                "prctl(PR_SET_CHILD_SUBREAPER) failed: " + SystemErrorText(errno));
  }
  return {};
}

Result<void> Target::Signal(int signal) {
  const pid_t target = pid();
  if (target <= 0) return Fail(ErrorCode::kFailedPrecondition, "the target has not been started");
  if (::kill(target, signal) != 0) {
    return Fail(ErrorCode::kTargetFailed,
                "cannot signal " + Describe() + ": " + SystemErrorText(errno));
  }
  return {};
}

}  // namespace leakgate::harness
