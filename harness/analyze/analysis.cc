#include "harness/analyze/analysis.h"

#include "harness/analyze/growth_order.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <utility>

#include "harness/scenario/suppressions.h"

namespace leakgate::harness {
namespace {

// The rules in analysis.h, as numbers. They were chosen by simulating the runner (warm-up 1, 5
// runs, up to 12) on RSS series with +-200 KiB uniform noise and the default thresholds: a flat
// series passes, a leak at exactly the budget fails in about 99 of 100 gates and 25% above it
// always.
constexpr double kConfidence = 0.95;      // Sen's range for "consistent growth" and plateaus
constexpr double kPassConfidence = 0.99;  // Sen's range that must lie under the budget to pass
constexpr int kMinJudgedRuns = 3;         // fewer: pass only when nothing grew
constexpr int kMinPointsToPass = 6;       // reference + 5 judged runs before a range can pass
constexpr int kMinRecentPoints = 6;       // the plateau window (at least; else the last half)
constexpr double kOutlierCutoff = 5.0;    // robust deviations off the trend to set a sample aside
constexpr double kOutlierMinRuns = 2.0;   // ... and at least this many runs' worth of the budget
constexpr double kSlowingRatio = 0.5;     // later half slower than this share of the earlier
constexpr double kStepDropCutoff = 2.0;   // robust deviations of the earlier steps (and a budget)
constexpr int kMinExactSteps = 4;         // exact heap rising this many times in a row fails
constexpr int kMinNewHighs = 3;           // integer resources: new highs needed for a climb

// ---- formatting ----

std::string Number(double value) {
  char buffer[64];
  const double magnitude = std::fabs(value);
  const char* format = magnitude >= 100 ? "%.0f" : magnitude >= 10 ? "%.1f" : "%.2f";
  std::snprintf(buffer, sizeof buffer, format, value);
  std::string text = buffer;
  if (text.find('.') != std::string::npos) {
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
  }
  if (text == "-0") text = "0";
  return text;
}

std::string Bytes(double bytes) {
  const double magnitude = std::fabs(bytes);
  if (magnitude < kKiB) return Number(bytes) + " B";
  if (magnitude < kMiB) return Number(bytes / kKiB) + " KiB";
  if (magnitude < 1024 * kMiB) return Number(bytes / kMiB) + " MiB";
  return Number(bytes / (1024 * kMiB)) + " GiB";
}

std::string Count(double value, std::string_view one, std::string_view many) {
  return Number(value) + " " + std::string(value == 1 ? one : many);
}

std::string RunRange(int first, int last) {
  if (first == last) return "run " + std::to_string(first);
  return "runs " + std::to_string(first) + "-" + std::to_string(last);
}

// ---- statistics ----


double MedianOf(std::vector<double> values) { return *Median(values); }

// ---- the series a check judges ----

struct Point {
  double x = 0;  // 0 = reference, k = k-th judged run
  double y = 0;
  int run = 0;  // RunObservation::index; 0 for the baseline
};

// The reference (last warm-up run, else baseline) and the judged runs, with accessors choosing the
// metric.
struct Series {
  const BaselineObservation* reference = nullptr;
  int reference_run = 0;  // 0: baseline
  std::vector<const RunObservation*> judged;
  int warmups = 0;
  int max_judged = 0;

