// The gate's run loop: an idle baseline, then N consecutive runs of a workload against a target, each
// followed by a cooldown and a post-run measurement, then the verdict.
//
// `RunGate` drives a Target and a Workload that the caller built (in-process use: attach to
// getpid() and run a CallbackWorkload); `RunScenario` (scenario_gate.h) builds them from a Scenario.
// The result model is in result.h. The loop, per the measurement semantics of DESIGN.md:
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
//    switched on for each cooldown (Target::Signal) and off after its last sample; RunScenario
//    summarises each profile's busiest functions after the gate (profile/cpu_profile.h).
//  * After the last judged run, Analyze() decides; when it asks for more runs, runs are added up to
//    `max_runs` (warm-up included). Heap statistics are read only at the baseline and post-run points,
//    never at the sampling rate, so asking a target for its /metrics does not disturb the samples.
//  * A target that dies, or a workload that fails, ends the gate with exit code 3 and a partial result.
// The runner owns nothing it is given; everything it started (the workload's processes, the spawned
// target) is stopped before it returns. Not thread-safe: one gate per Runner call.
#ifndef LEAKGATE_HARNESS_GATE_RUNNER_H_
#define LEAKGATE_HARNESS_GATE_RUNNER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "harness/drive/target.h"
#include "harness/drive/workload.h"
#include "harness/gate/result.h"
#include "harness/sample/heap_source.h"
#include "harness/sample/proc_reader.h"
#include "harness/scenario/scenario.h"
#include "harness/scenario/suppressions.h"

namespace leakgate::harness {

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
//
// Under TerminationPolicy::kRecord (target.h), a termination signal ends the gate between two
// samples (at most 1/sample_hz later) with what was measured so far, marked as interrupted
// (MarkInterrupted).
GateResult RunGate(const GateConfig& config, Target& target, Workload& workload, HeapSource* heap,
                   Clock& clock, ProcReader& reader, const ProgressFn& progress = {});

// "during the baseline", "during run 3", "during the cooldown of run 3" for a timeline phase
// ("baseline", "run", "cooldown") and its run.
std::string PhaseText(std::string_view phase, int run);

// Marks `result` as ended by signal `sig` `when` (a PhaseText or another "while ..." text):
// interrupted "SIGINT", verdict error, and an error saying so; what was measured stays.
void MarkInterrupted(GateResult& result, int sig, std::string_view when);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_GATE_RUNNER_H_
