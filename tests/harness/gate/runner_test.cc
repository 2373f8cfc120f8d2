// The runner on a fake /proc and a fake clock: a target whose memory, fds, threads or idle CPU climb
// with each run fails the gate on the check that fits, a clean one passes, and a target that dies
// mid-run ends the gate with exit code 3. The fake target "process" is a set of /proc files that the
// in-process workload rewrites each run, so every number the analysis sees is known in advance.
#include "harness/gate/runner.h"
#include "harness/gate/scenario_gate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/clock.h"
#include "harness/sample/proc_reader.h"
#include "harness/drive/workload.h"

namespace leakgate::harness {
namespace {

using ::testing::HasSubstr;

constexpr int kPid = 4242;
constexpr int64_t kMiB = 1024 * 1024;

// The state of the fake process, written into a FakeProcReader as /proc text.
struct FakeProcess {
  double cpu_seconds = 1.0;
  int64_t rss_bytes = 40 * kMiB;
  int64_t hwm_bytes = 40 * kMiB;
  std::map<int, std::string> fds = {{0, "/dev/null"}, {1, "pipe:[1]"}, {2, "pipe:[2]"},
                                     {3, "socket:[100]"}};
  std::vector<std::string> threads = {"server", "worker", "worker"};
  // Rows of the network namespace's TCP table: inode -> "LOCALPORT REMOTEPORT STATE" on 127.0.0.1
  // (remote port 0: not connected; state in hex as the kernel writes it, 0A = LISTEN).
  std::map<uint64_t, std::string> tcp = {{100, "9000 0 0A"}};
  bool alive = true;

  void WriteTo(FakeProcReader& proc) const {
    const std::string base = "/proc/" + std::to_string(kPid);
    if (!alive) {
      proc.Remove(base + "/stat");
      proc.Remove(base + "/status");
      return;
    }
    const long ticks = static_cast<long>(cpu_seconds * 100 + 0.5);
    proc.SetFile(base + "/stat", std::to_string(kPid) + " (server) S 1 " + std::to_string(kPid) +
                                     " 1 0 -1 4194560 100 0 0 0 " + std::to_string(ticks) +
                                     " 0 0 0 20 0 " + std::to_string(threads.size()) +
                                     " 0 12345 100000000 " + std::to_string(rss_bytes / 4096) +
                                     " 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n");
    proc.SetFile(base + "/status", "Name:\tserver\nVmHWM:\t" + std::to_string(hwm_bytes / 1024) +
                                       " kB\nVmRSS:\t" + std::to_string(rss_bytes / 1024) +
                                       " kB\nRssAnon:\t" + std::to_string(rss_bytes / 1024 - 1000) +
                                       " kB\nRssFile:\t1000 kB\nRssShmem:\t0 kB\nThreads:\t" +
                                       std::to_string(threads.size()) + "\n");
    std::vector<std::string> fd_names;
    for (const auto& [fd, target] : fds) {
      fd_names.push_back(std::to_string(fd));
      proc.SetLink(base + "/fd/" + std::to_string(fd), target);
    }
    proc.SetDir(base + "/fd", fd_names);
    std::vector<std::string> tids;
    for (size_t i = 0; i < threads.size(); ++i) {
      const std::string tid = std::to_string(kPid + static_cast<int>(i));
      tids.push_back(tid);
      // All CPU is booked to the main thread; enough for the per-thread view.
      const long thread_ticks = i == 0 ? ticks : 0;
      proc.SetFile(base + "/task/" + tid + "/stat",
                   tid + " (" + threads[i] + ") S 1 " + std::to_string(kPid) +
                       " 1 0 -1 0 0 0 0 0 " + std::to_string(thread_ticks) +
                       " 0 0 0 20 0 1 0 12345 0 0\n");
      proc.SetFile(base + "/task/" + tid + "/comm", threads[i] + "\n");
    }
    proc.SetDir(base + "/task", tids);
    std::string table =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode\n";
    int row = 0;
    for (const auto& [inode, spec] : tcp) {
      int local = 0, remote = 0;
      char state[8] = {};
      std::sscanf(spec.c_str(), "%d %d %7s", &local, &remote, state);
      char line[256];
      std::snprintf(line, sizeof line,
                    "%4d: 0100007F:%04X %s:%04X %s 00000000:00000000 00:00000000 00000000     0 "
                    "       0 %llu 1 0000000000000000 100 0 0 10 0\n",
                    row++, local, remote == 0 ? "00000000" : "0100007F", remote, state,
                    static_cast<unsigned long long>(inode));
      table += line;
    }
    proc.SetFile(base + "/net/tcp", table);
  }
};

// Counts the reads of one file, delegating everything.
class CountingReader : public ProcReader {
 public:
  CountingReader(ProcReader& inner, std::string counted) : inner_(inner), counted_(std::move(counted)) {}
  Result<std::string> ReadFile(const std::string& path) override {
    if (path == counted_) ++reads;
    return inner_.ReadFile(path);
  }
  Result<std::vector<std::string>> ListDir(const std::string& p) override { return inner_.ListDir(p); }
  Result<std::string> ReadLink(const std::string& p) override { return inner_.ReadLink(p); }
  Result<void> WriteFile(const std::string& p, const std::string& t) override {
    return inner_.WriteFile(p, t);
  }
  int reads = 0;

