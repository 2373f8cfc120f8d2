// The decision of a leak gate: pure functions from the numbers measured after each run to a verdict
// per check (pass, fail, inconclusive), the resources that grew, and whether another run is needed.
//
// Nothing here reads a clock, a file or a process: the runner measures, fills an `AnalysisInput`
// and calls `Analyze`, which returns plain values. Every function is thread-safe (no shared state).
//
// The rules (the "why" behind each verdict; the numbers are constants in analysis.cc)
// -----------------------------------------------------------------------------------
// Judged runs are the non-warm-up runs. The reference point is the state after the last warm-up run
// (or the baseline when there is none); it sits at x = 0 and judged run k at x = k, so every growth
// figure is growth since the warm-up ended.
//
// Memory (rss_growth_per_run, rss_growth_total, heap_growth_per_run). Growth per run is the
// Theil-Sen slope (median of pairwise slopes) with Sen's distribution-free range at 95% (and a
// strict one at 99%); "total" is slope x judged runs, the fitted rise since the reference. The
// per-run budget is the smallest leak the gate must catch; the total floor is how much growth must
// have accumulated before a failure is declared (with the defaults a leak of exactly 256 KiB per
// run reaches 2 MiB after 8 judged runs, so the gate asks for runs until then).
//  - Exact heap first (bytes in use carry no sampling noise, and one object per run is far under
//    any byte budget): a heap that rose in every judged step fails once there are 4 such steps
//    (pure noise rises 4 times in a row 1 time in 120), unless the later steps are under half the
//    earlier ones (slowing: inconclusive); fewer steps: inconclusive.
//  - Pass when no judged value is above the reference. Otherwise, with fewer than 3 judged runs,
//    inconclusive.
//  - One sample that is not the last, and sits more than 5 robust deviations (MAD) and more than
//    two budgets off the trend, is set aside and named in the detail: a single noisy sample can
//    neither fail the gate nor hold up a pass. A jump in the last run is kept (it may be the start
//    of growth), so it leads to more runs, not to a pass.
//  - Pass when, with at least 5 judged runs, the upper end of the strict range is under the
//    budget: the rate is shown to be small. (With fewer points chance alone produces that for a
//    leak at the budget too often.)
//  - Pass on a plateau: over the last max(6, half) points the upper end of the range is under the
//    budget, while the points before them grew with the lower end at or above it. Requiring that
//    earlier climb keeps a steady leak whose latest runs look flat by chance from passing.
//  - Fail when the whole range is above zero (the growth is consistent, not noise), its upper end
//    reaches the budget (a leak at the budget is not ruled out), the total reaches the floor, and
//    the growth is not slowing: the later half grows at least half as fast as the earlier half,
//    and the last step is not far below the earlier ones (by more than two robust deviations and
//    one budget).
//  - Inconclusive otherwise (noisy, slowing, under the floor so far, too few runs): more runs tell.
//  With a floor and no budget, the budget is floor / maximum judged runs (the rate that reaches
//  the floor within the gate); with a budget and no floor, the floor is zero. rss_growth_per_run
//  and rss_growth_total are one decision reported twice (slope against budget, total against
//  floor). Simulated with +-200 KiB noise (40 MiB RSS, warm-up 1, 5 runs, up to 12): a flat series
//  passes; a leak of exactly the budget fails in 99% of gates, 1.25x the budget in all; a climb of
//  1 MiB per run for 2-3 runs then flat passes in 98-100%; a 5 MiB spike passes.
//  Heap figures are used where the target reported them (missing runs are named in the detail);
//  when no judged run has any, the heap check is absent and a note says why: a number is never
//  invented.
//
// Idle CPU (idle_cpu_returns): excess = idle CPU after a run's cooldown minus the baseline's.
// Fail when the excess is above the threshold after the last judged run and after a strict
// majority of the judged runs (at least 3): a staircase. Pass when the last run is under the
// threshold and at most half are over: a single spike passes. Inconclusive in between (only the
// latest runs are over, or most are over but the last returned). Observed: the last run's excess.
//
// Integer resources (fds_stable, sockets_stable, threads_stable) are multisets compared with the
// reference: fds grouped by what they point at ("socket", "pipe", "/tmp/x.db-wal"), threads by
// name (ids change, names persist), sockets by count. Where the fds were resolved (`resolved_fds`),
// the growth items are named more finely than the decision counts: a socket by its site
// ("tcp -> 127.0.0.1:8080", attribution.h), with a few of the new items' descriptions as examples;
// the decision still counts every socket as "socket", so connections that change peers (a new
// address from DNS) are not taken for new items. After each judged run the "new items" are
// those beyond the reference's count of their site (so a pool that shrinks does not hide a
// heartbeat thread that leaks). The threshold is the number of new items tolerated at the end;
// 0 means "no steady growth", not "no new item ever":
//  - Pass when the new items at the end are at most the threshold (the extra items went away), or
//    when neither of the last two judged runs set a new high (a plateau or an oscillation: a pool
//    filled lazily, a file opened on first use). A peak the count never reached again later (an
//    in-flight connection at sampling time) is not a high, so it cannot hide a climb after it.
//  - Fail when the new items exceed the threshold and set a new high in at least 3 judged runs,
//    in at least half of them, the last of them within the last two runs: a steady climb.
//  - Inconclusive otherwise (for example a single new item in the last run).
//  Every site with more items at the end than at the reference is listed as a GrowthItem, also
//  when its check passes. A check whose figures were never read is absent, with a note.
//  Suppressions (`AnalysisInput::suppressions`) are matched against the site of fd, socket and
//  thread items (a socket's fd also against kind "socket"): the items of a suppressed site are
//  left out of the decision, and its GrowthItem is still listed, with the reason in `suppressed`.
//
// Idle CPU attribution: when the last judged run is over the threshold, the detail of
// idle_cpu_returns names the thread names whose CPU rose from the baseline's window to that run's
// settle window (`idle_threads`), largest rise first.
//
// Peak RSS (peak_rss): fail when the highest VmHWM of a judged run exceeds the threshold.
//
// The overall verdict is fail if any check fails, else inconclusive if any is, else pass (also
// when every check is turned off); `needs_more_runs` asks the runner for one more run when the
// verdict is inconclusive and fewer than `max_runs` runs (warm-up included) were made.
#ifndef LEAKGATE_HARNESS_ANALYZE_ANALYSIS_H_
#define LEAKGATE_HARNESS_ANALYZE_ANALYSIS_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result_names.h"
#include "base/stats.h"
#include "harness/analyze/attribution.h"

