// Shared pieces of leakgate's self-contained HTML pages (internal to leakgate::reports): the page
// shell with its inline stylesheet, timeline charts drawn as inline SVG (several series, phase bands,
// threshold lines, nice axis ticks with units), tables, verdict badges and stacks in <details>.
// Nothing here references anything outside the page: no script, no font, no image, no link.
// Every function returns a fragment of HTML; arguments documented as "plain text" are escaped here,
// arguments documented as "HTML" are inserted as they are. Pure functions; thread-safe.
#ifndef LEAKGATE_REPORTS_SRC_HTML_PARTS_H_
#define LEAKGATE_REPORTS_SRC_HTML_PARTS_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "reports/html_report.h"  // HtmlEscape

namespace leakgate::reports::html {

// ---- colours (CSS values), shared so both pages read the same way ----
inline constexpr std::string_view kColorFail = "#c62828";          // a failed check, a verdict
inline constexpr std::string_view kColorPass = "#2e7d32";
inline constexpr std::string_view kColorInconclusive = "#b26a00";  // amber
inline constexpr std::string_view kColorError = "#6a1b9a";
inline constexpr std::string_view kColorThreshold = "#c62828";     // threshold lines
inline constexpr std::string_view kColorBefore = "#c2410c";        // the comparison's two series
inline constexpr std::string_view kColorAfter = "#1d4ed8";
// One colour per metric of the single-gate report.
inline constexpr std::string_view kColorCpu = "#7c3aed";
inline constexpr std::string_view kColorRss = "#1d4ed8";
inline constexpr std::string_view kColorHeap = "#0f766e";
inline constexpr std::string_view kColorFds = "#a16207";
inline constexpr std::string_view kColorThreads = "#be185d";

// ---- values and units ----

// How a chart's values (and its y axis) read.
enum class ValueUnit {
  kPercent,  // CPU as % of one core: "12.5 %"
  kBytes,    // bytes; the axis picks B, KiB, MiB or GiB from its range: "48 MiB"
  kCount,    // a count (fds, threads, sockets): whole ticks, "26"
};

// A value in `unit` as a person reads it in a tooltip or a cell: "12.5 %", "47.6 MiB", "26"
// (bytes through FormatSize, so the pages agree with the Markdown report).
std::string FormatValue(double value, ValueUnit unit);

// Seconds as "12.3 s" (one decimal; "0.35 s" below one second).
std::string FormatSeconds(double seconds);

// The "nice" tick values (1, 2, 2.5, 5 x 10^n; for bytes, the same over KiB/MiB/GiB) covering
// [low, high] with about `target_count` ticks, in ascending order, first <= low, last >= high.
// A flat range (low == high) is widened around the value. Exposed for tests.
std::vector<double> NiceTicks(double low, double high, int target_count, ValueUnit unit);

// ---- charts ----

// One measurement on a time axis.
struct TimePoint {
  double t = 0;         // seconds since the gate started (the x axis)
  double value = 0;     // in the chart's unit (bytes for kBytes, % for kPercent)
  bool marked = false;  // drawn with a visible marker: e.g. the post-run measurement after a cooldown
  std::string note;     // plain text added to the point's tooltip ("after run 3"); may be empty
};

// A shaded span of one series' time axis.
struct PhaseBand {
  std::string phase;     // "baseline", "run" or "cooldown": the rect's class "phase phase-<phase>"
  int run = 0;           // data-run: 0 for the baseline, K for run K and its cooldown
  double start_t = 0;    // seconds, same axis as TimePoint::t
  double end_t = 0;
  bool warmup = false;   // a warm-up run (measured, not judged): hatched, class "warmup"
  std::string label;     // plain text drawn at the band's start when it fits ("run 2"); may be empty
  std::string short_label;  // drawn instead when `label` does not fit ("2"); may be empty
};

// One line on a chart. Each series has its own colour and label (the legend); its phase bands are
// optional (the comparison page gives each of "before" and "after" their own).
struct ChartSeries {
  std::string label;              // plain text for the legend and tooltips ("RSS", "before")
  std::string color;              // CSS colour of the line and markers
  std::vector<TimePoint> points;  // in time order
  bool markers_on_every_point = false;  // a sparse series (heap): every point visible, joined by a line
  bool dashed = false;            // e.g. a second series that would otherwise hide the first
  std::vector<PhaseBand> phases;  // may be empty
  std::string css_class;          // extra class on the series' <g> ("series-before"); may be empty
};

// A horizontal line at a threshold, labelled ("idle limit 2.5 %", "peak RSS limit 28 MiB").
struct ThresholdLine {
  double value = 0;   // in the chart's unit
  std::string label;  // plain text, drawn above the line at its right end
  std::string color = std::string(kColorThreshold);
};

struct ChartSpec {
  std::string metric;   // the svg's data-metric ("cpu_pct", "rss_bytes", ...)
  std::string title;    // plain text heading of the chart ("CPU (% of one core)")
  ValueUnit unit = ValueUnit::kCount;
  std::vector<ChartSeries> series;
  std::vector<ThresholdLine> thresholds;
  std::string x_label = "time since start (s)";  // plain text
  std::string note;     // plain text under the chart (e.g. "heap measured after each cooldown only")
  int width = 640;      // viewBox size; the svg scales to the width of its box (.charts lays the
  int height = 260;     // boxes out in a grid: two side by side on a laptop, one on a narrow screen)
  // The y axis starts at 0; else near the lowest value (thresholds included), spanning at least a
  // fifth of the top value (5 for counts) so that a small change does not fill the chart.
  bool y_from_zero = true;
  // > 0: the y axis stops here even when values go above it; those points are drawn on the top edge
  // (their tooltips keep the true value) and the legend says the chart is clipped. Lets the idle
  // CPU after each cooldown stay readable beside run peaks of 100 % and more.
  double y_cap = 0;
};

// A chart as <figure class="chart-box"> (put several in <div class="charts">) holding a heading, the
// <svg class="chart" data-metric="..."> and a legend in HTML (series, phases, post-run marker,
// thresholds), so the legend wraps on a narrow screen instead of overflowing.
// Phase bands: when exactly one series has phases they span the whole plot height (baseline grey,
// run blue, cooldown green, warm-up hatched) with their labels at the top; when several series have
// phases each series gets its own lane of bands under the plot, labelled with the series' label
// (rects carry data-series="<label>"). Each point has a <title> tooltip (series, time, value, note);
// marked points and every point of a markers_on_every_point series are drawn visibly. Threshold
// lines are dashed and labelled, each label on a light backing where it covers the least data and
// no other label (of two close lines, the upper one's label above, the lower one's below); the y
// range always includes them, unless above y_cap. A chart without any point says "no data" in
// place of the plot.
std::string RenderTimelineChart(const ChartSpec& chart);

// ---- page, sections, tables ----

// A whole page: <!DOCTYPE html>, <meta charset>, viewport, the given <meta name content> pairs
// (escaped), <title>, the inline stylesheet (plus `extra_css`, inserted as it is), and `body_html`
// inside <main>. `lang` is the page's language attribute ("en", "zh").
std::string RenderPage(std::string_view title, std::string_view lang,
                       const std::vector<std::pair<std::string, std::string>>& meta,
                       std::string_view body_html, std::string_view extra_css = {});

// The shared stylesheet (without <style>): readable on a laptop, nothing wider than the window, long
// words (stack frames, paths) wrap anywhere. Exposed for tests.
std::string_view PageCss();

// "pass" -> <span class="verdict verdict-pass">pass</span> (green), "fail" red, "inconclusive"
// amber, "error" purple; another text is escaped and shown neutral. `text` replaces the displayed
// word when not empty (plain text).
std::string VerdictBadge(std::string_view verdict, std::string_view text = {});

// The CSS colour of a verdict (kColorPass, ...; grey for an unknown verdict).
std::string_view VerdictColor(std::string_view verdict);

// <h2 id="id">title</h2>; `title` plain text, `id` plain text.
std::string SectionHeading(std::string_view id, std::string_view title);

// <code>text</code>, escaped; long text wraps anywhere.
std::string Code(std::string_view text);

// A stack as <details class="stack"><summary>summary</summary><ol><li><code>frame</code></li>...
// </ol></details>; `summary_html` is HTML, frames plain text. An empty stack gives "".
std::string StackDetails(std::string_view summary_html, const std::vector<std::string>& frames);

// A table column: plain-text title; numeric columns are right-aligned with tabular figures.
struct TableColumn {
  std::string title;
  bool numeric = false;
};

// A table row: cells are HTML (escape text with HtmlEscape); `css_class` goes on the <tr>
// ("row-fail", "row-warmup"); a row may have fewer cells than columns.
struct TableRow {
  std::vector<std::string> cells;
  std::string css_class;
};

// <div class="table-wrap"><table class="css_class">...</table></div>: the wrapper scrolls a table
// that is too wide for the screen instead of widening the page.
std::string RenderTable(const std::vector<TableColumn>& columns, const std::vector<TableRow>& rows,
                        std::string_view css_class = {});

}  // namespace leakgate::reports::html

#endif  // LEAKGATE_REPORTS_SRC_HTML_PARTS_H_
