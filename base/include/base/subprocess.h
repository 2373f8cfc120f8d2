// Running other programs and owning file descriptors: the one place leakgate starts a program
// (Spawn: the target, addr2line, google-pprof through RunCommand, a workload command), a handle
// that waits for it or kills it, and a descriptor that is closed when it goes out of scope.
// harness/drive/target.h builds on Spawn and keeps the target's output in files and its process
// group registered. Thread-safe: each call owns the process it starts; a Child is used by one
// thread at a time.
#ifndef LEAKGATE_BASE_SUBPROCESS_H_
#define LEAKGATE_BASE_SUBPROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"

namespace leakgate {

// A file descriptor closed when the owner goes out of scope (or on Reset); movable, not copyable.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes the descriptor held (if any) and holds `fd` instead.
  void Reset(int fd = -1);
  // Gives up ownership without closing.
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// How Spawn starts a program.
struct ChildOptions {
  std::vector<std::string> argv;  // argv[0] is the program; must not be empty
  // The file executed; "": argv[0]. Without a '/' it is looked up on PATH (posix_spawnp) when
  // `search_path`; otherwise it is used as it is (relative to `cwd` when that is given).
  std::string program;
  bool search_path = true;
  // The whole environment as "NAME=value" entries; nullopt: leakgate's own.
  std::optional<std::vector<std::string>> env;
  std::string cwd;      // the child's working directory; "": leakgate's
  int stdin_fd = -1;    // descriptors of this process the child gets as 0, 1 and 2; -1: /dev/null
  int stdout_fd = -1;
  int stderr_fd = -1;
  // The child leads a new process group (its group id is its pid), so one kill reaches what it
  // starts.
  bool own_process_group = false;
  // Every signal at its default disposition and none blocked, whatever leakgate's own handlers,
  // ignored signals (SIGPIPE, SIGHUP under nohup) and mask are.
  bool default_signals = false;
};

// A started child process. The owner waits for it; a Child destroyed before that kills it (its
// group, with `own_process_group`) and reaps it. Movable, not copyable; one thread at a time.
class Child {
 public:
  Child() = default;
  Child(pid_t pid, bool own_process_group) : pid_(pid), group_(own_process_group) {}
  Child(Child&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)), group_(other.group_) {}
  Child& operator=(Child&& other) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }
  // True once the child has ended. Its zombie is kept (waitid WNOWAIT), so neither its pid nor its
  // process group id can be reused before Wait; also true when someone else reaped it.
  bool Exited() const;
  // Sends `signal` to the child, or to its whole process group when it leads one.
  void Signal(int signal) const;
  // Blocks until the child ends and reaps it: its wait status (waitpid(2)), or nullopt when it was
  // reaped elsewhere (SIGCHLD ignored, another waiter). The Child then owns nothing.
  std::optional<int> Wait();
  // Gives the child up without killing it: the caller reaps it.
  pid_t Release() { return std::exchange(pid_, -1); }

 private:
  pid_t pid_ = -1;
  bool group_ = false;
};

// Starts `options.argv` with posix_spawn. Failure when it cannot be started (glibc reports a failed
// exec or chdir as posix_spawn's result, not as exit status 127): kNotFound (ENOENT),
// kPermissionDenied (EACCES), kInvalidArgument (empty argv), kIo otherwise; the message is the
// system's text of the cause ("No such file or directory"), for the caller to put in its own
// sentence.
Result<Child> Spawn(const ChildOptions& options);

struct CommandOutput {
  int status = -1;  // exit status; -1 when killed or not started
  std::string out;
  std::string err;
};

// Spawns argv (searched on PATH) with stdin from /dev/null, collecting stdout and stderr, killing
// it after `timeout_s`. Success: it ran to its end (any exit status). kNotFound when the program
// cannot be started; kInternal when it did not finish in time; kIo when no pipe or process could
// be made.
Result<CommandOutput> RunCommand(const std::vector<std::string>& argv, double timeout_s);

}  // namespace leakgate

#endif  // LEAKGATE_BASE_SUBPROCESS_H_