  std::string ReferenceName() const { return reference_run == 0 ? "the baseline" : "the warm-up"; }
  std::string JudgedRange() const {
    if (judged.empty()) return "no judged runs";
    return RunRange(judged.front()->index, judged.back()->index);
  }
};

Series MakeSeries(const AnalysisInput& input) {
  Series series;
  series.reference = &input.baseline;
  for (const RunObservation& run : input.runs) {
    if (run.warmup) {
      ++series.warmups;
      series.reference = &run;
      series.reference_run = run.index;
    } else {
      series.judged.push_back(&run);
    }
  }
  series.max_judged =
      std::max(static_cast<int>(series.judged.size()), input.max_runs - series.warmups);
  return series;
}

// Points (x, value) for the reference and each judged run where `value` is known.
template <class Value>
std::vector<Point> Points(const Series& series, Value value) {
  std::vector<Point> points;
  if (std::optional<double> y = value(*series.reference)) {
    points.push_back({0, *y, series.reference_run});
  }
  for (size_t k = 0; k < series.judged.size(); ++k) {
    if (std::optional<double> y = value(*series.judged[k])) {
      points.push_back({static_cast<double>(k + 1), *y, series.judged[k]->index});
    }
  }
  return points;
}

std::optional<SlopeEstimate> Fit(std::span<const Point> points, double confidence = kConfidence) {
  std::vector<double> x, y;
  for (const Point& p : points) {
    x.push_back(p.x);
    y.push_back(p.y);
  }
  return TheilSenSlope(x, y, confidence);
}

// ---- memory growth ----

struct GrowthRule {
  std::string what;              // "RSS", "heap in use"
  std::optional<double> budget;  // bytes per run
  std::optional<double> floor;   // bytes in total
  bool exact = false;
  int max_judged = 0;
};

struct GrowthDecision {
  Verdict verdict = Verdict::kInconclusive;
  std::optional<double> slope;  // bytes per run
  std::optional<double> total;  // fitted rise since the reference
  std::string measured;         // what was measured, as a sentence
  std::string reason;           // why this verdict, as a sentence
};

// "RSS grows 1.2 MiB per run (Theil-Sen over runs 2-6, 95% range 1.1 MiB to 1.3 MiB)"
std::string DescribeFit(const GrowthRule& rule, const SlopeEstimate& fit,
                        std::span<const Point> points) {
  const auto first_judged =
      std::find_if(points.begin(), points.end(), [](const Point& p) { return p.x > 0; });
  return rule.what + (fit.slope >= 0 ? " grows " : " shrinks ") + Bytes(std::fabs(fit.slope)) +
         " per run (Theil-Sen over " + RunRange(first_judged->run, points.back().run) + ", " +
         Number(fit.confidence * 100) + "% range " + Bytes(fit.low) + " to " + Bytes(fit.high) +
         ")";
}

bool StepsSlowing(std::span<const double> steps) {
  if (steps.size() < 2) return false;
  const size_t half = (steps.size() + 1) / 2;
  const double early = *Median(steps.first(half));
  const double late = *Median(steps.last(half));
  return early > 0 && late < kSlowingRatio * early;
}

// How far a sample must sit from the fitted line to count as off the trend: more than
// kOutlierCutoff robust deviations of the residuals, and more than kOutlierMinRuns runs' worth of
// the budget (with few points the MAD can be tiny by chance).
double OffTrendBound(std::span<const Point> points, const SlopeEstimate& fit, double rate) {
  std::vector<double> residuals;
  for (const Point& p : points) residuals.push_back(p.y - (fit.intercept + fit.slope * p.x));
  const double sigma = kMadToSigma * *MedianAbsoluteDeviation(residuals);
  return std::max(kOutlierCutoff * sigma, kOutlierMinRuns * rate);
}

GrowthDecision DecideGrowth(std::vector<Point> points, const GrowthRule& rule,
                            const Series& series) {
  GrowthDecision decision;
  if (points.size() < 2) {
    decision.reason = "No judged run has a figure yet.";
    return decision;
  }
  const int judged = static_cast<int>(points.size()) - 1;
  const double floor = rule.floor.value_or(0);
  const double floor_rate = rule.floor ? *rule.floor / std::max(rule.max_judged, 1) : 0;
  const double fail_rate = rule.budget ? *rule.budget : floor_rate;
  const double pass_rate = std::max(rule.budget.value_or(0), floor_rate);
  const std::string limits =
      (rule.budget ? "budget " + Bytes(*rule.budget) + " per run" : std::string()) +
      (rule.budget && rule.floor ? ", " : "") +
      (rule.floor ? "floor " + Bytes(*rule.floor) + " in total" : std::string());

  const SlopeEstimate raw_fit = *Fit(points);
  decision.slope = raw_fit.slope;
  decision.total = raw_fit.slope * (points.back().x - points.front().x);
  decision.measured = DescribeFit(rule, raw_fit, points) + ", " +
                      Bytes(points.back().y - points.front().y) + " from " +
                      series.ReferenceName() + " to run " + std::to_string(points.back().run) +
                      "; " + limits + ".";

  std::vector<double> steps;
  for (size_t i = 1; i < points.size(); ++i) steps.push_back(points[i].y - points[i - 1].y);

  // Exact heap: a rise in every step is a leak however small the step.
  if (rule.exact && std::all_of(steps.begin(), steps.end(), [](double d) { return d > 0; })) {
    const double median_step = MedianOf(steps);
    if (StepsSlowing(steps)) {
      decision.reason = "It rose in every judged run, but by less each time (" +
                        Bytes(steps.front()) + " first, " + Bytes(steps.back()) +
                        " last): more runs tell a plateau from a leak.";
    } else if (judged >= kMinExactSteps) {
      decision.verdict = Verdict::kFail;
      decision.slope = median_step;
      decision.reason = "It rose in every one of the " + std::to_string(judged) +
                        " judged runs, by a steady " + Bytes(median_step) +
                        " (median step): exact heap figures do not rise run after run by "
                        "chance, so this is a leak even under the byte budget.";
    } else {
      decision.reason = "It rose in each of the " + std::to_string(judged) +
                        " judged runs so far; " + std::to_string(kMinExactSteps) +
                        " rises in a row are needed to call it a leak.";
    }
    return decision;
  }

  if (std::all_of(points.begin() + 1, points.end(),
                  [&](const Point& p) { return p.y <= points.front().y; })) {
    decision.verdict = Verdict::kPass;
    decision.reason = "No judged run is above " + series.ReferenceName() + ".";
    return decision;
  }
  if (judged < kMinJudgedRuns) {
    decision.reason = "Only " + std::to_string(judged) + " judged run" + (judged == 1 ? "" : "s") +
                      ": " + std::to_string(kMinJudgedRuns) + " are needed to estimate a trend.";
    return decision;
  }

  // One noisy sample is set aside when it is not the last one (a jump at the end may be the start
  // of growth) and sits far off the trend.
  std::string aside;
  const size_t measured_points = points.size();
  {
    std::vector<double> residuals;
    for (const Point& p : points)
      residuals.push_back(p.y - (raw_fit.intercept + raw_fit.slope * p.x));
    const std::vector<size_t> outliers = FindOutliers(residuals, kOutlierCutoff);
    if (outliers.size() == 1 && outliers.front() + 1 < points.size() && points.size() > 4 &&
        std::fabs(residuals[outliers.front()]) > OffTrendBound(points, raw_fit, fail_rate)) {
      const Point& odd = points[outliers.front()];
      aside = " The sample after " +
              (odd.run == 0 ? std::string("the baseline") : "run " + std::to_string(odd.run)) +
              " (" + Bytes(odd.y) + ", " + Bytes(residuals[outliers.front()]) +
              " off the trend) was set aside as an outlier.";
      points.erase(points.begin() + static_cast<std::ptrdiff_t>(outliers.front()));
    }
  }
  const SlopeEstimate fit = *Fit(points);
  const double total = fit.slope * (points.back().x - points.front().x);
  decision.slope = fit.slope;
  decision.total = total;
  if (!aside.empty()) {
    decision.measured = DescribeFit(rule, fit, points) + ", " + Bytes(total) + " fitted since " +
                        series.ReferenceName() + "; " + limits + "." + aside;
  }

  // Pass: the rate is shown to be under the budget (a strict range, with enough points that pure
  // chance rarely produces it for a leak at the budget).
  // (A sample set aside still counts towards the minimum: it was more than two budgets off the
  // trend, which noise around a leak at the budget does not produce.)
  const SlopeEstimate strict_fit = *Fit(points, kPassConfidence);
  const bool enough_to_pass = measured_points >= static_cast<size_t>(kMinPointsToPass);
  if (enough_to_pass && strict_fit.high < pass_rate) {
    decision.verdict = Verdict::kPass;
    decision.reason =
        rule.budget && strict_fit.high < *rule.budget
            ? "Even the upper end of the " + Number(kPassConfidence * 100) + "% range (" +
                  Bytes(strict_fit.high) + ") is under the budget."
            : "Even at the upper end of the range, growth stays under the floor within " +
                  std::to_string(rule.max_judged) + " judged runs.";
    return decision;
  }

  // Pass: a plateau. The most recent runs are shown flat while the runs before them clearly grew
  // (requiring the earlier growth keeps a steady leak whose latest runs look flat by chance out).
  const size_t recent_size = std::max<size_t>(kMinRecentPoints, (points.size() + 1) / 2);
  if (points.size() >= recent_size + 2) {
    const std::span<const Point> recent = std::span<const Point>(points).last(recent_size);
    const std::span<const Point> before =
        std::span<const Point>(points).first(points.size() - recent_size + 1);
    const SlopeEstimate recent_fit = *Fit(recent);
    const SlopeEstimate before_fit = *Fit(before);
    if (recent_fit.high < pass_rate && before_fit.low >= pass_rate) {
      decision.verdict = Verdict::kPass;
      decision.reason = "It has stopped growing: it rose " + Bytes(before_fit.slope) +
                        " per run up to run " + std::to_string(before.back().run) + ", then " +
                        Bytes(recent_fit.slope) + " per run over " +
                        RunRange(recent.front().run, recent.back().run) + " (range up to " +
                        Bytes(recent_fit.high) + "): a plateau, not a leak.";
      return decision;
    }
  }

  // Slowing: the later half grows at less than half the rate of the earlier half, or the last step
  // fell far below the earlier ones (a leak keeps its pace; a plateau's steps shrink).
  double early_slope = 0, late_slope = 0;
  bool slowing = false;
  bool last_step_dropped = false;
  double last_step = 0, usual_step = 0;
  if (points.size() >= 5) {
    const size_t half = (points.size() + 1) / 2;
    early_slope = Fit(std::span<const Point>(points).first(half))->slope;
    late_slope = Fit(std::span<const Point>(points).last(half))->slope;
    slowing = early_slope > 0 && late_slope < kSlowingRatio * early_slope;

    std::vector<double> rates;
    for (size_t i = 1; i < points.size(); ++i) {
      rates.push_back((points[i].y - points[i - 1].y) / (points[i].x - points[i - 1].x));
    }
    last_step = rates.back();
    rates.pop_back();
    usual_step = MedianOf(rates);
    const double spread = kMadToSigma * *MedianAbsoluteDeviation(rates);
    last_step_dropped = last_step <= usual_step - std::max(kStepDropCutoff * spread, fail_rate);
  }

  // Fail: consistent growth (the whole 95% range above zero) whose range reaches the budget, the
  // floor reached, and no sign of slowing.
  if (fit.low > 0 && fit.high >= fail_rate && total >= floor && !slowing && !last_step_dropped) {
    decision.verdict = Verdict::kFail;
    decision.reason =
        (fit.low >= fail_rate
             ? std::string("The whole range is above ") +
                   (rule.budget ? "the budget" : "the rate that reaches the floor") +
                   ": a steady leak"
             : std::string("The growth is consistent (the whole range is above zero) and its range "
                           "reaches ") +
                   (rule.budget ? "the budget" : "the rate that reaches the floor") +
                   ", so a leak of that size is not ruled out") +
        (rule.floor ? "; the total " + Bytes(total) + " is over the floor." : ".");
    return decision;
  }

  if (!enough_to_pass && strict_fit.high < pass_rate) {
    decision.reason = "It looks under the budget, but " + std::to_string(judged) +
                      " judged runs are too few to "
                      "show it: " +
                      std::to_string(kMinPointsToPass - 1) + " are needed.";
  } else if (slowing) {
    decision.reason = "The growth is slowing (" + Bytes(early_slope) +
                      " per run in the earlier half, " + Bytes(late_slope) +
                      " in the later): more runs tell a plateau from a leak.";
  } else if (last_step_dropped) {
    decision.reason = "The last run grew " + Bytes(last_step) + ", far less than the usual " +
                      Bytes(usual_step) +
                      ": growth may have stopped; more runs tell a plateau from a leak.";
  } else if (fit.low <= 0) {
    decision.reason =
        "The growth is not consistent (the range spans zero): more runs are needed to tell "
        "noise from a leak.";
  } else if (total < floor) {
    decision.reason = "It grows consistently, but " + Bytes(total) +
                      " so far is under the floor; at this rate "
                      "the floor is reached after about " +
                      Number(std::ceil(floor / fit.slope)) + " judged runs.";
  } else {
    decision.reason = "Too few runs to show the rate under the budget: more runs are needed.";
  }
  return decision;
}

// ---- integer resources ----

// The multiset of sites (fd targets grouped, thread names, "socket") at the reference and after
// each judged run where it was measured.
struct SiteCounts {
  double x = 0;
  int run = 0;
  std::map<std::string, int> sites;
  int total = 0;
};

// One item of an integer resource at one point.
struct ResourceItem {
  std::string site;           // what it is named by in the growth list
  std::string counted_as;     // the site the decision counts it under (coarser for sockets)
  std::string description;    // the item itself (an example of its site)
  bool socket = false;        // also matched against suppressions of kind "socket"
};

// The items at the reference and after each judged run where they were measured.
struct ResourcePoint {
  double x = 0;
  int run = 0;
  std::vector<ResourceItem> items;
};

template <class Items>
std::vector<ResourcePoint> ResourcesByPoint(const Series& series, Items items_of) {
  std::vector<ResourcePoint> result;
  auto add = [&](double x, int run, const BaselineObservation& observation) {
    if (std::optional<std::vector<ResourceItem>> items = items_of(observation)) {
      result.push_back({.x = x, .run = run, .items = std::move(*items)});
    }
  };
  add(0, series.reference_run, *series.reference);
  for (size_t k = 0; k < series.judged.size(); ++k) {
    add(static_cast<double>(k + 1), series.judged[k]->index, *series.judged[k]);
  }
  return result;
}

// Items named and counted by the same text (thread names, fd sites without resolution).
std::optional<std::vector<ResourceItem>> PlainItems(
    const std::optional<std::vector<std::string>>& names) {
  if (!names) return std::nullopt;
  std::vector<ResourceItem> items;
  items.reserve(names->size());
  for (const std::string& name : *names) items.push_back({name, name, name});
  return items;
}

// The site counts of each point, of every item (`named`: by site) or of the items not suppressed
// (by the site the decision counts).
std::vector<SiteCounts> CountSites(std::span<const ResourcePoint> points, bool named,
                                   const std::map<std::string, std::string>& suppressed) {
  std::vector<SiteCounts> result;
  for (const ResourcePoint& point : points) {
    SiteCounts counts{.x = point.x, .run = point.run};
    for (const ResourceItem& item : point.items) {
      if (named) {
        ++counts.sites[item.site];
      } else if (!suppressed.contains(item.site)) {
        ++counts.sites[item.counted_as];
      } else {
        continue;
      }
      ++counts.total;
    }
    result.push_back(std::move(counts));
  }
  return result;
}

// Items present beyond the reference's count of their site ("new" items; a site whose count fell
// does not offset another's growth).
int NewItems(const SiteCounts& reference, const SiteCounts& now) {
  int added = 0;
  for (const auto& [site, count] : now.sites) {
    const auto it = reference.sites.find(site);
    added += std::max(0, count - (it == reference.sites.end() ? 0 : it->second));
  }
  return added;
}

struct CountDecision {
  Verdict verdict = Verdict::kInconclusive;
  std::optional<double> excess;  // new items at the end
  std::string measured;
  std::string reason;
};

// `label` starts the sentence ("Threads"); `one` / `many` name the items ("thread", "threads").
CountDecision DecideCount(std::span<const SiteCounts> points, int64_t threshold,
                          std::string_view label, std::string_view one, std::string_view many,
                          const Series& series) {
  CountDecision decision;
  if (points.size() < 2) {
    decision.reason = "No judged run has a count of " + std::string(many) + " yet.";
    return decision;
  }
  const int judged = static_cast<int>(points.size()) - 1;
  std::vector<int> added;
  std::string totals, news;
  for (const SiteCounts& p : points) {
    added.push_back(NewItems(points.front(), p));
    totals += (totals.empty() ? "" : ", ") + std::to_string(p.total);
    news += (news.empty() ? "" : ", ") + std::to_string(added.back());
  }
  const int excess = added.back();
  decision.excess = excess;
  // New highs, ignoring transient peaks: a value the count never reached again in a later run (an
  // in-flight connection at sampling time) neither counts as a high nor hides later growth.
  int new_highs = 0;
  int last_high = 0;  // position (1..judged) of the latest new high
  for (int i = 1, high = 0; i <= judged; ++i) {
    const bool transient =
        i < judged && added[i] > *std::max_element(added.begin() + i + 1, added.end());
    if (!transient && added[i] > high) {
      ++new_highs;
      last_high = i;
      high = added[i];
    }
  }
  decision.measured = std::string(label) + " after " + series.ReferenceName() +
                      " and each judged run: " + totals + "; new since " + series.ReferenceName() +
                      ": " + news + " (a new high in " + std::to_string(new_highs) + " of " +
                      std::to_string(judged) + " runs); " +
                      Count(static_cast<double>(threshold), std::string(one), std::string(many)) +
                      " more tolerated at the end.";
  if (excess <= threshold) {
    decision.verdict = Verdict::kPass;
    decision.reason =
        excess == 0 ? "Nothing new remains at the end." : "The new items are within the threshold.";
    return decision;
  }
  if (judged >= 2 && last_high <= judged - 2) {
    decision.verdict = Verdict::kPass;
    decision.reason = "No new high in the last two runs: the " +
                      Count(excess, std::string("extra ") + std::string(one),
                            std::string("extra ") + std::string(many)) +
                      " stayed instead of growing per run.";
    return decision;
  }
  if (judged >= kMinJudgedRuns && new_highs >= kMinNewHighs && 2 * new_highs >= judged &&
      last_high >= judged - 1) {
    decision.verdict = Verdict::kFail;
    decision.reason = "They climb steadily: a new high in " + std::to_string(new_highs) + " of " +
                      std::to_string(judged) + " judged runs, the latest in run " +
                      std::to_string(points[last_high].run) + ".";
    return decision;
  }
  decision.reason =
      "New items appeared recently but have not yet climbed steadily: more runs tell a one-off "
      "from a leak.";
  return decision;
}

// A growth item per site with more items at the end than at the reference.
void AddSiteGrowth(std::string_view kind, std::span<const SiteCounts> points,
                   std::vector<GrowthItem>& growth) {
  if (points.size() < 2) return;
  const auto& first = points.front().sites;
  const size_t first_item = growth.size();
  for (const auto& [site, count] : points.back().sites) {
    const auto it = first.find(site);
    const int before = it == first.end() ? 0 : it->second;
    if (count <= before) continue;
    std::vector<double> x, y;
    for (const SiteCounts& p : points) {
      const auto found = p.sites.find(site);
      x.push_back(p.x);
      y.push_back(found == p.sites.end() ? 0 : found->second);
    }
    growth.push_back(
        {std::string(kind), site, TheilSenSlope(x, y)->slope, static_cast<double>(count - before)});
  }
  std::stable_sort(growth.begin() + static_cast<std::ptrdiff_t>(first_item), growth.end(),
                   [](const GrowthItem& a, const GrowthItem& b) { return a.total > b.total; });
}

std::string NewSitesText(std::span<const GrowthItem> items) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i == 5) {
      text += ", and " + std::to_string(items.size() - 5) + " more sites";
      break;
    }
    text += (text.empty() ? "" : ", ") + items[i].site + " x" + Number(items[i].total);
  }
  return text.empty() ? text : " New at the end: " + text + ".";
}

