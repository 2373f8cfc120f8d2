// Each seeded fault of the backtest service, measured from outside the server process: open fds and
// sockets (resolved through /proc/PID/fd and /proc/PID/net/tcp), threads by name
// (/proc/PID/task/*/comm), per-thread CPU (/proc/PID/task/*/schedstat), peak RSS (VmHWM), and the
// exact heap in use that the server reads from tcmalloc and shows in /metrics. Without faults, runs
// after the first leave all of these where they were.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <thread>

#include "engine/faults.h"
#include "proc_probe.h"
#include "server_process.h"

namespace leakgate::engine::testing {
namespace {

using nlohmann::json;

constexpr int64_t kDefaultBars = 20000;  // bars of the default request (symbol only)
constexpr int64_t kKlineBytes = 56;      // sizeof(Kline): 8-byte timestamp and six doubles
constexpr int64_t kWindowsPerRun = kDefaultBars - 50;  // the engine decides from bar 50 on

// A backtest_server with some faults, observed from outside.
class ObservedServer {
 public:
  explicit ObservedServer(const std::string& faults, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--db", dir_.File("backtest.db"), "--faults", faults};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = ServerProcess::Start(args, dir_.File("stderr.log"), &error_);
    if (server_ == nullptr) return;
    const HttpReply health = HttpGet(server_->port(), "/healthz");
    const std::string url = health.json.value("exchange_url", "");
    exchange_port_ = std::stoi(url.substr(url.rfind(':') + 1));
  }

  bool started() const { return server_ != nullptr; }
  const std::string& error() const { return error_; }
  pid_t pid() const { return server_->pid(); }
  int port() const { return server_->port(); }
  ServerProcess& process() { return *server_; }

  // Runs one default backtest (or `request`) and returns its final status.
  std::string Run(const json& request = {{"symbol", "BTCUSDT"}}) {
    const json session = RunBacktest(port(), request);
    last_error_ = session.value("error", "");
    return session.value("status", "no answer: " + session.dump());
  }
  const std::string& last_error() const { return last_error_; }

  // Notes the process's figures under `label`; Report() hands all notes to the test's XML output
  // (--gtest_output=xml) as the property "figures".
  void Note(const std::string& label) {
    const ResourceCount count = Resources();
    const auto heap = HeapBytes();
    notes_ += label + ": " + Describe(count) +
              " exchange_client_sockets=" + std::to_string(ExchangeClientSockets()) +
              " heap_bytes=" + (heap ? std::to_string(*heap) : std::string("n/a")) + "; ";
  }
  void Note(const std::string& label, double idle_cpu_pct) {
    notes_ += label + ": idle_cpu_pct=" + std::to_string(idle_cpu_pct) + "; ";
  }
  void Report() const { ::testing::Test::RecordProperty("figures", notes_); }

  ResourceCount Resources() const { return SettledResources(pid()); }
  int ExchangeClientSockets() const { return ClientSocketsTo(pid(), exchange_port_); }
  std::optional<double> Metric(const std::string& series) const {
    return ServerMetric(port(), series);
  }
  std::optional<int64_t> HeapBytes() const {
    const auto value = Metric("backtest_heap_allocated_bytes");
    if (!value) return std::nullopt;
    return static_cast<int64_t>(*value);
  }

