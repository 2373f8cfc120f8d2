// Cost of one full sample (stat, status, every fd with its link target, every thread's stat) of:
//   - this benchmark process;
//   - a forked child shaped like the reference service (30 threads, 50 fds of several kinds);
//   - the reference service itself (bin/backtest_server, idle, --faults none) when it is built.
// The budget is 300 us per full sample of the reference service. Pss (smaps_rollup) is
// measured apart, since the sampler reads it only every Nth sample.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "harness/sample/proc_reader.h"
#include "harness/sample/process_sampler.h"

namespace leakgate::harness {
namespace {

// A forked process; killed and reaped on destruction.
class ChildProcess {
 public:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

constexpr int kServiceThreads = 30;
constexpr int kServiceFds = 50;

// In the child: opens fds until it holds kServiceFds (files, devices, pipes, socket pairs, an
// eventfd-like mix), starts threads until it has kServiceThreads, tells the parent, then sleeps.
[[noreturn]] void RunServiceShapedChild(int ready_fd) {
  int open_fds = 0;
  for (int fd = 0; fd < 256; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1) ++open_fds;
  }
  while (open_fds + 2 <= kServiceFds) {
    int pair[2];
    switch (open_fds % 3) {
      case 0:
        ::socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
        break;
      case 1:
        ::pipe(pair);
        break;
      default:
        pair[0] = ::open("/dev/null", O_RDONLY);
        pair[1] = ::open("/proc/self/exe", O_RDONLY);
        break;
    }
    open_fds += 2;
  }
  std::vector<std::thread> threads;
  for (int i = 1; i < kServiceThreads; ++i) {
    threads.emplace_back([] {
      for (;;) ::pause();
    });
  }
  char ready = 'r';
  (void)!::write(ready_fd, &ready, 1);
  for (;;) ::pause();
}

// Children are killed with the benchmark: by ~ChildProcess at a normal exit, by the kernel
// (PR_SET_PDEATHSIG) when the benchmark is killed.
ChildProcess& ServiceShapedChild() {
  static ChildProcess child([] {
    int ready[2];
    if (::pipe(ready) != 0) std::abort();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::close(ready[0]);
      RunServiceShapedChild(ready[1]);
    }
    ::close(ready[1]);
    char byte = 0;
    (void)!::read(ready[0], &byte, 1);
    ::close(ready[0]);
    return pid;
  }());
  return child;
}

// bin/backtest_server, idle; `process` is null and `skip_reason` says why when it cannot be
// started. Its database files are removed once it has been stopped.
struct ReferenceService {
  ReferenceService() = default;
  ReferenceService(ReferenceService&&) = default;
  ~ReferenceService() {
    process.reset();
    if (db.empty()) return;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::error_code ignored;
      std::filesystem::remove(db + suffix, ignored);
    }
  }

  std::unique_ptr<ChildProcess> process;
  std::string db;
  std::string skip_reason;
};

ReferenceService& StartReferenceService() {
  static ReferenceService service = [] {
    ReferenceService result;
    const std::string binary = std::string(LEAKGATE_BINARY_DIR) + "/bin/backtest_server";
    if (!std::filesystem::exists(binary)) {
      result.skip_reason = binary + " is not built (cmake --build BUILD --target backtest_server)";
      return result;
    }
    result.db = std::filesystem::temp_directory_path() /
                ("leakgate_sampler_benchmark_" + std::to_string(::getpid()) + ".db");
    const std::string& db = result.db;
    int out[2];
    if (::pipe(out) != 0) std::abort();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(out[1], STDOUT_FILENO);
      const int null_fd = ::open("/dev/null", O_WRONLY);
      ::dup2(null_fd, STDERR_FILENO);  // its log lines would interleave with the figures
      ::close(out[0]);
      ::close(out[1]);
      ::execl(binary.c_str(), binary.c_str(), "--host", "127.0.0.1", "--port", "0", "--db",
              db.c_str(), "--faults", "none", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    std::string line;
    char c = 0;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    result.process = std::make_unique<ChildProcess>(pid);
    if (!line.starts_with("listening on ")) {
      result.skip_reason = "backtest_server did not start (first line: '" + line + "')";
      result.process.reset();
    }
    return result;
  }();
  return service;
}

void SampleLoop(benchmark::State& state, pid_t pid, SamplerOptions options) {
  ProcessSampler sampler(pid, ProcReader::Real(), Clock::Real(), options);
  Sample last;
  for (auto _ : state) {
    auto sample = sampler.Take();
    if (!sample) {
      state.SkipWithError(sample.error().ToString().c_str());
      return;
    }
    last = std::move(*sample);
    benchmark::DoNotOptimize(last);
  }
  state.counters["fds"] = static_cast<double>(last.fds.size());
  state.counters["threads"] = static_cast<double>(last.threads.size());
  state.counters["sockets"] = static_cast<double>(last.sockets);
}

void BM_FullSampleOfThisProcess(benchmark::State& state) {
  SampleLoop(state, ::getpid(), SamplerOptions{.pss_every_n = 0});
}
BENCHMARK(BM_FullSampleOfThisProcess)->Unit(benchmark::kMicrosecond);

void BM_FullSampleOfServiceShapedChild(benchmark::State& state) {
  SampleLoop(state, ServiceShapedChild().pid(), SamplerOptions{.pss_every_n = 0});
}
BENCHMARK(BM_FullSampleOfServiceShapedChild)->Unit(benchmark::kMicrosecond);

// Pss every sample: the figure that makes the sampler read smaps_rollup only every Nth time.
void BM_FullSampleWithPssOfServiceShapedChild(benchmark::State& state) {
  SampleLoop(state, ServiceShapedChild().pid(), SamplerOptions{.pss_every_n = 1});
}
BENCHMARK(BM_FullSampleWithPssOfServiceShapedChild)->Unit(benchmark::kMicrosecond);

void BM_FullSampleOfReferenceService(benchmark::State& state) {
  ReferenceService& service = StartReferenceService();
  if (!service.process) {
    state.SkipWithError(service.skip_reason.c_str());
    return;
  }
  SampleLoop(state, service.process->pid(), SamplerOptions{.pss_every_n = 0});
}
BENCHMARK(BM_FullSampleOfReferenceService)->Unit(benchmark::kMicrosecond);

// The default schedule: Pss on one sample in ten.
void BM_DefaultSampleOfReferenceService(benchmark::State& state) {
  ReferenceService& service = StartReferenceService();
  if (!service.process) {
    state.SkipWithError(service.skip_reason.c_str());
    return;
  }
  SampleLoop(state, service.process->pid(), SamplerOptions{});
}
BENCHMARK(BM_DefaultSampleOfReferenceService)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace leakgate::harness
