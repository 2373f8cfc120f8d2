#include "harness/sample/proc_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <list>
#include <memory>
#include <set>
#include <unordered_map>

namespace leakgate::harness {
namespace {

// ESRCH is what /proc answers when the process died between open() and read().
Error ErrnoError(int err, std::string_view action, const std::string& path) {
  ErrorCode code = ErrorCode::kIo;
  if (err == ENOENT || err == ESRCH || err == ENOTDIR) {
    code = ErrorCode::kNotFound;
  } else if (err == EACCES || err == EPERM) {
    code = ErrorCode::kPermissionDenied;
  }
  return Error{code, "cannot " + std::string(action) + " " + path + ": " + SystemErrorText(err)};
}

// Reading a /proc file costs open + read + read + close; on this kind of machine (about 1.2 us per
// system call) a sample of a 30-thread target spent most of its time opening task/TID/stat files.
// The real reader therefore keeps the files and directories it reads under /proc/NUMBER and /sys
// open and reads them again from offset 0 with pread (or lseek + getdents64): the kernel
// regenerates a seq_file at offset 0, so every read is fresh. An open file of a process that has
// since exited fails (ESRCH/ENOENT); such a file is dropped and the path opened anew, which gives
// the true answer (including a process that now holds a reused pid). /proc/self and
// /proc/thread-self are never kept: they would name another process after fork(). At most
// kMaxCachedFiles files are kept, least recently used dropped first, and never more than a quarter
// of RLIMIT_NOFILE.
constexpr size_t kMaxCachedFiles = 1024;

class OpenFile {
 public:
  explicit OpenFile(int fd) : fd_(fd) {}
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  ~OpenFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  std::mutex& mutex() { return mutex_; }  // held while a directory's offset is in use

 private:
  int fd_;
  std::mutex mutex_;
};

bool IsCacheable(const std::string& path) {
  if (path.starts_with("/sys/")) return true;
  if (!path.starts_with("/proc/")) return false;
  return path.size() > 6 && path[6] >= '0' && path[6] <= '9';  // /proc/NUMBER/...
}

size_t CacheCapacity() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) {
    return kMaxCachedFiles;
  }
  return std::min<size_t>(kMaxCachedFiles, static_cast<size_t>(limit.rlim_cur) / 4);
}

// Whole contents from offset 0 to EOF (files in /proc report size 0, so their size is not used).
// Most /proc files fit the stack buffer, so the common case allocates only the result.
Result<std::string> ReadFromStart(int fd, const std::string& path) {
  char buffer[4096];
  std::string text;
  off_t offset = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buffer, sizeof(buffer), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(ErrnoError(errno, "read", path));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    offset += n;
  }
  return text;
}

Result<std::vector<std::string>> ListFromStart(int fd, const std::string& path) {
  if (::lseek(fd, 0, SEEK_SET) < 0) return std::unexpected(ErrnoError(errno, "list", path));
  std::vector<std::string> entries;
  alignas(dirent64) char buffer[16384];
  for (;;) {
    const ssize_t n = ::getdents64(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(ErrnoError(errno, "list", path));
    }
    if (n == 0) break;
    for (ssize_t offset = 0; offset < n;) {
      const auto* entry = reinterpret_cast<const dirent64*>(buffer + offset);
      const char* name = entry->d_name;
      if (!(name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))) {
        entries.emplace_back(name);
      }
      offset += entry->d_reclen;
    }
  }
  return entries;
}

class RealProcReader : public ProcReader {
 public:
  RealProcReader() : capacity_(CacheCapacity()) {}

