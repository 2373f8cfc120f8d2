// result.json from the writing side: GateResultToJson, fed GateResults built by hand with fixed
// numbers, compared byte for byte (dump(2) plus a newline, as result.json is written) with golden
// files under tests/harness/testdata/expected/result_writer.<case>.json.
//
// Why: the writer had no test of its own (the CLI and runner tests look at a few fields of real
// runs, whose numbers change every time), and the reports read every field it writes. The golden
// files were written before the harness was arranged in stages and are unchanged since: a change
// that alters one byte of result.json shows here. Three cases cover every branch of
// the writer: a failing gate carrying every optional field (a warm-up and three judged runs,
// cooldown profiles, checks of each verdict, growth of each kind, heap profiles, a target exit,
// non-finite numbers), a minimal passing gate (every optional unset), and an "error" gate whose
// baseline was never taken (no analysis). The scenario and environment are fixed JSON:
// EnvironmentJson() reads the host, so it is not used here.
//
// LEAKGATE_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing (as
// tests/reports/golden.h); do that only for an intended change of result.json, and review the diff.
#include "harness/gate/result_writer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "harness/analyze/analysis.h"
#include "harness/analyze/attribution.h"
#include "harness/drive/target.h"
#include "harness/gate/runner.h"
#include "harness/profile/heap_sites.h"
#include "harness/sample/process_sampler.h"

namespace leakgate::harness {
namespace {

using nlohmann::json;

constexpr int64_t kMiB64 = 1024 * 1024;

// ---- golden files -------------------------------------------------------------------------------

const std::filesystem::path kExpectedDir =
    std::filesystem::path(LEAKGATE_SOURCE_DIR) / "tests/harness/testdata/expected";

bool UpdateGolden() {
  const char* update = std::getenv("LEAKGATE_UPDATE_GOLDEN");
  return update != nullptr && std::string(update) == "1";
}

std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Compares `actual` with testdata/expected/`name`, or rewrites it with LEAKGATE_UPDATE_GOLDEN=1.
void ExpectGolden(const std::string& actual, const std::string& name) {
  const std::filesystem::path expected = kExpectedDir / name;
  if (UpdateGolden()) {
    std::ofstream out(expected, std::ios::binary);
    out << actual;
    ASSERT_TRUE(out.good()) << "cannot write " << expected;
    return;
  }
  ASSERT_TRUE(std::filesystem::exists(expected))
      << expected << " is missing; run with LEAKGATE_UPDATE_GOLDEN=1 to write it";
  EXPECT_EQ(actual, ReadText(expected))
      << "GateResultToJson output differs from " << expected
      << "; if the change is intended, run with LEAKGATE_UPDATE_GOLDEN=1 and review the diff";
}

// What `leakgate run` writes to result.json (leakgate_main.cc).
std::string ResultText(const GateResult& result, const json& scenario, const json& environment) {
  return GateResultToJson(result, scenario, environment).dump(2) + "\n";
}

// ---- fixed inputs -------------------------------------------------------------------------------

json Scenario() {
  return json::parse(R"({
    "name": "backtest_cache",
    "description": "the backtest server's cache under repeated backtests",
    "target": {
      "argv": ["bin/backtest_server", "--port", "${PORT}"],
      "ready": {"http_get": "http://127.0.0.1:${PORT}/healthz"},
      "heap": "agent"
    },
    "workload": {"http": {"url": "http://127.0.0.1:${PORT}/backtest", "requests": 200,
                          "concurrency": 4}},
    "runs": 3,
    "warmup_runs": 1,
    "max_runs": 12,
    "thresholds": {"idle_cpu_pct": 2.0, "rss_per_run": 262144, "fds": 0}
  })");
}

json Environment() {
  return json::parse(R"({
    "hostname": "ci-runner-7",
    "kernel": "Linux 6.1.0-18-amd64",
    "machine": "x86_64",
    "cpus": 2,
    "memory_bytes": 8337227776,
    "clk_tck": 100,
    "leakgate_version": "0.9.0",
    "started_at": "2024-03-01T12:00:00Z",
    "ci": true
  })");
}

// ---- case (a): a failing gate with every field --------------------------------------------------

