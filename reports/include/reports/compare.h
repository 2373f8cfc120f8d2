// The before/after comparison of two gates of the same workload (the incident document's "修复前 /
// 修复后"), from their result files alone: per check, the verdict and observed value before and after
// and what changed; the per-run growth of each metric; the state after each run (idle CPU, RSS, heap,
// fds, threads), side by side; and every growth item and peak site of "before" with whether it is gone
// after. `leakgate compare BEFORE.json AFTER.json [--out DIR]` writes compare.md and compare.html.
// Works from the two result documents alone (as the other reports); matching and verdicts are pure
// functions of them. Every function is thread-safe (no shared state).
#ifndef LEAKGATE_REPORTS_COMPARE_H_
#define LEAKGATE_REPORTS_COMPARE_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "reports/report.h"

namespace leakgate::reports {

// How a check or a site moved from before to after.
enum class Change {
  kFixed,        // failed before, passes after (a site: listed before, gone after)
  kStillFailing, // fails in both (a site: listed in both, "remains")
  kRegressed,    // did not fail before (passed, inconclusive), fails after (a growth site: new after)
  kUnchanged,    // passes in both, inconclusive in both, or inconclusive before and passes after
  kOnlyBefore,   // a check present in one result only; a site at the peak listed after only is
  kOnlyAfter,    //   kOnlyAfter (the peak lists the largest sites: a newcomer is no regression)
  kUndecided,    // one side inconclusive and the other not failing, or failed before and
                 // inconclusive after: the data do not tell yet
};
// "fixed", "still failing", "regressed", "unchanged", "only before", "only after", "undecided".
std::string_view ChangeName(Change change);

struct CheckComparison {
  std::string name;    // "idle_cpu_returns", ...
  std::string metric;
  std::string unit;
  std::string before_verdict;  // "" when absent
  std::string after_verdict;
  std::optional<double> before_observed;
  std::optional<double> after_observed;
  std::optional<double> before_threshold;
  std::optional<double> after_threshold;
  Change change = Change::kUnchanged;
};

// Per-run growth of one metric over each result's judged runs: the Theil-Sen slope of the post-run
// values against the run index, over the reference (the last warm-up run, or the baseline when
// there is none) and the judged runs, as the checks fit it: the RSS figure is the observed value of
// rss_growth_per_run (heap_growth_per_run reports the median step instead when every step rose, a
// figure within a percent or so of the slope). Runs without the value (heap missing in a run) are
// left out.
struct MetricGrowth {
  std::string metric;  // "cpu_pct" (idle CPU after the cooldown), "rss_bytes", "heap_bytes", "fds",
                       // "sockets", "threads", "peak_rss_bytes"
  std::string unit;    // "%", "B", "" (a count)
  std::optional<double> before_per_run;  // absent when the result has fewer than 2 judged runs or
  std::optional<double> after_per_run;   // no such measurement (heap without statistics)
  std::optional<double> before_total;    // last judged run minus the reference, as the checks
  std::optional<double> after_total;     // count (idle CPU: minus the baseline, as idle_cpu_returns
                                         // judges it; peak_rss_bytes: minus the reference run's peak)
};

// One row of the side-by-side state: the baseline (run 0) or after run K.
struct StateRow {
  int run = 0;  // 0: the baseline
  bool before_warmup = false, after_warmup = false;
  std::optional<nlohmann::json> before;  // the result's baseline or runs[K-1].after; absent when
  std::optional<nlohmann::json> after;   // that result has fewer runs (or no baseline)
  bool before_cpu_back = false, after_cpu_back = false;  // idle CPU within the baseline + allowance
  bool before_cpu_known = false, after_cpu_known = false;  // both figures and the allowance known
};

// A growth item ("heap", "fd", "socket", "thread") or a site at the peak ("peak",
// heap_profiles.peak_sites) of either result, matched across the two by kind and site id (or,
// without ids, by kind and site text, with the port of "HOST:PORT" ignored in fd and socket sites:
// each gate picks its own free port). Items of one result that match each other (two ports of one
// peer) are added up.
struct SiteComparison {
  std::string kind;
  std::string site;   // as "before" names it (else "after")
  std::string id;     // "" when the item has none
  std::string location;    // "file:line" when known
  bool suppressed = false;  // listed with a suppression reason on the side(s) that list it
  std::optional<double> before_per_run;  // growth items; for "peak": bytes at the peak
  std::optional<double> before_total;
  std::optional<double> after_per_run;
  std::optional<double> after_total;
  Change change = Change::kUnchanged;  // kFixed: present before only ("gone"), kRegressed: after only
};

struct Comparison {
  std::string before_name, after_name;        // scenario names
  std::string before_verdict, after_verdict;
  int before_judged_runs = 0, after_judged_runs = 0;
  std::vector<CheckComparison> checks;   // in the before result's order, then after-only checks
  std::vector<MetricGrowth> growth;      // the metrics above, in that order
  std::vector<StateRow> states;          // baseline, then run 1..max(runs)
  // Before's items first, then after-only ones; each part by kind (heap, fd, socket, thread, peak)
  // and largest first (total, or bytes at the peak).
  std::vector<SiteComparison> sites;
  // True when the comparison shows the fix: "before" failed (verdict "fail"), "after" passed
  // (verdict "pass"), and every check that failed before is present after and passes (so no check
  // regressed). Sites inform; they do not decide: a growth item the after gate still lists sits
  // within the thresholds of a passing check.
  bool fixed = false;
};

// Validates both results (ValidateResult, plus the string "id" of growth items and peak sites) and
// compares them. kInvalidArgument naming the role and the JSON path of the first problem:
// "before result: /checks/2/name is missing; expected a string".
Result<Comparison> CompareResults(const nlohmann::json& before, const nlohmann::json& after);

// The comparison as Markdown: a headline (fixed or not), the checks table (check, before, after,
// change, with marks), the per-run growth table, the state after each run (CPU, RSS, heap, fds,
// threads: before → after), the sites that disappeared, remain, or appeared. `lang` "en" or "zh" (the
// document's headings: 修复前, 修复后, 阶段, CPU使用率, 内存(RSS), 状态, ...; check names and site
// names stay as they are). kInvalidArgument for another lang.
Result<std::string> RenderComparisonMarkdown(const Comparison& comparison, std::string_view lang);

// The comparison as one self-contained HTML page (as RenderHtmlReport: no external reference): the
// same tables, plus each metric's timeline of before and after overlaid on one chart per metric
// (time since the gate started; before in one colour, after in another), phases shaded per series.
// `before` and `after` are the documents `comparison` was made from (their timelines are drawn).
// kInvalidArgument naming the role and JSON path when a timeline point lacks t, phase or run.
// The page carries <meta name="leakgate-comparison" content="fixed|not-fixed">; each chart is an
// <svg class="chart" data-metric="cpu_pct|rss_bytes|heap_bytes|fds|threads">.
Result<std::string> RenderComparisonHtml(const Comparison& comparison, const nlohmann::json& before,
                                         const nlohmann::json& after);

}  // namespace leakgate::reports

#endif  // LEAKGATE_REPORTS_COMPARE_H_
