#include "reports/html_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/units.h"
#include "html_parts.h"
#include "timeline.h"
#include "result_format.h"

namespace leakgate::reports {
namespace {

using nlohmann::json;

using html::ChartSeries;
using html::ChartSpec;
using html::PhaseBand;
using html::TableColumn;
using html::TableRow;
using html::ThresholdLine;
using html::TimePoint;
using html::ValueUnit;

// The kernel counts CPU time in ticks of 10 ms (CLK_TCK 100): over a settle window of 2 s one tick
// is 0.5 % of a core, so a thread group's idle CPU within that of its baseline is no change.
constexpr double kThreadCpuResolutionPct = 0.5;
// The CPU chart stops at max(this, 3 x the highest idle figure or limit), so the idle CPU after
// each cooldown stays readable beside run peaks of 100 % and more.
constexpr double kMinCpuAxisCapPct = 25;
// At most this many thread groups get a column in the idle-thread table; the rest are summed.
constexpr size_t kMaxThreadColumns = 8;

// ---- reading the result ----

// A snapshot the checks judge: the baseline or the state after a run's cooldown.
struct Measurement {
  int run = 0;  // 0: the baseline
  bool warmup = false;
  std::optional<double> t;
  const json* values = nullptr;
  std::string note;  // "baseline", "after run 2"
};

std::vector<Measurement> Measurements(const json& r) {
  std::vector<Measurement> out;
  if (r.contains("baseline") && r["baseline"].is_object()) {
    out.push_back({0, false, NumberAt(r["baseline"], "t"), &r["baseline"], "baseline"});
  }
  for (const json& run : r["runs"]) {
    const int index = static_cast<int>(run["index"].get<double>());
    const bool warmup = run.value("warmup", false);
    out.push_back({index, warmup, NumberAt(run["after"], "t"), &run["after"],
                   "after run " + std::to_string(index) + (warmup ? " (warm-up)" : "")});
  }
  return out;
}

// The snapshot growth is measured from: after the last warm-up run, else the baseline.
const Measurement* Reference(const std::vector<Measurement>& measurements) {
  const Measurement* reference = nullptr;
  for (const Measurement& m : measurements) {
    if (m.run == 0 || m.warmup) reference = &m;
  }
  return reference;
}

// A threshold: the named check's, else the scenario's thresholds.KEY (a size string through
// ParseSize, or a number); none when the check is off or neither says.
std::optional<double> Threshold(const json& r, std::string_view check_name, const char* key) {
  if (const json* check = FindCheck(r, check_name)) {
    if (auto value = NumberAt(*check, "threshold")) return value;
  }
  const json& scenario = r["scenario"];
  if (!scenario.contains("thresholds") || !scenario["thresholds"].is_object()) return std::nullopt;
  const json& thresholds = scenario["thresholds"];
  auto it = thresholds.find(key);
  if (it == thresholds.end()) return std::nullopt;
  if (it->is_number()) return it->get<double>();
  if (it->is_string()) {
    if (auto bytes = ParseSize(it->get<std::string>())) return static_cast<double>(*bytes);
  }
  return std::nullopt;
}

std::string ReferenceWord(const Measurement& reference) {
  return reference.run == 0 ? "at the baseline" : "after the warm-up";
}

// ---- the charts ----

struct Timeline {
  const json* points = nullptr;
  std::vector<PhaseBand> bands;
};

Timeline ReadTimeline(const json& r) {
  Timeline timeline;
  if (!r.contains("timeline") || !r["timeline"].is_array() || r["timeline"].empty()) {
    return timeline;
  }
  timeline.points = &r["timeline"];
  timeline.bands = TimelineBands(r);
  return timeline;
}

// One metric of every timeline point, the judged snapshots marked (added where the timeline has no
// point at their time).
std::vector<TimePoint> SampledSeries(const Timeline& timeline,
                                     const std::vector<Measurement>& measurements,
                                     const char* key) {
  std::vector<TimePoint> points;
  for (const json& p : *timeline.points) {
    if (auto value = NumberAt(p, key)) points.push_back({p["t"].get<double>(), *value, false, ""});
  }
  for (const Measurement& m : measurements) {
    if (!m.t) continue;
    const std::optional<double> value = NumberAt(*m.values, key);
    if (!value) continue;
    auto same = std::find_if(points.begin(), points.end(), [&](const TimePoint& p) {
      return std::fabs(p.t - *m.t) < 1e-6;
    });
    if (same != points.end()) {
      same->marked = true;
      same->note = m.note;
    } else {
      points.push_back({*m.t, *value, true, m.note});
    }
  }
  std::stable_sort(points.begin(), points.end(),
                   [](const TimePoint& a, const TimePoint& b) { return a.t < b.t; });
  return points;
}

// The judged snapshots alone (idle CPU over the settle window, exact heap), joined by a line.
std::vector<TimePoint> MeasuredSeries(const std::vector<Measurement>& measurements,
                                      const char* key) {
  std::vector<TimePoint> points;
  for (const Measurement& m : measurements) {
    if (!m.t) continue;
    if (auto value = NumberAt(*m.values, key)) points.push_back({*m.t, *value, true, m.note});
  }
  std::stable_sort(points.begin(), points.end(),
                   [](const TimePoint& a, const TimePoint& b) { return a.t < b.t; });
  return points;
}

ChartSeries Series(std::string label, std::string_view color, std::vector<TimePoint> points) {
  ChartSeries series;
  series.label = std::move(label);
  series.color = std::string(color);
  series.points = std::move(points);
  return series;
}

std::string Charts(const json& r) {
  const Timeline timeline = ReadTimeline(r);
  if (timeline.points == nullptr) {
    return "<p class=\"notice\">This result has no timeline (the gate stopped before the baseline "
           "was measured), so there are no charts.</p>\n";
  }
  const std::vector<Measurement> measurements = Measurements(r);
  const Measurement* reference = Reference(measurements);
  const Measurement* baseline =
      !measurements.empty() && measurements.front().run == 0 ? &measurements.front() : nullptr;
  std::string out = "<div class=\"charts\">\n";

  // CPU: the samples, and the idle CPU the check judges (over each settle window).
  {
    ChartSpec chart{.metric = "cpu_pct", .title = "CPU (% of one core)", .unit = ValueUnit::kPercent};
    ChartSeries samples = Series("CPU, sampled", "#b39ddb", SampledSeries(timeline, {}, "cpu_pct"));
    samples.css_class = "series-samples";
    samples.phases = timeline.bands;
    chart.series.push_back(std::move(samples));
    ChartSeries idle =
        Series("idle CPU (judged)", html::kColorCpu, MeasuredSeries(measurements, "cpu_pct"));
    idle.markers_on_every_point = true;
    double highest_idle = 0;
    for (const TimePoint& p : idle.points) highest_idle = std::max(highest_idle, p.value);
    chart.series.push_back(std::move(idle));
    const std::optional<double> allowance = IdleCpuAllowance(r);
    std::string limit_note;
    std::optional<double> base_cpu;
    if (baseline != nullptr) base_cpu = NumberAt(*baseline->values, "cpu_pct");
    if (allowance && base_cpu) {
      const double limit = *base_cpu + *allowance;
      chart.thresholds.push_back({limit, "idle limit " + Fixed(limit, 1) + " %"});
      highest_idle = std::max(highest_idle, limit);
      limit_note = " Idle limit: the baseline (" + Fixed(*base_cpu, 1) + " %) + " +
                   Count(*allowance) + " %.";
    }
    chart.y_cap = std::max(kMinCpuAxisCapPct, 3 * highest_idle);
    chart.note = "Idle CPU (dark): the target's CPU over the settle window at the end of each "
                 "cooldown, which the idle_cpu_returns check compares to the baseline." +
                 limit_note;
    out += html::RenderTimelineChart(chart);
  }

  // RSS: the samples, the peak (VmHWM) of each run, the budget and the peak limit.
  {
    ChartSpec chart{.metric = "rss_bytes", .title = "RSS (resident memory)", .unit = ValueUnit::kBytes};
    ChartSeries rss = Series("RSS", html::kColorRss, SampledSeries(timeline, measurements, "rss_bytes"));
    rss.phases = timeline.bands;
    chart.series.push_back(std::move(rss));
    std::vector<TimePoint> peaks;
    for (const json& run : r["runs"]) {
      const std::optional<double> start = NumberAt(run, "start_s");
      const std::optional<double> duration = NumberAt(run, "duration_s");
      const std::optional<double> peak = NumberAt(run, "peak_rss_bytes");
      if (!start || !peak) continue;
      peaks.push_back({*start + duration.value_or(0), *peak, false,
                       "peak of run " + Count(run["index"].get<double>())});
    }
    if (!peaks.empty()) {
      ChartSeries peak_series = Series("peak RSS of each run (VmHWM)", "#60a5fa", std::move(peaks));
      peak_series.markers_on_every_point = true;
      peak_series.dashed = true;
      chart.series.push_back(std::move(peak_series));
    }
    const std::optional<double> total = Threshold(r, check_id::kRssGrowthTotal, "rss_total");
    if (total && reference != nullptr) {
      if (auto ref = NumberAt(*reference->values, "rss_bytes")) {
        chart.thresholds.push_back({*ref + *total, "RSS budget " + Size(*ref + *total)});
        chart.note += "RSS budget: RSS " + ReferenceWord(*reference) + " (" + Size(*ref) + ") + " +
                      Size(*total) + ". ";
      }
    }
    if (auto peak_limit = Threshold(r, check_id::kPeakRss, "peak_rss")) {
      chart.thresholds.push_back({*peak_limit, "peak RSS limit " + Size(*peak_limit)});
      chart.note += "Peak RSS limit: for the highest RSS during a judged run (dashed line). ";
    }
    if (!chart.note.empty()) chart.note.pop_back();
    out += html::RenderTimelineChart(chart);
  }

  // Heap in use: measured only at the baseline and after each cooldown.
  {
    ChartSpec chart{.metric = "heap_bytes", .title = "Heap in use (exact)", .unit = ValueUnit::kBytes};
    std::vector<TimePoint> points = MeasuredSeries(measurements, "heap_bytes");
    // Points of the timeline that carry a heap figure without being a judged snapshot.
    for (const json& p : *timeline.points) {
      const std::optional<double> value = NumberAt(p, "heap_bytes");
      if (!value) continue;
      const double t = p["t"].get<double>();
      if (std::none_of(points.begin(), points.end(),
                       [&](const TimePoint& q) { return std::fabs(q.t - t) < 1e-6; })) {
        points.push_back({t, *value, true, ""});
      }
    }
    std::stable_sort(points.begin(), points.end(),
                     [](const TimePoint& a, const TimePoint& b) { return a.t < b.t; });
    ChartSeries heap = Series("heap in use", html::kColorHeap, std::move(points));
    heap.markers_on_every_point = true;
    heap.phases = timeline.bands;
    chart.series.push_back(std::move(heap));
    chart.note = "Measured at the baseline and after each cooldown only.";
    if (chart.series.front().points.empty()) {
      chart.note = "The target's heap was not measured (no heap statistics for this target).";
    }
    out += html::RenderTimelineChart(chart);
  }

  // Open fds (sockets among them) and threads, with the allowance over the reference.
  struct CountChart {
    const char* metric;
    const char* title;
    const char* label;
    std::string_view color;
    std::string_view check;
    const char* threshold_key;
    const char* noun;
  };
  for (const CountChart& c :
       {CountChart{"fds", "Open file descriptors", "fds", html::kColorFds, check_id::kFdsStable, "fds", "fd"},
        CountChart{"threads", "Threads", "threads", html::kColorThreads, check_id::kThreadsStable, "threads",
                   "thread"}}) {
    // Counts start near their lowest value: a few more threads among eighty must show.
    ChartSpec chart{.metric = c.metric, .title = c.title, .unit = ValueUnit::kCount,
                    .y_from_zero = false};
    ChartSeries series = Series(c.label, c.color, SampledSeries(timeline, measurements, c.metric));
    series.phases = timeline.bands;
    chart.series.push_back(std::move(series));
    if (std::string_view(c.metric) == "fds") {
      std::vector<TimePoint> sockets = SampledSeries(timeline, measurements, "sockets");
      if (!sockets.empty()) {
        ChartSeries socket_series = Series("sockets (among the fds)", "#0e7490", std::move(sockets));
        socket_series.dashed = true;
        chart.series.push_back(std::move(socket_series));
      }
    }
    const std::optional<double> allowance = Threshold(r, c.check, c.threshold_key);
    if (allowance && reference != nullptr) {
      if (auto ref = NumberAt(*reference->values, c.metric)) {
        chart.thresholds.push_back(
            {*ref + *allowance, std::string(c.noun) + " limit " + Count(*ref + *allowance)});
        chart.note = "Limit: " + std::string(c.label) + " " + ReferenceWord(*reference) + " (" +
                     Count(*ref) + ") + " + Count(*allowance) + " tolerated.";
      }
    }
    out += html::RenderTimelineChart(chart);
  }
  out += "</div>\n";
  return out;
}

// ---- the sections ----

std::string_view VerdictOrderName(int order) {
  static constexpr std::string_view kNames[] = {"fail", "error", "inconclusive", "pass"};
  return kNames[order];
}

int VerdictOrder(std::string_view verdict) {
  for (int i = 0; i < 4; ++i) {
    if (VerdictOrderName(i) == verdict) return i;
  }
  return 2;
}

std::string CheckAnchor(const json& check) {
  std::string anchor = "check-";
  for (char c : check["name"].get<std::string>()) {
    anchor += std::isalnum(static_cast<unsigned char>(c)) || c == '_' ? c : '-';
  }
  return anchor;
}

std::string Header(const json& r) {
  const std::string verdict = r["verdict"].get<std::string>();
  const json& scenario = r["scenario"];
  std::string out = "<header>\n<h1>leakgate: " + HtmlEscape(scenario["name"].get<std::string>()) +
                    " " + html::VerdictBadge(verdict) + "</h1>\n";
  if (const std::string description = StringAt(scenario, "description"); !description.empty()) {
    out += "<p class=\"sub\">" + HtmlEscape(description) + "</p>\n";
  }
  out += "<dl class=\"facts\">";
  if (r.contains("target") && r["target"].is_object()) {
    if (std::string target = StringAt(r["target"], "description"); !target.empty()) {
      out += "<dt>target</dt><dd>" + HtmlEscape(target);
      if (r["target"].contains("exit") && r["target"]["exit"].is_object()) {
        const std::string exit = StringAt(r["target"]["exit"], "description");
        if (!exit.empty()) out += "; " + HtmlEscape(exit);
      }
      out += "</dd>";
    }
  }
  if (r.contains("workload") && r["workload"].is_object()) {
    if (std::string workload = StringAt(r["workload"], "description"); !workload.empty()) {
      out += "<dt>workload</dt><dd>" + HtmlEscape(workload) + "</dd>";
    }
  }
  std::string runs_text = std::to_string(r["runs"].size()) + " run" +
                          (r["runs"].size() == 1 ? "" : "s");
  size_t warmups = 0;
  for (const json& run : r["runs"]) warmups += run.value("warmup", false) ? 1 : 0;
  if (warmups > 0) runs_text += " (" + std::to_string(warmups) + " warm-up, not judged)";
  if (auto judged = NumberAt(r, "judged_runs")) runs_text += ", " + Count(*judged) + " judged";
  if (auto wall = NumberAt(r, "wall_s")) runs_text += "; " + html::FormatSeconds(*wall) + " in all";
  out += "<dt>runs</dt><dd>" + HtmlEscape(runs_text) + "</dd>";
  if (r.contains("environment") && r["environment"].is_object()) {
    const json& env = r["environment"];
    std::string where = StringAt(env, "hostname");
    if (auto cpus = NumberAt(env, "cpus")) {
      where += (where.empty() ? "" : ", ") + Count(*cpus) + " CPUs";
    }
    if (std::string kernel = StringAt(env, "kernel"); !kernel.empty()) where += ", " + kernel;
    if (std::string started = StringAt(env, "started_at"); !started.empty()) {
      where += ", started " + started;
    }
    if (!where.empty()) out += "<dt>machine</dt><dd>" + HtmlEscape(where) + "</dd>";
  }
  out += "</dl>\n</header>\n";
  return out;
}

std::string Banner(const json& r) {
  const std::string verdict = r["verdict"].get<std::string>();
  std::string out = "<section class=\"banner banner-" + HtmlEscape(verdict) + "\" id=\"verdict\">\n";
  out += "<p class=\"big\">" + html::VerdictBadge(verdict);
  if (auto code = NumberAt(r, "exit_code")) out += " <span class=\"sub\">exit " + Count(*code) + "</span>";
  out += "</p>\n";
  // The summary names the checks listed below; a count says the same in less room.
  size_t failed = 0, inconclusive = 0;
  for (const json& check : r["checks"]) {
    failed += check["verdict"] == "fail" ? 1 : 0;
    inconclusive += check["verdict"] == "inconclusive" ? 1 : 0;
  }
  std::string summary = StringAt(r, "summary");
  if (summary.starts_with(verdict + ": ")) summary.erase(0, verdict.size() + 2);
  if (!summary.empty() && summary[0] >= 'a' && summary[0] <= 'z') summary[0] -= 'a' - 'A';
  if (failed + inconclusive > 0) {
    summary = std::to_string(failed) + " of " + std::to_string(r["checks"].size()) +
              " checks failed" +
              (inconclusive > 0 ? ", " + std::to_string(inconclusive) + " inconclusive" : "");
    if (auto judged = NumberAt(r, "judged_runs")) summary += " over " + Count(*judged) + " judged runs";
    summary += ":";
  }
  if (!summary.empty()) out += "<p>" + HtmlEscape(summary) + "</p>\n";
  if (std::string error = StringAt(r, "error"); !error.empty()) {
    out += "<p class=\"bad\">" + HtmlEscape(error) + "</p>\n";
  }
  std::string items;
  for (int order : {0, 2}) {
    for (const json& check : r["checks"]) {
      if (VerdictOrder(check["verdict"].get<std::string>()) != order) continue;
      items += "<li>" + html::VerdictBadge(check["verdict"].get<std::string>()) + " <a href=\"#" +
               CheckAnchor(check) + "\">" + HtmlEscape(check["name"].get<std::string>()) +
               "</a>: " + HtmlEscape(CheckValue(check, "observed")) + " (threshold " +
               HtmlEscape(CheckValue(check, "threshold")) + ")</li>";
    }
  }
  if (!items.empty()) out += "<ul>" + items + "</ul>\n";
  out += "</section>\n";
  return out;
}

std::string VerificationTable(const json& r) {
  const std::vector<TableColumn> columns = {{"phase", false}, {"CPU", true},  {"RSS", true},
                                            {"heap", true},   {"fds", true},  {"threads", true},
                                            {"status", false}};
  std::vector<TableRow> rows;
  std::optional<double> base_cpu, base_rss, base_heap;
  if (r.contains("baseline") && r["baseline"].is_object()) {
    const json& b = r["baseline"];
    base_cpu = NumberAt(b, "cpu_pct");
    base_rss = NumberAt(b, "rss_bytes");
    base_heap = NumberAt(b, "heap_bytes");
    rows.push_back({{"baseline (idle)", base_cpu ? Fixed(*base_cpu, 1) + " %" : "—",
                     HtmlEscape(Size(*base_rss)), base_heap ? HtmlEscape(Size(*base_heap)) : "—",
                     Count(b["fds"].get<double>()), Count(b["threads"].get<double>()), "—"},
                    ""});
  }
  const std::optional<double> allowance = IdleCpuAllowance(r);
  for (const json& run : r["runs"]) {
    const std::string label = HtmlEscape(RunLabel(false, run));
    const bool warmup = run.value("warmup", false);
    const std::optional<double> peak_cpu = NumberAt(run, "peak_cpu_pct");
    const std::optional<double> duration = NumberAt(run, "duration_s");
    rows.push_back({{label + ", during", peak_cpu ? Fixed(*peak_cpu, 1) + " % peak" : "—",
                     HtmlEscape(Size(run["peak_rss_bytes"].get<double>())) + " peak", "", "", "",
                     duration ? HtmlEscape(Fixed(*duration, 2) + " s") : ""},
                    warmup ? "row-warmup" : ""});
    const json& after = run["after"];
    const std::optional<double> cooldown = NumberAt(run, "cooldown_s");
    const std::optional<double> cpu = NumberAt(after, "cpu_pct");
    const double rss = after["rss_bytes"].get<double>();
    const std::optional<double> heap = NumberAt(after, "heap_bytes");
    std::string rss_text = Size(rss);
    if (base_rss) rss_text += " (" + SignedSize(rss - *base_rss) + ")";
    std::string heap_text = heap ? Size(*heap) : "—";
    if (heap && base_heap) heap_text += " (" + SignedSize(*heap - *base_heap) + ")";
    std::string status = "—";
    std::string row_class = warmup ? "row-warmup" : "";
    if (cpu && base_cpu && allowance) {
      const bool back = *cpu - *base_cpu <= *allowance;
      status = back ? "<span class=\"good\">CPU back to baseline</span>"
                    : "<span class=\"bad\">CPU above baseline</span>";
      if (!warmup) row_class = back ? "row-pass" : "row-fail";
    }
    rows.push_back({{label + ", after " + (cooldown ? Fixed(*cooldown, 1) : "?") + " s",
                     cpu ? Fixed(*cpu, 1) + " %" : "—", HtmlEscape(rss_text), HtmlEscape(heap_text),
                     Count(after["fds"].get<double>()), Count(after["threads"].get<double>()),
                     status},
                    row_class});
  }
  return html::RenderTable(columns, rows, "verification");
}

std::string ChecksTable(const json& r) {
  if (r["checks"].empty()) return "<p>No check was judged.</p>\n";
  std::vector<const json*> checks;
  for (const json& check : r["checks"]) checks.push_back(&check);
  std::stable_sort(checks.begin(), checks.end(), [](const json* a, const json* b) {
    return VerdictOrder((*a)["verdict"].get<std::string>()) <
           VerdictOrder((*b)["verdict"].get<std::string>());
  });
  std::vector<TableRow> rows;
  for (const json* check : checks) {
    const std::string verdict = (*check)["verdict"].get<std::string>();
    std::string name = "<span id=\"" + CheckAnchor(*check) + "\">" +
                       HtmlEscape((*check)["name"].get<std::string>()) + "</span>";
    if (std::string metric = StringAt(*check, "metric"); !metric.empty()) {
      name += "<br><span class=\"tag\">" + HtmlEscape(metric) + "</span>";
    }
    rows.push_back({{name, html::VerdictBadge(verdict), HtmlEscape(CheckValue(*check, "observed")),
                     HtmlEscape(CheckValue(*check, "threshold")),
                     "<div class=\"detail\">" + HtmlEscape(StringAt(*check, "detail")) + "</div>"},
                    "row-" + HtmlEscape(verdict)});
  }
  return html::RenderTable({{"check", false},
                            {"verdict", false},
                            {"observed", true},
                            {"threshold", true},
                            {"detail", false}},
                           rows, "checks");
}

std::vector<std::string> Strings(const json& parent, const char* key) {
  std::vector<std::string> out;
  auto it = parent.find(key);
  if (it == parent.end() || !it->is_array()) return out;
  for (const json& item : *it) {
    if (item.is_string()) out.push_back(item.get<std::string>());
  }
  return out;
}

bool IsBytes(std::string_view kind) { return kind == "heap" || kind == "rss"; }

std::string WhatGrew(const json& r) {
  std::string out;
  const json growth = r.value("growth", json::array());
  if (growth.empty()) {
    out += "<p>Nothing grew.</p>\n";
  } else {
    std::vector<TableRow> rows;
    for (const json& item : growth) {
      const std::string kind = item["kind"].get<std::string>();
      const std::optional<double> per_run = NumberAt(item, "per_run");
      const std::optional<double> total = NumberAt(item, "total");
      const bool suppressed = item.contains("suppressed") && item["suppressed"].is_string();
      std::string site = html::Code(item["site"].get<std::string>());
      if (std::string location = StringAt(item, "location"); !location.empty()) {
        site += " at " + html::Code(location);
      }
      if (suppressed) {
        site += " <span class=\"tag\">suppressed: " +
                HtmlEscape(item["suppressed"].get<std::string>()) + "</span>";
      }
      const std::vector<std::string> examples = Strings(item, "examples");
      if (!examples.empty()) {
        site += "<br><span class=\"sub\">e.g.</span> ";
        for (size_t i = 0; i < examples.size(); ++i) {
          site += (i > 0 ? ", " : "") + html::Code(examples[i]);
        }
      }
      const std::vector<std::string> stack = Strings(item, "stack");
      const std::string what = kind == "heap" ? "allocation stack" : "creation stack";
      site += html::StackDetails(what + " (" + std::to_string(stack.size()) + " frames)", stack);
      rows.push_back(
          {{"<span class=\"tag\">" + HtmlEscape(kind) + "</span>",
            total ? "<b>" + HtmlEscape(IsBytes(kind) ? SignedSize(*total) : "+" + Count(*total)) + "</b>"
                  : "—",
            per_run ? HtmlEscape(IsBytes(kind) ? Size(*per_run) : Count(*per_run)) : "—", site},
           suppressed ? "row-suppressed" : ""});
    }
    out += html::RenderTable(
        {{"kind", false}, {"total", true}, {"per run", true}, {"site", false}}, rows, "growth");
  }
  if (!r.contains("heap_profiles") || !r["heap_profiles"].is_object()) return out;
  const json& hp = r["heap_profiles"];
  if (!hp.contains("peak_sites") || !hp["peak_sites"].is_array() || hp["peak_sites"].empty()) {
    return out;
  }
  const std::optional<double> peak_run = NumberAt(hp, "peak_run");
  const std::optional<double> peak_bytes = NumberAt(hp, "peak_bytes");
  out += "<h3>Heap at the peak of run " + (peak_run ? Count(*peak_run) : "?");
  if (peak_bytes) out += " (" + HtmlEscape(Size(*peak_bytes)) + " in use)";
  out += "</h3>\n";
  std::vector<TableRow> rows;
  for (const json& site : hp["peak_sites"]) {
    const std::optional<double> bytes = NumberAt(site, "bytes");
    const std::optional<double> objects = NumberAt(site, "objects");
    std::string where = html::Code(site["site"].get<std::string>());
    if (std::string location = StringAt(site, "location"); !location.empty()) {
      where += " at " + html::Code(location);
    }
    const std::vector<std::string> stack = Strings(site, "stack");
    where += html::StackDetails("allocation stack (" + std::to_string(stack.size()) + " frames)",
                                stack);
    rows.push_back({{bytes ? HtmlEscape(Size(*bytes)) : "?",
                     objects ? HtmlEscape(Count(std::round(*objects))) : "", where},
                    ""});
  }
  out += html::RenderTable({{"in use", true}, {"objects", true}, {"site", false}}, rows, "peak");
  if (hp.value("sampled", false)) {
    out += "<p class=\"sub\">Sampled heap profile: figures are estimates scaled from the "
           "samples.</p>\n";
  }
  return out;
}

// Rows: the baseline and each run; columns: the thread groups (by name) busiest when idle.
std::string IdleThreads(const json& r) {
  struct Row {
    std::string label;
    bool warmup = false;
    const json* groups = nullptr;
    std::optional<double> total;
  };
  std::vector<Row> rows;
  if (r.contains("baseline") && r["baseline"].is_object() &&
      r["baseline"].contains("idle_threads") && r["baseline"]["idle_threads"].is_array()) {
    rows.push_back({"baseline", false, &r["baseline"]["idle_threads"],
                    NumberAt(r["baseline"], "cpu_pct")});
  }
  for (const json& run : r["runs"]) {
    if (!run.contains("idle_threads") || !run["idle_threads"].is_array()) continue;
    rows.push_back({"after " + RunLabel(false, run), run.value("warmup", false), &run["idle_threads"],
                    NumberAt(run["after"], "cpu_pct")});
  }
  if (rows.empty()) return "<p>This result has no per-thread CPU figures.</p>\n";

  std::map<std::string, double> busiest;  // group name -> highest CPU over the rows
  for (const Row& row : rows) {
    for (const json& group : *row.groups) {
      if (!group.is_object()) continue;
      const std::string name = StringAt(group, "name");
      busiest[name] = std::max(busiest[name], NumberAt(group, "cpu_pct").value_or(0));
    }
  }
  if (busiest.empty()) return "<p>No thread used CPU while idle.</p>\n";
  std::vector<std::pair<std::string, double>> order(busiest.begin(), busiest.end());
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  const size_t shown = std::min(order.size(), kMaxThreadColumns);

  auto find_group = [](const json& groups, const std::string& name) -> const json* {
    for (const json& group : groups) {
      if (group.is_object() && StringAt(group, "name") == name) return &group;
    }
    return nullptr;
  };
  const json* baseline_groups = rows.front().label == "baseline" ? rows.front().groups : nullptr;
  // The process's idle limit: the baseline's CPU + the allowance (infinite without either).
  double idle_limit = std::numeric_limits<double>::infinity();
  if (const std::optional<double> allowance = IdleCpuAllowance(r);
      allowance && rows.front().label == "baseline" && rows.front().total) {
    idle_limit = *rows.front().total + *allowance;
  }

  std::vector<TableColumn> columns = {{"snapshot", false}, {"process", true}};
  for (size_t i = 0; i < shown; ++i) columns.push_back({order[i].first, true});
  if (order.size() > shown) columns.push_back({"other threads", true});
  std::vector<TableRow> table;
  for (const Row& row : rows) {
    TableRow cells;
    cells.css_class = row.warmup ? "row-warmup" : "";
    cells.cells.push_back(HtmlEscape(row.label));
    const bool over = row.total && row.label != "baseline" && *row.total > idle_limit;
    const std::string total = row.total ? Fixed(*row.total, 1) + " %" : "—";
    cells.cells.push_back(over ? "<span class=\"bad\">" + total + "</span>" : total);
    for (size_t i = 0; i < shown; ++i) {
      const json* group = find_group(*row.groups, order[i].first);
      if (group == nullptr) {
        cells.cells.push_back("—");
        continue;
      }
      const double cpu = NumberAt(*group, "cpu_pct").value_or(0);
      double base = 0;
      if (baseline_groups != nullptr && row.groups != baseline_groups) {
        if (const json* b = find_group(*baseline_groups, order[i].first)) {
          base = NumberAt(*b, "cpu_pct").value_or(0);
        }
      }
      std::string cell = Fixed(cpu, 1) + " %";
      if (auto threads = NumberAt(*group, "threads")) cell += " ×" + Count(*threads);
      const bool up = row.groups != baseline_groups && cpu - base > kThreadCpuResolutionPct;
      cells.cells.push_back(up ? "<span class=\"bad\">" + HtmlEscape(cell) + "</span>"
                               : HtmlEscape(cell));
    }
    if (order.size() > shown) {
      double other = 0;
      for (size_t i = shown; i < order.size(); ++i) {
        if (const json* group = find_group(*row.groups, order[i].first)) {
          other += NumberAt(*group, "cpu_pct").value_or(0);
        }
      }
      cells.cells.push_back(Fixed(other, 1) + " %");
    }
    table.push_back(std::move(cells));
  }
  return "<p class=\"sub\">CPU of the process and of each group of threads (by name, × how many) "
         "over the settle window at the end of each cooldown. Red: the process above its idle "
         "limit; a thread group above its baseline by more than one clock tick.</p>\n" +
         html::RenderTable(columns, table, "idle-threads");
}

// What kept the CPU busy during each cooldown, when a CPU profile was taken.
std::string CooldownProfiles(const json& r) {
  std::string out;
  for (const json& run : r["runs"]) {
    if (!run.contains("cooldown_top_functions") || !run["cooldown_top_functions"].is_array() ||
        run["cooldown_top_functions"].empty()) {
      continue;
    }
    std::vector<TableRow> rows;
    for (const json& f : run["cooldown_top_functions"]) {
      if (!f.is_object()) continue;
      const std::optional<double> self = NumberAt(f, "self_pct");
      const std::optional<double> total = NumberAt(f, "total_pct");
      rows.push_back({{self ? Fixed(*self, 1) + " %" : "", total ? Fixed(*total, 1) + " %" : "",
                       html::Code(StringAt(f, "function"))},
                      ""});
    }
    out += "<h3>" + HtmlEscape(RunLabel(false, run)) + "</h3>\n";
    out += html::RenderTable({{"self", true}, {"total", true}, {"function", false}}, rows,
                             "profile");
  }
  return out;
}

std::string Notes(const json& r) {
  std::vector<std::string> warnings = Strings(r, "warnings");
  std::vector<std::string> notes = Strings(r, "notes");
  if (r.contains("heap_profiles") && r["heap_profiles"].is_object()) {
    for (std::string& note : Strings(r["heap_profiles"], "notes")) {
      notes.push_back("heap profiles: " + note);
    }
  }
  if (warnings.empty() && notes.empty()) return "";
  std::string out = html::SectionHeading("notes", "Warnings and notes") + "<ul class=\"items\">\n";
  for (const std::string& warning : warnings) {
    out += "<li><span class=\"tag bad\">warning</span> " + HtmlEscape(warning) + "</li>\n";
  }
  for (const std::string& note : notes) out += "<li>" + HtmlEscape(note) + "</li>\n";
  out += "</ul>\n";
  return out;
}

}  // namespace

Result<std::string> RenderHtmlReport(const nlohmann::json& result) {
  if (auto ok = ValidateResult(result); !ok) return std::unexpected(ok.error());
  if (auto ok = ValidateTimeline(result); !ok) return std::unexpected(ok.error());
  const std::string verdict = result["verdict"].get<std::string>();
  const std::string name = result["scenario"]["name"].get<std::string>();

  std::string body = Header(result);
  body += Banner(result);
  body += html::SectionHeading("timelines", "Timelines");
  body += Charts(result);
  body += html::SectionHeading("verification", "Verification");
  body += VerificationTable(result);
  body += html::SectionHeading("checks", "Checks");
  body += ChecksTable(result);
  body += html::SectionHeading("growth", "What grew");
  body += WhatGrew(result);
  body += html::SectionHeading("idle-threads", "Idle CPU by thread after each cooldown");
  body += IdleThreads(result);
  if (std::string profiles = CooldownProfiles(result); !profiles.empty()) {
    body += html::SectionHeading("cooldown-profiles", "Where the CPU went during the cooldown");
    body += profiles;
  }
  body += Notes(result);
  return html::RenderPage("leakgate: " + name + " — " + verdict, "en",
                          {{"leakgate-verdict", verdict},
                           {"leakgate-scenario", name},
                           {"generator", "leakgate"}},
                          body);
}

}  // namespace leakgate::reports
