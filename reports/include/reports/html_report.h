// The HTML report of one gate: a single self-contained page (inline CSS and SVG, no script or font
// fetched from anywhere, no external reference at all) that a person hunting a leak reads on a laptop
// screen without scrolling sideways.
//
// Contents, top to bottom:
//  * the title (scenario name, target, workload) and the verdict in large type with the summary line;
//  * timelines of CPU (% of one core), RSS, heap in use, fds and threads drawn from `timeline` as inline
//    SVG: the baseline, each run and each cooldown shaded as phases (warm-up runs marked as such),
//    the post-run measurement points marked, and the thresholds drawn where the scenario has one that
//    reads on that axis (idle CPU: baseline + idle_cpu_pct; RSS: the baseline + rss_total budget and
//    the peak_rss limit; fds and threads: the baseline count + allowance); each chart has a title,
//    axis labels with units, and a <title> tooltip per point;
//  * the verification table (as in the Markdown report: baseline, each run during and after);
//  * the checks with observed value, threshold and verdict, failures first, the detail text;
//  * what grew (heap sites with their stacks in <details>, fds, sockets, threads with creation stacks),
//    suppressed items marked; the sites at the peak;
//  * the per-thread idle CPU after each cooldown (runs[].idle_threads) as a table;
//  * warnings and notes.
// Every text that comes from the result is HTML-escaped. The page carries
//   <meta name="leakgate-verdict" content="pass|fail|inconclusive|error">
// and each chart is an <svg class="chart" data-metric="cpu_pct|rss_bytes|heap_bytes|fds|threads">
// whose phase bands are <rect class="phase phase-baseline|phase-run|phase-cooldown" data-run="K">,
// so tests (and people with a browser's inspector) can find them. A result without a timeline (an
// error before the baseline) renders without charts and says so.
#ifndef LEAKGATE_REPORTS_HTML_REPORT_H_
#define LEAKGATE_REPORTS_HTML_REPORT_H_

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "reports/report.h"

namespace leakgate::reports {

// kInvalidArgument as for RenderMarkdownReport (ValidateResult), and when a timeline point lacks
// t, phase or run.
Result<std::string> RenderHtmlReport(const nlohmann::json& result);

// Shared by the report and the comparison page.
// Escapes &, <, >, " and ' for text and attribute values.
std::string HtmlEscape(std::string_view text);

}  // namespace leakgate::reports

#endif  // LEAKGATE_REPORTS_HTML_REPORT_H_
