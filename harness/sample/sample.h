// One timestamped measurement of a target process, as taken by the sampler between and during runs.
//
// Plain values. A field whose source was unavailable (kernel without the file, permission denied,
// no heap statistics) is std::nullopt and says so; the harness never invents a number.
#ifndef LEAKGATE_HARNESS_SAMPLE_SAMPLE_H_
#define LEAKGATE_HARNESS_SAMPLE_SAMPLE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace leakgate::harness {

struct ThreadSample {
  int64_t tid = 0;
  std::string name;        // /proc/PID/task/TID/comm without the newline
  double cpu_seconds = 0;  // utime + stime of the thread
};

struct HeapSample {
  std::optional<int64_t> allocated_bytes;  // exact bytes in use (tcmalloc generic.current_allocated_bytes
                                           // or a heap profile's in-use total)
  std::optional<int64_t> cached_bytes;     // held by the allocator but free (page heap free + caches)
  std::string source;                      // "tcmalloc", "heap-profile", ...
};

struct Sample {
  double t = 0;                 // Clock::NowSeconds() when taken
  double cpu_seconds = 0;       // process utime + stime (all threads, live and dead)
  int64_t rss_bytes = 0;        // VmRSS
  int64_t rss_anon_bytes = 0;   // RssAnon
  int64_t rss_file_bytes = 0;   // RssFile
  int64_t hwm_bytes = 0;        // VmHWM (peak RSS since start or the last reset)
  std::optional<int64_t> pss_bytes;           // smaps_rollup Pss, taken less often
  std::optional<int64_t> cgroup_memory_bytes; // cgroup v2 memory.current
  std::map<int, std::string> fds;             // fd number -> link target ("socket:[123]", "/path", ...)
  int64_t sockets = 0;                        // fds whose target is "socket:[...]"
  std::vector<ThreadSample> threads;          // sorted by tid
  std::optional<HeapSample> heap;
  int64_t children = 0;                       // descendant processes included (when asked)
  // With children included: each descendant's own fds (fd numbers repeat across processes, so they
  // are kept apart from `fds`); `sockets`, `threads`, CPU and RSS already include them.
  std::map<int64_t, std::map<int, std::string>> descendant_fds;
  // Parts that could not be read for this sample, so their empty or zero value is not a measurement:
  // "fds" (fd directory unreadable), "fd_targets" (fds counted, links unreadable), "threads".
  std::vector<std::string> unavailable;
};

// One thread's CPU use between two samples.
struct ThreadCpu {
  int64_t tid = 0;
  std::string name;        // in the later sample
  double cpu_seconds = 0;  // used between the samples
  double cpu_percent = 0;  // of one core
};

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_SAMPLE_SAMPLE_H_