// ---- checks ----

CheckResult IdleCpuCheck(const Series& series, const BaselineObservation& baseline,
                         double threshold) {
  const double baseline_cpu = baseline.idle_cpu_pct;
  CheckResult check{
      .name = std::string(check_id::kIdleCpuReturns), .metric = "cpu_pct", .threshold = threshold, .unit = "%"};
  const int judged = static_cast<int>(series.judged.size());
  if (judged == 0) {
    check.detail = "No judged run yet.";
    return check;
  }
  std::string staircase;
  int above = 0;
  for (const RunObservation* run : series.judged) {
    staircase += (staircase.empty() ? "" : ", ") + Number(run->idle_cpu_pct);
    if (run->idle_cpu_pct - baseline_cpu > threshold) ++above;
  }
  const double last_excess = series.judged.back()->idle_cpu_pct - baseline_cpu;
  const bool last_above = last_excess > threshold;
  // The incident's staircase (37 % -> 70 % -> 80-100 %): each leaked heartbeat adds a little, so the
  // first runs can stay under the allowance while the trend is unmistakable. A rise in at least
  // three of four run pairs, with the last two runs above, is a staircase even when most runs are
  // still below; without it such a gate stayed undecided once another check had failed it.
  bool staircase_rises = false;
  if (judged >= kMinJudgedRuns && last_above &&
      series.judged[judged - 2]->idle_cpu_pct - baseline_cpu > threshold) {
    std::vector<double> x, y;
    for (const RunObservation* run : series.judged) {
      x.push_back(run->index);
      y.push_back(run->idle_cpu_pct);
    }
    const std::optional<SlopeEstimate> trend = TheilSenSlope(x, y);
    staircase_rises = trend && trend->slope > 0 && 4 * trend->positive_pairs >= 3 * trend->pairs;
  }
  check.observed = last_excess;
  check.detail = "Idle CPU: baseline " + Number(baseline_cpu) + " %, after " +
                 series.JudgedRange() + ": " + staircase + " % (allowed: baseline + " +
                 Number(threshold) + " %); above in " + std::to_string(above) + " of " +
                 std::to_string(judged) + " runs. ";
  if (last_above && judged >= kMinJudgedRuns && (2 * above > judged || staircase_rises)) {
    check.verdict = Verdict::kFail;
    check.detail +=
        std::string(2 * above > judged ? "" : "Idle CPU steps up run after run. ") +
        "CPU does not return to the baseline after a run: something keeps working in the "
        "background (a thread, a timer, a connection's heartbeat).";
  } else if (!last_above && 2 * above <= judged) {
    check.verdict = Verdict::kPass;
    check.detail +=
        above == 0 ? "CPU returns to the baseline after every run."
                   : "CPU returned to the baseline after the last run; the excess was passing.";
  } else {
    check.detail += last_above
                        ? "Only the latest runs are above: more runs tell a spike from a staircase."
                        : "Most runs are above but the last returned: more runs are needed.";
  }
  if (last_above) {
    // Named over every judged run above the threshold (one window is a handful of clock ticks).
    std::vector<std::vector<ThreadGroupCpu>> windows;
    std::string runs;
    for (const RunObservation* run : series.judged) {
      if (run->idle_cpu_pct - baseline_cpu <= threshold) continue;
      windows.push_back(run->idle_threads);
      runs += (runs.empty() ? "" : ", ") + std::to_string(run->index);
    }
    const std::string by_thread =
        ExplainCpuExcess(baseline.idle_threads, MeanThreadCpu(windows));
    if (!by_thread.empty()) {
      check.detail += " Threads above their baseline CPU " +
                      (windows.size() == 1 ? "after run " + runs
                                           : "(mean after runs " + runs + ")") +
                      ": " + by_thread + ".";
    }
  }
  return check;
}

