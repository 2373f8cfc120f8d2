// A small program for the agent's tests to preload the agent into. Each mode exercises one thing and
// reports on stdout as `key value` lines; a dump is requested by raising the agent's signal and
// waiting for the numbered profile to appear.
//
//   leak ROUNDS DUMP_EVERY_ROUND  leaks kBlocksPerRound blocks of kBlockBytes per round from
//                                 LeakOneRound, with short-lived garbage from MakeGarbage
//   throw ITERATIONS              ns per C++ throw and catch through a few frames (best batch)
//   stress THREADS OPS DUMPS      threads allocate and free while the main thread requests dumps
//   fork CHILDREN                 forks while threads allocate; odd children exec /bin/true, even
//                                 ones dump a profile of their own and _exit
//   resources                     a sleeping thread and a listening socket, made by known
//                                 functions, then a dump
//   transient WRITE_AT_ONCE       BuildTransientRows builds 40 MiB of rows in small and medium
//                                 blocks; with WRITE_AT_ONCE 1 WriteRowsAtOnce then serializes
//                                 them into one buffer (a quarter of their size); all is freed,
//                                 then two dumps with nothing allocated in between but the
//                                 dump requests' own small strings
#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kBlocksPerRound = 100;
constexpr size_t kBlockBytes = 64 * 1024;

std::vector<char*> g_leaked;

int DumpSignal() {
  const char* text = getenv("LEAKGATE_AGENT_SIGNAL");
  return text != nullptr && *text != '\0' ? atoi(text) : SIGUSR2;
}

std::string ProfilePath(const std::string& prefix, int sequence) {
  char number[16];
  snprintf(number, sizeof(number), ".%04d.heap", sequence);
  return prefix + number;
}

bool WaitForFile(const std::string& path, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  struct stat status;
  while (stat(path.c_str(), &status) != 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Raises the dump signal and waits for `prefix`.`sequence`.heap.
bool RequestDump(const std::string& prefix, int sequence) {
  raise(DumpSignal());
  return WaitForFile(ProfilePath(prefix, sequence), 10.0);
}

std::string Prefix() {
  const char* prefix = getenv("LEAKGATE_AGENT_PREFIX");
  return prefix != nullptr ? prefix : "";
}

__attribute__((noinline, noclone)) void LeakOneRound() {
  for (int i = 0; i < kBlocksPerRound; ++i) {
    char* block = new char[kBlockBytes];
    memset(block, i, kBlockBytes);
    g_leaked.push_back(block);
  }
}

__attribute__((noinline, noclone)) uint64_t MakeGarbage(std::mt19937_64& random) {
  uint64_t checksum = 0;
  std::vector<void*> kept;
  kept.reserve(512);
  for (int i = 0; i < 20000; ++i) {
    const size_t size = 16 + random() % 8192;
    void* block = malloc(size);
    memset(block, 1, 16);
    checksum += reinterpret_cast<uintptr_t>(block) & 0xff;
    if (kept.size() < 512) {
      kept.push_back(block);
    } else {
      std::swap(kept[random() % kept.size()], block);
      free(block);
    }
  }
  for (void* block : kept) free(block);
  std::string text;
  for (int i = 0; i < 2000; ++i) text += std::to_string(i);  // garbage through operator new
  return checksum + text.size();
}

int Leak(int rounds, bool dump_every_round) {
  g_leaked.reserve(static_cast<size_t>(rounds) * kBlocksPerRound);
  std::mt19937_64 random(42);
  uint64_t checksum = 0;
  const std::string prefix = Prefix();
  int sequence = 0;
  for (int round = 1; round <= rounds; ++round) {
    LeakOneRound();
    checksum += MakeGarbage(random);
    if (dump_every_round || round == rounds) {
      if (!RequestDump(prefix, ++sequence)) {
        fprintf(stderr, "no profile %s\n", ProfilePath(prefix, sequence).c_str());
        return 1;
      }
    }
  }
  printf("checksum %llu\nleaked_bytes %zu\n", static_cast<unsigned long long>(checksum),
         g_leaked.size() * kBlockBytes);
  return 0;
}

__attribute__((noinline)) int ThrowFrom(int depth) {
  if (depth == 0) throw std::runtime_error("deep");
  return ThrowFrom(depth - 1) + 1;
}

int Throw(int iterations) {
  int caught = 0;
  for (int i = 0; i < 200; ++i) {  // warm the unwinder's caches
    try {
      ThrowFrom(5);
    } catch (const std::exception&) {
      ++caught;
    }
  }
  // The best of five batches: a busy machine only ever makes a batch slower.
  const int batch = iterations / 5 > 0 ? iterations / 5 : 1;
  double best_ns = 1e30;
  for (int b = 0; b < 5; ++b) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < batch; ++i) {
      try {
        ThrowFrom(5);
      } catch (const std::exception&) {
        ++caught;
      }
    }
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() -
                                                               start).count() / batch;
    if (ns < best_ns) best_ns = ns;
  }
  printf("caught %d\nns_per_throw %.1f\n", caught, best_ns);
  return 0;
}

