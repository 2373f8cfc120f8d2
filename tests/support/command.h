// Helpers of the tests that run leakgate's programs as a user would: a temporary folder removed
// with everything in it, and a shell command's exit status and output. Header-only; not
// thread-safe (popen).
#ifndef LEAKGATE_TESTS_SUPPORT_COMMAND_H_
#define LEAKGATE_TESTS_SUPPORT_COMMAND_H_

#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

namespace leakgate::testing {

// A fresh folder /tmp/<prefix>-XXXXXX, removed with its contents when the object goes.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "leakgate-test") {
    std::string name = "/tmp/" + prefix + "-XXXXXX";
    const char* made = mkdtemp(name.data());
    path_ = made != nullptr ? made : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct CommandOutput {
  int exit_code = -1;  // 128 + signal when killed; -1 when the shell could not start
  std::string output;  // what the command wrote (include 2>&1 in it for stderr)
};

// Runs `command` through /bin/sh and collects its standard output.
inline CommandOutput RunCommand(const std::string& command) {
  CommandOutput run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) run.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

}  // namespace leakgate::testing

#endif  // LEAKGATE_TESTS_SUPPORT_COMMAND_H_
