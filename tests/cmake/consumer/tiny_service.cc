// A tiny service for leak gates: it serves requests read line by line from a FIFO (created if
// absent); each request fills a 2 MiB buffer. With `--leak yes` every request keeps its buffer and
// an open descriptor of /dev/null, as a leaking service would; with `--leak no` nothing stays.
// Prints "ready" once it reads requests.
//   tiny_service --requests PATH --leak yes|no
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr size_t kRequestBytes = 2 << 20;

// The sum of a request's buffer, printed so that building the buffer is not optimised away.
unsigned FillBuffer(char* buffer, unsigned seed) {
  unsigned sum = 0;
  for (size_t i = 0; i < kRequestBytes; i += 4096) {
    buffer[i] = static_cast<char>(seed + i / 4096);
    sum += static_cast<unsigned char>(buffer[i]);
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  std::string requests;
  std::string leak = "no";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--requests") == 0) requests = argv[i + 1];
    if (std::strcmp(argv[i], "--leak") == 0) leak = argv[i + 1];
  }
  if (requests.empty() || (leak != "yes" && leak != "no")) {
    std::fprintf(stderr, "usage: tiny_service --requests FIFO --leak yes|no\n");
    return 2;
  }
  if (::mkfifo(requests.c_str(), 0600) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "tiny_service: cannot create %s: %s\n", requests.c_str(), std::strerror(errno));
    return 1;
  }
  // Opened for reading and writing: a writer closing its end is then no end of file.
  const int fd = ::open(requests.c_str(), O_RDWR);
  if (fd < 0) {
    std::fprintf(stderr, "tiny_service: cannot open %s: %s\n", requests.c_str(), std::strerror(errno));
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);

  std::vector<std::unique_ptr<char[]>> kept;
  unsigned served = 0;
  char chunk[256];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;  // a profiler's signal
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (chunk[i] != '\n') continue;
      auto buffer = std::make_unique<char[]>(kRequestBytes);
      std::printf("request %u: %u\n", ++served, FillBuffer(buffer.get(), served));
      std::fflush(stdout);
      if (leak == "yes") {
        kept.push_back(std::move(buffer));
        (void)::open("/dev/null", O_RDONLY);
      }
    }
  }
  return 0;
}
