// Running other programs and owning file descriptors: the one place leakgate forks and execs a
// helper program and collects its output (addr2line, google-pprof, a workload command), and a
// descriptor that is closed when it goes out of scope. Targets themselves are spawned by
// harness/drive/target.h, which keeps their output in files and their process group registered.
// Thread-safe: each call owns the process it starts.
#ifndef LEAKGATE_BASE_SUBPROCESS_H_
#define LEAKGATE_BASE_SUBPROCESS_H_

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

struct CommandOutput {
  int status = -1;  // exit status; -1 when killed or not started
  std::string out;
  std::string err;
};

// Runs argv (searched on PATH) with stdin from /dev/null, collecting stdout and stderr, killing it
// after `timeout_s`. Success: it ran to its end (any exit status). kNotFound when the program
// cannot be started; kInternal when it did not finish in time; kIo when no pipe or process could
// be made.
Result<CommandOutput> RunCommand(const std::vector<std::string>& argv, double timeout_s);

}  // namespace leakgate

#endif  // LEAKGATE_BASE_SUBPROCESS_H_