  Result<std::string> ReadFile(const std::string& path) override {
    const bool cacheable = IsCacheable(path);
    if (cacheable) {
      if (std::shared_ptr<OpenFile> file = Lookup(path)) {
        auto text = ReadFromStart(file->fd(), path);
        if (text) return text;
        Drop(path);  // the process or cgroup is gone: ask the path again
      }
    }
    auto file = Open(path, O_RDONLY, "open");
    if (!file) return std::unexpected(file.error());
    auto text = ReadFromStart((*file)->fd(), path);
    if (text && cacheable) Insert(path, std::move(*file));
    return text;
  }

  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    const bool cacheable = IsCacheable(path);
    if (cacheable) {
      if (std::shared_ptr<OpenFile> dir = Lookup(path)) {
        std::lock_guard<std::mutex> lock(dir->mutex());
        auto entries = ListFromStart(dir->fd(), path);
        if (entries) return entries;
      }
      Drop(path);
    }
    auto dir = Open(path, O_RDONLY | O_DIRECTORY, "list");
    if (!dir) return std::unexpected(dir.error());
    auto entries = ListFromStart((*dir)->fd(), path);
    if (entries && cacheable) Insert(path, std::move(*dir));
    return entries;
  }

  Result<std::string> ReadLink(const std::string& path) override {
    // Relative to the directory when it is kept open (/proc/PID/fd after a listing): the kernel
    // then skips walking /proc/PID/fd for every link.
    std::shared_ptr<OpenFile> dir;
    const size_t slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0 && IsCacheable(path)) {
      dir = Lookup(path.substr(0, slash));
    }
    const char* leaf = dir ? path.c_str() + slash + 1 : path.c_str();
    const int dir_fd = dir ? dir->fd() : AT_FDCWD;
    char buffer[PATH_MAX + 1];
    const ssize_t n = ::readlinkat(dir_fd, leaf, buffer, sizeof(buffer));
    if (n < 0) return std::unexpected(ErrnoError(errno, "read link", path));
    // A link target never exceeds PATH_MAX, so a full buffer cannot hide a longer one.
    return std::string(buffer, static_cast<size_t>(n));
  }

  Result<void> WriteFile(const std::string& path, const std::string& text) override {
    auto file = Open(path, O_WRONLY, "open for writing");
    if (!file) return std::unexpected(file.error());
    size_t written = 0;
    while (written < text.size()) {
      ssize_t n = ::write((*file)->fd(), text.data() + written, text.size() - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        return std::unexpected(ErrnoError(errno, "write", path));
      }
      written += static_cast<size_t>(n);
    }
    return {};
  }

 private:
  struct CacheEntry {
    std::shared_ptr<OpenFile> file;
    std::list<std::string>::iterator recency;  // position in recency_, most recent first
  };

  static Result<std::shared_ptr<OpenFile>> Open(const std::string& path, int flags,
                                                std::string_view action) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) return std::unexpected(ErrnoError(errno, action, path));
    return std::make_shared<OpenFile>(fd);
  }

  std::shared_ptr<OpenFile> Lookup(const std::string& path) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(path);
    if (it == cache_.end()) return nullptr;
    recency_.splice(recency_.begin(), recency_, it->second.recency);
    return it->second.file;
  }

  void Insert(const std::string& path, std::shared_ptr<OpenFile> file) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (capacity_ == 0 || cache_.contains(path)) return;
    if (cache_.size() >= capacity_) {
      cache_.erase(recency_.back());
      recency_.pop_back();
    }
    recency_.push_front(path);
    cache_.emplace(path, CacheEntry{std::move(file), recency_.begin()});
  }

  // A file still in use by another thread closes when that thread is done with it.
  void Drop(const std::string& path) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(path);
    if (it == cache_.end()) return;
    recency_.erase(it->second.recency);
    cache_.erase(it);
  }

  const size_t capacity_;
  std::mutex mutex_;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::list<std::string> recency_;
};

std::string ParentOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return "/";
  return path.substr(0, slash);
}

bool IsBelow(const std::string& candidate, const std::string& dir) {
  return candidate.size() > dir.size() + 1 && candidate.compare(0, dir.size(), dir) == 0 &&
         candidate[dir.size()] == '/';
}

// The fake's failures read like the real reader's (strerror text), so messages can be compared.
Error FakeError(ErrorCode code, std::string_view what, const std::string& path) {
  std::string reason = "Input/output error";
  if (code == ErrorCode::kNotFound) reason = "No such file or directory";
  if (code == ErrorCode::kPermissionDenied) reason = "Permission denied";
  return Error{code, "cannot " + std::string(what) + " " + path + ": " + reason};
}

Error FakeNotFound(std::string_view what, const std::string& path) {
  return FakeError(ErrorCode::kNotFound, what, path);
}

}  // namespace

ProcReader& ProcReader::Real() {
  static ProcReader* const reader = new RealProcReader();  // never destroyed
  return *reader;
}

void FakeProcReader::SetFile(const std::string& path, std::string text) {
  std::lock_guard<std::mutex> lock(mutex_);
  files_[path] = std::move(text);
}