 private:
  ProcReader& inner_;
  std::string counted_;
};

// A Target that is the fake process: always "alive" unless the fake says otherwise.
class FakeTarget : public Target {
 public:
  explicit FakeTarget(const FakeProcess& process) : process_(process) {}
  Result<void> Start() override { return {}; }
  pid_t pid() const override { return kPid; }
  pid_t process_group() const override { return -1; }
  std::string Describe() const override { return "fake server (pid 4242)"; }
  bool Alive() override { return process_.alive; }
  std::optional<ExitInfo> ExitStatus() override {
    if (process_.alive) return std::nullopt;
    ExitInfo info;
    info.signal = 11;
    info.description = "killed by SIGSEGV";
    return info;
  }
  Result<void> CheckAlive(std::string_view context) override {
    if (process_.alive) return {};
    return Fail(ErrorCode::kTargetFailed,
                "target fake server (pid 4242) was killed by SIGSEGV " + std::string(context));
  }
  Result<ExitInfo> Stop() override { return ExitInfo{}; }
  std::string stdout_path() const override { return ""; }
  std::string stderr_path() const override { return ""; }
  std::string ready_line() const override { return ""; }

 private:
  const FakeProcess& process_;
};

// A heap source reading the fake's heap counter.
class FakeHeap : public HeapSource {
 public:
  explicit FakeHeap(const int64_t& bytes) : bytes_(bytes) {}
  Result<std::optional<HeapSample>> Read() override {
    HeapSample s;
    s.allocated_bytes = bytes_;
    s.source = "fake";
    return std::optional<HeapSample>(s);
  }
  std::string_view name() const override { return "fake"; }

 private:
  const int64_t& bytes_;
};

class RunnerTest : public ::testing::Test {
 protected:
  GateConfig Config() {
    GateConfig config;
    config.runs = 5;
    config.warmup_runs = 1;
    config.max_runs = 10;
    config.baseline_s = 2;
    config.sample_hz = 10;
    config.cooldown.max_s = 5;
    config.cooldown.settle_window_s = 1;
    config.cooldown.settle_tolerance_pct = 1;
    return config;
  }

  // Runs the gate with a workload that applies `per_run` to the fake process, then burns `busy_s`
  // of CPU over `run_s` of (fake) time so the run phase is visible.
  GateResult RunWith(std::function<void(int, FakeProcess&)> per_run, const GateConfig& config,
                     ProcReader* reader = nullptr) {
    process_.WriteTo(proc_);
    FakeTarget target(process_);
    FakeHeap heap(heap_bytes_);
    CallbackWorkload workload(
        [&](int run, const std::atomic<bool>&) -> Result<WorkloadRunInfo> {
          process_.cpu_seconds += 0.5;  // the run's own work
          per_run(run, process_);
          process_.hwm_bytes = std::max(process_.hwm_bytes, process_.rss_bytes + 8 * kMiB);
          process_.WriteTo(proc_);
          clock_.Advance(0.5);
          WorkloadRunInfo info;
          info.requests = 2;
          info.description = "fake backtest";
          return info;
        },
        "fake backtest");
    return RunGate(config, target, workload, &heap, clock_, reader ? *reader : proc_);
  }