 private:
  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::string error_;
  std::string last_error_;
  std::string notes_;
  int exchange_port_ = 0;
};

TEST(FaultSetTest, ParsesNoneAllAndListsAndNamesTheKnownFaultsOnError) {
  EXPECT_TRUE(FaultSet::Parse("none")->empty());
  EXPECT_EQ(*FaultSet::Parse("all"), FaultSet::All());
  const Result<FaultSet> two = FaultSet::Parse("loop-retain, singleton");
  ASSERT_TRUE(two.has_value()) << two.error().message;
  EXPECT_TRUE(two->Has(Fault::kSingleton));
  EXPECT_TRUE(two->Has(Fault::kLoopRetain));
  EXPECT_FALSE(two->Has(Fault::kNoCleanup));
  EXPECT_EQ(two->ToString(), "singleton,loop-retain");
  for (FaultSet set : {FaultSet(), FaultSet::All(), *two}) {
    EXPECT_EQ(*FaultSet::Parse(set.ToString()), set) << set.ToString();
  }
  std::string every_name;
  for (Fault fault : kAllFaults)
    every_name += (every_name.empty() ? "" : ",") + std::string(FaultName(fault));
  EXPECT_EQ(*FaultSet::Parse(every_name), FaultSet::All());

  for (const char* bad : {"", "singleton,,loop-retain", "singleton,", "leaky", "None"}) {
    const Result<FaultSet> parsed = FaultSet::Parse(bad);
    ASSERT_FALSE(parsed.has_value()) << "'" << bad << "' was accepted";
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
  }
  const std::string message = FaultSet::Parse("singleton,leaky").error().message;
  EXPECT_NE(message.find("'leaky'"), std::string::npos) << message;
  for (Fault fault : kAllFaults) {
    EXPECT_NE(message.find(FaultName(fault)), std::string::npos) << message;
  }
}

#define ASSERT_STARTED(server) ASSERT_TRUE((server).started()) << (server).error()

// GCC and Clang define __SANITIZE_ADDRESS__ under -fsanitize=address; the server under test is
// built with the same flags as this test.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizerBuild = true;
#else
constexpr bool kAddressSanitizerBuild = false;
#endif

constexpr const char* kNoHeapReason =
    "/metrics has no backtest_heap_allocated_bytes: the server does not run on tcmalloc (sanitizer "
    "build or LEAKGATE_USE_TCMALLOC=OFF)";

TEST(ServiceFaultsTest, WithoutFaultsRunsAfterTheFirstLeaveNothingBehind) {
  ObservedServer server("none");
  ASSERT_STARTED(server);
  server.Note("start");
  ASSERT_EQ(server.Run(), "done") << server.last_error();
  const ResourceCount reference = server.Resources();
  const ProcessFds reference_fds = ReadFds(server.pid());
  server.Note("run 1");
  const std::optional<int64_t> heap_after_first = server.HeapBytes();
  EXPECT_EQ(reference.heartbeat_threads, 0);
  EXPECT_EQ(server.ExchangeClientSockets(), 0);

  for (int run = 2; run <= 5; ++run) {
    ASSERT_EQ(server.Run(), "done") << server.last_error();
    // Sockets the peer closed at the end of a run may take a moment to go: wait for the counts to
    // come back, and fail if they do not.
    const bool back =
        WaitUntil([&] { return CountResources(server.pid()) == reference; }, Millis(3000));
    EXPECT_TRUE(back) << "after run " << run << ": " << Describe(CountResources(server.pid()))
                      << ", after run 1: " << Describe(reference);
    EXPECT_EQ(server.ExchangeClientSockets(), 0) << "after run " << run;
    server.Note("run " + std::to_string(run));
  }
  // The same files are open (sockets compared by count above: the inodes of a listening socket
  // stay, those of accepted connections change).
  std::multiset<std::string> files_now;
  std::multiset<std::string> files_then;
  for (const std::string& target : ReadFds(server.pid()).targets) {
    if (target.rfind("socket:", 0) != 0) files_now.insert(target);
  }
  for (const std::string& target : reference_fds.targets) {
    if (target.rfind("socket:", 0) != 0) files_then.insert(target);
  }
  EXPECT_EQ(files_now, files_then);

  const IdleCpu idle = MeasureCpu(server.pid(), Millis(2000));
  server.Note("after run 5", idle.total_pct);
  server.Report();
  EXPECT_LT(idle.total_pct, 1.0) << "idle CPU after five runs without faults";

  if (!heap_after_first) GTEST_SKIP() << kNoHeapReason;
  const int64_t growth = *server.HeapBytes() - *heap_after_first;
  RecordProperty("heap_growth_runs_2_to_5_bytes", std::to_string(growth));
  EXPECT_LE(std::abs(growth), 64 * 1024) << "heap after run 5 minus heap after run 1";
}

TEST(ServiceFaultsTest, SingletonKeepsEverySessionsKlinesAndResults) {
  ObservedServer server("singleton");
  ASSERT_STARTED(server);
  server.Note("start");
  ASSERT_EQ(server.Run(), "done") << server.last_error();
  server.Note("run 1");
  const ResourceCount reference = server.Resources();
  std::optional<int64_t> heap = server.HeapBytes();
  for (int run = 2; run <= 4; ++run) {
    ASSERT_EQ(server.Run(), "done") << server.last_error();
    EXPECT_EQ(server.Metric("backtest_engine_sessions_kept"), run);
    EXPECT_EQ(server.Metric("backtest_engine_klines_kept"), run * kDefaultBars);
    server.Note("run " + std::to_string(run));
    // The singleton keeps data, not connections or threads.
    EXPECT_EQ(server.Resources(), reference) << "after run " << run;
    if (heap) {
      const int64_t now = *server.HeapBytes();
      EXPECT_GE(now - *heap, kDefaultBars * kKlineBytes) << "heap growth of run " << run;
      heap = now;
    }
  }
  server.Report();
  if (!heap) GTEST_SKIP() << kNoHeapReason;
}

TEST(ServiceFaultsTest, NoCleanupKeepsEveryTaskAndItsOpenConnectionAlsoWhenItFails) {
  ObservedServer server("no-cleanup");
  ASSERT_STARTED(server);
  server.Note("start");
  const ResourceCount start = server.Resources();
  std::optional<int64_t> heap = server.HeapBytes();
  for (int run = 1; run <= 3; ++run) {
    ASSERT_EQ(server.Run(), "done") << server.last_error();
    const ResourceCount now = server.Resources();
    EXPECT_EQ(server.Metric("backtest_task_registry_entries"), run);
    server.Note("run " + std::to_string(run));
    EXPECT_EQ(server.ExchangeClientSockets(), run) << "exchange connections still open";
    EXPECT_EQ(now.heartbeat_threads, run);
    EXPECT_GE(now.sockets - start.sockets, run);
    if (heap) {
      const int64_t bytes = *server.HeapBytes();
      EXPECT_GE(bytes - *heap, kDefaultBars * kKlineBytes) << "heap growth of run " << run;
      heap = bytes;
    }
  }
  // A failing task (the exchange knows no lower-case symbols) is not cleaned up either.
  ASSERT_EQ(server.Run({{"symbol", "lowercase"}}), "failed");
  EXPECT_NE(server.last_error().find("fetching klines failed"), std::string::npos)
      << server.last_error();
  EXPECT_EQ(server.Metric("backtest_task_registry_entries"), 4);
  server.Note("failed run 4");
  server.Report();
  EXPECT_EQ(server.Resources().heartbeat_threads, 4);
  EXPECT_EQ(server.ExchangeClientSockets(), 4);
  if (!heap) GTEST_SKIP() << kNoHeapReason;
}

TEST(ServiceFaultsTest, UnclosedConnectionLeavesASocketAndAHeartbeatPerRunAndIdleCpuClimbs) {
  ObservedServer server("unclosed-connection");
  ASSERT_STARTED(server);
  const ResourceCount start = server.Resources();
  const IdleCpu baseline = MeasureCpu(server.pid());
  server.Note("start");
  server.Note("start", baseline.total_pct);
  std::vector<double> idle_pct;
  for (int run = 1; run <= 3; ++run) {
    ASSERT_EQ(server.Run(), "done") << server.last_error();
    const ResourceCount now = server.Resources();
    EXPECT_EQ(now.heartbeat_threads, run) << Describe(now);
    EXPECT_EQ(now.threads - start.threads, run) << Describe(now) << " vs " << Describe(start);
    EXPECT_EQ(server.ExchangeClientSockets(), run);
    EXPECT_GE(now.sockets - start.sockets, run) << Describe(now) << " vs " << Describe(start);
    EXPECT_EQ(server.Metric("backtest_exchange_client_cache_entries"), run);
    server.Note("run " + std::to_string(run));
    if (run != 2) {
      const IdleCpu idle = MeasureCpu(server.pid());
      idle_pct.push_back(idle.total_pct);
      server.Note("run " + std::to_string(run), idle.total_pct);
      const auto heartbeat = idle.by_name.find("exch-heartbeat");
      ASSERT_NE(heartbeat, idle.by_name.end());
      EXPECT_GT(heartbeat->second, 0.0) << "the leaked heartbeats use CPU";
    }
  }
  server.Report();
  EXPECT_GE(idle_pct[0] - baseline.total_pct, 1.0)
      << "idle CPU before any run " << baseline.total_pct << " %, after one run " << idle_pct[0]
      << " %";
  EXPECT_GE(idle_pct[1] - baseline.total_pct, 3.0)
      << "idle CPU before any run " << baseline.total_pct << " %, after three runs " << idle_pct[1]
      << " %";
  EXPECT_GT(idle_pct[1], idle_pct[0]);
}

TEST(ServiceFaultsTest, LeakedConnectionsCostCpuButDoNotStarveLaterRuns) {
  // The in-process exchange serves each open connection on a thread of its own: a service that
  // leaks connections must still have threads left for the next run's fetch.
  ObservedServer server("unclosed-connection");
  ASSERT_STARTED(server);
  const json short_run = {
      {"symbol", "BTCUSDT"}, {"timeframe", "1D"}, {"start", "2020-01-01"}, {"end", "2020-06-01"}};
  constexpr int kRuns = 24;
  for (int run = 1; run <= kRuns; ++run) {
    ASSERT_EQ(server.Run(short_run), "done") << "run " << run << ": " << server.last_error();
  }
  EXPECT_EQ(server.Resources().heartbeat_threads, kRuns);
  EXPECT_EQ(server.ExchangeClientSockets(), kRuns);
}

TEST(ServiceFaultsTest, LoopRetainKeepsEveryWindowAndItsStrategy) {
  ObservedServer server("loop-retain");
  ASSERT_STARTED(server);
  server.Note("start");
  ASSERT_EQ(server.Run(), "done") << server.last_error();
  server.Note("run 1");
  const ResourceCount reference = server.Resources();
  std::optional<int64_t> heap = server.HeapBytes();
  for (int run = 2; run <= 3; ++run) {
    ASSERT_EQ(server.Run(), "done") << server.last_error();
    EXPECT_EQ(server.Metric("backtest_windows_retained"), run * kWindowsPerRun);
    server.Note("run " + std::to_string(run));
    EXPECT_EQ(server.Resources(), reference) << "after run " << run;
    if (heap) {
      const int64_t now = *server.HeapBytes();
      // Each cycle holds at least a window (a span and a shared_ptr) and a strategy (a vtable and a
      // shared_ptr), each with its control block.
      EXPECT_GE(now - *heap, kWindowsPerRun * 64) << "heap growth of run " << run;
      heap = now;
    }
  }
  server.Report();
  if (!heap) GTEST_SKIP() << kNoHeapReason;
}

TEST(ServiceFaultsTest, UnbatchedKlinesPeakRssIsAtLeastThreeTimesTheBatchedBuild) {
  if (kAddressSanitizerBuild) {
    GTEST_SKIP() << "under AddressSanitizer, freed memory sits in its quarantine and shadow memory "
                    "doubles every page, so peak RSS no longer measures the program's own peak";
  }
  // 200,000 one-minute bars.
  const json request = {{"symbol", "BTCUSDT"},
                        {"timeframe", "1m"},
                        {"start", 1704067200000LL},
                        {"end", 1704067200000LL + 200000LL * 60 * 1000}};
  ObservedServer batched("none");
  ObservedServer unbatched("unbatched-klines");
  ASSERT_STARTED(batched);
  ASSERT_STARTED(unbatched);
  auto peak_of_one_run = [&request](ObservedServer& server, uint64_t& peak, std::string& status) {
    ResetPeakRss(server.pid());
    status = server.Run(request);
    peak = StatusBytes(server.pid(), "VmHWM");
  };
  uint64_t batched_peak = 0;
  uint64_t unbatched_peak = 0;
  std::string batched_status;
  std::string unbatched_status;
  std::thread other([&] { peak_of_one_run(batched, batched_peak, batched_status); });
  peak_of_one_run(unbatched, unbatched_peak, unbatched_status);
  other.join();
  ASSERT_EQ(batched_status, "done") << batched.last_error();
  ASSERT_EQ(unbatched_status, "done") << unbatched.last_error();
  RecordProperty("peak_rss_batched_bytes", std::to_string(batched_peak));
  RecordProperty("peak_rss_unbatched_bytes", std::to_string(unbatched_peak));
  EXPECT_GE(unbatched_peak, 3 * batched_peak)
      << "VmHWM of a 200,000-kline run: batched " << batched_peak << " B, unbatched "
      << unbatched_peak << " B";
}

TEST(ServiceFaultsTest, AllFaultsTogetherLeakDataConnectionsAndThreads) {
  ObservedServer server("all");
  ASSERT_STARTED(server);
  server.Note("start");
  const ResourceCount start = server.Resources();
  std::optional<int64_t> heap = server.HeapBytes();
  for (int run = 1; run <= 2; ++run) {
    ASSERT_EQ(server.Run(), "done") << server.last_error();
    const ResourceCount now = server.Resources();
    EXPECT_EQ(now.heartbeat_threads, run) << Describe(now);
    EXPECT_EQ(server.ExchangeClientSockets(), run);
    EXPECT_GE(now.fds - start.fds, run);
    server.Note("run " + std::to_string(run));
    if (heap) {
      const int64_t bytes = *server.HeapBytes();
      EXPECT_GE(bytes - *heap, kDefaultBars * kKlineBytes + kWindowsPerRun * 64)
          << "heap growth of run " << run;
      heap = bytes;
    }
  }
  server.Report();
  if (!heap) GTEST_SKIP() << kNoHeapReason;
}

}  // namespace
}  // namespace leakgate::engine::testing