struct AgentTotals {
  int64_t inuse_objects;
  int64_t inuse_bytes;
  int64_t alloc_objects;
  int64_t alloc_bytes;
  int64_t sampled_live;
  int64_t sample_period;
};

bool ReadAgentTotals(AgentTotals* totals) {
  using GetTotals = AgentTotals (*)();
  auto get = reinterpret_cast<GetTotals>(dlsym(RTLD_DEFAULT, "leakgate_agent_get_totals"));
  if (get == nullptr) return false;
  *totals = get();
  return true;
}

__attribute__((noinline, noclone)) void StressWorker(int ops, unsigned seed,
                                                     std::atomic<uint64_t>* checksum) {
  std::mt19937 random(seed);
  std::vector<void*> live(256, nullptr);
  std::vector<std::string*> strings(64, nullptr);
  uint64_t sum = 0;
  for (int i = 0; i < ops; ++i) {
    const size_t slot = random() % live.size();
    const unsigned action = random() % 8;
    const size_t size = 1 + (random() % 16 == 0 ? random() % 200000 : random() % 512);
    if (action < 4) {
      free(live[slot]);
      live[slot] = malloc(size);
    } else if (action == 4) {
      live[slot] = realloc(live[slot], size);
    } else if (action == 5) {
      free(live[slot]);
      live[slot] = calloc(1, size);
    } else if (action == 6) {
      void* aligned = nullptr;
      if (posix_memalign(&aligned, 64, size) == 0) {
        free(live[slot]);
        live[slot] = aligned;
      }
    } else {
      const size_t s = slot % strings.size();
      delete strings[s];
      strings[s] = new std::string(size % 300, 'x');
    }
    if (live[slot] != nullptr) {
      static_cast<char*>(live[slot])[0] = 1;
      sum += reinterpret_cast<uintptr_t>(live[slot]) & 0xf;
    }
  }
  for (void* block : live) free(block);
  for (std::string* text : strings) delete text;
  checksum->fetch_add(sum);
}

int Stress(int threads, int ops, int dumps) {
  AgentTotals before{};
  const bool have_totals = ReadAgentTotals(&before);
  std::atomic<uint64_t> checksum{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back(StressWorker, ops, 1000u + static_cast<unsigned>(t), &checksum);
  }
  const std::string prefix = Prefix();
  int written = 0;
  for (int d = 1; d <= dumps; ++d) {
    if (!RequestDump(prefix, d)) {
      fprintf(stderr, "no profile %s\n", ProfilePath(prefix, d).c_str());
      break;
    }
    ++written;
  }
  for (std::thread& worker : workers) worker.join();
  AgentTotals after{};
  printf("dumps %d\nchecksum %llu\n", written, static_cast<unsigned long long>(checksum.load()));
  if (have_totals && ReadAgentTotals(&after)) {
    printf("inuse_objects_delta %lld\nalloc_objects_delta %lld\nsampled_live_delta %lld\n",
           static_cast<long long>(after.inuse_objects - before.inuse_objects),
           static_cast<long long>(after.alloc_objects - before.alloc_objects),
           static_cast<long long>(after.sampled_live - before.sampled_live));
  }
  // The profile after the threads are gone: the stress stacks must hold nothing.
  if (!RequestDump(prefix, dumps + 1)) return 1;
  return written == dumps ? 0 : 1;
}

int Fork(int children) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> checksum{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&stop, &checksum, t] {
      std::mt19937 random(static_cast<unsigned>(t));
      while (!stop.load(std::memory_order_relaxed)) {
        void* block = malloc(1 + random() % 4096);
        checksum.fetch_add(reinterpret_cast<uintptr_t>(block) & 1);
        free(block);
      }
    });
  }
  const std::string prefix = Prefix();
  int failures = 0;
  for (int c = 0; c < children; ++c) {
    const pid_t child = fork();
    if (child == 0) {
      std::vector<char*> kept;
      for (int i = 0; i < 100; ++i) kept.push_back(new char[1000]);
      if (c % 2 == 1) {
        execl("/bin/true", "true", static_cast<char*>(nullptr));
        _exit(126);
      }
      const std::string own_prefix = prefix + "_" + std::to_string(getpid());
      const bool dumped = prefix.empty() || RequestDump(own_prefix, 1);
      _exit(dumped ? 0 : 3);
    }
    if (child < 0) {
      ++failures;
      continue;
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "child %d: status %d\n", c, status);
      ++failures;
    }
  }
  stop = true;
  for (std::thread& worker : workers) worker.join();
  if (!prefix.empty() && !RequestDump(prefix, 1)) ++failures;
  printf("children %d\nfailures %d\n", children, failures);
  return failures == 0 ? 0 : 1;
}