CheckResult PeakRssCheck(const Series& series, double threshold) {
  CheckResult check{
      .name = std::string(check_id::kPeakRss), .metric = "peak_rss_bytes", .threshold = threshold, .unit = "B"};
  if (series.judged.empty()) {
    check.detail = "No judged run yet.";
    return check;
  }
  const RunObservation* highest =
      *std::max_element(series.judged.begin(), series.judged.end(),
                        [](const RunObservation* a, const RunObservation* b) {
                          return a->peak_rss_bytes < b->peak_rss_bytes;
                        });
  check.observed = static_cast<double>(highest->peak_rss_bytes);
  const bool over = *check.observed > threshold;
  check.verdict = over ? Verdict::kFail : Verdict::kPass;
  check.detail =
      "Highest peak RSS (VmHWM) during a judged run: " + Bytes(*check.observed) + " in run " +
      std::to_string(highest->index) + "; limit " + Bytes(threshold) + "." +
      (over ? " A run holds too much in memory at once (for example all rows built before one "
              "write instead of in batches)."
            : "");
  return check;
}

// " No figure after run(s) 3, 5." for judged runs absent from `present_runs`.
std::string MissingRuns(const Series& series, const std::vector<int>& present_runs) {
  std::string missing;
  for (const RunObservation* run : series.judged) {
    if (std::find(present_runs.begin(), present_runs.end(), run->index) == present_runs.end()) {
      missing += (missing.empty() ? "" : ", ") + std::to_string(run->index);
    }
  }
  return missing.empty() ? missing : " No figure after run(s) " + missing + ".";
}