// A snapshot with every optional set. `k` (0: baseline, 1..4: after run k) makes the numbers grow.
Snapshot FullSnapshot(int k) {
  Snapshot s;
  s.t = 2.5 + 4.0 * k;
  s.cpu_pct = 0.5 + 0.25 * k;
  s.rss_bytes = 40 * kMiB64 + k * 512 * 1024;
  s.rss_anon_bytes = 24 * kMiB64 + k * 512 * 1024;
  s.hwm_bytes = 42 * kMiB64 + k * kMiB64;
  s.pss_bytes = 38 * kMiB64 + k * 256 * 1024;
  s.heap_bytes = 8 * kMiB64 + k * 65536;
  s.heap_cached_bytes = 2 * kMiB64;
  s.cgroup_memory_bytes = 50 * kMiB64 + k * kMiB64;
  s.fds = 5 + 2 * k;
  s.sockets = 2 + k;
  s.threads = 4 + k;
  s.fd_targets = {"/dev/null", "/tmp/backtest.db", "pipe:[4101]", "socket:[9001]", "socket:[9002]"};
  for (int i = 0; i < k; ++i) {
    s.fd_targets.push_back("/tmp/backtest.db-wal");
    s.fd_targets.push_back("socket:[" + std::to_string(9100 + i) + "]");
  }
  s.thread_names = {"backtest_server", "http-worker", "http-worker", "metrics"};
  for (int i = 0; i < k; ++i) s.thread_names.push_back("heartbeat");
  s.busiest_threads = {
      {.tid = 4243, .name = "http-worker", .cpu_seconds = 0.02, .cpu_percent = 0.5},
      {.tid = 4250, .name = "metrics", .cpu_seconds = 0.01, .cpu_percent = 0.25}};
  // Sockets and other fds: only the sockets' descriptions are written (socket_descriptions).
  s.resolved_fds = {
      {.site = "/dev/null", .description = "/dev/null", .socket = false},
      {.site = "/tmp/backtest.db", .description = "/tmp/backtest.db", .socket = false},
      {.site = "pipe", .description = "pipe:[4101]", .socket = false},
      {.site = "tcp listening on 127.0.0.1:41234",
       .description = "tcp 127.0.0.1:41234 LISTEN",
       .socket = true},
      {.site = "tcp -> 127.0.0.1:9100",
       .description = "tcp 127.0.0.1:50000 -> 127.0.0.1:9100 ESTABLISHED",
       .socket = true},
  };
  for (int i = 0; i < k; ++i) {
    s.resolved_fds.push_back({.site = "tcp -> 127.0.0.1:5432",
                              .description = "tcp 127.0.0.1:" + std::to_string(51000 + i) +
                                             " -> 127.0.0.1:5432 ESTABLISHED",
                              .socket = true});
    s.resolved_fds.push_back(
        {.site = "/tmp/backtest.db-wal", .description = "/tmp/backtest.db-wal", .socket = false});
  }
  // Sorted as the runner keeps them.
  std::sort(s.fd_targets.begin(), s.fd_targets.end());
  std::sort(s.thread_names.begin(), s.thread_names.end());
  std::sort(s.resolved_fds.begin(), s.resolved_fds.end(),
            [](const ResolvedFd& a, const ResolvedFd& b) {
              return std::tie(a.site, a.description) < std::tie(b.site, b.description);
            });
  s.idle_threads = {{.name = "http-worker", .threads = 2, .cpu_pct = 0.5},
                    {.name = "metrics", .threads = 1, .cpu_pct = 0.25}};
  s.heap_profile = "out/heap/target." + std::to_string(k) + ".heap";
  return s;
}

RunRecord FullRun(int index) {
  RunRecord run;
  run.index = index;
  run.warmup = index == 1;
  run.start_t = 1.5 + 4.0 * index;
  run.duration_s = 1.25;
  run.cooldown_s = index == 3 ? 6.0 : 1.75;
  run.cooldown_settled = index != 3;  // run 3's cooldown ended at max_s
  run.peak_cpu_pct = 180.5 + index;
  run.peak_rss_bytes = 48 * kMiB64 + index * kMiB64;
  run.requests = 200;
  run.workload_description = "200 GET http://127.0.0.1:41234/backtest, 4 at a time";
  run.after = FullSnapshot(index);
  // The warm-up has no cooldown profile; run 3's profile has no samples (no functions).
  if (index >= 2) {
    run.cooldown_profile = "out/cpu/target." + std::to_string(index - 1);
    run.cooldown_profile_samples = index == 3 ? 0 : 40 * index;
    if (index != 3) {
      run.cooldown_top_functions = {
          {.function = "leakgate::backtest::Heartbeat::Tick()",
           .self_samples = 12 * index,
           .total_samples = 20 * index,
           .self_pct = 30.0,
           .total_pct = 50.0},
          {.function = "__memcpy_avx_unaligned_erms",
           .self_samples = 4 * index,
           .total_samples = 4 * index,
           .self_pct = 10.0,
           .total_pct = 10.0},
      };
    }
  }
  return run;
}

