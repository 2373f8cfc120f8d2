// The comparison page: the headline, one chart per metric with the timelines of both gates
// overlaid (time since each gate started), then the tables of the Markdown comparison. Its marks
// are ✓ ✗ ⚠ (in the common text fonts) rather than the Markdown's emoji, which a machine without an
// emoji font draws as empty boxes.
#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "compare_internal.h"
#include "html_parts.h"
#include "timeline.h"
#include "reports/compare.h"
#include "reports/html_report.h"
#include "result_format.h"

namespace leakgate::reports {
namespace {

using compare_internal::InUnit;
using compare_internal::Signed;
using compare_internal::ThresholdText;
using html::ChartSeries;
using html::ChartSpec;
using html::PhaseBand;
using html::TableColumn;
using html::TableRow;
using html::TimePoint;
using html::ValueUnit;
using nlohmann::json;

// The CPU axis stops at three times the highest idle figure (at least this), so the idle CPU after
// each cooldown stays readable beside run peaks of 100 % and more.
constexpr double kMinCpuAxisCapPct = 25;

// ---- one side's timeline ----

struct Side {
  std::string label;  // "before", "after"
  std::string color;
  const json* result = nullptr;
  const json* timeline = nullptr;  // nullptr: none
  std::vector<PhaseBand> bands;
};

// The comparison's two lanes of bands are narrow: runs carry their short label ("2", "w1") only.
std::vector<PhaseBand> Bands(const json& r) {
  std::vector<PhaseBand> bands = TimelineBands(r);
  for (PhaseBand& band : bands) band.label = band.short_label;
  return bands;
}

Side MakeSide(const json& r, std::string label, std::string_view color) {
  Side side;
  side.label = std::move(label);
  side.color = std::string(color);
  side.result = &r;
  if (r.contains("timeline") && r["timeline"].is_array() && !r["timeline"].empty()) {
    side.timeline = &r["timeline"];
    side.bands = Bands(r);
  }
  return side;
}

// The judged snapshots of a side: the baseline and the state after each run, with their times.
struct Snapshot {
  double t = 0;
  const json* values = nullptr;
  std::string note;
};

std::vector<Snapshot> Snapshots(const Side& side) {
  std::vector<Snapshot> snapshots;
  const json& r = *side.result;
  if (r.contains("baseline") && r["baseline"].is_object()) {
    if (auto t = NumberAt(r["baseline"], "t")) {
      snapshots.push_back({*t, &r["baseline"], side.label + ": baseline"});
    }
  }
  for (const json& run : r["runs"]) {
    if (auto t = NumberAt(run["after"], "t")) {
      snapshots.push_back({*t, &run["after"],
                           side.label + ": after run " + Count(run["index"].get<double>()) +
                               (run.value("warmup", false) ? " (warm-up)" : "")});
    }
  }
  return snapshots;
}

// Every timeline value of `key`, the judged snapshots marked (added where the timeline has no
// point at their time). `snapshots_only`: the snapshots alone (the heap, measured only there).
std::vector<TimePoint> Points(const Side& side, const char* key, bool snapshots_only) {
  std::vector<TimePoint> points;
  if (side.timeline != nullptr) {
    for (const json& p : *side.timeline) {
      if (snapshots_only && p["phase"] != "cooldown" && p["phase"] != "baseline") continue;
      if (auto v = NumberAt(p, key)) {
        if (!snapshots_only) points.push_back({p["t"].get<double>(), *v, false, ""});
      }
    }
  }
  for (const Snapshot& s : Snapshots(side)) {
    const std::optional<double> v = NumberAt(*s.values, key);
    if (!v) continue;
    auto same = std::find_if(points.begin(), points.end(),
                             [&](const TimePoint& p) { return std::fabs(p.t - s.t) < 1e-6; });
    if (same != points.end()) {
      same->marked = true;
      same->note = s.note;
    } else {
      points.push_back({s.t, *v, true, s.note});
    }
  }
  std::stable_sort(points.begin(), points.end(),
                   [](const TimePoint& a, const TimePoint& b) { return a.t < b.t; });
  return points;
}

ChartSeries SeriesOf(const Side& side, const char* key, bool snapshots_only) {
  ChartSeries series;
  series.label = side.label;
  series.color = side.color;
  series.points = Points(side, key, snapshots_only);
  series.markers_on_every_point = snapshots_only;
  series.phases = side.bands;
  series.css_class = "series-" + side.label;
  return series;
}

std::optional<double> CheckThreshold(const json& r, std::string_view name) {
  const json* check = FindCheck(r, name);
  return check != nullptr ? NumberAt(*check, "threshold") : std::nullopt;
}

// A threshold line per side, or one when both sides have the same value.
void AddThresholds(ChartSpec& chart, const std::optional<double>& before,
                   const std::optional<double>& after, const std::string& what) {
  const ValueUnit unit = chart.unit;
  if (before && after && std::fabs(*before - *after) < 1e-9) {
    chart.thresholds.push_back({*after, what + " " + html::FormatValue(*after, unit)});
    return;
  }
  if (before) {
    chart.thresholds.push_back(
        {*before, "before: " + what + " " + html::FormatValue(*before, unit),
         std::string(html::kColorBefore)});
  }
  if (after) {
    chart.thresholds.push_back({*after, "after: " + what + " " + html::FormatValue(*after, unit),
                                std::string(html::kColorAfter)});
  }
}

std::string Charts(const Side& before, const Side& after) {
  if (before.timeline == nullptr && after.timeline == nullptr) {
    return "<p class=\"notice\">Neither result has a timeline, so there are no charts.</p>\n";
  }
  std::string out;
  for (const Side* side : {&before, &after}) {
    if (side->timeline == nullptr) {
      out += "<p class=\"notice\">The " + side->label +
             " result has no timeline: its line is missing from the charts.</p>\n";
    }
  }
  out += "<div class=\"charts\">\n";
  const std::string x_label = "time since the gate started (s)";
  {
    ChartSpec chart{.metric = "cpu_pct", .title = "CPU (% of one core)", .unit = ValueUnit::kPercent};
    chart.x_label = x_label;
    double highest_idle = 0;
    for (const Side* side : {&before, &after}) {
      for (const Snapshot& s : Snapshots(*side)) {
        highest_idle = std::max(highest_idle, NumberAt(*s.values, "cpu_pct").value_or(0));
      }
      ChartSeries series = SeriesOf(*side, "cpu_pct", false);
      chart.series.push_back(std::move(series));
    }
    const std::optional<double> before_limit = IdleCpuLimit(*before.result);
    const std::optional<double> after_limit = IdleCpuLimit(*after.result);
    AddThresholds(chart, before_limit, after_limit, "idle limit");
    highest_idle = std::max({highest_idle, before_limit.value_or(0), after_limit.value_or(0)});
    chart.y_cap = std::max(kMinCpuAxisCapPct, 3 * highest_idle);
    chart.note = "Marked points: the idle CPU at the end of each cooldown (and the baseline), "
                 "which idle_cpu_returns compares to the baseline.";
    out += html::RenderTimelineChart(chart);
  }
  {
    ChartSpec chart{.metric = "rss_bytes", .title = "RSS (resident memory)", .unit = ValueUnit::kBytes};
    chart.x_label = x_label;
    for (const Side* side : {&before, &after}) chart.series.push_back(SeriesOf(*side, "rss_bytes", false));
    AddThresholds(chart, CheckThreshold(*before.result, check_id::kPeakRss),
                  CheckThreshold(*after.result, check_id::kPeakRss), "peak RSS limit");
    chart.note = "Marked points: the RSS after each cooldown (and the baseline).";
    out += html::RenderTimelineChart(chart);
  }
  {
    ChartSpec chart{.metric = "heap_bytes", .title = "Heap in use (exact)", .unit = ValueUnit::kBytes};
    chart.x_label = x_label;
    for (const Side* side : {&before, &after}) chart.series.push_back(SeriesOf(*side, "heap_bytes", true));
    chart.note = "Measured at the baseline and after each cooldown only.";
    out += html::RenderTimelineChart(chart);
  }
  struct CountChart {
    const char* metric;
    const char* title;
  };
  for (const CountChart& c : {CountChart{"fds", "Open file descriptors"}, CountChart{"threads", "Threads"}}) {
    ChartSpec chart{.metric = c.metric, .title = c.title, .unit = ValueUnit::kCount};
    chart.x_label = x_label;
    for (const Side* side : {&before, &after}) chart.series.push_back(SeriesOf(*side, c.metric, false));
    out += html::RenderTimelineChart(chart);
  }
  out += "</div>\n";
  return out;
}

// ---- tables ----

std::string Badge(const std::string& verdict) {
  return verdict.empty() ? "—" : html::VerdictBadge(verdict);
}

std::string RowClass(Change change) {
  switch (change) {
    case Change::kFixed: return "row-pass";
    case Change::kStillFailing:
    case Change::kRegressed: return "row-fail";
    case Change::kUndecided: return "row-inconclusive";
    default: return "";
  }
}

std::string ChangeCell(Change change) {
  std::string word = HtmlEscape(ChangeName(change));
  switch (change) {
    case Change::kFixed: return "<span class=\"good\">✓ " + word + "</span>";
    case Change::kStillFailing:
    case Change::kRegressed: return "<span class=\"bad\">✗ " + word + "</span>";
    case Change::kUndecided: return "⚠ " + word;
    default: return word;
  }
}

std::string Pair(std::string_view before_html, std::string_view after_html) {
  return "<span class=\"was\">" + std::string(before_html) + "</span> → <span class=\"now\">" +
         std::string(after_html) + "</span>";
}

std::string ChecksTable(const Comparison& c) {
  std::vector<TableRow> rows;
  for (const CheckComparison& check : c.checks) {
    const std::string threshold = ThresholdText(check);
    rows.push_back(
        {{html::Code(check.name),
          Badge(check.before_verdict) + " " + HtmlEscape(InUnit(check.before_observed, check.unit)),
          Badge(check.after_verdict) + " " + HtmlEscape(InUnit(check.after_observed, check.unit)),
          HtmlEscape(threshold), ChangeCell(check.change)},
         RowClass(check.change)});
  }
  return html::RenderTable({{"check"}, {"before"}, {"after"}, {"threshold", true}, {"change"}},
                           rows, "checks");
}

std::string StateValue(const std::optional<json>& s, const char* key) {
  if (!s) return "—";
  const std::optional<double> v = NumberAt(*s, key);
  if (!v) return "—";
  if (std::string_view(key) == "cpu_pct") return Fixed(*v, 1) + " %";
  if (std::string_view(key) == "rss_bytes" || std::string_view(key) == "heap_bytes") {
    return Size(*v);
  }
  return Count(*v);
}

std::string CpuStatus(bool known, bool back) {
  if (!known) return "—";
  return back ? "✓" : "✗";
}

std::string StatesTable(const Comparison& c) {
  std::vector<TableRow> rows;
  for (const StateRow& row : c.states) {
    std::string label = "baseline (idle)";
    if (row.run > 0) {
      label = RunLabel(false, json{{"index", row.run},
                                   {"warmup", row.before_warmup || row.after_warmup}});
    }
    TableRow r;
    r.cells.push_back(HtmlEscape(label));
    for (const char* key : {"cpu_pct", "rss_bytes", "heap_bytes", "fds", "threads"}) {
      r.cells.push_back(Pair(HtmlEscape(StateValue(row.before, key)),
                             HtmlEscape(StateValue(row.after, key))));
    }
    r.cells.push_back(row.run == 0 ? "—"
                                   : Pair(CpuStatus(row.before_cpu_known, row.before_cpu_back),
                                          CpuStatus(row.after_cpu_known, row.after_cpu_back)));
    if (row.before_warmup || row.after_warmup) r.css_class = "row-warmup";
    rows.push_back(std::move(r));
  }
  return "<p>Each cell reads before → after. Status: ✓ CPU back to baseline, ✗ CPU above "
         "baseline.</p>\n" +
         html::RenderTable({{"phase"},
                            {"CPU", true},
                            {"RSS", true},
                            {"heap", true},
                            {"fds", true},
                            {"threads", true},
                            {"status"}},
                           rows, "states");
}

std::string_view MetricLabel(std::string_view metric) {
  if (metric == "cpu_pct") return "idle CPU";
  if (metric == "rss_bytes") return "RSS";
  if (metric == "heap_bytes") return "heap";
  if (metric == "fds") return "fds";
  if (metric == "sockets") return "sockets";
  if (metric == "threads") return "threads";
  if (metric == "peak_rss_bytes") return "peak RSS";
  return metric;
}

std::string GrowthTable(const Comparison& c) {
  std::vector<TableRow> rows;
  for (const MetricGrowth& g : c.growth) {
    if (!g.before_per_run && !g.after_per_run && !g.before_total && !g.after_total) continue;
    rows.push_back({{HtmlEscape(MetricLabel(g.metric)), HtmlEscape(Signed(g.before_per_run, g.unit)),
                     HtmlEscape(Signed(g.after_per_run, g.unit)),
                     HtmlEscape(Signed(g.before_total, g.unit)),
                     HtmlEscape(Signed(g.after_total, g.unit))},
                    ""});
  }
  return html::RenderTable({{"metric"},
                            {"before, per run", true},
                            {"after, per run", true},
                            {"before, total", true},
                            {"after, total", true}},
                           rows, "growth") +
         "<p class=\"chart-note\">Per run: Theil-Sen slope over the judged runs; total: the last "
         "judged run against the warm-up (idle CPU: against the baseline).</p>\n";
}

std::string SiteFigures(const SiteComparison& s, bool before) {
  const std::optional<double>& per_run = before ? s.before_per_run : s.after_per_run;
  const std::optional<double>& total = before ? s.before_total : s.after_total;
  const bool bytes = s.kind == "heap" || s.kind == "peak";
  if (s.kind == "peak") return per_run ? Size(*per_run) + " at the peak" : "—";
  if (!per_run && !total) return "—";
  std::string text;
  if (total) text = bytes ? SignedSize(*total) : "+" + Count(*total);
  if (per_run) {
    text += (text.empty() ? "(" : " (") + (bytes ? Size(*per_run) : Fixed(*per_run, 2)) +
            " per run)";
  }
  return text;
}

std::string SitesTable(const Comparison& c) {
  if (c.sites.empty()) {
    return "<p>Neither result lists anything that grew or a site at the peak.</p>\n";
  }
  std::vector<TableRow> rows;
  for (Change change :
       {Change::kFixed, Change::kStillFailing, Change::kRegressed, Change::kOnlyAfter}) {
    for (const SiteComparison& s : c.sites) {
      if (s.change != change) continue;
      std::string word;
      std::string css;
      switch (change) {
        case Change::kFixed:
          word = "<span class=\"good\">✓ gone</span>";
          css = "row-pass";
          break;
        case Change::kStillFailing: word = "remains"; break;
        case Change::kRegressed:
          word = "<span class=\"bad\">✗ new</span>";
          css = "row-fail";
          break;
        default: word = "listed after only"; break;
      }
      std::string site = html::Code(s.site);
      if (!s.location.empty()) site += "<br><span class=\"tag\">" + HtmlEscape(s.location) + "</span>";
      if (s.suppressed) site += " <span class=\"tag\">suppressed</span>";
      rows.push_back({{word, HtmlEscape(s.kind == "peak" ? "heap at the peak" : s.kind), site,
                       HtmlEscape(SiteFigures(s, true)), HtmlEscape(SiteFigures(s, false))},
                      css});
    }
  }
  return html::RenderTable(
      {{"change"}, {"kind"}, {"site"}, {"before", true}, {"after", true}}, rows, "sites");
}

constexpr std::string_view kExtraCss =
    ".was{color:#c2410c}.now{color:#1d4ed8}"
    ".headline{font-size:1.25em;margin:.4em 0}"
    ".headline .mark{font-size:1.2em}";

}  // namespace

Result<std::string> RenderComparisonHtml(const Comparison& comparison, const nlohmann::json& before,
                                         const nlohmann::json& after) {
  if (auto ok = compare_internal::ValidateSide(before, "before"); !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = compare_internal::ValidateSide(after, "after"); !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = ValidateTimeline(before, "before"); !ok) return std::unexpected(ok.error());
  if (auto ok = ValidateTimeline(after, "after"); !ok) return std::unexpected(ok.error());
  const Side before_side = MakeSide(before, "before", html::kColorBefore);
  const Side after_side = MakeSide(after, "after", html::kColorAfter);
  const Comparison& c = comparison;
  const std::string outcome = c.fixed ? "The fix is shown" : "The fix is not shown";

  std::string body;
  body += "<h1>leakgate: before and after — " + HtmlEscape(c.before_name) + " → " +
          HtmlEscape(c.after_name) + "</h1>\n";
  body += "<p class=\"headline\"><span class=\"mark\">" + std::string(c.fixed ? "✓" : "✗") +
          "</span> <strong class=\"" + (c.fixed ? "good" : "bad") + "\">" + outcome +
          "</strong>: " + HtmlEscape(compare_internal::Summary(c, false)) + "</p>\n";
  body += "<dl class=\"facts\">";
  body += "<dt>before</dt><dd>" + HtmlEscape(c.before_name) + " " + Badge(c.before_verdict) +
          " " + std::to_string(c.before_judged_runs) + " judged runs</dd>";
  body += "<dt>after</dt><dd>" + HtmlEscape(c.after_name) + " " + Badge(c.after_verdict) + " " +
          std::to_string(c.after_judged_runs) + " judged runs</dd>";
  body += "</dl>\n";
  body += html::SectionHeading("timelines", "Timelines, before and after");
  body += Charts(before_side, after_side);
  body += html::SectionHeading("checks", "Checks");
  body += ChecksTable(c);
  body += html::SectionHeading("states", "State after each run");
  body += StatesTable(c);
  body += html::SectionHeading("growth", "Growth per run");
  body += GrowthTable(c);
  body += html::SectionHeading("sites", "What grew, before and after");
  body += SitesTable(c);
  return html::RenderPage("leakgate: " + c.before_name + " → " + c.after_name + " — " + outcome,
                          "en",
                          {{"leakgate-comparison", c.fixed ? "fixed" : "not-fixed"},
                           {"generator", "leakgate"}},
                          body, kExtraCss);
}

}  // namespace leakgate::reports
