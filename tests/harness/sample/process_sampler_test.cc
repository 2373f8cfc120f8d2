// ProcessSampler on a hand-built /proc (FakeProcReader, FakeClock) and on the real /proc of this
// test process and of children it forks; the heap sources (tcmalloc in a child run with LD_PRELOAD,
// a Prometheus endpoint served by a real httplib server); the real clock and reader.
#include "harness/sample/process_sampler.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "harness/sample/heap_source.h"
#include "harness/sample/proc_reader.h"

namespace leakgate::harness {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::StartsWith;

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kPid = 4242;

double TicksPerSecond() { return static_cast<double>(::sysconf(_SC_CLK_TCK)); }

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

// ---------------------------------------------------------------------------------------------
// A hand-built /proc.

struct FakeThread {
  int64_t tid;
  std::string name;
  int64_t utime_ticks;
  int64_t stime_ticks;
  std::vector<int64_t> children;  // task/TID/children
};

struct FakeProcess {
  int64_t pid = kPid;
  std::string comm = "backtest_server";
  char state = 'S';
  int64_t ppid = 1;
  int64_t utime_ticks = 150;
  int64_t stime_ticks = 50;
  int64_t cutime_ticks = 0;
  int64_t cstime_ticks = 0;
  int64_t starttime_ticks = 370330;
  int64_t rss_kb = 20000;
  int64_t hwm_kb = 30000;
  int64_t anon_kb = 15000;
  int64_t file_kb = 5000;
  std::map<int, std::string> fds;
  std::vector<FakeThread> threads;
  std::optional<int64_t> pss_kb = 12000;
  bool children_files = true;

  // Shaped like the captured `cat /proc/self/stat` of proc_parser_test.cc.
  std::string StatText(int64_t id, const std::string& name, int64_t utime, int64_t stime) const {
    std::ostringstream out;
    out << id << " (" << name << ") " << state << " " << ppid << " " << ppid
        << " 25268 0 -1 4194304 "
        << "100 0 0 0 " << utime << " " << stime << " " << cutime_ticks << " " << cstime_ticks
        << " 20 0 " << threads.size() << " 0 " << starttime_ticks << " 3133440 382 "
        << "18446744073709551615 94096338477056 94096338496937 140723864585424 0 0 0 0 0 0 0 0 0 "
           "17 "
        << "0 0 0 0 0 0\n";
    return out.str();
  }

  std::string StatusText() const {
    std::ostringstream out;
    out << "Name:\t" << comm << "\nUmask:\t0022\nState:\t" << state << " (sleeping)\nTgid:\t" << pid
        << "\nPPid:\t" << ppid << "\nFDSize:\t256\nVmPeak:\t  300000 kB\nVmSize:\t  300000 kB\n"
        << "VmHWM:\t" << hwm_kb << " kB\nVmRSS:\t" << rss_kb << " kB\nRssAnon:\t" << anon_kb
        << " kB\nRssFile:\t" << file_kb << " kB\nRssShmem:\t       0 kB\nVmSwap:\t       0 kB\n"
        << "Threads:\t" << threads.size() << "\nvoluntary_ctxt_switches:\t10\n";
    return out.str();
  }