Analysis FailingAnalysis() {
  Analysis a;
  a.verdict = Verdict::kFail;
  a.needs_more_runs = false;
  a.judged_runs = 3;
  a.checks = {
      {.name = "idle_cpu_returns",
       .metric = "cpu_pct",
       .verdict = Verdict::kPass,
       .observed = 0.25,
       .threshold = 2.0,
       .unit = "%",
       .detail = "idle CPU after the last run is 0.25 points above the baseline"},
      {.name = "rss_growth_per_run",
       .metric = "rss_bytes",
       .verdict = Verdict::kFail,
       .observed = 524288.0,
       .threshold = 262144.0,
       .unit = "B/run",
       .detail = "RSS grew 512 KiB per run (range 512 KiB to 512 KiB)"},
      // A figure that could not be computed is non-finite: written as null.
      {.name = "rss_growth_total",
       .metric = "rss_bytes",
       .verdict = Verdict::kInconclusive,
       .observed = std::numeric_limits<double>::quiet_NaN(),
       .threshold = 2097152.0,
       .unit = "B",
       .detail = "too few runs to reach the floor"},
      {.name = "heap_growth_per_run",
       .metric = "heap_bytes",
       .verdict = Verdict::kFail,
       .observed = 65536.0,
       .threshold = 65536.0,
       .unit = "B/run",
       .detail = "the heap rose in every judged run"},
      {.name = "fds_stable",
       .metric = "fds",
       .verdict = Verdict::kFail,
       .observed = 6.0,
       .threshold = 0.0,
       .unit = "fds",
       .detail = "6 new fds: /tmp/backtest.db-wal (3), tcp -> 127.0.0.1:5432 (3)"},
      {.name = "sockets_stable",
       .metric = "sockets",
       .verdict = Verdict::kFail,
       .observed = 3.0,
       .threshold = 0.0,
       .unit = "sockets",
       .detail = "3 new sockets"},
      {.name = "threads_stable",
       .metric = "threads",
       .verdict = Verdict::kFail,
       .observed = 3.0,
       .threshold = 0.0,
       .unit = "threads",
       .detail = "3 new threads: heartbeat (3)"},
      // Nothing to measure and no threshold: both null.
      {.name = "peak_rss",
       .metric = "peak_rss_bytes",
       .verdict = Verdict::kInconclusive,
       .observed = std::nullopt,
       .threshold = std::nullopt,
       .unit = "B",
       .detail = "no peak RSS was measured"},
  };
  a.growth = {
      {.kind = "heap",
       .site = "leakgate::backtest::Cache::Insert (cache.cc)",
       .per_run = 65536.0,
       .total = 196608.0,
       .id = "3f2a9c41d0b7",
       .location = "server/cache.cc:88",
       .stack = {"leakgate::backtest::Cache::Insert(std::string const&) server/cache.cc:88",
                 "leakgate::backtest::Engine::Run() server/engine.cc:140",
                 "main server/main.cc:31"},
       .examples = {},
       .suppressed = ""},
      {.kind = "heap",
       .site = "leakgate::SymbolCache::Load (symbols.cc)",
       .per_run = 16384.5,
       .total = 49153.5,
       .id = "a01b2c3d4e5f",
       .location = "server/symbols.cc:12",
       .stack = {"leakgate::SymbolCache::Load() server/symbols.cc:12"},
       .examples = {},
       .suppressed = "filled once on first use"},
      {.kind = "thread",
       .site = "heartbeat",
       .per_run = 1.0,
       .total = 3.0,
       .id = "",
       .location = "",
       .stack = {"pthread_create", "leakgate::backtest::Heartbeat::Start() server/heartbeat.cc:20"},
       .examples = {},
       .suppressed = ""},
      {.kind = "socket",
       .site = "tcp -> 127.0.0.1:5432",
       .per_run = 1.0,
       .total = 3.0,
       .id = "",
       .location = "",
       .stack = {},
       .examples = {"tcp 127.0.0.1:51000 -> 127.0.0.1:5432 ESTABLISHED",
                    "tcp 127.0.0.1:51001 -> 127.0.0.1:5432 ESTABLISHED"},
       .suppressed = ""},
      {.kind = "socket",
       .site = "tcp -> 127.0.0.1:9100",
       .per_run = 0.5,
       .total = 1.0,
       .id = "",
       .location = "",
       .stack = {},
       .examples = {"tcp 127.0.0.1:50001 -> 127.0.0.1:9100 ESTABLISHED"},
       .suppressed = "local metrics exporter"},
      {.kind = "fd",
       .site = "/tmp/backtest.db-wal",
       .per_run = 1.0,
       .total = 3.0,
       .id = "",
       .location = "",
       .stack = {},
       .examples = {"/tmp/backtest.db-wal"},
       .suppressed = ""},
  };
  a.notes = {"peak_rss: no threshold set", "heap figures from the agent's exact statistics"};
  a.summary = "fail: rss_growth_per_run, heap_growth_per_run, fds_stable, sockets_stable, "
              "threads_stable";
  return a;
}

