#include "base/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace leakgate {

Result<void> WriteFileAtomically(const std::string& path, std::string_view content) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Fail(ErrorCode::kIo, "cannot write " + path + ": " + SystemErrorText(errno));
  }
  size_t written = 0;
  while (written < content.size()) {
    ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Fail(ErrorCode::kIo, "cannot write " + path + ": " + SystemErrorText(saved));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int saved = errno;
    ::unlink(tmp.c_str());
    return Fail(ErrorCode::kIo, "cannot write " + path + ": " + SystemErrorText(saved));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(tmp.c_str());
    return Fail(ErrorCode::kIo, "cannot rename " + tmp + " to " + path + ": " + SystemErrorText(saved));
  }
  return {};
}

}  // namespace leakgate
