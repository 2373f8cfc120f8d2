// The gate's run loop: an idle baseline, then N consecutive runs of a workload against a target, each
// followed by a cooldown and a post-run measurement, then the verdict.
//
// `RunGate` drives a Target and a Workload that the caller built (in-process use: attach to
// getpid() and run a CallbackWorkload); `RunScenario` builds them from a Scenario and writes the
// target's output and the result into the output folder. The loop, per the measurement semantics of
// DESIGN.md:
//  * Baseline: after the target is ready and its CPU has settled (the CPU over one settle window
//    within the tolerance of the window before, at most cooldown `max_s`: start-up work can outlast
//    readiness), `baseline_s` of idle sampling; CPU is the target's own CPU time over wall time (a
//    busy neighbour does not move it).
//  * Each run: reset the peak RSS (clear_refs) where the kernel allows, run the workload on a worker
//    thread while the calling thread samples at `sample_hz`, then a cooldown that ends as soon as the
//    target's CPU over the last `settle_window_s` is within `settle_tolerance_pct` of the baseline, or
//    has stopped falling (a plateau: the window's CPU is within the tolerance of the window before), or
//    at `max_s`; then the post-run measurement (idle CPU over the last window, RSS, exact heap, fds,
//    sockets, threads, peak RSS of the run).
//  * At the baseline and post-run points only (never at the sampling rate: reading the socket
//    tables costs a few hundred microseconds), every fd is resolved to what it points at (a socket
//    through the target's /proc/PID/net tables, attribution.h), and the CPU of the measuring window
//    is summed by thread name, so the analysis can name what grew and what keeps the CPU up.
//  * With a CPU profile (GateConfig::cpu_profile_signal), the target's gperftools profiler is
//    switched on for each cooldown and off after its last sample; RunScenario summarises each
//    profile's busiest functions after the gate.
//  * After the last judged run, Analyze() decides; when it asks for more runs, runs are added up to
//    `max_runs` (warm-up included). Heap statistics are read only at the baseline and post-run points,
//    never at the sampling rate, so asking a target for its /metrics does not disturb the samples.
//  * A target that dies, or a workload that fails, ends the gate with exit code 3 and a partial result.
// The runner owns nothing it is given; everything it started (the workload's processes, the spawned
// target) is stopped before it returns. Not thread-safe: one gate per Runner call.
#ifndef LEAKGATE_HARNESS_RUNNER_H_
#define LEAKGATE_HARNESS_RUNNER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/analysis.h"
#include "harness/attribution.h"
#include "harness/clock.h"
#include "harness/heap_sites.h"
#include "harness/heap_source.h"
#include "harness/proc_reader.h"
#include "harness/process_sampler.h"
#include "harness/scenario.h"
#include "harness/suppressions.h"
#include "harness/target.h"
#include "harness/workload.h"

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

// What the heap profiles of a gate showed beyond the growth items (which go to Analysis::growth).
struct HeapProfileSummary {
  std::string profiler;        // the heap source's name: "agent", "heap-profile", ...
  bool sampled = false;
  int64_t sample_period = 0;   // bytes per sample when sampled
  std::vector<std::string> profiles;  // diffed: the reference (after the warm-up), then judged runs
  std::vector<std::string> notes;     // unreadable or truncated profiles, symbolizer problems
  // The sites holding the most memory at the peak of the judged run with the highest peak RSS
  // (from the agent's peak snapshot), largest first; empty when the profiles have no peak.
  int peak_run = 0;
  double peak_bytes = 0;  // estimated heap in use at that peak
  std::vector<SiteUsage> peak_sites;
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
  std::string verdict;  // "pass", "fail", "inconclusive", "error"
  int exit_code = kExitPass;
  std::string error;    // why the gate ended in "error"
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

struct GateConfig {
  int runs = 5;
  int warmup_runs = 1;
  int max_runs = 12;
  double baseline_s = 2;
  double sample_hz = 10;
  CooldownConfig cooldown;
  Thresholds thresholds;
  bool include_children = false;
  // Known growth of fd, socket and thread sites (analysis.h); not owned, may be null.
  const Suppressions* suppressions = nullptr;
  // A CPU profile of each cooldown: the signal that switches the target's gperftools CPU profiler
  // (CPUPROFILESIGNAL; 0: no profile) and the prefix it writes PREFIX.0, PREFIX.1, ... to. It is
  // switched on as the cooldown starts and off after its last sample, so writing the profile is
  // not measured.
  int cpu_profile_signal = 0;
  std::string cpu_profile_prefix;
};

// Progress messages ("run 2/6: 0.41 s, cooldown 1.2 s, RSS 41.3 MiB"); empty: silent.
using ProgressFn = std::function<void(std::string_view line)>;

// Runs the gate on a started target. `heap` may be null (no heap statistics). Never throws; a target
// failure is reported in the result (verdict "error", exit code 3).
GateResult RunGate(const GateConfig& config, Target& target, Workload& workload, HeapSource* heap,
                   Clock& clock, ProcReader& reader, const ProgressFn& progress = {});

struct ScenarioRunOptions {
  std::string out_dir;   // required: target output, result.json
  ProgressFn progress;
};

// Starts the scenario's target (or attaches), builds its workload and heap source, runs the gate,
// stops what it started. A target that does not start is verdict "error", exit code 3.
GateResult RunScenario(const Scenario& scenario, const ScenarioRunOptions& options, Clock& clock,
                       ProcReader& reader);

GateConfig GateConfigFromScenario(const Scenario& scenario);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_RUNNER_H_