GateResult FailingGate() {
  GateResult r;
  r.verdict = Verdict::kFail;
  r.exit_code = kExitDrift;
  r.baseline_taken = true;
  r.baseline = FullSnapshot(0);
  for (int i = 1; i <= 4; ++i) r.runs.push_back(FullRun(i));
  r.analysis = FailingAnalysis();
  r.timeline = {
      {.t = 0.5, .phase = "baseline", .run = 0, .cpu_pct = 0.5, .rss_bytes = 40 * kMiB64,
       .heap_bytes = 8 * kMiB64, .fds = 5, .threads = 4, .sockets = 2},
      // The first point of a run: its CPU is non-finite (written as null).
      {.t = 5.5, .phase = "run", .run = 1,
       .cpu_pct = std::numeric_limits<double>::infinity(), .rss_bytes = 44 * kMiB64,
       .heap_bytes = std::nullopt, .fds = 9, .threads = 6, .sockets = 5},
      {.t = 6.0, .phase = "run", .run = 1, .cpu_pct = 175.25, .rss_bytes = 46 * kMiB64,
       .heap_bytes = std::nullopt, .fds = 9, .threads = 6, .sockets = 5},
      {.t = 7.5, .phase = "cooldown", .run = 1, .cpu_pct = 1.5,
       .rss_bytes = 40 * kMiB64 + 512 * 1024, .heap_bytes = 8 * kMiB64 + 65536, .fds = 7,
       .threads = 5, .sockets = 3},
      {.t = 9.5, .phase = "run", .run = 2, .cpu_pct = 181.0, .rss_bytes = 47 * kMiB64,
       .heap_bytes = std::nullopt, .fds = 11, .threads = 7, .sockets = 6},
      {.t = 11.5, .phase = "cooldown", .run = 2, .cpu_pct = 1.0, .rss_bytes = 41 * kMiB64,
       .heap_bytes = 8 * kMiB64 + 131072, .fds = 9, .threads = 6, .sockets = 4},
  };
  r.warnings = {"the cooldown of run 3 did not settle within 6 s",
                "the CPU profile of run 3 has no samples"};
  r.target_description = "backtest_server (pid 4242)";
  r.workload_description = "200 GET http://127.0.0.1:41234/backtest, 4 at a time";
  r.heap_source = "agent";
  r.peak_reset_supported = true;
  r.target_exit = ExitInfo{.exited = false,
                           .code = 0,
                           .signal = 9,
                           .core_dumped = false,
                           .exited_before_stop = false,
                           .killed_after_timeout = true,
                           .description = "killed by SIGKILL (Killed) after 5 s"};
  r.wall_s = 27.75;
  r.cooldown_total_s = 11.25;
  r.baseline_settle_s = 0.5;

  HeapProfileSummary h;
  h.profiler = "agent";
  h.sampled = true;
  h.sample_period = 524288;
  h.profiles = {"out/heap/target.1.heap", "out/heap/target.2.heap", "out/heap/target.3.heap",
                "out/heap/target.4.heap"};
  h.notes = {"out/heap/target.3.heap is truncated (64 KiB read); its sites are used as read"};
  h.peak_run = 4;
  h.peak_bytes = 12582912.5;
  // A site with file and line, one with a file and no line, one without a file (no location).
  SiteUsage with_line;
  with_line.site.signature = "leakgate::backtest::Cache::Insert (cache.cc)";
  with_line.site.id = "3f2a9c41d0b7";
  with_line.site.function = "leakgate::backtest::Cache::Insert(std::string const&)";
  with_line.site.file = "server/cache.cc";
  with_line.site.line = 88;
  with_line.site.module = "bin/backtest_server";
  with_line.site.stack = {
      "leakgate::backtest::Cache::Insert(std::string const&) server/cache.cc:88",
      "main server/main.cc:31"};
  with_line.inuse_bytes = 6291456.0;
  with_line.inuse_objects = 1536.0;
  with_line.stacks = 2;
  SiteUsage without_line;
  without_line.site.signature = "sqlite3MemMalloc (sqlite3.c)";
  without_line.site.id = "0c1d2e3f4a5b";
  without_line.site.function = "sqlite3MemMalloc";
  without_line.site.file = "sqlite3.c";
  without_line.site.line = 0;
  without_line.site.module = "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0";
  without_line.site.stack = {"sqlite3MemMalloc sqlite3.c"};
  without_line.site.called_from = "leakgate::backtest::Db::Open() server/db.cc:17";
  without_line.inuse_bytes = 2097152.25;
  without_line.inuse_objects = 64.5;
  without_line.stacks = 1;
  SiteUsage no_file;
  no_file.site.signature = "libfoo.so+0x1a2b";
  no_file.site.id = "ffeeddccbbaa";
  no_file.site.module = "/opt/lib/libfoo.so";
  no_file.site.stack = {"libfoo.so+0x1a2b", "libfoo.so+0x3c4d"};
  no_file.inuse_bytes = 1048576.0;
  no_file.inuse_objects = 8.0;
  no_file.stacks = 3;
  h.peak_sites = {with_line, without_line, no_file};
  r.heap_profiles = h;
  return r;
}