  FakeClock clock_;
  FakeProcReader proc_;
  FakeProcess process_;
  int64_t heap_bytes_ = 10 * kMiB;
};

TEST_F(RunnerTest, CleanTargetPasses) {
  GateResult r = RunWith([](int, FakeProcess&) {}, Config());
  EXPECT_EQ(r.verdict, Verdict::kPass) << r.error << (r.analysis ? r.analysis->summary : "");
  EXPECT_EQ(r.exit_code, kExitPass);
  ASSERT_EQ(r.runs.size(), 6u);
  EXPECT_TRUE(r.runs.front().warmup);
  EXPECT_FALSE(r.runs.back().warmup);
  EXPECT_EQ(r.baseline.fds, 4);
  EXPECT_EQ(r.baseline.threads, 3);
  EXPECT_EQ(r.baseline.heap_bytes, 10 * kMiB);
  for (const RunRecord& run : r.runs) {
    EXPECT_TRUE(run.cooldown_settled) << "run " << run.index;
    EXPECT_NEAR(run.after.cpu_pct, 0.0, 1e-9);
    EXPECT_EQ(run.peak_rss_bytes, 48 * kMiB);
  }
  // Phases in order in the timeline.
  ASSERT_FALSE(r.timeline.empty());
  EXPECT_EQ(r.timeline.front().phase, "baseline");
  EXPECT_EQ(r.timeline.back().phase, "cooldown");
  EXPECT_EQ(r.timeline.back().run, 6);
}

TEST_F(RunnerTest, SteadyRssLeakFailsOnRss) {
  GateResult r = RunWith([](int, FakeProcess& p) { p.rss_bytes += 1 * kMiB; }, Config());
  EXPECT_EQ(r.verdict, Verdict::kFail);
  EXPECT_EQ(r.exit_code, kExitDrift);
  ASSERT_TRUE(r.analysis);
  bool rss_failed = false;
  for (const CheckResult& c : r.analysis->checks) {
    if (c.metric == "rss_bytes" && c.verdict == Verdict::kFail) rss_failed = true;
    if (c.metric == "fds" || c.metric == "threads") {
      EXPECT_EQ(c.verdict, Verdict::kPass) << c.name;
    }
  }
  EXPECT_TRUE(rss_failed);
}

TEST_F(RunnerTest, ConnectionLeakFailsOnSocketsAndThreadsByName) {
  GateResult r = RunWith(
      [](int run, FakeProcess& p) {
        p.fds[10 + run] = "socket:[" + std::to_string(500 + run) + "]";
        p.threads.push_back("exch-heartbeat");
      },
      Config());
  EXPECT_EQ(r.verdict, Verdict::kFail);
  ASSERT_TRUE(r.analysis);
  std::map<std::string, Verdict> by_name;
  for (const CheckResult& c : r.analysis->checks) by_name[c.name] = c.verdict;
  EXPECT_EQ(by_name["threads_stable"], Verdict::kFail);
  EXPECT_EQ(by_name["fds_stable"], Verdict::kFail);
  bool named = false;
  for (const GrowthItem& g : r.analysis->growth) {
    if (g.kind == "thread" && g.site == "exch-heartbeat") named = true;
  }
  EXPECT_TRUE(named) << "the leaking thread is named in the growth list";
}

TEST_F(RunnerTest, LeakedConnectionsAreNamedByTheirPeerFromTheSocketTables) {
  CountingReader reader(proc_, "/proc/4242/net/tcp");
  GateResult r = RunWith(
      [](int run, FakeProcess& p) {
        const uint64_t inode = 500 + run;
        p.fds[10 + run] = "socket:[" + std::to_string(inode) + "]";
        p.tcp[inode] = std::to_string(41000 + run) + " 8081 01";  // to an exchange on port 8081
      },
      Config(), &reader);
  EXPECT_EQ(r.verdict, Verdict::kFail);
  ASSERT_TRUE(r.analysis);
  const GrowthItem* socket = nullptr;
  for (const GrowthItem& g : r.analysis->growth) {
    if (g.kind == "socket") socket = &g;
  }
  ASSERT_NE(socket, nullptr);
  EXPECT_EQ(socket->site, "tcp -> 127.0.0.1:8081");
  EXPECT_EQ(socket->total, 5) << "five judged runs, one connection each";
  EXPECT_THAT(socket->examples,
              ::testing::ElementsAre("tcp 127.0.0.1:41002 -> 127.0.0.1:8081 ESTABLISHED",
                                     "tcp 127.0.0.1:41003 -> 127.0.0.1:8081 ESTABLISHED",
                                     "tcp 127.0.0.1:41004 -> 127.0.0.1:8081 ESTABLISHED"));
  // The listener the target had from the start is resolved too, in every snapshot.
  EXPECT_THAT(r.baseline.resolved_fds,
              ::testing::Contains(ResolvedFd{"tcp listening on 127.0.0.1:9000",
                                             "tcp 127.0.0.1:9000 LISTEN", true}));
  // The tables are read at the baseline and after each run, never at the sampling rate.
  EXPECT_EQ(reader.reads, 1 + static_cast<int>(r.runs.size()));
  EXPECT_GT(r.timeline.size(), 10 * r.runs.size());
}

// A proc reader that books CPU the fake clock's idle time would have used: the process (and its
// fourth task, a heartbeat thread) burn pct_at(now) % of a core, added to utime on every read.
class BurningReader : public ProcReader {
 public:
  BurningReader(FakeProcReader& inner, Clock& clock, std::function<double(double)> pct_at)
      : inner_(inner), clock_(clock), pct_at_(std::move(pct_at)) {}
  Result<std::string> ReadFile(const std::string& path) override {
    auto text = inner_.ReadFile(path);
    // The process and its heartbeat thread (the fourth task) burn the idle CPU.
    if (!text || (path != "/proc/4242/stat" && path != "/proc/4242/task/4245/stat")) return text;
    // Replace utime (field 14) with the base plus the burn since time zero.
    const double now = clock_.NowSeconds();
    burned_ += (now - last_) * pct_at_(now) / 100.0;
    last_ = now;
    std::string s = *text;
    const size_t close = s.rfind(')');
    std::vector<std::string> fields;
    size_t pos = close + 2;
    while (pos < s.size()) {
      size_t end = s.find(' ', pos);
      if (end == std::string::npos) end = s.size();
      fields.push_back(s.substr(pos, end - pos));
      pos = end + 1;
    }
    const long utime = std::stol(fields[11]) + static_cast<long>(burned_ * 100);
    fields[11] = std::to_string(utime);
    std::string out = s.substr(0, close + 2);
    for (size_t i = 0; i < fields.size(); ++i) out += (i ? " " : "") + fields[i];
    return out;
  }
  Result<std::vector<std::string>> ListDir(const std::string& p) override { return inner_.ListDir(p); }
  Result<std::string> ReadLink(const std::string& p) override { return inner_.ReadLink(p); }
  Result<void> WriteFile(const std::string& p, const std::string& t) override {
    return inner_.WriteFile(p, t);
  }