void FakeProcReader::SetLink(const std::string& path, std::string target) {
  std::lock_guard<std::mutex> lock(mutex_);
  links_[path] = std::move(target);
}

void FakeProcReader::SetDir(const std::string& path, std::vector<std::string> entries) {
  std::lock_guard<std::mutex> lock(mutex_);
  dirs_[path] = std::move(entries);
}

void FakeProcReader::SetError(const std::string& path, ErrorCode code) {
  std::lock_guard<std::mutex> lock(mutex_);
  errors_[path] = code;
}

void FakeProcReader::Remove(const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto erase_tree = [&path](auto& map) {
    for (auto it = map.begin(); it != map.end();) {
      if (it->first == path || IsBelow(it->first, path)) {
        it = map.erase(it);
      } else {
        ++it;
      }
    }
  };
  erase_tree(files_);
  erase_tree(links_);
  erase_tree(dirs_);
  erase_tree(errors_);
}

Result<std::string> FakeProcReader::ReadFile(const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto err = errors_.find(path); err != errors_.end()) {
    return std::unexpected(FakeError(err->second, "open", path));
  }
  auto it = files_.find(path);
  if (it == files_.end()) return std::unexpected(FakeNotFound("open", path));
  return it->second;
}

Result<std::vector<std::string>> FakeProcReader::ListDir(const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto err = errors_.find(path); err != errors_.end()) {
    return std::unexpected(FakeError(err->second, "list", path));
  }
  if (auto it = dirs_.find(path); it != dirs_.end()) return it->second;
  std::set<std::string> names;
  auto collect = [&](const auto& map) {
    for (auto it = map.lower_bound(path + "/"); it != map.end() && IsBelow(it->first, path); ++it) {
      const size_t start = path.size() + 1;
      names.insert(it->first.substr(start, it->first.find('/', start) - start));
    }
  };
  collect(files_);
  collect(links_);
  collect(dirs_);
  if (names.empty()) return std::unexpected(FakeNotFound("list", path));
  return std::vector<std::string>(names.begin(), names.end());
}

Result<std::string> FakeProcReader::ReadLink(const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto err = errors_.find(path); err != errors_.end()) {
    return std::unexpected(FakeError(err->second, "read link", path));
  }
  auto it = links_.find(path);
  if (it == links_.end()) return std::unexpected(FakeNotFound("read link", path));
  return it->second;
}

Result<void> FakeProcReader::WriteFile(const std::string& path, const std::string& text) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto err = errors_.find(path); err != errors_.end()) {
    return std::unexpected(FakeError(err->second, "open for writing", path));
  }
  const std::string parent = ParentOf(path);
  auto has_entry_below = [&parent](const auto& map) {
    auto it = map.lower_bound(parent + "/");
    return it != map.end() && IsBelow(it->first, parent);
  };
  if (!dirs_.contains(parent) && !has_entry_below(files_) && !has_entry_below(links_) &&
      !has_entry_below(dirs_)) {
    return std::unexpected(FakeNotFound("open for writing", path));
  }
  writes_.emplace_back(path, text);
  return {};
}

std::vector<std::pair<std::string, std::string>> FakeProcReader::writes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return writes_;
}

bool FailingProcReader::ShouldFail(const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  return should_fail_(calls_++, path);
}

Result<std::string> FailingProcReader::ReadFile(const std::string& path) {
  if (ShouldFail(path)) return Fail(ErrorCode::kIo, "cannot read " + path + ": injected failure");
  return inner_.ReadFile(path);
}

Result<std::vector<std::string>> FailingProcReader::ListDir(const std::string& path) {
  if (ShouldFail(path)) return Fail(ErrorCode::kIo, "cannot list " + path + ": injected failure");
  return inner_.ListDir(path);
}

Result<std::string> FailingProcReader::ReadLink(const std::string& path) {
  if (ShouldFail(path)) {
    return Fail(ErrorCode::kIo, "cannot read link " + path + ": injected failure");
  }
  return inner_.ReadLink(path);
}

Result<void> FailingProcReader::WriteFile(const std::string& path, const std::string& text) {
  if (ShouldFail(path)) return Fail(ErrorCode::kIo, "cannot write " + path + ": injected failure");
  return inner_.WriteFile(path, text);
}

}  // namespace leakgate::harness
