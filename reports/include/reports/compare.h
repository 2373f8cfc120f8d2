// The before/after comparison of two gates of the same workload (the incident document's "修复前 /
// 修复后"), from their result files alone: per check, the verdict and observed value before and after
// and what changed; the per-run growth of each metric; the state after each run (idle CPU, RSS, heap,
// fds, threads), side by side; and every growth item and peak site of "before" with whether it is gone
// after. `leakgate compare BEFORE.json AFTER.json [--out DIR]` writes compare.md and compare.html.
#ifndef LEAKGATE_REPORTS_COMPARE_H_
#define LEAKGATE_REPORTS_COMPARE_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "reports/report.h"

namespace leakgate::reports {

// How a check, a metric or a site moved from before to after.
enum class Change {
  kFixed,        // failed before, passes after (a site: grew before, gone after)
  kStillFailing, // fails in both
  kRegressed,    // passed before, fails after (a site: new after)
  kUnchanged,    // passes in both (or inconclusive in both)
  kOnlyBefore,   // a check present in one result only
  kOnlyAfter,
};
std::string_view ChangeName(Change change);  // "fixed", "still failing", "regressed", ...

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

// Per-run growth of one metric over each result's judged runs (Theil-Sen slope of the post-run
// values against the run index; the slope is what the checks judge).
struct MetricGrowth {
  std::string metric;  // "cpu_pct" (idle CPU after the cooldown), "rss_bytes", "heap_bytes", "fds",
                       // "sockets", "threads", "peak_rss_bytes"
  std::string unit;    // "%", "B", "" (a count)
  std::optional<double> before_per_run;  // absent when the result has fewer than 2 judged runs or
  std::optional<double> after_per_run;   // no such measurement (heap without statistics)
  std::optional<double> before_total;    // last judged run minus the baseline
  std::optional<double> after_total;
};

// One row of the side-by-side state: the baseline (run 0) or after run K.
struct StateRow {
  int run = 0;  // 0: the baseline
  bool before_warmup = false, after_warmup = false;
  std::optional<nlohmann::json> before;  // the result's baseline or runs[K-1].after; absent when
  std::optional<nlohmann::json> after;   // that result has fewer runs
};

// A growth item ("heap", "fd", "socket", "thread") or a site at the peak ("peak") of either result,
// matched across the two by kind and site id (or, without ids, by kind and site text, with ports in
// "HOST:PORT" ignored: each gate picks its own free port).
struct SiteComparison {
  std::string kind;
  std::string site;
  std::string id;
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
  std::vector<SiteComparison> sites;     // before's items first (largest first), then after-only
  // True when every check that failed before passes after and no check or site regressed.
  bool fixed = false;
};

// Validates both results (ValidateResult, the path prefixed with "before" or "after") and compares
// them. kInvalidArgument naming the file role and JSON path of the first problem.
Result<Comparison> CompareResults(const nlohmann::json& before, const nlohmann::json& after);

// The comparison as Markdown: a headline (fixed or not), the checks table (check, before, after,
// change, with marks), the per-run growth table, the state after each run (CPU, RSS, heap, fds,
// threads: before | after), the sites that disappeared, remain, or appeared. `lang` "en" or "zh" (the
// document's headings: 修复前, 修复后, ...). kInvalidArgument for another lang.
Result<std::string> RenderComparisonMarkdown(const Comparison& comparison, std::string_view lang);

// The comparison as one self-contained HTML page (as RenderHtmlReport: no external reference): the
// same tables, plus each metric's timeline of before and after overlaid on one chart per metric
// (time since the gate started; before in one colour, after in another), phases shaded per series.
Result<std::string> RenderComparisonHtml(const Comparison& comparison, const nlohmann::json& before,
                                         const nlohmann::json& after);

}  // namespace leakgate::reports

#endif  // LEAKGATE_REPORTS_COMPARE_H_