namespace leakgate::harness {

struct Suppressions;  // suppressions.h

// ---- Analysis input ----

inline constexpr double kKiB = 1024.0;
inline constexpr double kMiB = 1024.0 * 1024.0;

// A nullopt field turns its check off. Sizes in bytes; counts in items.
struct Thresholds {
  std::optional<double> idle_cpu_pct = 2.0;        // percentage points of one core above baseline
  std::optional<double> rss_per_run = 256 * kKiB;  // bytes per judged run
  std::optional<double> rss_total = 2 * kMiB;      // bytes since the reference
  std::optional<double> heap_per_run = 64 * kKiB;  // bytes per judged run
  std::optional<int64_t> fds = 0;                  // new fds tolerated at the end
  std::optional<int64_t> sockets = 0;              // new sockets tolerated at the end
  std::optional<int64_t> threads = 0;              // new threads tolerated at the end
  std::optional<double> peak_rss;                  // bytes (VmHWM during a judged run)
};

// The state of the target at rest. An optional field is nullopt when it could not be measured.
struct BaselineObservation {
  double idle_cpu_pct = 0;  // the target's own CPU time over wall time, in % of a core
  int64_t rss_bytes = 0;
  std::optional<int64_t> heap_bytes;  // exact bytes in use
  // One entry per open fd: its link target ("socket:[123]", "pipe:[9]", "/tmp/x.db-wal", ...;
  // "" when unreadable). Fds of descendants may be appended.
  std::optional<std::vector<std::string>> fd_targets;
  std::optional<std::vector<std::string>> thread_names;  // one entry per thread
  std::optional<int64_t> sockets;
  // Each open fd resolved to what it points at (attribution.h), descendants' fds included; when
  // set, it names the fd and socket growth items and is counted instead of fd_targets and sockets.
  std::optional<std::vector<ResolvedFd>> resolved_fds;
  // CPU over the measuring window by thread name (GroupThreadCpu); empty when unknown.
  std::vector<ThreadGroupCpu> idle_threads;
};

// The state after one run's cooldown, plus the peak during it.
struct RunObservation : BaselineObservation {
  int index = 0;  // 1-based, in the order the runs were made
  bool warmup = false;
  int64_t peak_rss_bytes = 0;  // VmHWM over the run (reset at its start where the kernel allows)
};

struct AnalysisInput {
  BaselineObservation baseline;
  std::vector<RunObservation> runs;  // in the order made; warm-up runs first
  Thresholds thresholds;
  int max_runs = 12;  // warm-up included, like runs.size()
  // Known growth of fd, socket and thread sites; not owned, may be null.
  const Suppressions* suppressions = nullptr;
};

// ---- Analysis output ----

struct CheckResult {
  std::string name;    // "idle_cpu_returns", "rss_growth_per_run", "rss_growth_total",
                       // "heap_growth_per_run", "fds_stable", "sockets_stable",
                       // "threads_stable", "peak_rss"
  std::string metric;  // "cpu_pct", "rss_bytes", "heap_bytes", "fds", "sockets", "threads",
                       // "peak_rss_bytes"
  Verdict verdict = Verdict::kInconclusive;
  std::optional<double> observed;  // nullopt when there was nothing to measure
  std::optional<double> threshold;
  std::string unit;    // "%", "B/run", "B", "fds", "sockets", "threads"
  std::string detail;  // one or two sentences a person can act on
};

struct GrowthItem {
  std::string kind;    // "heap", "fd", "thread", "socket"
  // fd: target kind or path, a socket's site when resolved; thread: name; socket: its site
  // (attribution.h: "tcp -> 127.0.0.1:8080" for a client end, "tcp accepted on 127.0.0.1:8080",
  // "unix stream /run/x.sock", "socket" when unresolved); heap: the allocation site's signature.
  std::string site;
  double per_run = 0;  // Theil-Sen slope of the site's count (or bytes) over the judged runs
  double total = 0;    // at the end minus at the reference
  // Attribution, filled where known (empty otherwise):
  std::string id;                     // heap: the site's short stable id
  std::string location;               // heap: "file:line" of the site
  std::vector<std::string> stack;     // heap: frames from the site outwards; thread: creation stack
  std::vector<std::string> examples;  // fd/socket: what new items point at (a few, sorted)
  std::string suppressed;             // the reason of a matching suppression
};

struct Analysis {
  std::vector<CheckResult> checks;
  std::vector<GrowthItem> growth;  // what makes a check fail first (OrderGrowth, growth_order.h)
  Verdict verdict = Verdict::kInconclusive;
  bool needs_more_runs = false;
  int judged_runs = 0;
  std::vector<std::string> notes;  // checks skipped and why (e.g. no heap statistics)
  std::string summary;             // one line: the verdict and the checks that decided it
};

// Judges the runs made so far. Call it after every run (from the last of the planned runs on) and
// add a run while `needs_more_runs` is true. Never fails: missing figures make a check
// inconclusive or absent (with a note), never an error.
Analysis Analyze(const AnalysisInput& input);

// The site an fd target is grouped under: "socket:[123]" -> "socket", "pipe:[9]" -> "pipe",
// "anon_inode:[eventfd]" -> kept, a path -> kept, "" -> "(unreadable)".
std::string FdSite(std::string_view target);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_ANALYZE_ANALYSIS_H_