template <class Item>
std::vector<int> RunsOf(std::span<const Item> points) {
  std::vector<int> runs;
  for (const Item& p : points) runs.push_back(p.run);
  return runs;
}

void AddMemoryChecks(const Series& series, const Thresholds& thresholds,
                     std::vector<CheckResult>& checks) {
  if (!thresholds.rss_per_run && !thresholds.rss_total) return;
  const std::vector<Point> points = Points(
      series, [](const BaselineObservation& o) { return std::optional<double>(o.rss_bytes); });
  const GrowthRule rule{.what = "RSS",
                        .budget = thresholds.rss_per_run,
                        .floor = thresholds.rss_total,
                        .max_judged = series.max_judged};
  const GrowthDecision decision = DecideGrowth(points, rule, series);
  const std::string detail =
      decision.measured.empty() ? decision.reason : decision.measured + " " + decision.reason;
  if (thresholds.rss_per_run) {
    checks.push_back({.name = std::string(check_id::kRssGrowthPerRun),
                      .metric = "rss_bytes",
                      .verdict = decision.verdict,
                      .observed = decision.slope,
                      .threshold = thresholds.rss_per_run,
                      .unit = "B/run",
                      .detail = detail});
  }
  if (thresholds.rss_total) {
    std::string total_detail = decision.reason;
    if (decision.total && decision.slope) {
      total_detail =
          "RSS rose " + Bytes(*decision.total) + " since " + series.ReferenceName() +
          " (Theil-Sen fit over " + series.JudgedRange() + ", " + Bytes(*decision.slope) +
          " per run); floor " + Bytes(*thresholds.rss_total) +
          (thresholds.rss_per_run ? ", budget " + Bytes(*thresholds.rss_per_run) + " per run"
                                  : "") +
          ". " + decision.reason;
    }
    checks.push_back({.name = std::string(check_id::kRssGrowthTotal),
                      .metric = "rss_bytes",
                      .verdict = decision.verdict,
                      .observed = decision.total,
                      .threshold = thresholds.rss_total,
                      .unit = "B",
                      .detail = total_detail});
  }
}