 private:
  FakeProcReader& inner_;
  Clock& clock_;
  std::function<double(double)> pct_at_;  // % of a core burned at a time
  double burned_ = 0;
  double last_ = 1000.0;
};

TEST_F(RunnerTest, IdleCpuStaircaseFailsAndCooldownStopsOnThePlateau) {
  // After each run the process keeps burning 5 % more of a core (BurningReader).
  double idle_pct = 0;
  BurningReader reader(proc_, clock_, [&](double) { return idle_pct; });
  process_.threads.push_back("exch-heartbeat");
  process_.WriteTo(proc_);
  FakeTarget target(process_);
  CallbackWorkload workload([&](int, const std::atomic<bool>&) -> Result<WorkloadRunInfo> {
    idle_pct += 5.0;  // each run leaves a heartbeat behind
    clock_.Advance(0.5);
    return WorkloadRunInfo{};
  });
  GateResult r = RunGate(Config(), target, workload, nullptr, clock_, reader);
  EXPECT_EQ(r.verdict, Verdict::kFail) << (r.analysis ? r.analysis->summary : r.error);
  ASSERT_TRUE(r.analysis);
  for (const CheckResult& c : r.analysis->checks) {
    if (c.name != "idle_cpu_returns") continue;
    EXPECT_EQ(c.verdict, Verdict::kFail) << c.detail;
    EXPECT_THAT(c.detail, HasSubstr("(mean after runs 2, 3, 4, 5, 6): exch-heartbeat \u00d71: "));
  }
  // The settle window's CPU, by thread name.
  for (const RunRecord& run : r.runs) {
    ASSERT_FALSE(run.after.idle_threads.empty()) << "run " << run.index;
    EXPECT_EQ(run.after.idle_threads.front().name, "exch-heartbeat");
    EXPECT_EQ(run.after.idle_threads.front().threads, 1);
    EXPECT_NEAR(run.after.idle_threads.front().cpu_pct, 5.0 * run.index, 1.5) << "run " << run.index;
  }
  // The plateau ends each cooldown long before max_s.
  for (const RunRecord& run : r.runs) {
    EXPECT_TRUE(run.cooldown_settled);
    EXPECT_LT(run.cooldown_s, 4.0);
    EXPECT_NEAR(run.after.cpu_pct, 5.0 * run.index, 1.5) << "run " << run.index;
  }
  EXPECT_EQ(r.heap_source, "none");
}

// Regression: start-up work that outlasted readiness (a few hundred ms at 80-90 % of a core, longer
// beside a busy neighbour) fell into the baseline window, which then read 4-6 % of CPU; every idle
// figure after the runs passed against it, the leaked heartbeats' staircase included.
TEST_F(RunnerTest, StartUpWorkAfterReadinessStaysOutOfTheBaseline) {
  double idle_pct = 0;
  const double ready_at = clock_.NowSeconds();
  BurningReader reader(proc_, clock_, [&](double now) {
    return now < ready_at + 0.4 ? 85.0 : idle_pct;  // start-up, then the heartbeats
  });
  process_.threads.push_back("exch-heartbeat");
  process_.WriteTo(proc_);
  FakeTarget target(process_);
  CallbackWorkload workload([&](int, const std::atomic<bool>&) -> Result<WorkloadRunInfo> {
    idle_pct += 1.5;  // a heartbeat left behind per run: under the allowance after the first runs
    clock_.Advance(0.5);
    return WorkloadRunInfo{};
  });
  GateResult r = RunGate(Config(), target, workload, nullptr, clock_, reader);
  ASSERT_TRUE(r.analysis) << r.error;
  EXPECT_NEAR(r.baseline.cpu_pct, 0.0, 0.5);
  EXPECT_GE(r.baseline_settle_s, 1.0);
  EXPECT_EQ(r.timeline.front().phase, "baseline");
  for (const CheckResult& c : r.analysis->checks) {
    if (c.name == "idle_cpu_returns") {
      EXPECT_EQ(c.verdict, Verdict::kFail) << c.detail;
    }
  }
}

TEST_F(RunnerTest, TargetDyingMidRunIsExitThreeWithPartialResult) {
  GateResult r = RunWith(
      [](int run, FakeProcess& p) {
        if (run == 3) p.alive = false;
      },
      Config());
  EXPECT_EQ(r.verdict, Verdict::kError);
  EXPECT_EQ(r.exit_code, kExitTargetFailed);
  EXPECT_THAT(r.error, HasSubstr("SIGSEGV"));
  EXPECT_THAT(r.error, HasSubstr("run 3"));
  EXPECT_EQ(r.runs.size(), 2u) << "the runs before the crash are kept";
  EXPECT_TRUE(r.baseline_taken);
}

TEST_F(RunnerTest, FailingWorkloadIsExitThreeNamingTheRun) {
  process_.WriteTo(proc_);
  FakeTarget target(process_);
  CallbackWorkload workload([&](int run, const std::atomic<bool>&) -> Result<WorkloadRunInfo> {
    clock_.Advance(0.2);
    if (run == 2) return Fail(ErrorCode::kTargetFailed, "POST /api/backtest answered 500");
    return WorkloadRunInfo{};
  });
  GateResult r = RunGate(Config(), target, workload, nullptr, clock_, proc_);
  EXPECT_EQ(r.exit_code, kExitTargetFailed);
  EXPECT_THAT(r.error, HasSubstr("run 2"));
  EXPECT_THAT(r.error, HasSubstr("answered 500"));
}

}  // namespace
}  // namespace leakgate::harness