// ---- case (b): a minimal passing gate -----------------------------------------------------------

// Only the required numbers; every optional unset, every list empty.
Snapshot PlainSnapshot(int k) {
  Snapshot s;
  s.t = 1.0 + 2.0 * k;
  s.cpu_pct = 0.25;
  s.rss_bytes = 20 * kMiB64;
  s.rss_anon_bytes = 12 * kMiB64;
  s.hwm_bytes = 21 * kMiB64;
  s.fds = 4;
  s.sockets = 1;
  s.threads = 2;
  return s;
}

GateResult PassingGate() {
  GateResult r;
  r.verdict = Verdict::kPass;
  r.exit_code = kExitPass;
  r.baseline_taken = true;
  r.baseline = PlainSnapshot(0);
  for (int i = 1; i <= 3; ++i) {
    RunRecord run;
    run.index = i;
    run.warmup = false;
    run.start_t = 2.0 * i;
    run.duration_s = 0.5;
    run.cooldown_s = 0.75;
    run.cooldown_settled = true;
    run.peak_cpu_pct = 95.0;
    run.peak_rss_bytes = 22 * kMiB64;
    run.requests = 10;
    run.workload_description = "sh -c 'true'";
    run.after = PlainSnapshot(i);
    r.runs.push_back(run);
  }
  Analysis a;
  a.verdict = Verdict::kPass;
  a.judged_runs = 3;
  a.checks = {{.name = "idle_cpu_returns",
               .metric = "cpu_pct",
               .verdict = Verdict::kPass,
               .observed = 0.0,
               .threshold = 2.0,
               .unit = "%",
               .detail = "idle CPU returned to the baseline"},
              {.name = "rss_growth_per_run",
               .metric = "rss_bytes",
               .verdict = Verdict::kPass,
               .observed = 0.0,
               .threshold = 262144.0,
               .unit = "B/run",
               .detail = "no judged run is above the reference"}};
  a.summary = "pass";
  r.analysis = a;
  r.target_description = "sleep (pid 100)";
  r.workload_description = "sh -c 'true'";
  r.heap_source = "none";
  r.peak_reset_supported = false;
  r.wall_s = 6.5;
  r.cooldown_total_s = 2.25;
  r.baseline_settle_s = 0.0;
  return r;
}