void AddHeapCheck(const AnalysisInput& input, const Series& series, Analysis& analysis) {
  if (!input.thresholds.heap_per_run) return;
  const bool any_judged =
      std::any_of(series.judged.begin(), series.judged.end(),
                  [](const RunObservation* run) { return run->heap_bytes.has_value(); });
  const bool any_before =
      series.reference->heap_bytes.has_value() || input.baseline.heap_bytes.has_value();
  if (!any_judged) {
    if (any_before) {
      analysis.notes.push_back(
          "heap_growth_per_run skipped: heap statistics were read before the judged runs but after "
          "none of "
          "them; the RSS checks still apply.");
    } else if (!series.judged.empty()) {
      analysis.notes.push_back(
          "heap_growth_per_run skipped: the target reported no heap statistics (exact bytes in "
          "use); the RSS "
          "checks still apply. Link or preload tcmalloc to get them.");
    } else {
      analysis.checks.push_back({.name = std::string(check_id::kHeapGrowthPerRun),
                                 .metric = "heap_bytes",
                                 .threshold = input.thresholds.heap_per_run,
                                 .unit = "B/run",
                                 .detail = "No judged run yet."});
    }
    return;
  }
  const std::vector<Point> points = Points(series, [](const BaselineObservation& o) {
    return o.heap_bytes ? std::optional<double>(static_cast<double>(*o.heap_bytes)) : std::nullopt;
  });
  const GrowthRule rule{.what = "Heap in use",
                        .budget = input.thresholds.heap_per_run,
                        .exact = true,
                        .max_judged = series.max_judged};
  const GrowthDecision decision = DecideGrowth(points, rule, series);
  analysis.checks.push_back(
      {.name = std::string(check_id::kHeapGrowthPerRun),
       .metric = "heap_bytes",
       .verdict = decision.verdict,
       .observed = decision.slope,
       .threshold = input.thresholds.heap_per_run,
       .unit = "B/run",
       .detail = (decision.measured.empty() ? decision.reason
                                            : decision.measured + " " + decision.reason) +
                 MissingRuns(series, RunsOf<Point>(points))});
  if (decision.verdict != Verdict::kPass && decision.slope && *decision.slope > 0 &&
      points.size() >= 2) {
    analysis.growth.push_back(
        {"heap", "heap in use", *decision.slope, points.back().y - points.front().y});
  }
}

