// The HTML report of one gate: a single self-contained page (inline CSS and SVG, no script or font
// fetched from anywhere, no external reference at all) that a person hunting a leak reads on a laptop
// screen without scrolling sideways.
//
// Contents, top to bottom:
//  * the title (scenario name, target, workload) and the verdict in large type with the summary line;
//  * timelines of CPU (% of one core), RSS, heap in use, fds and threads drawn from `timeline` as inline
//    SVG: the baseline, each run and each cooldown shaded as phases (warm-up runs hatched and
//    labelled), the measurements the checks judge (the baseline and the state after each cooldown)
//    marked, and the thresholds drawn where one reads on that axis, each taken from its check (else
//    from the scenario's thresholds, sizes parsed): idle CPU at the baseline + idle_cpu_pct; RSS at
//    the reference + rss_total and at the peak_rss limit; fds and threads at the reference count +
//    the allowance, where the reference is the state after the last warm-up run (the baseline without
//    one), as the analysis measures growth. CPU shows the samples and, joined by a line, the
//    idle CPU each check judged, on an axis that clips run peaks so the idle figures stay readable;
//    RSS adds each run's peak (VmHWM); heap exists only at the measurements, drawn as markers joined
//    by a line; fds add the sockets among them. Each chart has a title, axis ticks with units (s, %,
//    KiB/MiB) and a <title> tooltip per point;
//  * the verification table (as in the Markdown report: baseline, each run during and after);
//  * the checks with observed value, threshold and verdict, failures first, the detail text;
//  * what grew (heap sites with their stacks in <details>, fds, sockets, threads with creation stacks),
//    suppressed items marked; the sites at the peak;
//  * the per-thread idle CPU after each cooldown (runs[].idle_threads) as a table;
//  * where the CPU went during each cooldown, when the result has a CPU profile of it;
//  * warnings and notes.
// The verdict and the failed (then inconclusive) checks come first, in a banner coloured by the
// verdict (fail red, pass green, inconclusive amber, error purple). No script: plain HTML, SVG and
// CSS; stacks fold in <details>; long frames and paths wrap instead of widening the page.
// Every text that comes from the result is HTML-escaped. The page carries
//   <meta name="leakgate-verdict" content="pass|fail|inconclusive|error">
// and each chart is an <svg class="chart" data-metric="cpu_pct|rss_bytes|heap_bytes|fds|threads">
// whose phase bands are <rect class="phase phase-baseline|phase-run|phase-cooldown" data-run="K">
// (with the class "warmup" added for a warm-up run), so tests (and people with a browser's
// inspector) can find them. A result without a timeline (an error before the baseline) renders
// without charts and says so.
#ifndef LEAKGATE_REPORTS_HTML_REPORT_H_
#define LEAKGATE_REPORTS_HTML_REPORT_H_

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "reports/report.h"

namespace leakgate::reports {

// kInvalidArgument as for RenderMarkdownReport (ValidateResult), and when `timeline` is not an array
// or a point of it lacks t, phase or run or has one of another type (naming its JSON path, e.g.
// "/timeline/3/phase"). Pure; thread-safe.
Result<std::string> RenderHtmlReport(const nlohmann::json& result);

// Shared by the report and the comparison page.
// Escapes &, <, >, " and ' for text and attribute values.
std::string HtmlEscape(std::string_view text);

}  // namespace leakgate::reports

#endif  // LEAKGATE_REPORTS_HTML_REPORT_H_
