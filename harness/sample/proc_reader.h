// Access to /proc (and /sys/fs/cgroup) behind an interface, in the manner of leveldb's Env, so that
// every parser is a pure function of captured text and tests can make the Nth read fail.
//
// Paths are absolute ("/proc/1234/status"). `ProcReader::Real()` reads the real file system and is
// thread-safe. To make a sample several times cheaper it keeps the files and directories it reads
// under /proc/PID and /sys open (a bounded number, least recently used closed first) and reads them
// again from the start; a kept file of a process that has gone is closed at its next read. In a
// process that samples itself those files are among its own fds. Fakes are provided for tests: `FakeProcReader` serves a map of path -> text (and links,
// and directory listings); `FailingProcReader` wraps another reader and fails chosen reads.
#ifndef LEAKGATE_HARNESS_SAMPLE_PROC_READER_H_
#define LEAKGATE_HARNESS_SAMPLE_PROC_READER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "base/error.h"

namespace leakgate::harness {

class ProcReader {
 public:
  virtual ~ProcReader() = default;
  // Whole contents of a (pseudo-)file. Failure: kNotFound (process gone, file absent),
  // kPermissionDenied, kIo; the message names the path.
  virtual Result<std::string> ReadFile(const std::string& path) = 0;
  // Names of the entries of a directory (without "." and ".."), unsorted. Same failures.
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;
  // Target of a symbolic link (e.g. "socket:[12345]" for /proc/PID/fd/N). Same failures.
  virtual Result<std::string> ReadLink(const std::string& path) = 0;
  // Writes `text` to a file (e.g. "5" to /proc/PID/clear_refs). Same failures.
  virtual Result<void> WriteFile(const std::string& path, const std::string& text) = 0;

  static ProcReader& Real();
};

// ListDir answers the entries given to SetDir, or else the names found directly below `path` among
// every file, link and directory set; a path with neither is kNotFound. WriteFile records the write
// when the parent directory exists (kNotFound otherwise) and does not change what ReadFile returns.
class FakeProcReader : public ProcReader {
 public:
  void SetFile(const std::string& path, std::string text);
  void SetLink(const std::string& path, std::string target);
  void SetDir(const std::string& path, std::vector<std::string> entries);
  // Removes `path` and everything below it (Remove("/proc/42") makes process 42 vanish).
  void Remove(const std::string& path);
  // Every later call on exactly `path` fails with `code` (e.g. kPermissionDenied for an fd directory
  // of another user's process), until Remove(path).
  void SetError(const std::string& path, ErrorCode code);

  Result<std::string> ReadFile(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& path) override;
  Result<std::string> ReadLink(const std::string& path) override;
  Result<void> WriteFile(const std::string& path, const std::string& text) override;

  // What WriteFile received, in order: (path, text).
  std::vector<std::pair<std::string, std::string>> writes() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::string> files_;
  std::map<std::string, std::string> links_;
  std::map<std::string, std::vector<std::string>> dirs_;
  std::map<std::string, ErrorCode> errors_;
  std::vector<std::pair<std::string, std::string>> writes_;
};

// Delegates to `inner`, except that calls for which `should_fail(call_index, path)` returns true fail
// with kIo ("injected failure"). call_index counts every call, from 0.
class FailingProcReader : public ProcReader {
 public:
  FailingProcReader(ProcReader& inner, std::function<bool(int64_t, const std::string&)> should_fail)
      : inner_(inner), should_fail_(std::move(should_fail)) {}

  Result<std::string> ReadFile(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& path) override;
  Result<std::string> ReadLink(const std::string& path) override;
  Result<void> WriteFile(const std::string& path, const std::string& text) override;

 private:
  bool ShouldFail(const std::string& path);

  ProcReader& inner_;
  std::function<bool(int64_t, const std::string&)> should_fail_;
  std::mutex mutex_;
  int64_t calls_ = 0;
};

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_SAMPLE_PROC_READER_H_