  void Install(FakeProcReader& fs) const {
    const std::string base = "/proc/" + std::to_string(pid);
    fs.SetFile(base + "/stat", StatText(pid, comm, utime_ticks, stime_ticks));
    fs.SetFile(base + "/status", StatusText());
    std::vector<std::string> fd_names;
    for (const auto& [fd, target] : fds) {
      fs.SetLink(base + "/fd/" + std::to_string(fd), target);
      fd_names.push_back(std::to_string(fd));
    }
    fs.SetDir(base + "/fd", fd_names);  // may be empty: a process can close every fd
    for (const FakeThread& thread : threads) {
      const std::string task = base + "/task/" + std::to_string(thread.tid);
      fs.SetFile(task + "/stat",
                 StatText(thread.tid, thread.name, thread.utime_ticks, thread.stime_ticks));
      fs.SetFile(task + "/comm", thread.name + "\n");
      if (children_files) {
        std::string children;
        for (int64_t child : thread.children) children += std::to_string(child) + " ";
        fs.SetFile(task + "/children", children);
      }
    }
    if (pss_kb) {
      fs.SetFile(base + "/smaps_rollup",
                 "55e14da99000-7fff4e142000 ---p 00000000 00:00 0    [rollup]\nRss:  " +
                     std::to_string(rss_kb) + " kB\nPss:  " + std::to_string(*pss_kb) + " kB\n");
    }
    fs.SetFile(base + "/cgroup", "0::/\n");
  }
};

// The reference service as a sampler sees it: named threads, fds of every kind.
FakeProcess ServiceProcess() {
  FakeProcess p;
  p.fds = {{0, "/dev/null"},
           {1, "pipe:[170772]"},
           {2, "pipe:[170773]"},
           {3, "/var/lib/backtest/backtest.db"},
           {4, "socket:[222420]"},
           {5, "socket:[222422]"},
           {6, "anon_inode:[eventpoll]"},
           {7, "anon_inode:[eventfd]"},
           {8, "/tmp/backtest.db-journal (deleted)"},
           {9, "/memfd:arena (deleted)"}};
  // Listed out of order, as readdir may return them.
  p.threads = {{4250, "exchange hb", 30, 10, {}},
               {kPid, "backtest_server", 100, 30, {}},
               {4243, "http worker 1", 20, 10, {}}};
  return p;
}

class FakeProcTest : public ::testing::Test {
 protected:
  FakeProcReader fs_;
  FakeClock clock_{1000.0};
};

TEST_F(FakeProcTest, TakesCpuMemoryFdsAndNamedThreads) {
  ServiceProcess().Install(fs_);
  ProcessSampler sampler(kPid, fs_, clock_);
  auto sample = sampler.Take();
  ASSERT_TRUE(sample.has_value()) << sample.error().ToString();

  EXPECT_EQ(sample->t, 1000.0);
  EXPECT_DOUBLE_EQ(sample->cpu_seconds, 200 / TicksPerSecond());
  EXPECT_EQ(sample->rss_bytes, 20000 * kKiB);
  EXPECT_EQ(sample->rss_anon_bytes, 15000 * kKiB);
  EXPECT_EQ(sample->rss_file_bytes, 5000 * kKiB);
  EXPECT_EQ(sample->hwm_bytes, 30000 * kKiB);
  EXPECT_EQ(sample->pss_bytes, 12000 * kKiB);  // the first sample reads Pss
  EXPECT_FALSE(sample->cgroup_memory_bytes.has_value());
  EXPECT_FALSE(sample->heap.has_value());
  EXPECT_EQ(sample->fds, ServiceProcess().fds);
  EXPECT_EQ(sample->sockets, 2);
  ASSERT_EQ(sample->threads.size(), 3u);
  EXPECT_EQ(sample->threads[0].tid, kPid);
  EXPECT_EQ(sample->threads[0].name, "backtest_server");
  EXPECT_DOUBLE_EQ(sample->threads[0].cpu_seconds, 130 / TicksPerSecond());
  EXPECT_EQ(sample->threads[1].tid, 4243);
  EXPECT_EQ(sample->threads[1].name, "http worker 1");
  EXPECT_EQ(sample->threads[2].tid, 4250);
  EXPECT_EQ(sample->threads[2].name, "exchange hb");
  EXPECT_EQ(sample->children, 0);
  EXPECT_THAT(sample->unavailable, IsEmpty());
  EXPECT_THAT(sampler.warnings(), IsEmpty());
}

TEST_F(FakeProcTest, ReadsPssOnTheFirstAndThenEveryNthSample) {
  ServiceProcess().Install(fs_);
  ProcessSampler sampler(kPid, fs_, clock_, SamplerOptions{.pss_every_n = 3});
  std::vector<bool> has_pss;
  for (int i = 0; i < 7; ++i) {
    auto sample = sampler.Take();
    ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
    has_pss.push_back(sample->pss_bytes.has_value());
  }
  EXPECT_THAT(has_pss, ElementsAre(true, false, false, true, false, false, true));
  EXPECT_EQ(sampler.samples_taken(), 7);

  ProcessSampler never(kPid, fs_, clock_, SamplerOptions{.pss_every_n = 0});
  EXPECT_FALSE(never.Take()->pss_bytes.has_value());
}

TEST_F(FakeProcTest, KernelWithoutSmapsRollupWarnsOnceAndStopsAsking) {
  FakeProcess process = ServiceProcess();
  process.pss_kb.reset();
  process.Install(fs_);
  int64_t rollup_reads = 0;
  FailingProcReader counting(fs_, [&](int64_t, const std::string& path) {
    if (path.ends_with("/smaps_rollup")) ++rollup_reads;
    return false;
  });
  ProcessSampler sampler(kPid, counting, clock_, SamplerOptions{.pss_every_n = 1});
  for (int i = 0; i < 3; ++i) {
    auto sample = sampler.Take();
    ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
    EXPECT_FALSE(sample->pss_bytes.has_value());
  }
  EXPECT_EQ(rollup_reads, 1);
  ASSERT_EQ(sampler.warnings().size(), 1u);
  EXPECT_THAT(sampler.warnings()[0],
              AllOf(HasSubstr("Pss is not measured"), HasSubstr("/proc/4242/smaps_rollup")));
}

TEST_F(FakeProcTest, ThreadThatVanishedMidListingIsSkippedSilently) {
  ServiceProcess().Install(fs_);
  // The listing still names thread 4260, whose files are gone.
  fs_.SetDir("/proc/4242/task", {"4242", "4260", "4243", "4250"});
  ProcessSampler sampler(kPid, fs_, clock_);
  auto sample = sampler.Take();
  ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
  std::vector<int64_t> tids;
  for (const ThreadSample& thread : sample->threads) tids.push_back(thread.tid);
  EXPECT_THAT(tids, ElementsAre(4242, 4243, 4250));
  EXPECT_THAT(sample->unavailable, IsEmpty());
  EXPECT_THAT(sampler.warnings(), IsEmpty());
}

TEST_F(FakeProcTest, FdClosedBetweenListingAndReadlinkIsSkipped) {
  ServiceProcess().Install(fs_);
  fs_.SetDir("/proc/4242/fd", {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"});
  auto sample = ProcessSampler(kPid, fs_, clock_).Take();
  ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
  EXPECT_EQ(sample->fds.size(), 10u);
  EXPECT_FALSE(sample->fds.contains(10));
  EXPECT_THAT(sample->unavailable, IsEmpty());
}

TEST_F(FakeProcTest, UnreadableFdDirectoryDegradesTheSampleWithOneWarning) {
  ServiceProcess().Install(fs_);
  fs_.SetError("/proc/4242/fd", ErrorCode::kPermissionDenied);
  ProcessSampler sampler(kPid, fs_, clock_);
  for (int i = 0; i < 3; ++i) {
    auto sample = sampler.Take();
    ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
    EXPECT_THAT(sample->fds, IsEmpty());
    EXPECT_EQ(sample->sockets, 0);
    EXPECT_THAT(sample->unavailable, ElementsAre("fds"));
    EXPECT_EQ(sample->rss_bytes, 20000 * kKiB);  // the rest is still measured
    EXPECT_EQ(sample->threads.size(), 3u);
  }
  ASSERT_EQ(sampler.warnings().size(), 1u);
  EXPECT_THAT(sampler.warnings()[0],
              AllOf(HasSubstr("cannot list /proc/4242/fd"), HasSubstr("Permission denied"),
                    HasSubstr("not measured")));
}

TEST_F(FakeProcTest, UnreadableFdLinksAreCountedWithoutTargets) {
  ServiceProcess().Install(fs_);
  fs_.SetError("/proc/4242/fd/4", ErrorCode::kPermissionDenied);
  ProcessSampler sampler(kPid, fs_, clock_);
  auto sample = sampler.Take();
  ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
  EXPECT_EQ(sample->fds.size(), 10u);
  EXPECT_THAT(sample->fds, Contains(Pair(4, "")));
  EXPECT_EQ(sample->sockets, 1);
  EXPECT_THAT(sample->unavailable, ElementsAre("fd_targets"));
  EXPECT_THAT(Joined(sampler.warnings()), HasSubstr("/proc/4242/fd/4"));
}

TEST_F(FakeProcTest, ProcessThatExitedIsNotFound) {
  ServiceProcess().Install(fs_);
  ProcessSampler sampler(kPid, fs_, clock_);
  ASSERT_TRUE(sampler.Take().has_value());
  fs_.Remove("/proc/4242");
  auto sample = sampler.Take();
  ASSERT_FALSE(sample.has_value());
  EXPECT_EQ(sample.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(sample.error().message, StartsWith("process 4242 exited"));
}

TEST_F(FakeProcTest, ZombieIsAnExitedProcess) {
  FakeProcess process = ServiceProcess();
  process.state = 'Z';
  process.Install(fs_);
  auto sample = ProcessSampler(kPid, fs_, clock_).Take();
  ASSERT_FALSE(sample.has_value());
  EXPECT_EQ(sample.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(sample.error().message,
              AllOf(StartsWith("process 4242 exited"), HasSubstr("zombie")));
}

TEST_F(FakeProcTest, PidReusedByAnotherProcessIsNotFound) {
  FakeProcess process = ServiceProcess();
  process.Install(fs_);
  ProcessSampler sampler(kPid, fs_, clock_);
  ASSERT_TRUE(sampler.Take().has_value());
  process.starttime_ticks += 5000;
  process.comm = "sshd";
  process.Install(fs_);
  auto sample = sampler.Take();
  ASSERT_FALSE(sample.has_value());
  EXPECT_EQ(sample.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(sample.error().message,
              AllOf(HasSubstr("process 4242 exited"), HasSubstr("another process (sshd)")));
}

TEST_F(FakeProcTest, KernelThreadHasNoMemoryToMeasure) {
  fs_.SetFile("/proc/2/stat",
              "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 20 0 0 "
              "18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0\n");
  fs_.SetFile("/proc/2/status", "Name:\tkthreadd\nState:\tS (sleeping)\nThreads:\t1\n");
  auto sample = ProcessSampler(2, fs_, clock_).Take();
  ASSERT_FALSE(sample.has_value());
  EXPECT_EQ(sample.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(sample.error().message,
              AllOf(HasSubstr("/proc/2/status has no VmRSS"), HasSubstr("kthreadd")));
}

TEST_F(FakeProcTest, MalformedStatIsAParseErrorNamingThePath) {
  ServiceProcess().Install(fs_);
  fs_.SetFile("/proc/4242/stat", "4242 backtest_server S 1\n");
  auto sample = ProcessSampler(kPid, fs_, clock_).Take();
  ASSERT_FALSE(sample.has_value());
  EXPECT_EQ(sample.error().code, ErrorCode::kParse);
  EXPECT_THAT(sample.error().message, StartsWith("/proc/4242/stat: "));
}

// Every single read of a sample (process, threads, fds, children, Pss, cgroup) is made to fail in
// turn: the sample either fails with an error naming the path (stat and status, without which
// there is no sample) or is taken with a warning naming the path. Never a crash, never silence.
TEST_F(FakeProcTest, EachReadThatFailsDegradesTheSampleOrFailsItWithThePath) {
  FakeProcess service = ServiceProcess();
  service.threads[2].children = {5000};  // forked by thread 4243
  service.Install(fs_);
  FakeProcess child;
  child.pid = 5000;
  child.ppid = kPid;
  child.comm = "worker";
  child.fds = {{0, "/dev/null"}, {3, "socket:[9001]"}};
  child.threads = {{5000, "worker", 5, 5, {}}};
  child.Install(fs_);
  fs_.SetFile("/sys/fs/cgroup/memory.current", "123456\n");
  const SamplerOptions options{.pss_every_n = 1, .include_children = true};

  std::vector<std::string> paths;
  FailingProcReader recorder(fs_, [&](int64_t, const std::string& path) {
    paths.push_back(path);
    return false;
  });
  auto complete = ProcessSampler(kPid, recorder, clock_, options).Take();
  ASSERT_TRUE(complete.has_value()) << complete.error().ToString();
  ASSERT_EQ(complete->children, 1);
  ASSERT_GT(paths.size(), 20u);

  for (size_t n = 0; n < paths.size(); ++n) {
    const std::string& path = paths[n];
    SCOPED_TRACE("read " + std::to_string(n) + " fails: " + path);
    FailingProcReader failing(
        fs_, [n](int64_t call, const std::string&) { return call == static_cast<int64_t>(n); });
    ProcessSampler sampler(kPid, failing, clock_, options);
    auto sample = sampler.Take();
    if (path == "/proc/4242/stat" || path == "/proc/4242/status") {
      ASSERT_FALSE(sample.has_value());
      EXPECT_EQ(sample.error().code, ErrorCode::kIo);
      EXPECT_THAT(sample.error().message, HasSubstr(path));
      continue;
    }
    ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
    EXPECT_THAT(Joined(sampler.warnings()), HasSubstr(path));
    if (path == "/proc/4242/fd") {
      EXPECT_THAT(sample->unavailable, Contains("fds"));
      EXPECT_THAT(sample->fds, IsEmpty());
    } else if (path.starts_with("/proc/4242/fd/")) {
      EXPECT_THAT(sample->unavailable, Contains("fd_targets"));
    } else if (path == "/proc/4242/task" ||
               (path.ends_with("/stat") && path.starts_with("/proc/4242/task/"))) {
      EXPECT_THAT(sample->unavailable, Contains("threads"));
    } else if (path.ends_with("smaps_rollup")) {
      EXPECT_FALSE(sample->pss_bytes.has_value());
    } else if (path.ends_with("cgroup") || path.ends_with("memory.current")) {
      EXPECT_FALSE(sample->cgroup_memory_bytes.has_value());
    } else if (path == "/proc/5000/stat" || path == "/proc/4242/task/4243/children") {
      EXPECT_EQ(sample->children, 0);
    }
  }
}

TEST_F(FakeProcTest, ResetPeakWritesFiveToClearRefs) {
  ServiceProcess().Install(fs_);
  ProcessSampler sampler(kPid, fs_, clock_);
  ASSERT_TRUE(sampler.ResetPeak().has_value());
  EXPECT_THAT(fs_.writes(), ElementsAre(Pair("/proc/4242/clear_refs", "5")));
  EXPECT_TRUE(sampler.peak_reset_supported());
  EXPECT_THAT(sampler.warnings(), IsEmpty());
}

TEST_F(FakeProcTest, RefusedResetIsRememberedAndExplained) {
  ServiceProcess().Install(fs_);
  fs_.SetError("/proc/4242/clear_refs", ErrorCode::kPermissionDenied);
  int64_t attempts = 0;
  FailingProcReader counting(fs_, [&](int64_t, const std::string& path) {
    if (path.ends_with("clear_refs")) ++attempts;
    return false;
  });
  ProcessSampler sampler(kPid, counting, clock_);
  for (int i = 0; i < 3; ++i) {
    auto reset = sampler.ResetPeak();
    ASSERT_FALSE(reset.has_value());
    EXPECT_EQ(reset.error().code, ErrorCode::kPermissionDenied);
    EXPECT_THAT(reset.error().message,
                HasSubstr("cannot reset the peak RSS (VmHWM) of process 4242"));
  }
  EXPECT_EQ(attempts, 1);
  EXPECT_FALSE(sampler.peak_reset_supported());
  ASSERT_EQ(sampler.warnings().size(), 1u);
  EXPECT_THAT(sampler.warnings()[0], AllOf(HasSubstr("VmHWM of process 4242 was not reset"),
                                           HasSubstr("Permission denied")));
}

TEST_F(FakeProcTest, ResetPeakOfAnExitedProcessIsNotFoundAndNotAnUnsupportedKernel) {
  ProcessSampler sampler(kPid, fs_, clock_);
  auto reset = sampler.ResetPeak();
  ASSERT_FALSE(reset.has_value());
  EXPECT_EQ(reset.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(reset.error().message, StartsWith("process 4242 exited"));
  EXPECT_TRUE(sampler.peak_reset_supported());
}

TEST_F(FakeProcTest, ReadsCgroupV2MemoryWhereTheHierarchyHasIt) {
  FakeProcess process = ServiceProcess();
  process.Install(fs_);
  fs_.SetFile("/proc/4242/cgroup", "0::/app.slice/backtest.service\n");
  fs_.SetFile("/sys/fs/cgroup/app.slice/backtest.service/memory.current", "73400320\n");
  auto sample = ProcessSampler(kPid, fs_, clock_).Take();
  ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
  EXPECT_EQ(sample->cgroup_memory_bytes, 73400320);

  // A hybrid hierarchy mounts cgroup v2 under "unified".
  FakeProcReader hybrid;
  process.Install(hybrid);
  hybrid.SetFile("/proc/4242/cgroup", "4:memory:/x\n0::/app.slice\n");
  hybrid.SetFile("/sys/fs/cgroup/unified/app.slice/memory.current", "1000\n");
  EXPECT_EQ(ProcessSampler(kPid, hybrid, clock_).Take()->cgroup_memory_bytes, 1000);

  // cgroup v1 only: absent, and no warning (nothing is wrong).
  FakeProcReader v1;
  process.Install(v1);
  v1.SetFile("/proc/4242/cgroup", "4:memory:/x\n");
  ProcessSampler v1_sampler(kPid, v1, clock_);
  EXPECT_FALSE(v1_sampler.Take()->cgroup_memory_bytes.has_value());
  EXPECT_THAT(v1_sampler.warnings(), IsEmpty());
}

TEST_F(FakeProcTest, IncludesDescendantsFromChildrenFiles) {
  FakeProcess service = ServiceProcess();
  service.cutime_ticks = 40;             // children reaped earlier
  service.threads[2].children = {5000};  // forked by thread 4243
  service.Install(fs_);
  FakeProcess child;
  child.pid = 5000;
  child.ppid = kPid;
  child.comm = "worker";
  child.utime_ticks = 10;
  child.stime_ticks = 10;
  child.rss_kb = 1000;
  child.hwm_kb = 1000;
  child.anon_kb = 600;
  child.file_kb = 400;
  child.fds = {{0, "/dev/null"}, {3, "socket:[9001]"}};
  child.threads = {{5000, "worker", 10, 10, {5001}}};
  child.Install(fs_);
  FakeProcess grandchild = child;
  grandchild.pid = 5001;
  grandchild.ppid = 5000;
  grandchild.comm = "sleep";
  grandchild.fds = {{0, "/dev/null"}};
  grandchild.threads = {{5001, "sleep", 10, 10, {}}};
  grandchild.Install(fs_);

  ProcessSampler sampler(kPid, fs_, clock_, SamplerOptions{.include_children = true});
  auto sample = sampler.Take();
  ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
  EXPECT_EQ(sample->children, 2);
  EXPECT_DOUBLE_EQ(sample->cpu_seconds, (200 + 40 + 20 + 20) / TicksPerSecond());
  EXPECT_EQ(sample->rss_bytes, (20000 + 1000 + 1000) * kKiB);
  EXPECT_EQ(sample->rss_anon_bytes, (15000 + 600 + 600) * kKiB);
  EXPECT_EQ(sample->sockets, 3);
  EXPECT_EQ(sample->fds, service.fds);
  EXPECT_THAT(sample->descendant_fds,
              ElementsAre(Pair(5000, child.fds), Pair(5001, grandchild.fds)));
  std::vector<std::string> names;
  for (const ThreadSample& thread : sample->threads) names.push_back(thread.name);
  EXPECT_THAT(names,
              ElementsAre("backtest_server", "http worker 1", "exchange hb", "worker", "sleep"));

  // The reset of the peak reaches the descendants too.
  ASSERT_TRUE(sampler.ResetPeak().has_value());
  EXPECT_THAT(fs_.writes(),
              ElementsAre(Pair("/proc/4242/clear_refs", "5"), Pair("/proc/5000/clear_refs", "5"),
                          Pair("/proc/5001/clear_refs", "5")));

  // Without the option, the same tree is the process alone.
  auto alone = ProcessSampler(kPid, fs_, clock_).Take();
  ASSERT_TRUE(alone.has_value());
  EXPECT_EQ(alone->children, 0);
  EXPECT_DOUBLE_EQ(alone->cpu_seconds, 200 / TicksPerSecond());
  EXPECT_THAT(alone->descendant_fds, IsEmpty());
}

TEST_F(FakeProcTest, FindsDescendantsByParentPidWhenTheKernelHasNoChildrenFiles) {
  FakeProcess service = ServiceProcess();
  service.children_files = false;
  service.Install(fs_);
  FakeProcess child;
  child.pid = 5000;
  child.ppid = kPid;
  child.comm = "worker";
  child.children_files = false;
  child.threads = {{5000, "worker", 1, 1, {}}};
  child.Install(fs_);
  FakeProcess stranger = child;
  stranger.pid = 6000;
  stranger.ppid = 1;
  stranger.comm = "cron";
  stranger.threads = {{6000, "cron", 1, 1, {}}};
  stranger.Install(fs_);

  auto sample = ProcessSampler(kPid, fs_, clock_, SamplerOptions{.include_children = true}).Take();
  ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
  EXPECT_EQ(sample->children, 1);
  EXPECT_TRUE(sample->descendant_fds.contains(5000));
  EXPECT_FALSE(sample->descendant_fds.contains(6000));
}

class FixedHeap : public HeapSource {
 public:
  Result<std::optional<HeapSample>> Read() override {
    return HeapSample{.allocated_bytes = 5 * kMiB, .cached_bytes = kMiB, .source = "fixed"};
  }
  std::string_view name() const override { return "fixed"; }
};

class UnreachableHeap : public HeapSource {
 public:
  Result<std::optional<HeapSample>> Read() override {
    return Fail(ErrorCode::kUnavailable, "GET http://127.0.0.1:1/metrics failed: Connection");
  }
  std::string_view name() const override { return "prometheus"; }
};

TEST_F(FakeProcTest, HeapStatisticsComeFromTheHeapSourceAndItsFailureIsAWarning) {
  ServiceProcess().Install(fs_);
  FixedHeap fixed;
  auto sample = ProcessSampler(kPid, fs_, clock_, SamplerOptions{.heap_source = &fixed}).Take();
  ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
  ASSERT_TRUE(sample->heap.has_value());
  EXPECT_EQ(sample->heap->allocated_bytes, 5 * kMiB);
  EXPECT_EQ(sample->heap->cached_bytes, kMiB);

  UnreachableHeap unreachable;
  ProcessSampler sampler(kPid, fs_, clock_, SamplerOptions{.heap_source = &unreachable});
  auto degraded = sampler.Take();
  ASSERT_TRUE(degraded.has_value()) << degraded.error().ToString();
  EXPECT_FALSE(degraded->heap.has_value());
  EXPECT_THAT(Joined(sampler.warnings()), HasSubstr("GET http://127.0.0.1:1/metrics failed"));

  // A source without numbers: no heap in the sample, and its reason among the sampler's warnings.
  InProcessTcmallocHeap absent(nullptr);
  ProcessSampler without(kPid, fs_, clock_, SamplerOptions{.heap_source = &absent});
  auto no_heap = without.Take();
  ASSERT_TRUE(no_heap.has_value()) << no_heap.error().ToString();
  EXPECT_FALSE(no_heap->heap.has_value());
  EXPECT_THAT(Joined(without.warnings()), HasSubstr("tcmalloc is not this process's allocator"));
}

TEST_F(FakeProcTest, DescribesSocketsByInode) {
  ServiceProcess().Install(fs_);
  fs_.SetFile("/proc/4242/net/tcp",
              "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
              "timeout inode\n"
              "   0: 0100007F:EDAD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0   "
              "     0 222420 1 00000000b66a8d13 100 0 0 10 0\n"
              "  10: 0100007F:EDAD 0100007F:C174 01 00000000:00000000 00:00000000 00000000     0   "
              "     0 222422 1 00000000ab46294c 20 0 0 10 -1\n");
  fs_.SetFile("/proc/4242/net/unix",
              "Num       RefCount Protocol Flags    Type St Inode Path\n"
              "000000004972acea: 00000002 00000000 00010000 0001 01 9100 /run/backtest.sock\n");
  ProcessSampler sampler(kPid, fs_, clock_);
  auto sockets = sampler.DescribeSockets();
  ASSERT_TRUE(sockets.has_value()) << sockets.error().ToString();
  EXPECT_THAT(*sockets,
              ElementsAre(Pair(9100, "unix stream unconnected /run/backtest.sock"),
                          Pair(222420, "tcp 127.0.0.1:60845 LISTEN"),
                          Pair(222422, "tcp 127.0.0.1:60845 -> 127.0.0.1:49524 ESTABLISHED")));

  fs_.Remove("/proc/4242");
  auto gone = sampler.DescribeSockets();
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
}

// ---------------------------------------------------------------------------------------------
// CPU percent

Sample At(double t, double cpu_seconds, std::vector<ThreadSample> threads = {}) {
  Sample sample;
  sample.t = t;
  sample.cpu_seconds = cpu_seconds;
  sample.threads = std::move(threads);
  return sample;
}

TEST(CpuPercentTest, IsCpuTimeOverWallTimeInPercentOfOneCore) {
  EXPECT_DOUBLE_EQ(CpuPercent(At(10, 1.0), At(12, 2.0)), 50.0);
  EXPECT_DOUBLE_EQ(CpuPercent(At(10, 1.0), At(11, 2.6)), 160.0);  // two busy cores
  EXPECT_DOUBLE_EQ(CpuPercent(At(10, 1.0), At(10.5, 1.0)), 0.0);
  EXPECT_DOUBLE_EQ(CpuPercent(At(10, 1.0), At(10, 2.0)), 0.0);  // no interval
  EXPECT_DOUBLE_EQ(CpuPercent(At(12, 2.0), At(10, 1.0)), 0.0);  // reversed
  EXPECT_DOUBLE_EQ(CpuPercent(At(10, 5.0), At(11, 4.0)), 0.0);  // a descendant left the tree
}

TEST(CpuPercentTest, ThreadsAreMatchedByTidAndTheBusiestComesFirst) {
  const Sample before =
      At(100, 3.0, {{10, "main", 1.0}, {11, "exchange hb", 1.0}, {12, "gone", 1.0}});
  const Sample after =
      At(104, 5.0, {{10, "main", 1.2}, {11, "exchange hb", 3.0}, {13, "new", 0.4}});
  const std::vector<ThreadCpu> threads = ThreadCpuPercent(before, after);
  ASSERT_EQ(threads.size(), 3u);
  EXPECT_EQ(threads[0].tid, 11);
  EXPECT_EQ(threads[0].name, "exchange hb");
  EXPECT_DOUBLE_EQ(threads[0].cpu_seconds, 2.0);
  EXPECT_DOUBLE_EQ(threads[0].cpu_percent, 50.0);
  EXPECT_EQ(threads[1].name, "new");  // born in between: all its CPU time counts
  EXPECT_DOUBLE_EQ(threads[1].cpu_percent, 10.0);
  EXPECT_EQ(threads[2].name, "main");
  EXPECT_NEAR(threads[2].cpu_percent, 5.0, 1e-9);
}

// ---------------------------------------------------------------------------------------------
// The real /proc of this process and of children it forks.

class RealProcTest : public ::testing::Test {
 protected:
  ProcessSampler Sampler(SamplerOptions options = {}) {
    return ProcessSampler(::getpid(), ProcReader::Real(), Clock::Real(), std::move(options));
  }
  static Sample Take(ProcessSampler& sampler) {
    auto sample = sampler.Take();
    EXPECT_TRUE(sample.has_value()) << sample.error().ToString();
    return sample.value_or(Sample{});
  }
};

double ThreadCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

TEST_F(RealProcTest, NamedThreadBurningCpuShowsUpByName) {
  ProcessSampler sampler = Sampler(SamplerOptions{.pss_every_n = 0});
  const Sample before = Take(sampler);
  std::atomic<bool> burnt{false};
  std::atomic<bool> release{false};
  std::thread probe([&] {
    ::pthread_setname_np(::pthread_self(), "lg-probe");
    // 200 ms of this thread's own CPU time, however busy the machine is.
    const double start = ThreadCpuSeconds();
    volatile uint64_t sink = 0;
    while (ThreadCpuSeconds() - start < 0.2) {
      for (int i = 0; i < 10000; ++i) sink = sink + static_cast<uint64_t>(i);
    }
    burnt = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (!burnt) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const Sample after = Take(sampler);
  release = true;
  probe.join();

  const ThreadSample* found = nullptr;
  for (const ThreadSample& thread : after.threads) {
    if (thread.name == "lg-probe") found = &thread;
  }
  ASSERT_NE(found, nullptr) << "no thread named lg-probe among " << after.threads.size();
  EXPECT_GT(found->cpu_seconds, 0.1);
  EXPECT_GE(after.cpu_seconds - before.cpu_seconds, 0.1);
  const std::vector<ThreadCpu> busiest = ThreadCpuPercent(before, after);
  ASSERT_FALSE(busiest.empty());
  EXPECT_EQ(busiest[0].name, "lg-probe");
  EXPECT_GT(CpuPercent(before, after), 0.0);
}

TEST_F(RealProcTest, SocketpairAddsTwoSocketsAndClosingRemovesThem) {
  ProcessSampler sampler = Sampler(SamplerOptions{.pss_every_n = 0});
  // The real reader keeps the /proc files it reads open, and in this process they are among the
  // sampled fds: a first sample opens them, so compare from the second one on.
  Take(sampler);
  const Sample before = Take(sampler);
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  const Sample open = Take(sampler);
  EXPECT_EQ(open.sockets, before.sockets + 2);
  ASSERT_TRUE(open.fds.contains(pair[0]));
  EXPECT_THAT(open.fds.at(pair[0]), StartsWith("socket:["));
  EXPECT_THAT(open.fds.at(pair[1]), StartsWith("socket:["));
  ::close(pair[0]);
  ::close(pair[1]);
  const Sample closed = Take(sampler);
  EXPECT_EQ(closed.sockets, before.sockets);
  EXPECT_EQ(closed.fds, before.fds);
}

TEST_F(RealProcTest, DescribesThisProcessListeningSocket) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);
  ProcessSampler sampler = Sampler(SamplerOptions{.pss_every_n = 0});
  const Sample sample = Take(sampler);
  auto sockets = sampler.DescribeSockets();
  ::close(listener);
  ASSERT_TRUE(sockets.has_value()) << sockets.error().ToString();
  bool described = false;
  for (const auto& [fd, target] : sample.fds) {
    FdTarget kind = ClassifyFdTarget(target);
    if (kind.kind != FdKind::kSocket || !sockets->contains(*kind.inode)) continue;
    if (sockets->at(*kind.inode) == "tcp 127.0.0.1:" + std::to_string(port) + " LISTEN") {
      described = true;
    }
  }
  EXPECT_TRUE(described) << "no fd of this process is the listener on port " << port;
}

TEST_F(RealProcTest, TouchingMemoryRaisesRssAndHwmAndResetPeakBringsHwmBack) {
  ProcessSampler sampler = Sampler(SamplerOptions{.pss_every_n = 1});
  const Sample before = Take(sampler);
  const size_t size = 64 * kMiB;
  void* block = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(block, MAP_FAILED);
  std::memset(block, 0x5a, size);
  const Sample touched = Take(sampler);
  EXPECT_GE(touched.rss_bytes - before.rss_bytes, 60 * kMiB);
  EXPECT_GE(touched.rss_anon_bytes - before.rss_anon_bytes, 60 * kMiB);
  EXPECT_GE(touched.hwm_bytes, touched.rss_bytes);
  ASSERT_TRUE(touched.pss_bytes.has_value());
  EXPECT_GE(*touched.pss_bytes - before.pss_bytes.value_or(0), 60 * kMiB);
  ::munmap(block, size);

  auto reset = sampler.ResetPeak();
  if (!reset.has_value()) {
    GTEST_SKIP() << "the kernel refused to reset VmHWM: " << reset.error().ToString();
  }
  const Sample after = Take(sampler);
  EXPECT_LE(after.hwm_bytes, touched.hwm_bytes - 32 * kMiB);
  EXPECT_LE(after.hwm_bytes, after.rss_bytes + 8 * kMiB);
}

TEST_F(RealProcTest, IncludeChildrenCountsAForkedChild) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();  // until killed
    ::_exit(0);
  }
  ProcessSampler alone = Sampler(SamplerOptions{.pss_every_n = 0});
  ProcessSampler tree = Sampler(SamplerOptions{.pss_every_n = 0, .include_children = true});
  const Sample own = Take(alone);
  const Sample with_child = Take(tree);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);

  EXPECT_EQ(own.children, 0);
  EXPECT_EQ(with_child.children, 1);
  EXPECT_TRUE(with_child.descendant_fds.contains(child));
  bool child_thread = false;
  for (const ThreadSample& thread : with_child.threads) child_thread |= thread.tid == child;
  EXPECT_TRUE(child_thread);
  EXPECT_GT(with_child.threads.size(), own.threads.size());
  EXPECT_GT(with_child.rss_bytes, own.rss_bytes);  // the child's own resident pages count too
}

TEST_F(RealProcTest, ExitedAndZombieChildrenAreNotFound) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  // Not yet reaped: a zombie.
  ProcessSampler sampler(child, ProcReader::Real(), Clock::Real());
  std::string state;
  for (int i = 0; i < 500 && state != "Z"; ++i) {
    auto stat = ProcReader::Real().ReadFile("/proc/" + std::to_string(child) + "/stat");
    if (stat) state = std::string(1, ParseStat(*stat, "stat")->state);
    if (state != "Z") std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_EQ(state, "Z");
  auto zombie = sampler.Take();
  ASSERT_FALSE(zombie.has_value());
  EXPECT_EQ(zombie.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(zombie.error().message, HasSubstr("zombie"));

  ::waitpid(child, nullptr, 0);
  auto gone = sampler.Take();
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(gone.error().message, StartsWith("process " + std::to_string(child) + " exited"));
}

// An unprivileged observer samples a root process: the kernel refuses its fd directory,
// smaps_rollup and clear_refs, and the sample degrades instead of failing. The target is a fresh
// process so that no file the reader kept open as root is reused by the observer.
TEST_F(RealProcTest, AnotherUsersProcessIsSampledWithoutWhatTheKernelRefuses) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run an observer as another user";
  const pid_t target = ::fork();
  ASSERT_GE(target, 0);
  if (target == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::pause();
    ::_exit(0);
  }
  int report_pipe[2];
  ASSERT_EQ(::pipe(report_pipe), 0);
  const pid_t observer = ::fork();
  ASSERT_GE(observer, 0);
  if (observer == 0) {
    ::close(report_pipe[0]);
    constexpr uid_t kNobody = 65534;
    if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(3);
    ProcessSampler sampler(target, ProcReader::Real(), Clock::Real(),
                           SamplerOptions{.pss_every_n = 1});
    auto sample = sampler.Take();
    auto reset = sampler.ResetPeak();
    std::string report;
    if (sample) {
      report += "sample ok; rss " + std::string(sample->rss_bytes > 0 ? ">0" : "0") + "; pss " +
                (sample->pss_bytes ? "measured" : "absent") + "; unavailable";
      for (const std::string& part : sample->unavailable) report += " " + part;
    } else {
      report += "sample failed: " + sample.error().ToString();
    }
    report += "; reset " + (reset ? std::string("ok") : reset.error().ToString());
    report += "\n" + Joined(sampler.warnings());
    (void)!::write(report_pipe[1], report.data(), report.size());
    ::_exit(0);
  }
  ::close(report_pipe[1]);
  std::string report;
  char buffer[1024];
  for (ssize_t n; (n = ::read(report_pipe[0], buffer, sizeof(buffer))) > 0;)
    report.append(buffer, n);
  ::close(report_pipe[0]);
  int status = 0;
  ::waitpid(observer, &status, 0);
  ::kill(target, SIGKILL);
  ::waitpid(target, nullptr, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "observer status " << status;

  EXPECT_THAT(report,
              StartsWith("sample ok; rss >0; pss absent; unavailable fds; reset "
                         "permission_denied: cannot reset the peak RSS (VmHWM) of process " +
                         std::to_string(target)));
  EXPECT_THAT(report, HasSubstr("cannot list /proc/" + std::to_string(target) + "/fd"));
  EXPECT_THAT(report, HasSubstr("Pss is not measured"));
  EXPECT_THAT(report, HasSubstr("VmHWM of process " + std::to_string(target) + " was not reset"));
}

// ---------------------------------------------------------------------------------------------
// The real reader and clock.

TEST(RealProcReaderTest, ReadsProcFilesOfSizeZeroToTheEnd) {
  ProcReader& reader = ProcReader::Real();
  EXPECT_EQ(std::filesystem::file_size("/proc/self/maps"), 0u);
  auto maps = reader.ReadFile("/proc/self/maps");
  ASSERT_TRUE(maps.has_value()) << maps.error().ToString();
  EXPECT_GT(maps->size(), 4096u);  // longer than one read
  EXPECT_EQ(maps->back(), '\n');

  auto entries = reader.ListDir("/proc/self/task");
  ASSERT_TRUE(entries.has_value()) << entries.error().ToString();
  EXPECT_THAT(*entries, Contains(std::to_string(::getpid())));
  EXPECT_THAT(*entries, Not(Contains(".")));

  auto link = reader.ReadLink("/proc/self/exe");
  ASSERT_TRUE(link.has_value()) << link.error().ToString();
  EXPECT_EQ(std::filesystem::path(*link).filename(),
            std::filesystem::path(program_invocation_name).filename());
}

TEST(RealProcReaderTest, ErrorsCarryACodeAndThePath) {
  ProcReader& reader = ProcReader::Real();
  auto missing = reader.ReadFile("/proc/999999999/stat");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("/proc/999999999/stat"));

  EXPECT_EQ(reader.ListDir("/proc/999999999/fd").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(reader.ReadLink("/proc/self/fd/999999").error().code, ErrorCode::kNotFound);

  auto invalid = reader.WriteFile("/proc/self/clear_refs", "9");  // not a clear_refs command
  ASSERT_FALSE(invalid.has_value());
  EXPECT_EQ(invalid.error().code, ErrorCode::kIo);
  EXPECT_THAT(invalid.error().message, HasSubstr("/proc/self/clear_refs"));
}

TEST(FakeProcReaderTest, DirectoriesFollowFromWhatIsBelowThem) {
  FakeProcReader fs;
  fs.SetFile("/proc/7/task/7/stat", "x");
  fs.SetFile("/proc/7/task/8/stat", "y");
  fs.SetLink("/proc/7/fd/3", "pipe:[1]");
  EXPECT_THAT(*fs.ListDir("/proc/7/task"), ElementsAre("7", "8"));
  EXPECT_THAT(*fs.ListDir("/proc"), ElementsAre("7"));
  EXPECT_THAT(*fs.ListDir("/proc/7"), ElementsAre("fd", "task"));
  EXPECT_EQ(fs.ListDir("/proc/8").error().code, ErrorCode::kNotFound);
  fs.SetDir("/proc/7/task", {"7"});
  EXPECT_THAT(*fs.ListDir("/proc/7/task"), ElementsAre("7"));

  fs.SetError("/proc/7/task/8/stat", ErrorCode::kPermissionDenied);
  EXPECT_EQ(fs.ReadFile("/proc/7/task/8/stat").error().code, ErrorCode::kPermissionDenied);
  EXPECT_THAT(fs.ReadFile("/proc/7/task/8/stat").error().message,
              HasSubstr("/proc/7/task/8/stat: Permission denied"));

  EXPECT_TRUE(fs.WriteFile("/proc/7/clear_refs", "5").has_value());
  fs.Remove("/proc/7");
  EXPECT_EQ(fs.ReadFile("/proc/7/task/7/stat").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(fs.ReadLink("/proc/7/fd/3").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(fs.WriteFile("/proc/7/clear_refs", "5").error().code, ErrorCode::kNotFound);
  EXPECT_THAT(fs.writes(), ElementsAre(Pair("/proc/7/clear_refs", "5")));
}

TEST(ClockTest, RealClockIsMonotonicAndSleeps) {
  Clock& clock = Clock::Real();
  const double start = clock.NowSeconds();
  clock.SleepFor(0.02);
  clock.SleepFor(-1);
  const double elapsed = clock.NowSeconds() - start;
  EXPECT_GE(elapsed, 0.019);
  EXPECT_LT(elapsed, 1.0);
}

TEST(ClockTest, FakeClockMovesOnlyWhenTold) {
  FakeClock clock(50.0);
  EXPECT_EQ(clock.NowSeconds(), 50.0);
  clock.SleepFor(2.5);
  clock.SleepFor(-3);
  EXPECT_EQ(clock.NowSeconds(), 52.5);
  clock.Advance(0.5);
  EXPECT_EQ(clock.NowSeconds(), 53.0);
}

// ---------------------------------------------------------------------------------------------
// Heap sources.

// In a child started with LD_PRELOAD of tcmalloc, this runs before main(): it reads the heap,
// allocates and touches 32 MiB, reads again, prints "before after cached" and exits.
constexpr char kTcmallocProbeEnv[] = "LEAKGATE_TCMALLOC_PROBE";
[[maybe_unused]] const bool kTcmallocProbeRan = [] {
  if (std::getenv(kTcmallocProbeEnv) == nullptr) return false;
  InProcessTcmallocHeap heap;
  auto first = heap.Read();
  std::vector<char>* block = new std::vector<char>(32 * kMiB, 'x');
  auto second = heap.Read();
  if (!first || !second || !first->has_value() || !second->has_value()) {
    std::printf("unavailable %s\n", Joined(heap.warnings()).c_str());
    std::fflush(stdout);
    std::_Exit(1);
  }
  std::printf("%lld %lld %lld\n", static_cast<long long>(*(*first)->allocated_bytes),
              static_cast<long long>(*(*second)->allocated_bytes),
              static_cast<long long>((*second)->cached_bytes.value_or(-1)));
  std::fflush(stdout);
  delete block;
  std::_Exit(0);
}();

TEST(InProcessTcmallocHeapTest, WithoutTcmallocThereIsNoNumberAndAWarning) {
  // This test program uses glibc malloc.
  InProcessTcmallocHeap heap;
  ASSERT_FALSE(heap.available());
  auto sample = heap.Read();
  ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
  EXPECT_FALSE(sample->has_value());
  EXPECT_THAT(Joined(heap.warnings()), HasSubstr("tcmalloc is not this process's allocator"));
}

TEST(InProcessTcmallocHeapTest, ReadsAllocatedAndCachedBytesOfAPreloadedProcess) {
  const char* tcmalloc = "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4";
  if (!std::filesystem::exists(tcmalloc)) GTEST_SKIP() << tcmalloc << " is not installed";
  const std::string self = std::filesystem::read_symlink("/proc/self/exe");
  const std::string command =
      std::string(kTcmallocProbeEnv) + "=1 LD_PRELOAD=" + tcmalloc + " " + self + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char line[512] = {};
  const bool got_line = std::fgets(line, sizeof(line), pipe) != nullptr;
  const int status = ::pclose(pipe);
  ASSERT_TRUE(got_line);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << line;
  long long before = 0;
  long long after = 0;
  long long cached = 0;
  ASSERT_EQ(std::sscanf(line, "%lld %lld %lld", &before, &after, &cached), 3) << line;
  EXPECT_GT(before, 0);
  EXPECT_GE(after - before, 32 * kMiB);
  EXPECT_LT(after - before, 33 * kMiB);
  EXPECT_GE(cached, 0);
}

int fake_property_calls = 0;
int FakeTcmallocProperty(const char* property, size_t* value) {
  ++fake_property_calls;
  const std::map<std::string, size_t> known = {{"generic.current_allocated_bytes", 7000},
                                               {"tcmalloc.pageheap_free_bytes", 100},
                                               {"tcmalloc.central_cache_free_bytes", 20},
                                               {"tcmalloc.transfer_cache_free_bytes", 3},
                                               {"tcmalloc.thread_cache_free_bytes", 400}};
  auto it = known.find(property);
  if (it == known.end()) return 0;
  *value = it->second;
  return 1;
}
int NoCachesProperty(const char* property, size_t* value) {
  if (std::string_view(property) != "generic.current_allocated_bytes") return 0;
  *value = 42;
  return 1;
}

TEST(InProcessTcmallocHeapTest, CachedIsTheSumOfTheFourFreeLists) {
  InProcessTcmallocHeap heap(&FakeTcmallocProperty);
  auto sample = heap.Read();
  ASSERT_TRUE(sample.has_value() && sample->has_value());
  EXPECT_EQ((*sample)->source, "tcmalloc");
  EXPECT_EQ((*sample)->allocated_bytes, 7000);
  EXPECT_EQ((*sample)->cached_bytes, 523);

  InProcessTcmallocHeap partial(&NoCachesProperty);
  auto without_cached = partial.Read();
  ASSERT_TRUE(without_cached.has_value() && without_cached->has_value());
  EXPECT_EQ((*without_cached)->allocated_bytes, 42);
  EXPECT_FALSE((*without_cached)->cached_bytes.has_value());
  EXPECT_THAT(Joined(partial.warnings()), HasSubstr("tcmalloc.pageheap_free_bytes"));
}

TEST(FindPrometheusValueTest, FindsTheNamedSample) {
  const std::string text =
      "# HELP backtest_heap_allocated_bytes Bytes in use (generic.current_allocated_bytes).\n"
      "# TYPE backtest_heap_allocated_bytes gauge\n"
      "backtest_heap_allocated_bytes_total 1\n"
      "backtest_heap_allocated_bytes 1.2345e+06\n"
      "backtest_heap_pageheap_free_bytes{allocator=\"tcmalloc\",note=\"a } b\"} 4096 "
      "1700000000000\n"
      "backtest_sessions 3\n";
  EXPECT_EQ(*FindPrometheusValue(text, "backtest_heap_allocated_bytes"), 1234500.0);
  EXPECT_EQ(*FindPrometheusValue(text, "backtest_heap_pageheap_free_bytes"), 4096.0);
  EXPECT_EQ(*FindPrometheusValue(text, "backtest_sessions"), 3.0);
  EXPECT_EQ(*FindPrometheusValue(text, "backtest_heap"), std::nullopt);
  EXPECT_EQ(*FindPrometheusValue("", "backtest_sessions"), std::nullopt);

  auto bad = FindPrometheusValue("x 1\nbacktest_sessions three\n", "backtest_sessions");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kParse);
  EXPECT_THAT(bad.error().message,
              AllOf(HasSubstr("backtest_sessions on line 2"), HasSubstr("'three'"),
                    HasSubstr("expected a finite number")));
  EXPECT_FALSE(FindPrometheusValue("m NaN\n", "m").has_value());
  EXPECT_FALSE(FindPrometheusValue("m{a=\"1\" 5\n", "m").has_value());
}

// A /metrics endpoint on 127.0.0.1 serving whatever the test sets.
class MetricsServer {
 public:
  MetricsServer() {
    server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++requests_;
      response.status = status_;
      response.set_content(body_, "text/plain; version=0.0.4");
    });
    server_.set_tcp_nodelay(true);
    server_.set_keep_alive_timeout(1);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~MetricsServer() {
    server_.stop();
    thread_.join();
  }
  void Serve(int status, std::string body) {
    std::lock_guard<std::mutex> lock(mutex_);
    status_ = status;
    body_ = std::move(body);
  }
  int requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/metrics"; }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  int status_ = 200;
  std::string body_;
  int requests_ = 0;
};

TEST(PrometheusMetricsHeapTest, ReadsTheAllocatedAndCachedGauges) {
  MetricsServer server;
  server.Serve(
      200,
      "# TYPE backtest_heap_allocated_bytes gauge\nbacktest_heap_allocated_bytes 8388608\n"
      "backtest_heap_pageheap_free_bytes 1048576\nbacktest_heap_thread_cache_bytes 4096\n");
  auto heap =
      PrometheusMetricsHeap::Create({.url = server.url(),
                                     .cached_metrics = {"backtest_heap_pageheap_free_bytes",
                                                        "backtest_heap_thread_cache_bytes"}});
  ASSERT_TRUE(heap.has_value()) << heap.error().ToString();
  for (int i = 0; i < 3; ++i) {
    auto sample = (*heap)->Read();
    ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
    ASSERT_TRUE(sample->has_value());
    EXPECT_EQ((*sample)->allocated_bytes, 8 * kMiB);
    EXPECT_EQ((*sample)->cached_bytes, kMiB + 4096);
    EXPECT_EQ((*sample)->source, "prometheus");
  }
  EXPECT_EQ(server.requests(), 3);
  EXPECT_THAT((*heap)->warnings(), IsEmpty());
}

TEST(PrometheusMetricsHeapTest, AbsentMetricIsNoNumberWithAWarning) {
  MetricsServer server;
  server.Serve(200,
               "# backtest_heap_* omitted: tcmalloc is not this process's allocator\n"
               "backtest_process_resident_bytes 123\n");
  auto heap = PrometheusMetricsHeap::Create({.url = server.url()});
  ASSERT_TRUE(heap.has_value());
  auto sample = (*heap)->Read();
  ASSERT_TRUE(sample.has_value()) << sample.error().ToString();
  EXPECT_FALSE(sample->has_value());
  EXPECT_THAT(Joined((*heap)->warnings()),
              AllOf(HasSubstr("backtest_heap_allocated_bytes not found"), HasSubstr(server.url())));
}

// A port on 127.0.0.1 that nobody listens on: bound without listening, then closed.
int UnusedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

TEST(PrometheusMetricsHeapTest, FailuresNameTheUrlAndWhatWasWrong) {
  MetricsServer server;
  auto heap = PrometheusMetricsHeap::Create({.url = server.url()});
  ASSERT_TRUE(heap.has_value());

  server.Serve(500, "boom");
  auto error_status = (*heap)->Read();
  ASSERT_FALSE(error_status.has_value());
  EXPECT_EQ(error_status.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(error_status.error().message,
              AllOf(HasSubstr(server.url()), HasSubstr("answered 500, expected 200")));

  server.Serve(200, "backtest_heap_allocated_bytes lots\n");
  auto garbage = (*heap)->Read();
  ASSERT_FALSE(garbage.has_value());
  EXPECT_EQ(garbage.error().code, ErrorCode::kParse);
  EXPECT_THAT(garbage.error().message, AllOf(HasSubstr(server.url()), HasSubstr("'lots'")));

  const int port = UnusedPort();
  auto refused = PrometheusMetricsHeap::Create(
      {.url = "http://127.0.0.1:" + std::to_string(port) + "/metrics", .timeout_s = 1});
  ASSERT_TRUE(refused.has_value());
  auto unreachable = (*refused)->Read();
  ASSERT_FALSE(unreachable.has_value());
  EXPECT_EQ(unreachable.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(unreachable.error().message,
              HasSubstr("GET http://127.0.0.1:" + std::to_string(port) + "/metrics"));
}

TEST(PrometheusMetricsHeapTest, RejectsUrlsItCannotFetch) {
  for (const char* url : {"https://127.0.0.1:9/metrics", "127.0.0.1:9/metrics", "http:///metrics",
                          "http://127.0.0.1:99999/metrics", "http://127.0.0.1:x/metrics"}) {
    auto heap = PrometheusMetricsHeap::Create({.url = url});
    ASSERT_FALSE(heap.has_value()) << url;
    EXPECT_EQ(heap.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(heap.error().message, AllOf(HasSubstr(url), HasSubstr("expected")));
  }
  auto unnamed =
      PrometheusMetricsHeap::Create({.url = "http://127.0.0.1:9/metrics", .allocated_metric = ""});
  ASSERT_FALSE(unnamed.has_value());
  EXPECT_THAT(unnamed.error().message, HasSubstr("metric name is empty"));
}

TEST(NoHeapTest, NeverHasANumber) {
  NoHeap heap;
  auto sample = heap.Read();
  ASSERT_TRUE(sample.has_value());
  EXPECT_FALSE(sample->has_value());
  EXPECT_EQ(heap.name(), "none");
}

}  // namespace
}  // namespace leakgate::harness
