// The result model of a gate: what was measured at the baseline and after each run, the timeline,
// the decision and what was named. The run loop (runner.h) fills it, the writer (result_writer.h)
// turns it into result.json, the console and the reports read that; nothing here depends on how a
// gate runs. Plain values; thread-compatible.
#ifndef LEAKGATE_HARNESS_GATE_RESULT_H_
#define LEAKGATE_HARNESS_GATE_RESULT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result_names.h"
#include "harness/analyze/analysis.h"
#include "harness/analyze/attribution.h"
#include "harness/drive/target.h"
#include "harness/profile/cpu_profile.h"
#include "harness/profile/heap_attribution.h"
#include "harness/sample/sample.h"

namespace leakgate::harness {

// Exit codes of `leakgate run` (DESIGN.md).
inline constexpr int kExitPass = 0;
inline constexpr int kExitDrift = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitTargetFailed = 3;
inline constexpr int kExitInconclusive = 4;

// The state of the target at one point: the baseline, or after a run's cooldown.
struct Snapshot {
  double t = 0;                      // seconds since the gate started
  double cpu_pct = 0;                // the target's CPU over the measuring window, % of one core
  int64_t rss_bytes = 0;
  int64_t rss_anon_bytes = 0;
  int64_t hwm_bytes = 0;
  std::optional<int64_t> pss_bytes;
  std::optional<int64_t> heap_bytes;         // exact bytes in use, when the target has statistics
  std::optional<int64_t> heap_cached_bytes;  // allocator-cached bytes
  std::optional<int64_t> cgroup_memory_bytes;
  int64_t fds = 0;
  int64_t sockets = 0;
  int64_t threads = 0;
  std::vector<std::string> fd_targets;    // one per fd, sorted
  std::vector<std::string> thread_names;  // one per thread, sorted
  std::vector<ThreadCpu> busiest_threads; // threads using CPU over the window, busiest first (<= 5)
  // Each fd (descendants' included) resolved to what it points at, sorted by site and description:
  // sockets through the target's /proc/PID/net tables, read at this point only.
  std::vector<ResolvedFd> resolved_fds;
  // CPU over the window by thread name, threads using CPU only (GroupThreadCpu).
  std::vector<ThreadGroupCpu> idle_threads;
  // The heap profile written at this point (HeapSource::LastProfile); "" without one.
  std::string heap_profile;
};

struct RunRecord {
  int index = 0;  // 1-based
  bool warmup = false;
  double start_t = 0;  // seconds since the gate started
  double duration_s = 0;
  double cooldown_s = 0;
  bool cooldown_settled = false;   // false: ended at max_s
  double peak_cpu_pct = 0;         // highest CPU between two samples during the run
  int64_t peak_rss_bytes = 0;      // VmHWM over the run (since the reset), or the highest RSS seen
  int64_t requests = 0;
  std::string workload_description;
  Snapshot after;
  // With a CPU profile of the cooldowns: the profile file (gperftools format, readable by
  // google-pprof) and its busiest functions by self samples; empty when off or not written.
  std::string cooldown_profile;
  int64_t cooldown_profile_samples = 0;
  std::vector<ProfileFunction> cooldown_top_functions;
};

struct TimelinePoint {
  double t = 0;         // seconds since the gate started
  std::string phase;    // "baseline", "run", "cooldown"
  int run = 0;          // 0 during the baseline
  double cpu_pct = 0;   // since the previous point
  int64_t rss_bytes = 0;
  std::optional<int64_t> heap_bytes;  // only at measurement points
  int64_t fds = 0;
  int64_t threads = 0;
  int64_t sockets = 0;
};

struct GateResult {
  Verdict verdict = Verdict::kPass;
  int exit_code = kExitPass;
  std::string error;    // why the gate ended in "error"
  std::string interrupted;  // the signal that interrupted the gate ("SIGINT"); "" when none did
  bool baseline_taken = false;
  Snapshot baseline;
  std::vector<RunRecord> runs;
  std::optional<Analysis> analysis;
  std::vector<TimelinePoint> timeline;
  std::vector<std::string> warnings;
  std::string target_description;
  std::string workload_description;
  std::string heap_source;            // "prometheus", "tcmalloc", "none"
  bool peak_reset_supported = true;
  std::optional<ExitInfo> target_exit;
  double wall_s = 0;
  double cooldown_total_s = 0;
  double baseline_settle_s = 0;  // from readiness until the CPU settled and the baseline began
  std::optional<HeapProfileSummary> heap_profiles;  // when the heap source wrote profiles
};

// The exit code of `leakgate run` for a gate's verdict (DESIGN.md): kError is a target failure
// unless the gate says otherwise (GateResult::exit_code).
int ExitCodeOf(Verdict verdict);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_GATE_RESULT_H_
