#include "reports/compare.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "compare_internal.h"
#include "base/stats.h"
#include "markdown_format.h"
#include "result_format.h"

namespace leakgate::reports {

using nlohmann::json;

namespace compare_internal {

Result<void> ValidateSide(const json& result, std::string_view role) {
  auto prefixed = [role](const Error& error) {
    std::string message = error.message;
    constexpr std::string_view kPrefix = "result: ";
    if (message.starts_with(kPrefix)) message.erase(0, kPrefix.size());
    return Fail(error.code, std::string(role) + " result: " + message);
  };
  if (auto ok = ValidateResult(result); !ok) return prefixed(ok.error());
  // The ids the matching relies on.
  auto expect_id = [&](const json& item, const std::string& path) -> Result<void> {
    auto it = item.find("id");
    if (it == item.end() || it->is_string() || it->is_null()) return {};
    return Fail(ErrorCode::kInvalidArgument,
                std::string(role) + " result: " + path + "/id is " + std::string(it->type_name()) +
                    "; expected a string");
  };
  if (result.contains("growth")) {
    for (size_t i = 0; i < result["growth"].size(); ++i) {
      if (auto ok = expect_id(result["growth"][i], "/growth/" + std::to_string(i)); !ok) return ok;
    }
  }
  if (const json* peak = PeakSites(result)) {
    for (size_t i = 0; i < peak->size(); ++i) {
      if (auto ok = expect_id((*peak)[i], "/heap_profiles/peak_sites/" + std::to_string(i)); !ok) {
        return ok;
      }
    }
  }
  return {};
}

const json* PeakSites(const json& result) {
  auto hp = result.find("heap_profiles");
  if (hp == result.end() || !hp->is_object()) return nullptr;
  auto sites = hp->find("peak_sites");
  if (sites == hp->end() || !sites->is_array()) return nullptr;
  return &*sites;
}

std::string SiteMatchText(std::string_view kind, std::string_view site) {
  if (kind != "fd" && kind != "socket") return std::string(site);
  // "127.0.0.1:42605", "[::1]:8080", "exchange.local:443": the port goes, the host stays.
  static const std::regex kHostPort(
      R"(((?:\d{1,3}\.){3}\d{1,3}|\[[0-9A-Fa-f:.]*\]|[A-Za-z][A-Za-z0-9.-]*):\d+)");
  return std::regex_replace(std::string(site), kHostPort, "$1:*");
}

std::string InUnit(std::optional<double> value, const std::string& unit) {
  if (!value) return "—";
  return CheckValue(json{{"unit", unit}, {"value", *value}}, "value");
}

std::string ThresholdText(const CheckComparison& check) {
  std::string threshold =
      InUnit(check.after_threshold ? check.after_threshold : check.before_threshold, check.unit);
  if (check.before_threshold && check.after_threshold &&
      *check.before_threshold != *check.after_threshold) {
    threshold = InUnit(check.before_threshold, check.unit) + " → " + threshold;
  }
  return threshold;
}

std::string Signed(std::optional<double> value, std::string_view unit) {
  if (!value) return "—";
  const double v = std::fabs(*value) < 5e-10 ? 0.0 : *value;
  if (unit == "B") return SignedSize(v);
  if (unit == "%") return (v >= 0 ? "+" : "") + Fixed(v, 2) + " %";
  return (v >= 0 ? "+" : "") + Count(v);
}

}  // namespace compare_internal

namespace {

using compare_internal::InUnit;
using compare_internal::PeakSites;
using compare_internal::Signed;
using compare_internal::SiteMatchText;
using compare_internal::ThresholdText;
using compare_internal::ValidateSide;

// ---- comparing ----

bool IsWarmup(const json& run) { return run.value("warmup", false); }

Change CheckChange(std::string_view before, std::string_view after) {
  if (before.empty()) return Change::kOnlyAfter;
  if (after.empty()) return Change::kOnlyBefore;
  if (before == "fail" && after == "pass") return Change::kFixed;
  if (before == "fail" && after == "fail") return Change::kStillFailing;
  if (after == "fail") return Change::kRegressed;
  if (before == "pass" && after == "pass") return Change::kUnchanged;
  // Nothing was shown broken before: a pass after is no fix, and inconclusive twice tells nothing.
  if (before == "inconclusive" && (after == "pass" || after == "inconclusive")) {
    return Change::kUnchanged;
  }
  return Change::kUndecided;
}

std::vector<CheckComparison> CompareChecks(const json& before, const json& after) {
  std::vector<CheckComparison> checks;
  std::map<std::string, size_t> index;
  auto fill = [](CheckComparison& c, const json& check, bool is_before) {
    c.name = check["name"].get<std::string>();
    if (c.metric.empty()) c.metric = StringAt(check, "metric");
    if (c.unit.empty()) c.unit = StringAt(check, "unit");
    (is_before ? c.before_verdict : c.after_verdict) = check["verdict"].get<std::string>();
    (is_before ? c.before_observed : c.after_observed) = NumberAt(check, "observed");
    (is_before ? c.before_threshold : c.after_threshold) = NumberAt(check, "threshold");
  };
  for (const json& check : before["checks"]) {
    const std::string name = check["name"].get<std::string>();
    if (index.contains(name)) continue;  // a check is judged once per gate
    index[name] = checks.size();
    fill(checks.emplace_back(), check, true);
  }
  for (const json& check : after["checks"]) {
    const std::string name = check["name"].get<std::string>();
    auto it = index.find(name);
    if (it == index.end()) {
      index[name] = checks.size();
      fill(checks.emplace_back(), check, false);
    } else if (checks[it->second].after_verdict.empty()) {
      fill(checks[it->second], check, false);
    }
  }
  for (CheckComparison& c : checks) c.change = CheckChange(c.before_verdict, c.after_verdict);
  return checks;
}

// The value of `metric` after a run (or, for peak_rss_bytes, during it).
std::optional<double> RunValue(const json& run, std::string_view metric) {
  if (metric == "peak_rss_bytes") return NumberAt(run, "peak_rss_bytes");
  return NumberAt(run["after"], std::string(metric).c_str());
}

std::optional<double> BaselineValue(const json& result, std::string_view metric) {
  auto it = result.find("baseline");
  if (it == result.end() || !it->is_object()) return std::nullopt;
  if (metric == "peak_rss_bytes") {
    if (auto hwm = NumberAt(*it, "hwm_bytes")) return hwm;
    return NumberAt(*it, "rss_bytes");
  }
  return NumberAt(*it, std::string(metric).c_str());
}

struct SideGrowth {
  std::optional<double> per_run;
  std::optional<double> total;
};

SideGrowth GrowthOf(const json& result, std::string_view metric) {
  // The reference (analysis.h): the state after the last warm-up run, or the baseline when there is
  // none; it is fitted with the judged runs, as the checks fit it.
  const json* reference_run = nullptr;
  for (const json& run : result["runs"]) {
    if (IsWarmup(run)) reference_run = &run;
  }
  std::vector<double> x;
  std::vector<double> y;
  std::optional<double> reference =
      reference_run != nullptr ? RunValue(*reference_run, metric) : BaselineValue(result, metric);
  if (reference && (reference_run != nullptr || metric != "peak_rss_bytes")) {
    x.push_back(reference_run != nullptr ? (*reference_run)["index"].get<double>() : 0.0);
    y.push_back(*reference);
  }
  std::optional<double> last;
  for (const json& run : result["runs"]) {
    if (IsWarmup(run)) continue;
    if (auto v = RunValue(run, metric)) {
      x.push_back(run["index"].get<double>());
      y.push_back(*v);
      last = v;
    }
  }
  SideGrowth growth;
  // Only judged runs make a growth figure: a reference alone says nothing about a trend.
  if (!last) return growth;
  if (auto slope = TheilSenSlope(x, y)) growth.per_run = slope->slope;
  // Idle CPU is judged against the baseline (idle_cpu_returns), everything else against the
  // reference.
  if (metric == "cpu_pct") reference = BaselineValue(result, metric);
  if (reference) growth.total = *last - *reference;
  return growth;
}

std::vector<MetricGrowth> CompareGrowth(const json& before, const json& after) {
  struct Metric {
    const char* name;
    const char* unit;
  };
  constexpr Metric kMetrics[] = {{"cpu_pct", "%"}, {"rss_bytes", "B"}, {"heap_bytes", "B"},
                                 {"fds", ""},      {"sockets", ""},    {"threads", ""},
                                 {"peak_rss_bytes", "B"}};
  std::vector<MetricGrowth> growth;
  for (const Metric& m : kMetrics) {
    MetricGrowth g;
    g.metric = m.name;
    g.unit = m.unit;
    const SideGrowth b = GrowthOf(before, m.name);
    const SideGrowth a = GrowthOf(after, m.name);
    g.before_per_run = b.per_run;
    g.before_total = b.total;
    g.after_per_run = a.per_run;
    g.after_total = a.total;
    growth.push_back(std::move(g));
  }
  return growth;
}

// Whether idle CPU in `snapshot` is back within the baseline + allowance; nullopt when unknown.
std::optional<bool> CpuBack(const json& result, const json& snapshot) {
  auto base = result.find("baseline");
  if (base == result.end() || !base->is_object()) return std::nullopt;
  const std::optional<double> base_cpu = NumberAt(*base, "cpu_pct");
  const std::optional<double> cpu = NumberAt(snapshot, "cpu_pct");
  const std::optional<double> allowance = IdleCpuAllowance(result);
  if (!base_cpu || !cpu || !allowance) return std::nullopt;
  return *cpu - *base_cpu <= *allowance;
}

std::vector<StateRow> CompareStates(const json& before, const json& after) {
  std::vector<StateRow> rows;
  StateRow baseline;
  if (before.contains("baseline") && before["baseline"].is_object()) {
    baseline.before = before["baseline"];
  }
  if (after.contains("baseline") && after["baseline"].is_object()) {
    baseline.after = after["baseline"];
  }
  rows.push_back(std::move(baseline));
  const size_t runs = std::max(before["runs"].size(), after["runs"].size());
  for (size_t k = 1; k <= runs; ++k) {
    StateRow row;
    row.run = static_cast<int>(k);
    if (k <= before["runs"].size()) {
      const json& run = before["runs"][k - 1];
      row.before_warmup = IsWarmup(run);
      row.before = run["after"];
      if (auto back = CpuBack(before, run["after"])) {
        row.before_cpu_known = true;
        row.before_cpu_back = *back;
      }
    }
    if (k <= after["runs"].size()) {
      const json& run = after["runs"][k - 1];
      row.after_warmup = IsWarmup(run);
      row.after = run["after"];
      if (auto back = CpuBack(after, run["after"])) {
        row.after_cpu_known = true;
        row.after_cpu_back = *back;
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// One side's listed items, keyed by kind and id (or match text), in first-seen order.
struct SideItem {
  std::string kind, site, id, location;
  std::optional<double> per_run, total;
  bool suppressed = false;
};

void AddUp(std::optional<double>& sum, std::optional<double> value) {
  if (!value) return;
  sum = sum.value_or(0) + *value;
}

std::vector<std::pair<std::string, SideItem>> ItemsOf(const json& result) {
  std::vector<std::pair<std::string, SideItem>> items;
  std::map<std::string, size_t> index;
  auto add = [&](SideItem item) {
    const std::string key =
        item.kind + '\x1f' + (item.id.empty() ? "site:" + SiteMatchText(item.kind, item.site)
                                              : "id:" + item.id);
    auto it = index.find(key);
    if (it == index.end()) {
      index[key] = items.size();
      items.emplace_back(key, std::move(item));
      return;
    }
    SideItem& seen = items[it->second].second;
    AddUp(seen.per_run, item.per_run);
    AddUp(seen.total, item.total);
    seen.suppressed = seen.suppressed || item.suppressed;
  };
  for (const json& g : result.value("growth", json::array())) {
    SideItem item;
    item.kind = g["kind"].get<std::string>();
    item.site = g["site"].get<std::string>();
    item.id = StringAt(g, "id");
    item.location = StringAt(g, "location");
    item.per_run = NumberAt(g, "per_run");
    item.total = NumberAt(g, "total");
    item.suppressed = g.contains("suppressed") && g["suppressed"].is_string();
    add(std::move(item));
  }
  if (const json* peak = PeakSites(result)) {
    for (const json& s : *peak) {
      SideItem item;
      item.kind = "peak";
      item.site = s["site"].get<std::string>();
      item.id = StringAt(s, "id");
      item.location = StringAt(s, "location");
      item.per_run = NumberAt(s, "bytes");
      add(std::move(item));
    }
  }
  return items;
}

int KindOrder(std::string_view kind) {
  constexpr std::string_view kOrder[] = {"heap", "fd", "socket", "thread", "peak"};
  for (size_t i = 0; i < std::size(kOrder); ++i) {
    if (kOrder[i] == kind) return static_cast<int>(i);
  }
  return static_cast<int>(std::size(kOrder));
}

// The size a site is ranked by on one side: its total, or its bytes at the peak.
double Magnitude(const SiteComparison& s, bool before) {
  const std::optional<double>& total = before ? s.before_total : s.after_total;
  const std::optional<double>& per_run = before ? s.before_per_run : s.after_per_run;
  if (s.kind == "peak") return per_run.value_or(0);
  return total.value_or(per_run.value_or(0));
}

std::vector<SiteComparison> CompareSites(const json& before, const json& after) {
  const auto before_items = ItemsOf(before);
  const auto after_items = ItemsOf(after);
  std::map<std::string, const SideItem*> after_by_key;
  for (const auto& [key, item] : after_items) after_by_key[key] = &item;
  std::vector<SiteComparison> listed_before;
  std::map<std::string, bool> matched;
  for (const auto& [key, item] : before_items) {
    SiteComparison s;
    s.kind = item.kind;
    s.site = item.site;
    s.id = item.id;
    s.location = item.location;
    s.suppressed = item.suppressed;
    s.before_per_run = item.per_run;
    s.before_total = item.total;
    auto it = after_by_key.find(key);
    if (it == after_by_key.end()) {
      s.change = Change::kFixed;
    } else {
      matched[key] = true;
      s.after_per_run = it->second->per_run;
      s.after_total = it->second->total;
      s.suppressed = s.suppressed || it->second->suppressed;
      if (s.location.empty()) s.location = it->second->location;
      s.change = Change::kStillFailing;
    }
    listed_before.push_back(std::move(s));
  }
  std::vector<SiteComparison> listed_after;
  for (const auto& [key, item] : after_items) {
    if (matched.contains(key)) continue;
    SiteComparison s;
    s.kind = item.kind;
    s.site = item.site;
    s.id = item.id;
    s.location = item.location;
    s.suppressed = item.suppressed;
    s.after_per_run = item.per_run;
    s.after_total = item.total;
    s.change = item.kind == "peak" ? Change::kOnlyAfter : Change::kRegressed;
    listed_after.push_back(std::move(s));
  }
  auto order = [](bool before_side) {
    return [before_side](const SiteComparison& a, const SiteComparison& b) {
      if (KindOrder(a.kind) != KindOrder(b.kind)) return KindOrder(a.kind) < KindOrder(b.kind);
      const double ma = Magnitude(a, before_side);
      const double mb = Magnitude(b, before_side);
      if (ma != mb) return ma > mb;
      return a.site < b.site;
    };
  };
  std::stable_sort(listed_before.begin(), listed_before.end(), order(true));
  std::stable_sort(listed_after.begin(), listed_after.end(), order(false));
  std::vector<SiteComparison> sites = std::move(listed_before);
  for (SiteComparison& s : listed_after) sites.push_back(std::move(s));
  return sites;
}

int JudgedRuns(const json& result) {
  int judged = 0;
  for (const json& run : result["runs"]) judged += IsWarmup(run) ? 0 : 1;
  return judged;
}

// ---- Markdown ----

struct Words {
  std::string_view title, before, after, arrow_note;
  std::string_view fixed_headline, not_fixed_headline;
  std::string_view effect, effect_before, effect_after, checks, growth, states, sites;
  std::string_view check, threshold, change, metric, per_run, total;
  std::string_view phase, cpu, rss, heap, fds, sockets, threads, peak_rss, idle_cpu, status;
  std::string_view baseline, back, above;
  std::string_view pass, fail, inconclusive, error;
  std::string_view kind, kind_heap, kind_fd, kind_socket, kind_thread, kind_peak;
  std::string_view site, gone, remains, added, after_only_peak, at_peak, suppressed;
  std::string_view no_sites, judged_runs, colon, list_sep, growth_note;
  std::string_view change_fixed, change_still, change_regressed, change_unchanged,
      change_only_before, change_only_after, change_undecided;
};

constexpr Words kEnglish{
    .title = "leakgate before and after",
    .before = "before",
    .after = "after",
    .arrow_note = "Each cell reads before → after;",
    .fixed_headline = "The fix is shown",
    .not_fixed_headline = "The fix is not shown",
    .effect = "Effect of the fix",
    .effect_before = "Before the fix",
    .effect_after = "After the fix",
    .checks = "Checks",
    .growth = "Growth per run",
    .states = "State after each run",
    .sites = "What grew, before and after",
    .check = "check",
    .threshold = "threshold",
    .change = "change",
    .metric = "metric",
    .per_run = "per run",
    .total = "total",
    .phase = "phase",
    .cpu = "CPU",
    .rss = "RSS",
    .heap = "heap",
    .fds = "fds",
    .sockets = "sockets",
    .threads = "threads",
    .peak_rss = "peak RSS",
    .idle_cpu = "idle CPU",
    .status = "status",
    .baseline = "baseline (idle)",
    .back = "CPU back to baseline",
    .above = "CPU above baseline",
    .pass = "pass",
    .fail = "fail",
    .inconclusive = "inconclusive",
    .error = "error",
    .kind = "kind",
    .kind_heap = "heap",
    .kind_fd = "fd",
    .kind_socket = "socket",
    .kind_thread = "thread",
    .kind_peak = "heap at the peak",
    .site = "site",
    .gone = "gone",
    .remains = "remains",
    .added = "new",
    .after_only_peak = "listed after only",
    .at_peak = "at the peak",
    .suppressed = "suppressed",
    .no_sites = "Neither result lists anything that grew or a site at the peak.",
    .judged_runs = "judged runs",
    .colon = ": ",
    .list_sep = ", ",
    .growth_note = "Theil-Sen slope over the judged runs; total: the last judged run against "
                   "the warm-up (idle CPU: against the baseline).",
    .change_fixed = "fixed",
    .change_still = "still failing",
    .change_regressed = "regressed",
    .change_unchanged = "unchanged",
    .change_only_before = "only before",
    .change_only_after = "only after",
    .change_undecided = "undecided",
};

constexpr Words kChinese{
    .title = "leakgate 修复前后对比",
    .before = "修复前",
    .after = "修复后",
    .arrow_note = "每格为 修复前 → 修复后；",
    .fixed_headline = "修复有效",
    .not_fixed_headline = "未能证明修复有效",
    .effect = "修复效果",
    .effect_before = "修复前",
    .effect_after = "修复后",
    .checks = "检查",
    .growth = "每次运行的增长",
    .states = "每次运行后的状态",
    .sites = "增长来源：修复前与修复后",
    .check = "检查",
    .threshold = "阈值",
    .change = "变化",
    .metric = "指标",
    .per_run = "每次运行",
    .total = "累计",
    .phase = "阶段",
    .cpu = "CPU使用率",
    .rss = "内存(RSS)",
    .heap = "堆",
    .fds = "文件描述符",
    .sockets = "套接字",
    .threads = "线程",
    .peak_rss = "内存(RSS)峰值",
    .idle_cpu = "空闲CPU使用率",
    .status = "状态",
    .baseline = "基线(空闲)",
    .back = "CPU回落至基线",
    .above = "CPU高于基线",
    .pass = "通过",
    .fail = "失败",
    .inconclusive = "不确定",
    .error = "错误",
    .kind = "类别",
    .kind_heap = "堆",
    .kind_fd = "文件描述符",
    .kind_socket = "套接字",
    .kind_thread = "线程",
    .kind_peak = "峰值时的堆",
    .site = "来源",
    .gone = "已消失",
    .remains = "仍在",
    .added = "新增",
    .after_only_peak = "仅修复后列出",
    .at_peak = "峰值时",
    .suppressed = "已忽略",
    .no_sites = "两次结果都没有列出增长来源或峰值时的分配来源。",
    .judged_runs = "次判定运行",
    .colon = "：",
    .list_sep = "，",
    .growth_note = "每次运行：判定运行上的 Theil-Sen 斜率；累计：最后一次判定运行相对预热后的值"
                   "（空闲CPU使用率相对基线）。",
    .change_fixed = "已修复",
    .change_still = "仍失败",
    .change_regressed = "退化",
    .change_unchanged = "无变化",
    .change_only_before = "仅修复前",
    .change_only_after = "仅修复后",
    .change_undecided = "待定",
};

std::string_view VerdictWord(const Words& w, std::string_view verdict) {
  if (verdict == "pass") return w.pass;
  if (verdict == "fail") return w.fail;
  if (verdict == "inconclusive") return w.inconclusive;
  if (verdict == "error") return w.error;
  return verdict;
}

std::string_view ChangeWord(const Words& w, Change change) {
  switch (change) {
    case Change::kFixed: return w.change_fixed;
    case Change::kStillFailing: return w.change_still;
    case Change::kRegressed: return w.change_regressed;
    case Change::kUnchanged: return w.change_unchanged;
    case Change::kOnlyBefore: return w.change_only_before;
    case Change::kOnlyAfter: return w.change_only_after;
    case Change::kUndecided: return w.change_undecided;
  }
  return "";
}

std::string_view ChangeMark(Change change) {
  switch (change) {
    case Change::kFixed: return "✅ ";
    case Change::kStillFailing:
    case Change::kRegressed: return "❌ ";
    case Change::kUndecided: return "⚠️ ";
    default: return "";
  }
}

std::string_view MetricLabel(const Words& w, std::string_view metric) {
  if (metric == "cpu_pct") return w.idle_cpu;
  if (metric == "rss_bytes") return w.rss;
  if (metric == "heap_bytes") return w.heap;
  if (metric == "fds") return w.fds;
  if (metric == "sockets") return w.sockets;
  if (metric == "threads") return w.threads;
  if (metric == "peak_rss_bytes") return w.peak_rss;
  return metric;
}

std::string_view KindLabel(const Words& w, std::string_view kind) {
  if (kind == "heap") return w.kind_heap;
  if (kind == "fd") return w.kind_fd;
  if (kind == "socket") return w.kind_socket;
  if (kind == "thread") return w.kind_thread;
  if (kind == "peak") return w.kind_peak;
  return kind;
}

// The worst verdict among the named checks on one side: "fail", "inconclusive", "pass", or ""
// when none of them is there.
std::string WorstVerdict(const Comparison& c, bool before,
                         std::initializer_list<std::string_view> names) {
  std::string worst;
  for (const CheckComparison& check : c.checks) {
    if (std::find(names.begin(), names.end(), check.name) == names.end()) continue;
    const std::string& v = before ? check.before_verdict : check.after_verdict;
    if (v.empty()) continue;
    if (v == "fail" || worst.empty() || (v != "pass" && worst == "pass")) worst = v;
    if (worst == "fail") break;
  }
  return worst;
}

const MetricGrowth* GrowthFor(const Comparison& c, std::string_view metric) {
  for (const MetricGrowth& g : c.growth) {
    if (g.metric == metric) return &g;
  }
  return nullptr;
}

std::string Bullet(std::string_view verdict) {
  return verdict.empty() ? "- " : "- " + std::string(Mark(verdict)) + " ";
}

// One side of the document's "修复前 / 修复后" lists, from the measurements.
void EffectSide(const Comparison& c, const Words& w, bool zh, bool before,
                std::ostringstream& out) {
  out << "### " << (before ? w.effect_before : w.effect_after) << (zh ? "（" : " (")
      << Cell(before ? c.before_name : c.after_name) << (zh ? "，" : ", ")
      << Mark(before ? c.before_verdict : c.after_verdict) << " "
      << VerdictWord(w, before ? c.before_verdict : c.after_verdict) << (zh ? "）" : ")")
      << "\n\n";
  // Idle CPU after each run against the baseline: the document's staircase.
  std::vector<std::string> cpus;
  std::optional<double> base_cpu;
  int runs = 0;
  for (const StateRow& row : c.states) {
    const std::optional<json>& s = before ? row.before : row.after;
    if (!s) continue;
    const std::optional<double> cpu = NumberAt(*s, "cpu_pct");
    if (row.run == 0) {
      base_cpu = cpu;
      continue;
    }
    ++runs;
    cpus.push_back(cpu ? Fixed(*cpu, 1) : "?");
  }
  if (!cpus.empty()) {
    std::string list;
    for (size_t i = 0; i < cpus.size(); ++i) list += (i ? (zh ? "、" : ", ") : "") + cpus[i];
    const std::string range = runs == 1 ? "1" : "1-" + std::to_string(runs);
    out << Bullet(WorstVerdict(c, before, {check_id::kIdleCpuReturns}));
    if (zh) {
      out << "第" << range << "次运行后的" << w.idle_cpu << "：" << list << " %";
      if (base_cpu) out << "（基线 " << Fixed(*base_cpu, 1) << " %）";
    } else {
      out << "idle CPU after run" << (runs == 1 ? " " : "s ") << range << ": " << list << " %";
      if (base_cpu) out << " (baseline " << Fixed(*base_cpu, 1) << " %)";
    }
    out << "\n";
  }
  // Memory per run.
  const MetricGrowth* rss = GrowthFor(c, "rss_bytes");
  const MetricGrowth* heap = GrowthFor(c, "heap_bytes");
  std::vector<std::string> memory;
  for (const MetricGrowth* g : {rss, heap}) {
    const std::optional<double>& per_run = before ? g->before_per_run : g->after_per_run;
    if (!per_run) continue;
    memory.push_back(std::string(MetricLabel(w, g->metric)) + (zh ? "每次运行 " : " ") +
                     Signed(per_run, "B") + (zh ? "" : " per run"));
  }
  if (!memory.empty()) {
    out << Bullet(WorstVerdict(c, before,
                               {check_id::kRssGrowthPerRun, check_id::kRssGrowthTotal, check_id::kHeapGrowthPerRun}));
    for (size_t i = 0; i < memory.size(); ++i) out << (i ? w.list_sep : "") << memory[i];
    out << "\n";
  }
  // Resources since the warm-up.
  std::vector<std::string> resources;
  for (const char* metric : {"fds", "sockets", "threads"}) {
    const MetricGrowth* g = GrowthFor(c, metric);
    const std::optional<double>& total = before ? g->before_total : g->after_total;
    if (!total) continue;
    resources.push_back(std::string(MetricLabel(w, metric)) + " " + Signed(total, ""));
  }
  if (!resources.empty()) {
    out << Bullet(WorstVerdict(c, before, {check_id::kFdsStable, check_id::kSocketsStable, check_id::kThreadsStable}));
    if (zh) out << "最后一次判定运行后（相对预热后）：";
    for (size_t i = 0; i < resources.size(); ++i) out << (i ? w.list_sep : "") << resources[i];
    if (!zh) out << " after the last judged run (against the warm-up)";
    out << "\n";
  }
  // The peak during a run.
  for (const CheckComparison& check : c.checks) {
    if (check.name != check_id::kPeakRss) continue;
    const std::string& verdict = before ? check.before_verdict : check.after_verdict;
    if (verdict.empty()) break;
    const std::optional<double>& observed = before ? check.before_observed : check.after_observed;
    const std::optional<double>& limit = before ? check.before_threshold : check.after_threshold;
    out << Bullet(verdict) << w.peak_rss << (zh ? "：" : " ") << InUnit(observed, check.unit);
    if (limit) {
      out << (zh ? "（上限 " : " (limit ") << InUnit(limit, check.unit) << (zh ? "）" : ")");
    }
    out << "\n";
  }
  out << "\n";
}

std::string VerdictCell(const Words& w, const std::string& verdict, std::optional<double> observed,
                        const std::string& unit) {
  if (verdict.empty()) return "—";
  return std::string(Mark(verdict)) + " " + std::string(VerdictWord(w, verdict)) + " " +
         InUnit(observed, unit);
}

void ChecksTable(const Comparison& c, const Words& w, std::ostringstream& out) {
  out << "## " << w.checks << "\n\n";
  out << "| " << w.check << " | " << w.before << " | " << w.after << " | " << w.threshold << " | "
      << w.change << " |\n";
  out << "|---|---|---|---:|---|\n";
  for (const CheckComparison& check : c.checks) {
    const std::string threshold = ThresholdText(check);
    out << "| " << Cell(check.name) << " | "
        << VerdictCell(w, check.before_verdict, check.before_observed, check.unit) << " | "
        << VerdictCell(w, check.after_verdict, check.after_observed, check.unit) << " | "
        << threshold << " | " << ChangeMark(check.change) << ChangeWord(w, check.change) << " |\n";
  }
  out << "\n";
}

void GrowthTable(const Comparison& c, const Words& w, bool zh, std::ostringstream& out) {
  out << "## " << w.growth << "\n\n";
  const std::string sep = zh ? "：" : ", ";
  out << "| " << w.metric << " | " << w.before << sep << w.per_run << " | " << w.after << sep
      << w.per_run << " | " << w.before << sep << w.total << " | " << w.after << sep << w.total
      << " |\n";
  out << "|---|---:|---:|---:|---:|\n";
  for (const MetricGrowth& g : c.growth) {
    if (!g.before_per_run && !g.after_per_run && !g.before_total && !g.after_total) continue;
    out << "| " << MetricLabel(w, g.metric) << " | " << Signed(g.before_per_run, g.unit) << " | "
        << Signed(g.after_per_run, g.unit) << " | " << Signed(g.before_total, g.unit) << " | "
        << Signed(g.after_total, g.unit) << " |\n";
  }
  out << "\n" << w.growth_note << "\n\n";
}

// "43 MiB (+26.7 MiB)": the value and its change from that side's baseline.
std::string SizeWithDelta(const std::optional<json>& s, const std::optional<json>& base,
                          const char* key) {
  if (!s) return "—";
  const std::optional<double> v = NumberAt(*s, key);
  if (!v) return "—";
  std::string text = Size(*v);
  if (base) {
    if (auto b = NumberAt(*base, key)) text += " (" + SignedSize(*v - *b) + ")";
  }
  return text;
}

std::string StateValue(const std::optional<json>& s, const char* key) {
  if (!s) return "—";
  const std::optional<double> v = NumberAt(*s, key);
  if (!v) return "—";
  if (std::string_view(key) == "cpu_pct") return Fixed(*v, 1) + " %";
  return Count(*v);
}

std::string CpuStatus(bool known, bool back) {
  if (!known) return "—";
  return back ? "✅" : "❌";
}

void StatesTable(const Comparison& c, const Words& w, bool zh, std::ostringstream& out) {
  out << "## " << w.states << "\n\n" << w.arrow_note << (zh ? "" : " ") << w.status << (zh ? "：" : ": ")
      << "✅ " << w.back << (zh ? "，" : ", ") << "❌ " << w.above << (zh ? "。" : ".") << "\n\n";
  out << "| " << w.phase << " | " << w.cpu << " | " << w.rss << " | " << w.heap << " | " << w.fds
      << " | " << w.threads << " | " << w.status << " |\n";
  out << "|---|---:|---:|---:|---:|---:|---|\n";
  const std::optional<json>& before_base = c.states.empty() ? std::nullopt : c.states[0].before;
  const std::optional<json>& after_base = c.states.empty() ? std::nullopt : c.states[0].after;
  for (const StateRow& row : c.states) {
    std::string label;
    if (row.run == 0) {
      label = std::string(w.baseline);
    } else {
      label = RunLabel(zh, json{{"index", row.run},
                                {"warmup", row.before_warmup || row.after_warmup}});
    }
    const bool base = row.run == 0;
    out << "| " << label << " | " << StateValue(row.before, "cpu_pct") << " → "
        << StateValue(row.after, "cpu_pct") << " | ";
    // RSS and heap: the baseline row shows plain sizes, later rows their change from it too.
    auto size_cell = [&](const char* key) {
      if (base) {
        auto plain = [key](const std::optional<json>& s) {
          if (!s) return std::string("—");
          const std::optional<double> v = NumberAt(*s, key);
          return v ? Size(*v) : std::string("—");
        };
        return plain(row.before) + " → " + plain(row.after);
      }
      return SizeWithDelta(row.before, before_base, key) + " → " +
             SizeWithDelta(row.after, after_base, key);
    };
    out << size_cell("rss_bytes") << " | " << size_cell("heap_bytes") << " | "
        << StateValue(row.before, "fds") << " → " << StateValue(row.after, "fds") << " | "
        << StateValue(row.before, "threads") << " → " << StateValue(row.after, "threads") << " | "
        << (base ? std::string("—")
                 : CpuStatus(row.before_cpu_known, row.before_cpu_back) + " → " +
                       CpuStatus(row.after_cpu_known, row.after_cpu_back))
        << " |\n";
  }
  out << "\n";
}

// A growth item's figures, as the single-gate report writes them: "+2.4 MiB (620.1 KiB per run)";
// a site at the peak: "6.1 MiB at the peak".
std::string SiteFigures(const Words& w, bool zh, const SiteComparison& s, bool before) {
  const std::optional<double>& per_run = before ? s.before_per_run : s.after_per_run;
  const std::optional<double>& total = before ? s.before_total : s.after_total;
  const bool bytes = s.kind == "heap" || s.kind == "peak";
  if (s.kind == "peak") {
    if (!per_run) return "—";
    return zh ? std::string(w.at_peak) + " " + Size(*per_run)
              : Size(*per_run) + " " + std::string(w.at_peak);
  }
  if (!per_run && !total) return "—";
  std::string text;
  if (total) text = bytes ? SignedSize(*total) : "+" + Count(*total);
  if (per_run) {
    const std::string rate = bytes ? Size(*per_run) : Fixed(*per_run, 2);
    text += (text.empty() ? "(" : " (") +
            (zh ? std::string(w.per_run) + " " + rate : rate + " " + std::string(w.per_run)) + ")";
  }
  return text;
}

void SitesTable(const Comparison& c, const Words& w, bool zh, std::ostringstream& out) {
  out << "## " << w.sites << "\n\n";
  if (c.sites.empty()) {
    out << w.no_sites << "\n\n";
    return;
  }
  out << "| " << w.change << " | " << w.kind << " | " << w.site << " | " << w.before << " | " << w.after
      << " |\n";
  out << "|---|---|---|---:|---:|\n";
  // Gone first, then what remains, then what is new.
  const Change kOrder[] = {Change::kFixed, Change::kStillFailing, Change::kRegressed,
                           Change::kOnlyAfter};
  for (Change change : kOrder) {
    for (const SiteComparison& s : c.sites) {
      if (s.change != change) continue;
      std::string word;
      switch (change) {
        case Change::kFixed: word = "✅ " + std::string(w.gone); break;
        case Change::kStillFailing: word = std::string(w.remains); break;
        case Change::kRegressed: word = "❌ " + std::string(w.added); break;
        default: word = std::string(w.after_only_peak); break;
      }
      std::string site = CodeCell(s.site);
      if (s.suppressed) site += " (" + std::string(w.suppressed) + ")";
      out << "| " << word << " | " << KindLabel(w, s.kind) << " | " << site << " | "
          << SiteFigures(w, zh, s, true) << " | " << SiteFigures(w, zh, s, false) << " |\n";
    }
  }
  out << "\n";
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out;
}

std::string SummaryText(const Comparison& c, const Words& w, bool zh) {
  std::vector<std::string> fixed, still, regressed, undecided, missing;
  for (const CheckComparison& check : c.checks) {
    switch (check.change) {
      case Change::kFixed: fixed.push_back(check.name); break;
      case Change::kStillFailing: still.push_back(check.name); break;
      case Change::kRegressed: regressed.push_back(check.name); break;
      case Change::kUndecided: undecided.push_back(check.name); break;
      case Change::kOnlyBefore:
        if (check.before_verdict == "fail") missing.push_back(check.name);
        break;
      default: break;
    }
  }
  int grew = 0;
  int gone = 0;
  for (const SiteComparison& s : c.sites) {
    const bool listed_before = s.change == Change::kFixed || s.change == Change::kStillFailing;
    if (s.kind == "peak" || !listed_before) continue;
    ++grew;
    gone += s.change == Change::kFixed ? 1 : 0;
  }
  std::vector<std::string> parts;
  if (zh) {
    if (!fixed.empty()) {
      parts.push_back("修复前失败的 " + std::to_string(fixed.size()) + " 项检查在修复后通过（" +
                      JoinNames(fixed) + "）");
    }
    if (c.before_verdict != "fail") parts.push_back("修复前没有失败的检查，无可证明的修复");
    if (!still.empty()) parts.push_back("修复后仍失败：" + JoinNames(still));
    if (!regressed.empty()) parts.push_back("修复后新失败：" + JoinNames(regressed));
    if (!missing.empty()) parts.push_back("修复后缺少检查：" + JoinNames(missing));
    if (!undecided.empty()) parts.push_back("待定：" + JoinNames(undecided));
    if (c.after_verdict != "pass") {
      parts.push_back("修复后结论为" + std::string(VerdictWord(w, c.after_verdict)));
    }
    if (grew > 0) {
      parts.push_back("修复前增长的 " + std::to_string(grew) + " 个来源中 " +
                      std::to_string(gone) + " 个已消失");
    }
  } else {
    if (!fixed.empty()) {
      parts.push_back(std::to_string(fixed.size()) + (fixed.size() == 1 ? " check" : " checks") +
                      " failed before and pass after (" + JoinNames(fixed) + ")");
    }
    if (c.before_verdict != "fail") parts.push_back("before did not fail: there is no fix to show");
    if (!still.empty()) parts.push_back("still failing after: " + JoinNames(still));
    if (!regressed.empty()) parts.push_back("failing after only: " + JoinNames(regressed));
    if (!missing.empty()) parts.push_back("not judged after: " + JoinNames(missing));
    if (!undecided.empty()) parts.push_back("undecided: " + JoinNames(undecided));
    if (c.after_verdict != "pass") {
      parts.push_back("the after gate is " + std::string(VerdictWord(w, c.after_verdict)));
    }
    if (grew > 0) {
      parts.push_back(std::to_string(gone) + " of the " + std::to_string(grew) +
                      " sites that grew before are gone");
    }
  }
  std::string text;
  for (size_t i = 0; i < parts.size(); ++i) text += (i ? (zh ? "；" : "; ") : "") + parts[i];
  return text + (zh ? "。" : ".");
}

void Headline(const Comparison& c, const Words& w, bool zh, std::ostringstream& out) {
  out << "# " << w.title << w.colon << Cell(c.before_name) << " → "
      << Cell(c.after_name) << " — " << (c.fixed ? "✅ " : "❌ ")
      << (c.fixed ? w.fixed_headline : w.not_fixed_headline) << "\n\n";
  out << "**" << (c.fixed ? "✅ " : "❌ ") << (c.fixed ? w.fixed_headline : w.not_fixed_headline)
      << "**" << w.colon << Cell(SummaryText(c, w, zh)) << "\n\n";
  for (bool before : {true, false}) {
    out << "- " << (before ? w.before : w.after) << w.colon
        << Cell(before ? c.before_name : c.after_name) << (zh ? "，" : ", ")
        << Mark(before ? c.before_verdict : c.after_verdict) << " "
        << VerdictWord(w, before ? c.before_verdict : c.after_verdict) << (zh ? "，" : ", ")
        << (before ? c.before_judged_runs : c.after_judged_runs) << " " << w.judged_runs << "\n";
  }
  out << "\n";
}

}  // namespace

std::string compare_internal::Summary(const Comparison& comparison, bool zh) {
  return SummaryText(comparison, zh ? kChinese : kEnglish, zh);
}

std::string_view ChangeName(Change change) { return ChangeWord(kEnglish, change); }

Result<Comparison> CompareResults(const nlohmann::json& before, const nlohmann::json& after) {
  if (auto ok = ValidateSide(before, "before"); !ok) return std::unexpected(ok.error());
  if (auto ok = ValidateSide(after, "after"); !ok) return std::unexpected(ok.error());
  Comparison c;
  c.before_name = before["scenario"]["name"].get<std::string>();
  c.after_name = after["scenario"]["name"].get<std::string>();
  c.before_verdict = before["verdict"].get<std::string>();
  c.after_verdict = after["verdict"].get<std::string>();
  c.before_judged_runs = JudgedRuns(before);
  c.after_judged_runs = JudgedRuns(after);
  c.checks = CompareChecks(before, after);
  c.growth = CompareGrowth(before, after);
  c.states = CompareStates(before, after);
  c.sites = CompareSites(before, after);
  bool any_fixed = false;
  bool all_fixed = true;
  for (const CheckComparison& check : c.checks) {
    any_fixed = any_fixed || check.change == Change::kFixed;
    if (check.before_verdict == "fail" && check.change != Change::kFixed) all_fixed = false;
    if (check.after_verdict == "fail") all_fixed = false;
  }
  c.fixed = c.before_verdict == "fail" && c.after_verdict == "pass" && any_fixed && all_fixed;
  return c;
}

Result<std::string> RenderComparisonMarkdown(const Comparison& comparison, std::string_view lang) {
  if (lang != "en" && lang != "zh") {
    return Fail(ErrorCode::kInvalidArgument,
                "unknown report language \"" + std::string(lang) + "\"; expected en or zh");
  }
  const bool zh = lang == "zh";
  const Words& w = zh ? kChinese : kEnglish;
  std::ostringstream out;
  Headline(comparison, w, zh, out);
  out << "## " << w.effect << "\n\n";
  EffectSide(comparison, w, zh, true, out);
  EffectSide(comparison, w, zh, false, out);
  ChecksTable(comparison, w, out);
  StatesTable(comparison, w, zh, out);
  GrowthTable(comparison, w, zh, out);
  SitesTable(comparison, w, zh, out);
  std::string text = out.str();
  while (text.size() >= 2 && text.ends_with("\n\n")) text.pop_back();
  return text;
}

}  // namespace leakgate::reports
