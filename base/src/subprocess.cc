#include "base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>

extern char** environ;

namespace leakgate {

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Child& Child::operator=(Child&& other) noexcept {
  if (this != &other) {
    this->~Child();
    pid_ = std::exchange(other.pid_, -1);
    group_ = other.group_;
  }
  return *this;
}

Child::~Child() {
  if (pid_ <= 0) return;
  Signal(SIGKILL);
  (void)Wait();
}

bool Child::Exited() const {
  if (pid_ <= 0) return true;
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno == ECHILD;  // already reaped elsewhere: nothing left to wait for
  }
  return info.si_pid == pid_;
}

void Child::Signal(int signal) const {
  if (pid_ <= 0) return;
  ::kill(group_ ? -pid_ : pid_, signal);
}

std::optional<int> Child::Wait() {
  if (pid_ <= 0) return std::nullopt;
  int status = 0;
  pid_t reaped = -1;
  while ((reaped = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  const bool ours = reaped == pid_;
  pid_ = -1;
  if (!ours) return std::nullopt;
  return status;
}

Result<Child> Spawn(const ChildOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return Fail(ErrorCode::kInvalidArgument, "no program to start: argv is empty");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const int targets[3] = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
  const int sources[3] = {options.stdin_fd, options.stdout_fd, options.stderr_fd};
  for (int i = 0; i < 3; ++i) {
    if (sources[i] >= 0) {
      posix_spawn_file_actions_adddup2(&actions, sources[i], targets[i]);
    } else {
      posix_spawn_file_actions_addopen(&actions, targets[i], "/dev/null",
                                       i == 0 ? O_RDONLY : O_WRONLY, 0);
    }
  }
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  short flags = 0;
  if (options.own_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attributes, 0);
  }
  if (options.default_signals) {
    flags |= POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
    sigset_t all_signals;
    sigfillset(&all_signals);
    sigdelset(&all_signals, SIGKILL);
    sigdelset(&all_signals, SIGSTOP);
    posix_spawnattr_setsigdefault(&attributes, &all_signals);
    sigset_t no_signals;
    sigemptyset(&no_signals);
    posix_spawnattr_setsigmask(&attributes, &no_signals);
  }
  posix_spawnattr_setflags(&attributes, flags);

  std::vector<std::string> argv = options.argv;
  std::vector<char*> argv_pointers;
  for (std::string& arg : argv) argv_pointers.push_back(arg.data());
  argv_pointers.push_back(nullptr);
  std::vector<std::string> env;
  std::vector<char*> env_pointers;
  if (options.env) {
    env = *options.env;
    for (std::string& entry : env) env_pointers.push_back(entry.data());
    env_pointers.push_back(nullptr);
  }
  char** const envp = options.env ? env_pointers.data() : environ;

  const std::string& program = options.program.empty() ? argv[0] : options.program;
  pid_t pid = -1;
  const bool search = options.search_path && program.find('/') == std::string::npos;
  const auto spawn = search ? ::posix_spawnp : ::posix_spawn;
  const int error =
      spawn(&pid, program.c_str(), &actions, &attributes, argv_pointers.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) {
    const ErrorCode code = error == ENOENT   ? ErrorCode::kNotFound
                           : error == EACCES ? ErrorCode::kPermissionDenied
                                             : ErrorCode::kIo;
    return Fail(code, SystemErrorText(error));
  }
  return Child(pid, options.own_process_group);
}

Result<CommandOutput> RunCommand(const std::vector<std::string>& argv, double timeout_s) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Fail(ErrorCode::kIo, SystemErrorText(errno));
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return Fail(ErrorCode::kIo, SystemErrorText(errno));
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  ChildOptions options;
  options.argv = argv;
  options.stdout_fd = out_write.get();
  options.stderr_fd = err_write.get();
  auto child = Spawn(options);
  out_write.Reset();
  err_write.Reset();
  if (!child) {
    if (child.error().code == ErrorCode::kIo) {
      return Fail(ErrorCode::kIo, "cannot start " + argv.front() + ": " + child.error().message);
    }
    return Fail(ErrorCode::kNotFound, argv.front() + " could not be started");
  }
  CommandOutput output;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  pollfd fds[2] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
  UniqueFd* pipes[2] = {&out_read, &err_read};
  std::string* sinks[2] = {&output.out, &output.err};
  int open_pipes = 2;
  bool timed_out = false;
  char buffer[65536];
  while (open_pipes > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    const int ready = ::poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        pipes[i]->Reset();
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  out_read.Reset();
  err_read.Reset();
  if (timed_out) child->Signal(SIGKILL);
  const int status = child->Wait().value_or(0);
  if (WIFEXITED(status)) output.status = WEXITSTATUS(status);
  if (output.status == 127 && output.out.empty()) {
    return Fail(ErrorCode::kNotFound, argv.front() + " could not be started");
  }
  if (timed_out) {
    return Fail(ErrorCode::kInternal, argv.front() + " did not finish within " +
                                          std::to_string(static_cast<int>(timeout_s)) + " s");
  }
  return output;
}

}  // namespace leakgate