struct CountCheckSpec {
  std::string name;
  std::string metric;
  std::string kind;   // GrowthItem kind
  std::string label;  // starts the detail: "Open fds"
  std::string one;
  std::string many;
  int64_t threshold = 0;
};

constexpr size_t kMaxExamples = 3;

// The descriptions present at `end` beyond their count at `reference`, for one site; sorted, at
// most kMaxExamples. Empty when the items are described by their site alone (thread names).
std::vector<std::string> NewExamples(const ResourcePoint& reference, const ResourcePoint& end,
                                     const std::string& site) {
  std::map<std::string, int> before;
  for (const ResourceItem& item : reference.items) {
    if (item.site == site) ++before[item.description];
  }
  std::vector<std::string> examples;
  for (const ResourceItem& item : end.items) {
    if (item.site != site || item.description == site) continue;
    if (auto it = before.find(item.description); it != before.end() && it->second > 0) {
      --it->second;
      continue;
    }
    examples.push_back(item.description);
  }
  std::sort(examples.begin(), examples.end());
  if (examples.size() > kMaxExamples) examples.resize(kMaxExamples);
  return examples;
}

// Site -> the reason of the suppression matching it, for every site seen in `points`.
std::map<std::string, std::string> SuppressedSites(std::span<const ResourcePoint> points,
                                                   std::string_view kind,
                                                   const Suppressions* suppressions) {
  std::map<std::string, std::string> suppressed;
  if (suppressions == nullptr) return suppressed;
  std::map<std::string, bool> seen;  // site -> is a socket
  for (const ResourcePoint& point : points) {
    for (const ResourceItem& item : point.items) seen[item.site] = seen[item.site] || item.socket;
  }
  for (const auto& [site, socket] : seen) {
    const std::vector<std::string> names = {site};
    const Suppression* match = suppressions->Match(kind, names);
    if (match == nullptr && socket && kind != "socket") match = suppressions->Match("socket", names);
    if (match != nullptr) suppressed[site] = match->reason;
  }
  return suppressed;
}

std::string SuppressedSitesText(std::span<const GrowthItem> items) {
  std::string text;
  for (const GrowthItem& item : items) {
    if (item.suppressed.empty()) continue;
    text += (text.empty() ? "" : "; ") + item.site + " x" + Number(item.total) + " (" +
            item.suppressed + ")";
  }
  return text.empty() ? text : " Suppressed, not counted: " + text + ".";
}

void AddCountCheck(const CountCheckSpec& spec, const Series& series,
                   const std::vector<ResourcePoint>& resources, const Suppressions* suppressions,
                   Analysis& analysis) {
  if (resources.empty()) {
    analysis.notes.push_back(spec.name + " skipped: the target's " + spec.many +
                             " could not be read.");
    return;
  }
  const std::map<std::string, std::string> suppressed =
      SuppressedSites(resources, spec.kind, suppressions);
  const size_t first_item = analysis.growth.size();
  AddSiteGrowth(spec.kind, CountSites(resources, /*named=*/true, suppressed), analysis.growth);
  std::vector<GrowthItem> counted;
  std::vector<GrowthItem> set_aside;
  for (size_t i = first_item; i < analysis.growth.size(); ++i) {
    GrowthItem& item = analysis.growth[i];
    if (resources.size() >= 2) item.examples = NewExamples(resources.front(), resources.back(), item.site);
    if (auto it = suppressed.find(item.site); it != suppressed.end()) {
      item.suppressed = it->second;
      set_aside.push_back(item);
    } else {
      counted.push_back(item);
    }
  }
  const std::vector<SiteCounts> points = CountSites(resources, /*named=*/false, suppressed);
  const CountDecision decision =
      DecideCount(points, spec.threshold, spec.label, spec.one, spec.many, series);
  analysis.checks.push_back({.name = spec.name,
                             .metric = spec.metric,
                             .verdict = decision.verdict,
                             .observed = decision.excess,
                             .threshold = static_cast<double>(spec.threshold),
                             .unit = spec.many,
                             .detail = (decision.measured.empty() ? "" : decision.measured + " ") +
                                       decision.reason + NewSitesText(counted) +
                                       SuppressedSitesText(set_aside) +
                                       MissingRuns(series, RunsOf<SiteCounts>(points))});
}

