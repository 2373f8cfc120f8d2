#include "harness/sample/process_sampler.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <deque>

namespace leakgate::harness {
namespace {

std::optional<int64_t> ToNumber(std::string_view s) {
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return value;
}

double TicksPerSecond() {
  const long ticks = ::sysconf(_SC_CLK_TCK);
  return ticks > 0 ? static_cast<double>(ticks) : 100.0;  // 100 is the Linux USER_HZ everywhere
}

}  // namespace

// What one process contributes to a sample; merged into the sample only when complete.
struct ProcessSampler::ProcessReading {
  ProcStat stat;
  double cpu_seconds = 0;
  int64_t rss_bytes = 0;
  int64_t rss_anon_bytes = 0;
  int64_t rss_file_bytes = 0;
  int64_t hwm_bytes = 0;
  std::map<int, std::string> fds;
  int64_t sockets = 0;
  std::vector<ThreadSample> threads;
  std::vector<std::string> tids;         // entries of /proc/PID/task; empty when unreadable
  std::vector<std::string> unavailable;  // parts of Sample::unavailable
};

ProcessSampler::ProcessSampler(int64_t pid, ProcReader& reader, Clock& clock,
                               SamplerOptions options)
    : pid_(pid),
      reader_(reader),
      clock_(clock),
      options_(std::move(options)),
      ticks_per_second_(TicksPerSecond()) {}

std::string ProcessSampler::ProcPath(int64_t pid, std::string_view leaf) const {
  std::string path = options_.proc_root;
  path += '/';
  path += std::to_string(pid);
  path += '/';
  path += leaf;
  return path;
}

bool ProcessSampler::Alive(int64_t pid) {
  auto stat = reader_.ReadFile(ProcPath(pid, "stat"));
  return stat || stat.error().code != ErrorCode::kNotFound;
}

Error ProcessSampler::ProcessGone(int64_t pid, const Error& cause) const {
  return Error{ErrorCode::kNotFound,
               "process " + std::to_string(pid) + " exited (" + cause.message + ")"};
}

void ProcessSampler::Warn(std::string message) {
  if (seen_warnings_.insert(message).second) warnings_.push_back(std::move(message));
}

void ProcessSampler::AddUnavailable(std::vector<std::string>& parts, const std::string& part) {
  if (std::find(parts.begin(), parts.end(), part) == parts.end()) parts.push_back(part);
}

Result<Sample> ProcessSampler::Take() {
  Sample sample;
  sample.t = clock_.NowSeconds();
  parent_index_.reset();

  auto target = ReadProcess(pid_, /*is_target=*/true);
  if (!target) return std::unexpected(target.error());
  sample.cpu_seconds = target->cpu_seconds;
  sample.rss_bytes = target->rss_bytes;
  sample.rss_anon_bytes = target->rss_anon_bytes;
  sample.rss_file_bytes = target->rss_file_bytes;
  sample.hwm_bytes = target->hwm_bytes;
  sample.fds = std::move(target->fds);
  sample.sockets = target->sockets;
  sample.threads = std::move(target->threads);
  for (const std::string& part : target->unavailable) AddUnavailable(sample.unavailable, part);

  sample.pss_bytes = ReadPss();
  sample.cgroup_memory_bytes = ReadCgroupMemory();

  if (options_.include_children) {
    // Children already reaped by the target are in its cutime and cstime.
    sample.cpu_seconds +=
        static_cast<double>(target->stat.cutime_ticks + target->stat.cstime_ticks) /
        ticks_per_second_;
    std::vector<int64_t> descendants;
    std::set<int64_t> visited = {pid_};
    std::deque<std::pair<int64_t, std::vector<std::string>>> queue;
    queue.emplace_back(pid_, std::move(target->tids));
    while (!queue.empty()) {
      auto [parent, parent_tids] = std::move(queue.front());
      queue.pop_front();
      for (int64_t child : FindChildren(parent, parent_tids)) {
        if (!visited.insert(child).second) continue;
        auto reading = ReadProcess(child, /*is_target=*/false);
        if (!reading) {
          if (reading.error().code != ErrorCode::kNotFound) {  // kNotFound: it just ended
            Warn("descendant process " + std::to_string(child) +
                 " is left out of the sample: " + reading.error().message);
          }
          continue;
        }
        sample.cpu_seconds += reading->cpu_seconds;
        sample.rss_bytes += reading->rss_bytes;
        sample.rss_anon_bytes += reading->rss_anon_bytes;
        sample.rss_file_bytes += reading->rss_file_bytes;
        sample.hwm_bytes += reading->hwm_bytes;
        sample.sockets += reading->sockets;
        sample.descendant_fds[child] = std::move(reading->fds);
        for (ThreadSample& thread : reading->threads) sample.threads.push_back(std::move(thread));
        for (const std::string& part : reading->unavailable) {
          AddUnavailable(sample.unavailable, part);
        }
        descendants.push_back(child);
        queue.emplace_back(child, std::move(reading->tids));
      }
    }
    sample.children = static_cast<int64_t>(descendants.size());
    last_descendants_ = std::move(descendants);
  }

  std::sort(sample.threads.begin(), sample.threads.end(),
            [](const ThreadSample& a, const ThreadSample& b) { return a.tid < b.tid; });

  if (options_.heap_source != nullptr) {
    auto heap = options_.heap_source->Read();
    if (heap) {
      sample.heap = std::move(*heap);
    } else {
      Warn("heap statistics are left out of a sample: " + heap.error().message);
    }
    for (std::string& warning : options_.heap_source->warnings()) Warn(std::move(warning));
  }
  ++samples_taken_;
  return sample;
}

Result<ProcessSampler::ProcessReading> ProcessSampler::ReadProcess(int64_t pid, bool is_target) {
  const std::string pid_text = std::to_string(pid);
  const std::string stat_path = ProcPath(pid, "stat");
  auto stat_text = reader_.ReadFile(stat_path);
  if (!stat_text) {
    if (stat_text.error().code == ErrorCode::kNotFound) {
      return std::unexpected(ProcessGone(pid, stat_text.error()));
    }
    return std::unexpected(stat_text.error());
  }
  auto stat = ParseStat(*stat_text, stat_path);
  if (!stat) return std::unexpected(stat.error());

  ProcessReading reading;
  reading.cpu_seconds =
      static_cast<double>(stat->utime_ticks + stat->stime_ticks) / ticks_per_second_;
  const bool zombie = stat->state == 'Z' || stat->state == 'X';
  if (is_target) {
    if (start_ticks_ && *start_ticks_ != stat->starttime_ticks) {
      return Fail(ErrorCode::kNotFound, "process " + pid_text +
                                            " exited; its pid now belongs to another process (" +
                                            stat->comm + ")");
    }
    start_ticks_ = stat->starttime_ticks;
    if (zombie) {
      return Fail(ErrorCode::kNotFound,
                  "process " + pid_text + " exited (" + stat->comm +
                      " is a zombie: its parent has not collected its exit status yet)");
    }
  } else {
    // A descendant's own reaped children are in no live process's utime, nor yet in the target's
    // cutime: count them here, so that the tree's CPU time does not drop when they are reaped.
    reading.cpu_seconds +=
        static_cast<double>(stat->cutime_ticks + stat->cstime_ticks) / ticks_per_second_;
  }
  reading.stat = std::move(*stat);
  if (zombie) return reading;  // a zombie descendant holds no memory, fds or threads

  const std::string status_path = ProcPath(pid, "status");
  auto status_text = reader_.ReadFile(status_path);
  if (!status_text) {
    if (status_text.error().code == ErrorCode::kNotFound) {
      return std::unexpected(ProcessGone(pid, status_text.error()));
    }
    return std::unexpected(status_text.error());
  }
  auto status = ParseStatus(*status_text, status_path);
  if (!status) return std::unexpected(status.error());
  if (!status->vm_rss_bytes) {
    if (!is_target) return reading;  // exiting: its memory is already gone
    return Fail(ErrorCode::kFailedPrecondition,
                status_path + " has no VmRSS: process " + pid_text + " (" + reading.stat.comm +
                    ") has no user memory (a kernel thread, or exiting); expected a user process");
  }
  if (!status->rss_anon_bytes || !status->rss_file_bytes) {
    Warn(status_path +
         " has no RssAnon/RssFile (kernels before 4.5): anon and file RSS are not "
         "measured and read as 0");
  }
  reading.rss_bytes = *status->vm_rss_bytes;
  reading.rss_anon_bytes = status->rss_anon_bytes.value_or(0);
  reading.rss_file_bytes = status->rss_file_bytes.value_or(0);
  reading.hwm_bytes = status->vm_hwm_bytes.value_or(*status->vm_rss_bytes);

  auto fds = ReadFds(pid, reading);
  if (!fds) return std::unexpected(fds.error());

  const std::string task_path = ProcPath(pid, "task");
  auto tids = reader_.ListDir(task_path);
  if (!tids) {
    if (tids.error().code == ErrorCode::kNotFound && !Alive(pid)) {
      return std::unexpected(ProcessGone(pid, tids.error()));
    }
    Warn("threads of process " + pid_text + " are not measured: " + tids.error().message);
    AddUnavailable(reading.unavailable, "threads");
    return reading;
  }
  reading.tids = std::move(*tids);
  ReadThreads(pid, reading);
  return reading;
}

Result<void> ProcessSampler::ReadFds(int64_t pid, ProcessReading& reading) {
  const std::string fd_dir = ProcPath(pid, "fd");
  auto entries = reader_.ListDir(fd_dir);
  if (!entries) {
    if (entries.error().code == ErrorCode::kNotFound && !Alive(pid)) {
      return std::unexpected(ProcessGone(pid, entries.error()));
    }
    Warn("open fds and sockets of process " + std::to_string(pid) +
         " are not measured: " + entries.error().message);
    AddUnavailable(reading.unavailable, "fds");
    return {};
  }
  std::optional<Error> link_error;
  std::string link_path = fd_dir + "/";
  const size_t prefix = link_path.size();
  for (const std::string& entry : *entries) {
    auto fd = ToNumber(entry);
    if (!fd) continue;
    link_path.resize(prefix);
    link_path += entry;
    auto link = reader_.ReadLink(link_path);
    if (!link) {
      if (link.error().code == ErrorCode::kNotFound) continue;  // closed since the listing
      if (!link_error) link_error = link.error();
      reading.fds[static_cast<int>(*fd)] = "";
      continue;
    }
    if (link->starts_with("socket:[")) ++reading.sockets;
    reading.fds[static_cast<int>(*fd)] = std::move(*link);
  }
  if (link_error) {
    Warn("some fds of process " + std::to_string(pid) +
         " are counted without their target, and sockets among them are not counted: " +
         link_error->message);
    AddUnavailable(reading.unavailable, "fd_targets");
  }
  return {};
}

void ProcessSampler::ReadThreads(int64_t pid, ProcessReading& reading) {
  std::string path = ProcPath(pid, "task/");
  const size_t prefix = path.size();
  for (const std::string& entry : reading.tids) {
    auto tid = ToNumber(entry);
    if (!tid) continue;
    path.resize(prefix);
    path += entry;
    path += "/stat";
    auto text = reader_.ReadFile(path);
    if (!text) {
      if (text.error().code == ErrorCode::kNotFound)
        continue;  // the thread ended since the listing
      Warn("a thread of process " + std::to_string(pid) +
           " is left out of a sample: " + text.error().message);
      AddUnavailable(reading.unavailable, "threads");
      continue;
    }
    auto stat = ParseStat(*text, path);
    if (!stat) {
      Warn("a thread of process " + std::to_string(pid) +
           " is left out of a sample: " + stat.error().message);
      AddUnavailable(reading.unavailable, "threads");
      continue;
    }
    // The comm field of task/TID/stat is the text of task/TID/comm (both print the task's comm):
    // one read per thread instead of two.
    reading.threads.push_back(ThreadSample{
        *tid, std::move(stat->comm),
        static_cast<double>(stat->utime_ticks + stat->stime_ticks) / ticks_per_second_});
  }
}

std::vector<int64_t> ProcessSampler::FindChildren(int64_t pid,
                                                  const std::vector<std::string>& tids) {
  if (children_files_supported_) {
    std::vector<int64_t> children;
    bool any_file = false;
    for (const std::string& tid : tids) {
      const std::string path = ProcPath(pid, "task/" + tid + "/children");
      auto text = reader_.ReadFile(path);
      if (!text) {
        if (text.error().code != ErrorCode::kNotFound) {
          Warn("child processes of a thread of process " + std::to_string(pid) +
               " are not found: " + text.error().message);
        }
        continue;
      }
      any_file = true;
      auto pids = ParseChildren(*text, path);
      if (!pids) {
        Warn("child processes of a thread of process " + std::to_string(pid) +
             " are not found: " + pids.error().message);
        continue;
      }
      children.insert(children.end(), pids->begin(), pids->end());
    }
    // For a descendant, no file means it ended. For the live target it means the kernel lacks
    // CONFIG_PROC_CHILDREN: fall back to the parent pids of every process, now and from then on.
    if (any_file || pid != pid_ || tids.empty() || !Alive(pid)) return children;
    children_files_supported_ = false;
  }
  if (!parent_index_) {
    parent_index_.emplace();
    auto entries = reader_.ListDir(options_.proc_root);
    if (!entries) {
      Warn("child processes are not found: " + entries.error().message);
    } else {
      for (const std::string& entry : *entries) {
        auto candidate = ToNumber(entry);
        if (!candidate) continue;
        const std::string path = ProcPath(*candidate, "stat");
        auto text = reader_.ReadFile(path);
        if (!text) continue;  // ended since the listing
        auto stat = ParseStat(*text, path);
        if (stat) (*parent_index_)[stat->ppid].push_back(*candidate);
      }
    }
  }
  auto it = parent_index_->find(pid);
  return it == parent_index_->end() ? std::vector<int64_t>{} : it->second;
}

std::optional<int64_t> ProcessSampler::ReadPss() {
  if (options_.pss_every_n <= 0 || !pss_supported_) return std::nullopt;
  if (samples_taken_ % options_.pss_every_n != 0) return std::nullopt;
  const std::string path = ProcPath(pid_, "smaps_rollup");
  auto text = reader_.ReadFile(path);
  if (!text) {
    const ErrorCode code = text.error().code;
    if (code == ErrorCode::kNotFound || code == ErrorCode::kPermissionDenied) {
      pss_supported_ = false;  // a kernel without smaps_rollup, or not ours to read: ask no more
      Warn("Pss is not measured, and later samples do not ask again: " + text.error().message);
    } else {
      Warn("Pss is left out of a sample: " + text.error().message);
    }
    return std::nullopt;
  }
  auto rollup = ParseSmapsRollup(*text, path);
  if (!rollup) {
    Warn("Pss is left out of a sample: " + rollup.error().message);
    return std::nullopt;
  }
  return rollup->pss_bytes;
}

std::optional<int64_t> ProcessSampler::ReadCgroupMemory() {
  if (!cgroup_resolved_) {
    cgroup_resolved_ = true;
    const std::string cgroup_file = ProcPath(pid_, "cgroup");
    auto text = reader_.ReadFile(cgroup_file);
    if (!text) {
      Warn("cgroup memory is not measured: " + text.error().message);
      cgroup_resolved_ =
          text.error().code == ErrorCode::kNotFound;  // otherwise try again next time
      return std::nullopt;
    }
    auto path = ParseCgroupV2Path(*text, cgroup_file);
    if (!path) {
      if (path.error().code !=
          ErrorCode::kNotFound) {  // kNotFound: only cgroup v1, nothing to read
        Warn("cgroup memory is not measured: " + path.error().message);
      }
      return std::nullopt;
    }
    const std::string relative = *path == "/" ? "" : *path;
    // A pure cgroup v2 system mounts the hierarchy at the root; a hybrid one under "unified". The
    // root cgroup has no memory.current: that absence is normal and not worth a warning.
    for (const std::string& root : {options_.cgroup_root, options_.cgroup_root + "/unified"}) {
      const std::string candidate = root + relative + "/memory.current";
      auto current = reader_.ReadFile(candidate);
      if (!current) {
        if (current.error().code != ErrorCode::kNotFound) {
          Warn("cgroup memory is not measured: " + current.error().message);
          cgroup_resolved_ = false;  // try again next time
        }
        continue;
      }
      auto bytes = ParseMemoryCurrent(*current, candidate);
      if (!bytes) {
        Warn("cgroup memory is not measured: " + bytes.error().message);
        continue;
      }
      cgroup_memory_path_ = candidate;
      return *bytes;
    }
    return std::nullopt;
  }
  if (!cgroup_memory_path_) return std::nullopt;
  auto current = reader_.ReadFile(*cgroup_memory_path_);
  if (!current) {
    // The process may have moved to another cgroup: look it up again next time.
    cgroup_resolved_ = false;
    cgroup_memory_path_.reset();
    return std::nullopt;
  }
  auto bytes = ParseMemoryCurrent(*current, *cgroup_memory_path_);
  if (!bytes) {
    Warn("cgroup memory is left out of a sample: " + bytes.error().message);
    return std::nullopt;
  }
  return *bytes;
}

Result<void> ProcessSampler::ResetPeak() {
  if (reset_error_) return std::unexpected(*reset_error_);
  const std::string pid_text = std::to_string(pid_);
  auto written = reader_.WriteFile(ProcPath(pid_, "clear_refs"), "5");
  if (!written) {
    if (written.error().code == ErrorCode::kNotFound) {
      auto alive = reader_.ReadFile(ProcPath(pid_, "stat"));
      if (!alive && alive.error().code == ErrorCode::kNotFound) {
        return std::unexpected(ProcessGone(pid_, alive.error()));
      }
    }
    reset_error_ = Error{written.error().code, "cannot reset the peak RSS (VmHWM) of process " +
                                                   pid_text + ": " + written.error().message};
    Warn("VmHWM of process " + pid_text +
         " was not reset, so the peak RSS of each run is the peak since the process started: " +
         written.error().message);
    return std::unexpected(*reset_error_);
  }
  if (options_.include_children) {
    for (int64_t descendant : last_descendants_) {
      auto reset = reader_.WriteFile(ProcPath(descendant, "clear_refs"), "5");
      if (!reset && reset.error().code != ErrorCode::kNotFound) {
        Warn("VmHWM of descendant process " + std::to_string(descendant) + " was not reset (" +
             reset.error().message + ")");
      }
    }
  }
  return {};
}

Result<std::map<uint64_t, std::string>> ProcessSampler::DescribeSockets() {
  std::map<uint64_t, std::string> sockets;
  int files_read = 0;
  for (std::string_view protocol : {"tcp", "tcp6", "udp", "udp6", "unix"}) {
    const std::string path = ProcPath(pid_, "net/" + std::string(protocol));
    auto text = reader_.ReadFile(path);
    if (!text) {
      if (text.error().code == ErrorCode::kNotFound) continue;  // e.g. no IPv6 in this kernel
      return std::unexpected(text.error());
    }
    ++files_read;
    if (protocol == "unix") {
      auto rows = ParseNetUnix(*text, path);
      if (!rows) return std::unexpected(rows.error());
      for (const UnixSocket& row : *rows) sockets[row.inode] = DescribeSocket(row);
    } else {
      auto rows = ParseNetInet(*text, protocol, path);
      if (!rows) return std::unexpected(rows.error());
      for (const InetSocket& row : *rows) {
        if (row.inode != 0) sockets[row.inode] = DescribeSocket(row);
      }
    }
  }
  if (files_read == 0) {
    auto alive = reader_.ReadFile(ProcPath(pid_, "stat"));
    if (!alive) return std::unexpected(ProcessGone(pid_, alive.error()));
  }
  return sockets;
}

double CpuPercent(const Sample& earlier, const Sample& later) {
  const double wall = later.t - earlier.t;
  const double cpu = later.cpu_seconds - earlier.cpu_seconds;
  if (wall <= 0 || cpu <= 0) return 0;
  return 100.0 * cpu / wall;
}

std::vector<ThreadCpu> ThreadCpuPercent(const Sample& earlier, const Sample& later) {
  std::map<int64_t, double> before;
  for (const ThreadSample& thread : earlier.threads) before[thread.tid] = thread.cpu_seconds;
  const double wall = later.t - earlier.t;
  std::vector<ThreadCpu> result;
  result.reserve(later.threads.size());
  for (const ThreadSample& thread : later.threads) {
    auto it = before.find(thread.tid);
    const double used = std::max(0.0, thread.cpu_seconds - (it == before.end() ? 0.0 : it->second));
    result.push_back(
        ThreadCpu{thread.tid, thread.name, used, wall > 0 ? 100.0 * used / wall : 0.0});
  }
  std::sort(result.begin(), result.end(), [](const ThreadCpu& a, const ThreadCpu& b) {
    if (a.cpu_seconds != b.cpu_seconds) return a.cpu_seconds > b.cpu_seconds;
    return a.tid < b.tid;
  });
  return result;
}

}  // namespace leakgate::harness