int g_release_pipe[2];

void* Sleeper(void*) {
  char byte;
  while (read(g_release_pipe[0], &byte, 1) < 0) {
  }
  return nullptr;
}

__attribute__((noinline, noclone)) pthread_t StartSleeper() {
  pthread_t thread;
  pthread_create(&thread, nullptr, Sleeper, nullptr);
  pthread_setname_np(thread, "lg-sleeper");
  return thread;
}

__attribute__((noinline, noclone)) int OpenListener() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  listen(fd, 4);
  return fd;
}

__attribute__((noinline, noclone)) int OpenAndCloseSocket() {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  close(fd);
  return fd;
}

__attribute__((noinline, noclone)) void FinishedThread() {
  std::thread([] {}).join();
}

// Rows of a result set held in memory at once: alternately 128 and 384 bytes, every 257th a
// 16 KiB blob.
constexpr int kSmallRows = 131072;
constexpr int kMediumRows = 512;
constexpr size_t kMediumRowBytes = 16 * 1024;
constexpr size_t kTransientBytes = 40 * 1024 * 1024;  // 131072 * 256 + 512 * 16 KiB

__attribute__((noinline, noclone)) void BuildTransientRows(std::vector<char*>* rows) {
  int medium = 0;
  for (int i = 0; i < kSmallRows; ++i) {
    char* row = static_cast<char*>(malloc(i % 2 == 0 ? 128 : 384));
    row[0] = static_cast<char>(i);
    rows->push_back(row);
    if (i % 256 == 255 && medium < kMediumRows) {
      char* blob = new char[kMediumRowBytes];
      blob[0] = static_cast<char>(medium++);
      rows->push_back(blob);
    }
  }
}

__attribute__((noinline, noclone)) uint64_t WriteRowsAtOnce(const std::vector<char*>& rows) {
  const size_t bytes = kTransientBytes / 4;
  char* buffer = static_cast<char*>(malloc(bytes));
  uint64_t checksum = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    buffer[(i * 64) % bytes] = rows[i][0];
    checksum += static_cast<unsigned char>(buffer[(i * 64) % bytes]);
  }
  free(buffer);
  return checksum;
}

int Transient(bool write_at_once) {
  std::vector<char*> rows;
  rows.reserve(kSmallRows + kMediumRows);
  BuildTransientRows(&rows);
  const uint64_t checksum = write_at_once ? WriteRowsAtOnce(rows) : 0;
  const size_t row_count = rows.size();
  int medium = 0;
  for (int i = 0; i < static_cast<int>(rows.size()); ++i) {
    // The blob follows every 256th small row.
    if (i % 257 == 256 && medium < kMediumRows) {
      delete[] rows[i];
      ++medium;
    } else {
      free(rows[i]);
    }
  }
  rows.clear();
  const std::string prefix = Prefix();
  if (!RequestDump(prefix, 1) || !RequestDump(prefix, 2)) return 1;
  printf("transient_objects %zu\ntransient_bytes %zu\nchecksum %llu\n", row_count,
         kTransientBytes, static_cast<unsigned long long>(checksum));
  return 0;
}

int Resources() {
  if (pipe(g_release_pipe) != 0) return 1;
  const pthread_t sleeper = StartSleeper();
  const int listener = OpenListener();
  const int closed = OpenAndCloseSocket();
  FinishedThread();
  if (!RequestDump(Prefix(), 1)) return 1;
  printf("listener_fd %d\nclosed_fd %d\n", listener, closed);
  if (write(g_release_pipe[1], "x", 1) != 1) return 1;
  pthread_join(sleeper, nullptr);
  close(listener);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  auto arg = [&](int index, int fallback) { return argc > index ? atoi(argv[index]) : fallback; };
  if (mode == "leak") return Leak(arg(2, 3), arg(3, 1) != 0);
  if (mode == "throw") return Throw(arg(2, 20000));
  if (mode == "stress") return Stress(arg(2, 8), arg(3, 100000), arg(4, 10));
  if (mode == "fork") return Fork(arg(2, 10));
  if (mode == "resources") return Resources();
  if (mode == "transient") return Transient(arg(2, 1) != 0);
  fprintf(stderr, "usage: %s leak|throw|stress|fork|resources|transient ...\n", argv[0]);
  return 2;
}