std::string JoinNames(const std::vector<CheckResult>& checks, Verdict verdict) {
  std::string names;
  for (const CheckResult& check : checks) {
    if (check.verdict == verdict) names += (names.empty() ? "" : ", ") + check.name;
  }
  return names;
}

}  // namespace






std::string FdSite(std::string_view target) {
  if (target.empty()) return "(unreadable)";
  for (std::string_view kind : {"socket:[", "pipe:["}) {
    if (target.starts_with(kind)) return std::string(kind.substr(0, kind.size() - 2));
  }
  return std::string(target);
}

}  // namespace leakgate::harness

namespace leakgate::harness {

Analysis Analyze(const AnalysisInput& input) {
  Analysis analysis;
  const Series series = MakeSeries(input);
  const Thresholds& thresholds = input.thresholds;
  analysis.judged_runs = static_cast<int>(series.judged.size());

  if (thresholds.idle_cpu_pct) {
    analysis.checks.push_back(
        IdleCpuCheck(series, input.baseline, *thresholds.idle_cpu_pct));
  }
  AddMemoryChecks(series, thresholds, analysis.checks);
  AddHeapCheck(input, series, analysis);
  if (thresholds.fds) {
    const auto fd_items =
        [](const BaselineObservation& o) -> std::optional<std::vector<ResourceItem>> {
      std::vector<ResourceItem> items;
      if (o.resolved_fds) {
        for (const ResolvedFd& fd : *o.resolved_fds) {
          items.push_back({fd.site, fd.socket ? "socket" : fd.site, fd.description, fd.socket});
        }
        return items;
      }
      if (!o.fd_targets) return std::nullopt;
      for (const std::string& target : *o.fd_targets) {
        const std::string site = FdSite(target);
        items.push_back({site, site, site, site == "socket"});
      }
      return items;
    };
    AddCountCheck({std::string(check_id::kFdsStable), "fds", "fd", "Open fds", "fd", "fds", *thresholds.fds}, series,
                  ResourcesByPoint(series, fd_items), input.suppressions, analysis);
  }
  if (thresholds.sockets) {
    const auto socket_items =
        [](const BaselineObservation& o) -> std::optional<std::vector<ResourceItem>> {
      std::vector<ResourceItem> items;
      if (o.resolved_fds) {
        for (const ResolvedFd& fd : *o.resolved_fds) {
          if (fd.socket) items.push_back({fd.site, "socket", fd.description, true});
        }
        return items;
      }
      if (!o.sockets) return std::nullopt;
      items.assign(static_cast<size_t>(std::max<int64_t>(*o.sockets, 0)),
                   ResourceItem{"socket", "socket", "socket", true});
      return items;
    };
    AddCountCheck({std::string(check_id::kSocketsStable), "sockets", "socket", "Sockets", "socket", "sockets",
                   *thresholds.sockets},
                  series, ResourcesByPoint(series, socket_items), input.suppressions, analysis);
  }
  if (thresholds.threads) {
    AddCountCheck(
        {std::string(check_id::kThreadsStable), "threads", "thread", "Threads", "thread", "threads",
         *thresholds.threads},
        series,
        ResourcesByPoint(series,
                         [](const BaselineObservation& o) { return PlainItems(o.thread_names); }),
        input.suppressions, analysis);
  }
  if (thresholds.peak_rss) analysis.checks.push_back(PeakRssCheck(series, *thresholds.peak_rss));

  const auto any = [&](Verdict verdict) {
    return std::any_of(analysis.checks.begin(), analysis.checks.end(),
                       [&](const CheckResult& check) { return check.verdict == verdict; });
  };
  analysis.verdict = any(Verdict::kFail)           ? Verdict::kFail
                     : any(Verdict::kInconclusive) ? Verdict::kInconclusive
                                                   : Verdict::kPass;
  const int made = static_cast<int>(input.runs.size());
  analysis.needs_more_runs = analysis.verdict == Verdict::kInconclusive && made < input.max_runs;

  const std::string over = " over " + std::to_string(analysis.judged_runs) + " judged run" +
                           (analysis.judged_runs == 1 ? "" : "s");
  switch (analysis.verdict) {
    case Verdict::kFail:
      analysis.summary = "fail: " + JoinNames(analysis.checks, Verdict::kFail) + over + ".";
      break;
    case Verdict::kInconclusive:
      analysis.summary =
          "inconclusive: " + JoinNames(analysis.checks, Verdict::kInconclusive) + " undecided" +
          over + "; " +
          (analysis.needs_more_runs
               ? "one more run needed (" + std::to_string(made) + " of at most " +
                     std::to_string(input.max_runs) + " made)."
               : "the maximum of " + std::to_string(input.max_runs) + " runs was reached.");
      break;
    case Verdict::kPass:
      analysis.summary = analysis.checks.empty()
                             ? "pass: every check is turned off."
                             : "pass: all " + std::to_string(analysis.checks.size()) +
                                   " checks passed" + over + ".";
      break;
    case Verdict::kError:  // the analysis always decides; only a gate ends in an error
      break;
  }
  analysis.growth = OrderGrowth(std::move(analysis.growth), analysis.checks);
  return analysis;
}

}  // namespace leakgate::harness
