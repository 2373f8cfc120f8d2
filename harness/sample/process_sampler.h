// ProcessSampler takes timestamped Samples of one process (and, when asked, of its descendants)
// from /proc: CPU time of the process and of each named thread, RSS split into anon and file,
// VmHWM, open fds resolved to their targets, sockets, Pss (less often), cgroup v2 memory.current,
// and heap statistics from an optional HeapSource. It also resets the peak RSS between runs
// (clear_refs). Helpers compute CPU percent of the process and of each thread between two samples.
//
// The sampler only records; judging drift is elsewhere. It reads through a ProcReader and
// timestamps with a Clock, both borrowed (they, and any HeapSource in the options, must outlive
// it). A part that cannot be read (fds of a process whose fd directory is unreadable, a thread that
// vanished mid-way, Pss on a kernel without smaps_rollup) degrades the sample instead of failing
// it: the part is listed in Sample::unavailable and explained once in warnings(). Only an
// unreadable stat or status fails Take(), and a process that is gone fails it with kNotFound. One
// sampler is used by one thread at a time; separate samplers are independent.
#ifndef LEAKGATE_HARNESS_SAMPLE_PROCESS_SAMPLER_H_
#define LEAKGATE_HARNESS_SAMPLE_PROCESS_SAMPLER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "harness/sample/heap_source.h"
#include "harness/sample/proc_parser.h"
#include "harness/sample/proc_reader.h"
#include "harness/sample/sample.h"

namespace leakgate::harness {

struct SamplerOptions {
  // smaps_rollup is slow (150-640 us), so Pss is read on the first sample and then on every Nth one
  // (other samples carry std::nullopt). 1 reads it every time; 0 never.
  int pss_every_n = 10;
  // Also count the descendant processes: their CPU (and that of descendants already reaped), RSS,
  // sockets and threads are added to the sample, their fds kept in Sample::descendant_fds.
  bool include_children = false;
  // Not owned; read once per sample when set. A failed read is a warning, never a failed sample.
  HeapSource* heap_source = nullptr;
  // Where /proc and the cgroup v2 hierarchy are mounted.
  std::string proc_root = "/proc";
  std::string cgroup_root = "/sys/fs/cgroup";
};

class ProcessSampler {
 public:
  ProcessSampler(int64_t pid, ProcReader& reader, Clock& clock, SamplerOptions options = {});

  // Success: a sample timestamped with the clock when the reading started. Failure: kNotFound
  // ("process PID exited") when the process is gone, a zombie, or its pid now belongs to another
  // process; the reader's error (naming the path) when stat or status cannot be read; kParse when
  // their text is malformed; kFailedPrecondition for a process without memory (a kernel thread).
  Result<Sample> Take();

  // Resets the process's peak RSS (VmHWM) by writing "5" to /proc/PID/clear_refs (and, with
  // include_children, best effort for the descendants seen in the last sample). Failure: kNotFound
  // when the process exited; kPermissionDenied or kIo when the kernel refuses. A refusal is
  // remembered: later calls fail at once with the same error and warnings() says that VmHWM was not
  // reset, so the peak of a run is then the peak since the process started.
  Result<void> ResetPeak();
  // False once the kernel refused a reset.
  bool peak_reset_supported() const { return !reset_error_.has_value(); }

  // What the process's sockets are, by inode (the number in "socket:[INODE]"), from its network
  // namespace's /proc/PID/net/{tcp,tcp6,udp,udp6,unix}: e.g. "tcp 127.0.0.1:41234 -> 127.0.0.1:8080
  // ESTABLISHED". Files absent from the kernel are skipped; kNotFound when the process exited.
  Result<std::map<uint64_t, std::string>> DescribeSockets();

  // Distinct explanations of degraded samples so far, oldest first.
  const std::vector<std::string>& warnings() const { return warnings_; }

  int64_t pid() const { return pid_; }
  int64_t samples_taken() const { return samples_taken_; }

 private:
  struct ProcessReading;

  Result<ProcessReading> ReadProcess(int64_t pid, bool is_target);
  Result<void> ReadFds(int64_t pid, ProcessReading& reading);
  void ReadThreads(int64_t pid, ProcessReading& reading);
  std::vector<int64_t> FindChildren(int64_t pid, const std::vector<std::string>& tids);
  std::optional<int64_t> ReadPss();
  std::optional<int64_t> ReadCgroupMemory();
  static void AddUnavailable(std::vector<std::string>& parts, const std::string& part);
  void Warn(std::string message);
  std::string ProcPath(int64_t pid, std::string_view leaf) const;
  Error ProcessGone(int64_t pid, const Error& cause) const;
  bool Alive(int64_t pid);  // its stat is readable (or unreadable for a reason other than absence)

  const int64_t pid_;
  ProcReader& reader_;
  Clock& clock_;
  const SamplerOptions options_;
  const double ticks_per_second_;

  int64_t samples_taken_ = 0;
  std::optional<int64_t> start_ticks_;  // the process's starttime: detects pid reuse
  bool pss_supported_ = true;
  bool cgroup_resolved_ = false;
  std::optional<std::string> cgroup_memory_path_;
  bool children_files_supported_ = true;
  std::optional<Error> reset_error_;
  std::vector<int64_t> last_descendants_;
  // Parent pid -> child pids of every process, built at most once per sample when the kernel has
  // no task/TID/children files.
  std::optional<std::map<int64_t, std::vector<int64_t>>> parent_index_;
  std::vector<std::string> warnings_;
  std::set<std::string> seen_warnings_;
};

// CPU use of the process between two samples, in percent of one core:
// 100 * (later.cpu_seconds - earlier.cpu_seconds) / (later.t - earlier.t). 0 when `later` is not
// later than `earlier`, or when CPU time went backwards (a descendant left the tree).
double CpuPercent(const Sample& earlier, const Sample& later);

// Per thread of `later`, matched by tid with `earlier` (a thread born in between counts all its CPU
// time), busiest first (then by tid): the answer to "which thread keeps burning CPU".
std::vector<ThreadCpu> ThreadCpuPercent(const Sample& earlier, const Sample& later);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_SAMPLE_PROCESS_SAMPLER_H_