// ---- case (c): an error before the baseline -----------------------------------------------------

GateResult ErrorGate() {
  GateResult r;
  r.verdict = Verdict::kError;
  r.exit_code = kExitTargetFailed;
  r.error = "target backtest_server (pid 4242) exited with status 1 before the baseline; last "
            "lines of its stderr: cannot open /tmp/backtest.db: Permission denied";
  r.baseline_taken = false;
  // Numbers in a baseline that was not taken are not written: the baseline is null.
  r.baseline.rss_bytes = 1234;
  r.baseline.heap_bytes = 5678;
  r.timeline = {{.t = 0.25, .phase = "baseline", .run = 0, .cpu_pct = 12.5,
                 .rss_bytes = 10 * kMiB64, .heap_bytes = std::nullopt, .fds = 3, .threads = 1,
                 .sockets = 0}};
  r.warnings = {"the target ended during the settle before the baseline"};
  r.target_description = "backtest_server (pid 4242)";
  r.workload_description = "200 GET http://127.0.0.1:41234/backtest, 4 at a time";
  r.heap_source = "prometheus";
  r.peak_reset_supported = true;
  r.target_exit = ExitInfo{.exited = true,
                           .code = 1,
                           .signal = 0,
                           .core_dumped = false,
                           .exited_before_stop = true,
                           .killed_after_timeout = false,
                           .description = "exited with status 1"};
  r.wall_s = 1.25;
  r.cooldown_total_s = 0.0;
  r.baseline_settle_s = 0.75;
  return r;
}

// ---- tests --------------------------------------------------------------------------------------

TEST(ResultWriterTest, FailingGateWithEveryField) {
  const GateResult gate = FailingGate();
  const json doc = GateResultToJson(gate, Scenario(), Environment());
  // A few branches named here too, so a golden file rewritten by mistake does not hide them.
  EXPECT_EQ(doc["schema"], kResultSchema);
  EXPECT_EQ(doc["environment"]["heap_source"], "agent");
  EXPECT_EQ(doc["baseline"]["socket_descriptions"].size(), 2u);  // sockets only
  EXPECT_FALSE(doc["runs"][0].contains("cooldown_profile"));     // the warm-up has none
  EXPECT_TRUE(doc["runs"][1].contains("cooldown_profile"));
  EXPECT_TRUE(doc["checks"][2]["observed"].is_null());  // NaN
  EXPECT_TRUE(doc["timeline"][1]["cpu_pct"].is_null());  // infinity
  EXPECT_FALSE(doc["timeline"][1].contains("heap_bytes"));
  EXPECT_FALSE(doc["heap_profiles"]["peak_sites"][2].contains("location"));
  ExpectGolden(ResultText(gate, Scenario(), Environment()), "result_writer.fail.json");
}

TEST(ResultWriterTest, PassingMinimalGate) {
  const GateResult gate = PassingGate();
  const json doc = GateResultToJson(gate, Scenario(), Environment());
  EXPECT_FALSE(doc.contains("error"));
  EXPECT_FALSE(doc["target"].contains("exit"));
  EXPECT_FALSE(doc.contains("heap_profiles"));
  EXPECT_TRUE(doc["baseline"]["heap_bytes"].is_null());
  EXPECT_TRUE(doc["baseline"]["heap_profile"].is_null());
  ExpectGolden(ResultText(gate, Scenario(), Environment()), "result_writer.pass.json");
}

TEST(ResultWriterTest, ErrorGateWithoutBaseline) {
  const GateResult gate = ErrorGate();
  const json doc = GateResultToJson(gate, Scenario(), Environment());
  EXPECT_TRUE(doc["baseline"].is_null());
  EXPECT_FALSE(doc.contains("judged_runs"));
  EXPECT_FALSE(doc.contains("summary"));
  EXPECT_TRUE(doc["checks"].empty());
  EXPECT_TRUE(doc["growth"].empty());
  ExpectGolden(ResultText(gate, Scenario(), Environment()), "result_writer.error.json");
}

}  // namespace
}  // namespace leakgate::harness
