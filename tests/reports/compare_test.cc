// The before/after comparison: golden Markdown (English, Chinese) of the fixed results before.json
// and after.json; the matching of checks and sites across two results (ports ignored, gone,
// remains, new, a check in one result only); input errors naming "before" or "after" and the JSON
// path; the HTML page self-contained and escaped; `leakgate compare` exit codes and files. And one
// end-to-end run: two real gates of the reference service (all five seeded faults, then none),
// compared through the CLI, every fault shown caught before and gone after.
// LEAKGATE_UPDATE_GOLDEN=1 rewrites the expected files from the current output.
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "reports/compare.h"
#include "reports/report.h"
#include "golden.h"
#include "support/command.h"

namespace leakgate::reports {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;

using golden::ExpectGolden;
using golden::Fixture;
using golden::kData;
using golden::ReadText;

const std::string kLeakgate = LEAKGATE_BINARY_DIR "/bin/leakgate";
const std::string kScenarios = LEAKGATE_SOURCE_DIR "/scenarios";

Comparison Compare(const json& before, const json& after) {
  auto comparison = CompareResults(before, after);
  EXPECT_TRUE(comparison.has_value()) << comparison.error().message;
  return comparison.value_or(Comparison{});
}

std::string Markdown(const Comparison& comparison, const std::string& lang) {
  auto md = RenderComparisonMarkdown(comparison, lang);
  EXPECT_TRUE(md.has_value()) << md.error().message;
  return md.value_or("");
}

const CheckComparison* FindCheck(const Comparison& c, const std::string& name) {
  for (const CheckComparison& check : c.checks) {
    if (check.name == name) return &check;
  }
  return nullptr;
}

// The site of `kind` whose text contains `text`; nullptr when none.
const SiteComparison* FindSite(const Comparison& c, const std::string& kind,
                               const std::string& text) {
  for (const SiteComparison& site : c.sites) {
    if (site.kind == kind && site.site.find(text) != std::string::npos) return &site;
  }
  return nullptr;
}

const MetricGrowth* FindGrowth(const Comparison& c, const std::string& metric) {
  for (const MetricGrowth& g : c.growth) {
    if (g.metric == metric) return &g;
  }
  return nullptr;
}

int CountOf(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// A minimal valid result: one warm-up and three judged runs, flat, every check passing, no growth.
json MinimalResult(const std::string& name) {
  json snapshot = {{"cpu_pct", 0.0}, {"rss_bytes", 20 << 20}, {"heap_bytes", 1 << 20},
                   {"fds", 10},      {"threads", 4},          {"sockets", 1}};
  json runs = json::array();
  for (int k = 1; k <= 4; ++k) {
    runs.push_back({{"index", k}, {"warmup", k == 1}, {"peak_rss_bytes", 24 << 20},
                    {"after", snapshot}});
  }
  json checks = json::array();
  for (const char* check : {"idle_cpu_returns", "heap_growth_per_run", "sockets_stable"}) {
    checks.push_back({{"name", check}, {"verdict", "pass"}, {"observed", 0}, {"threshold", 0},
                      {"unit", ""}, {"detail", ""}});
  }
  return {{"schema", "leakgate.result/1"},
          {"scenario", {{"name", name}}},
          {"verdict", "pass"},
          {"exit_code", 0},
          {"baseline", snapshot},
          {"runs", runs},
          {"checks", checks},
          {"growth", json::array()}};
}

void SetCheck(json& result, const std::string& name, const std::string& verdict) {
  for (json& check : result["checks"]) {
    if (check["name"] == name) check["verdict"] = verdict;
  }
}

json Growth(const std::string& kind, const std::string& site, double per_run, double total,
            const std::string& id = "") {
  json item = {{"kind", kind}, {"site", site}, {"per_run", per_run}, {"total", total},
               {"suppressed", nullptr}};
  if (!id.empty()) item["id"] = id;
  return item;
}

// ---- golden Markdown ----

TEST(CompareMarkdown, EnglishMatchesGolden) {
  const Comparison c = Compare(Fixture("before.json"), Fixture("after.json"));
  EXPECT_TRUE(c.fixed);
  const std::string md = Markdown(c, "en");
  ExpectGolden(md, "compare.en.md");
  EXPECT_THAT(md, HasSubstr("— ✅ The fix is shown"));
  EXPECT_THAT(md, HasSubstr("| idle_cpu_returns | ❌ fail 6.91 % | ✅ pass 0.00 % | 2.00 % | ✅ fixed |"));
  EXPECT_EQ(CountOf(md, "✅ fixed |"), 8) << md;
  EXPECT_THAT(md, HasSubstr("| ✅ gone | thread | `exch-heartbeat` |"));
}

TEST(CompareMarkdown, ChineseMatchesGoldenWithTheDocumentsWords) {
  const std::string md = Markdown(Compare(Fixture("before.json"), Fixture("after.json")), "zh");
  ExpectGolden(md, "compare.zh.md");
  for (const char* word : {"修复前", "修复后", "修复效果", "阶段", "CPU使用率", "内存(RSS)", "状态",
                           "基线(空闲)", "第2次运行", "✅ 已修复", "已消失", "修复有效"}) {
    EXPECT_THAT(md, HasSubstr(word));
  }
  EXPECT_THAT(md, Not(HasSubstr("| phase |")));
}

TEST(CompareMarkdown, UnknownLanguageIsRefused) {
  auto md = RenderComparisonMarkdown(Compare(Fixture("before.json"), Fixture("after.json")), "fr");
  ASSERT_FALSE(md.has_value());
  EXPECT_EQ(md.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(md.error().message, HasSubstr("expected en or zh"));
}

// ---- what the comparison decides ----

TEST(CompareResults, FixturesShowEveryFailingCheckFixed) {
  const Comparison c = Compare(Fixture("before.json"), Fixture("after.json"));
  EXPECT_EQ(c.before_name, "reference-before");
  EXPECT_EQ(c.after_name, "reference-after");
  EXPECT_EQ(c.before_judged_runs, 5);
  EXPECT_EQ(c.after_judged_runs, 7);
  ASSERT_EQ(c.checks.size(), 8u);
  for (const CheckComparison& check : c.checks) {
    EXPECT_EQ(check.change, Change::kFixed) << check.name;
    EXPECT_EQ(check.before_verdict, "fail") << check.name;
    EXPECT_EQ(check.after_verdict, "pass") << check.name;
  }
  // Baseline plus the longer result's runs.
  ASSERT_EQ(c.states.size(), 9u);
  EXPECT_TRUE(c.states[7].before.has_value() == false && c.states[7].after.has_value());
  EXPECT_TRUE(c.states[1].before_warmup && c.states[1].after_warmup);
  EXPECT_TRUE(c.states[6].before_cpu_known && !c.states[6].before_cpu_back);
  EXPECT_TRUE(c.states[6].after_cpu_known && c.states[6].after_cpu_back);
}

// The per-run growth is fitted as the checks fit it: RSS equals its check's observed value, heap is
// within 1 % of its check's (which reports the median step when every step rose), and the totals
// of fds, sockets and threads equal their checks'.
TEST(CompareResults, GrowthAgreesWithTheChecks) {
  const json before = Fixture("before.json");
  const json after = Fixture("after.json");
  const Comparison c = Compare(before, after);
  for (const auto& [metric, check, total, tolerance] :
       {std::tuple{"rss_bytes", "rss_growth_per_run", false, 1.0},
        std::tuple{"heap_bytes", "heap_growth_per_run", false, 0.01 * 4.3 * 1024 * 1024},
        std::tuple{"fds", "fds_stable", true, 1e-9}, std::tuple{"sockets", "sockets_stable", true, 1e-9},
        std::tuple{"threads", "threads_stable", true, 1e-9}}) {
    const MetricGrowth* g = FindGrowth(c, metric);
    const CheckComparison* k = FindCheck(c, check);
    ASSERT_NE(g, nullptr) << metric;
    ASSERT_NE(k, nullptr) << check;
    ASSERT_TRUE(k->before_observed && k->after_observed);
    const auto& b = total ? g->before_total : g->before_per_run;
    const auto& a = total ? g->after_total : g->after_per_run;
    ASSERT_TRUE(b && a) << metric;
    EXPECT_NEAR(*b, *k->before_observed, tolerance) << metric;
    EXPECT_NEAR(*a, *k->after_observed, tolerance) << metric;
  }
  // Idle CPU: the last judged run against the baseline, as idle_cpu_returns observes it.
  const MetricGrowth* cpu = FindGrowth(c, "cpu_pct");
  ASSERT_TRUE(cpu->before_total.has_value());
  EXPECT_NEAR(*cpu->before_total, *FindCheck(c, "idle_cpu_returns")->before_observed, 1e-6);
  EXPECT_GT(*cpu->before_per_run, 0.5);
  EXPECT_NEAR(*cpu->after_per_run, 0.0, 1e-9);
}

TEST(CompareResults, SitesAreGoneRemainOrNew) {
  json before = MinimalResult("b");
  json after = MinimalResult("a");
  before["growth"] = {Growth("heap", "A::Leak (a.cc)", 4096, 16384, "aaaaaaaaaaaa"),
                      Growth("heap", "B::Keep (b.cc)", 1024, 4096, "bbbbbbbbbbbb"),
                      Growth("thread", "exch-heartbeat", 1, 3)};
  // B matched by its id although the build moved it (another text); C appears after only.
  after["growth"] = {Growth("heap", "B::Keep (b.cc, moved)", 512, 2048, "bbbbbbbbbbbb"),
                     Growth("heap", "C::New (c.cc)", 2048, 8192, "cccccccccccc")};
  before["heap_profiles"] = {
      {"peak_sites", {{{"site", "Saver::Save (t.cc)"}, {"id", "555555555555"}, {"bytes", 9e6}},
                      {{"site", "sqlite3Malloc"}, {"id", "666666666666"}, {"bytes", 1e6}}}}};
  after["heap_profiles"] = {
      {"peak_sites", {{{"site", "sqlite3Malloc"}, {"id", "666666666666"}, {"bytes", 2e6}},
                      {{"site", "httplib::Get"}, {"id", "777777777777"}, {"bytes", 5e5}}}}};
  const Comparison c = Compare(before, after);
  ASSERT_EQ(c.sites.size(), 7u);
  const SiteComparison* a = FindSite(c, "heap", "A::Leak");
  const SiteComparison* b = FindSite(c, "heap", "B::Keep");
  const SiteComparison* n = FindSite(c, "heap", "C::New");
  const SiteComparison* t = FindSite(c, "thread", "exch-heartbeat");
  ASSERT_TRUE(a && b && n && t);
  EXPECT_EQ(a->change, Change::kFixed);
  EXPECT_EQ(a->id, "aaaaaaaaaaaa");
  EXPECT_FALSE(a->after_total.has_value());
  EXPECT_EQ(b->change, Change::kStillFailing);
  EXPECT_EQ(b->site, "B::Keep (b.cc)");
  EXPECT_EQ(*b->before_total, 4096);
  EXPECT_EQ(*b->after_total, 2048);
  EXPECT_EQ(n->change, Change::kRegressed);
  EXPECT_EQ(t->change, Change::kFixed);
  EXPECT_EQ(FindSite(c, "peak", "Saver::Save")->change, Change::kFixed);
  EXPECT_EQ(*FindSite(c, "peak", "Saver::Save")->before_per_run, 9e6);
  EXPECT_EQ(FindSite(c, "peak", "sqlite3Malloc")->change, Change::kStillFailing);
  // A newcomer among the largest sites at the peak is no regression.
  EXPECT_EQ(FindSite(c, "peak", "httplib::Get")->change, Change::kOnlyAfter);
  // Before's items first (heap largest first, then thread, then peak), then after-only ones.
  std::vector<std::string> order;
  for (const SiteComparison& s : c.sites) order.push_back(s.kind + " " + s.site);
  EXPECT_THAT(order, ::testing::ElementsAre("heap A::Leak (a.cc)", "heap B::Keep (b.cc)",
                                            "thread exch-heartbeat", "peak Saver::Save (t.cc)",
                                            "peak sqlite3Malloc", "heap C::New (c.cc)",
                                            "peak httplib::Get"));
  const std::string md = Markdown(c, "en");
  EXPECT_THAT(md, HasSubstr("| ✅ gone | heap | `A::Leak (a.cc)` | +16 KiB (4 KiB per run) | — |"));
  EXPECT_THAT(md, HasSubstr("| remains | heap | `B::Keep (b.cc)` | +4 KiB (1 KiB per run) | +2 KiB (512 B per run) |"));
  EXPECT_THAT(md, HasSubstr("| ❌ new | heap | `C::New (c.cc)` | — | +8 KiB (2 KiB per run) |"));
  EXPECT_THAT(md, HasSubstr("| listed after only | heap at the peak | `httplib::Get` |"));
}

TEST(CompareResults, SocketsMatchWithoutTheirPortButWithTheirHost) {
  json before = MinimalResult("b");
  json after = MinimalResult("a");
  before["growth"] = {Growth("socket", "tcp -> 127.0.0.1:42605", 1, 5),
                      Growth("fd", "tcp accepted on 127.0.0.1:42605", 1, 5),
                      Growth("socket", "tcp -> 10.1.2.3:443", 1, 5),
                      Growth("socket", "tcp -> [::1]:8080", 1, 2)};
  after["growth"] = {Growth("socket", "tcp -> 127.0.0.1:39001", 1, 2),
                     Growth("fd", "tcp accepted on 127.0.0.1:39001", 1, 2),
                     Growth("socket", "tcp -> 10.1.2.4:443", 1, 1),
                     Growth("socket", "tcp -> [::1]:9090", 1, 1)};
  const Comparison c = Compare(before, after);
  EXPECT_EQ(FindSite(c, "socket", "tcp -> 127.0.0.1:")->change, Change::kStillFailing);
  EXPECT_EQ(FindSite(c, "socket", "tcp -> 127.0.0.1:")->site, "tcp -> 127.0.0.1:42605");
  EXPECT_EQ(*FindSite(c, "socket", "tcp -> 127.0.0.1:")->after_total, 2);
  EXPECT_EQ(FindSite(c, "fd", "tcp accepted on")->change, Change::kStillFailing);
  EXPECT_EQ(FindSite(c, "socket", "[::1]")->change, Change::kStillFailing);
  // Another peer is another site.
  EXPECT_EQ(FindSite(c, "socket", "10.1.2.3:443")->change, Change::kFixed);
  EXPECT_EQ(FindSite(c, "socket", "10.1.2.4:443")->change, Change::kRegressed);
  EXPECT_EQ(c.sites.size(), 5u);
}

TEST(CompareResults, ItemsOfOneResultThatDifferByPortAddUp) {
  json before = MinimalResult("b");
  before["growth"] = {Growth("socket", "tcp -> 127.0.0.1:1000", 1, 3),
                      Growth("socket", "tcp -> 127.0.0.1:2000", 0.5, 2)};
  const Comparison c = Compare(before, MinimalResult("a"));
  ASSERT_EQ(c.sites.size(), 1u);
  EXPECT_EQ(*c.sites[0].before_total, 5);
  EXPECT_EQ(*c.sites[0].before_per_run, 1.5);
}

TEST(CompareResults, CheckInOneResultOnly) {
  json before = MinimalResult("b");
  json after = MinimalResult("a");
  before["verdict"] = "fail";
  SetCheck(before, "heap_growth_per_run", "fail");
  SetCheck(before, "sockets_stable", "fail");
  // After judged no heap (no statistics) but a check before did not have.
  after["checks"].erase(1);
  after["checks"].push_back({{"name", "peak_rss"}, {"verdict", "pass"}, {"observed", 1},
                             {"threshold", 2}, {"unit", "B"}});
  const Comparison c = Compare(before, after);
  ASSERT_EQ(c.checks.size(), 4u);
  EXPECT_EQ(c.checks[1].name, "heap_growth_per_run");
  EXPECT_EQ(c.checks[1].change, Change::kOnlyBefore);
  EXPECT_EQ(c.checks[1].after_verdict, "");
  EXPECT_EQ(c.checks[2].change, Change::kFixed);
  EXPECT_EQ(c.checks[3].name, "peak_rss");
  EXPECT_EQ(c.checks[3].change, Change::kOnlyAfter);
  // A failure before that after does not judge is not shown fixed.
  EXPECT_FALSE(c.fixed);
  const std::string md = Markdown(c, "en");
  EXPECT_THAT(md, HasSubstr("| heap_growth_per_run | ❌ fail 0 | — | 0 | only before |"));
  EXPECT_THAT(md, HasSubstr("| peak_rss | — | ✅ pass 1 B | 2 B | only after |"));
  EXPECT_THAT(md, HasSubstr("not judged after: heap_growth_per_run"));
  EXPECT_THAT(md, HasSubstr("— ❌ The fix is not shown"));
}

TEST(CompareResults, FixedNeedsAFailureBeforeAndAPassAfter) {
  json before = MinimalResult("b");
  json after = MinimalResult("a");
  // Nothing failed before: there is no fix to show.
  EXPECT_FALSE(Compare(before, after).fixed);
  EXPECT_THAT(Markdown(Compare(before, after), "en"), HasSubstr("before did not fail"));

  before["verdict"] = "fail";
  SetCheck(before, "heap_growth_per_run", "fail");
  EXPECT_TRUE(Compare(before, after).fixed);

  // Still failing.
  json still = after;
  still["verdict"] = "fail";
  SetCheck(still, "heap_growth_per_run", "fail");
  Comparison c = Compare(before, still);
  EXPECT_FALSE(c.fixed);
  EXPECT_EQ(FindCheck(c, "heap_growth_per_run")->change, Change::kStillFailing);

  // Regressed: another check fails after.
  json regressed = after;
  regressed["verdict"] = "fail";
  SetCheck(regressed, "sockets_stable", "fail");
  c = Compare(before, regressed);
  EXPECT_FALSE(c.fixed);
  EXPECT_EQ(FindCheck(c, "sockets_stable")->change, Change::kRegressed);
  EXPECT_EQ(FindCheck(c, "heap_growth_per_run")->change, Change::kFixed);

  // Inconclusive after: the data do not tell yet.
  json undecided = after;
  undecided["verdict"] = "inconclusive";
  SetCheck(undecided, "heap_growth_per_run", "inconclusive");
  c = Compare(before, undecided);
  EXPECT_FALSE(c.fixed);
  EXPECT_EQ(FindCheck(c, "heap_growth_per_run")->change, Change::kUndecided);
  EXPECT_THAT(Markdown(c, "en"), HasSubstr("the after gate is inconclusive"));
  EXPECT_EQ(ChangeName(Change::kUndecided), "undecided");
  EXPECT_EQ(ChangeName(Change::kStillFailing), "still failing");
}

// ---- input errors ----

TEST(CompareInput, InvalidBeforeNamesRoleAndPath) {
  json before = Fixture("before.json");
  before["checks"][2].erase("name");
  auto c = CompareResults(before, Fixture("after.json"));
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.error().message, "before result: /checks/2/name is missing; expected a string");
}

TEST(CompareInput, InvalidAfterNamesRoleAndPath) {
  json after = Fixture("after.json");
  after["runs"][3]["after"]["rss_bytes"] = "lots";
  auto c = CompareResults(Fixture("before.json"), after);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().message, "after result: /runs/3/after/rss_bytes is string; expected a number");

  after = Fixture("after.json");
  after["schema"] = "leakgate.scenario/1";
  c = CompareResults(Fixture("before.json"), after);
  ASSERT_FALSE(c.has_value());
  EXPECT_THAT(c.error().message, HasSubstr("after result: /schema is \"leakgate.scenario/1\""));
}

TEST(CompareInput, SiteIdMustBeAString) {
  json before = Fixture("before.json");
  before["growth"][0]["id"] = 12;
  auto c = CompareResults(before, Fixture("after.json"));
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().message, "before result: /growth/0/id is number; expected a string");
}

// ---- the HTML page ----

// A timeline for a result without one: baseline, then each run and its cooldown, ending at the
// run's post-run snapshot (whose time is set to match).
json WithTimeline(json result) {
  json timeline = json::array();
  double t = 0;
  auto point = [&](const std::string& phase, int run, const json& values) {
    json p = {{"t", t}, {"phase", phase}, {"run", run}};
    for (const char* key : {"cpu_pct", "rss_bytes", "fds", "threads", "sockets"}) {
      if (values.contains(key)) p[key] = values[key];
    }
    timeline.push_back(p);
  };
  point("baseline", 0, result["baseline"]);
  t = 2;
  result["baseline"]["t"] = t;
  point("baseline", 0, result["baseline"]);
  for (json& run : result["runs"]) {
    const int k = run["index"].get<int>();
    t += 0.1;
    json busy = run["after"];
    busy["cpu_pct"] = 95.0;
    point("run", k, busy);
    t += 0.4;
    point("cooldown", k, run["after"]);
    t += 1.5;
    run["after"]["t"] = t;
    point("cooldown", k, run["after"]);
  }
  result["timeline"] = timeline;
  return result;
}

std::string Html(const json& before, const json& after) {
  auto html = RenderComparisonHtml(Compare(before, after), before, after);
  EXPECT_TRUE(html.has_value()) << html.error().message;
  return html.value_or("");
}

TEST(CompareHtml, SelfContainedWithOneChartPerMetricOverlaid) {
  const std::string html =
      Html(WithTimeline(Fixture("before.json")), WithTimeline(Fixture("after.json")));
  EXPECT_THAT(html, HasSubstr("<!DOCTYPE html>"));
  EXPECT_THAT(html, HasSubstr("<meta name=\"leakgate-comparison\" content=\"fixed\">"));
  // Nothing fetched from anywhere: no script, stylesheet link, image, font or remote URL.
  for (const char* external : {"<script", "<link", "<img", "<iframe", "@import", "http://",
                               "https://", "src="}) {
    EXPECT_THAT(html, Not(HasSubstr(external))) << external;
  }
  for (size_t at = html.find("url("); at != std::string::npos; at = html.find("url(", at + 1)) {
    EXPECT_EQ(html.substr(at, 5), "url(#") << "only in-page references: " << html.substr(at, 40);
  }
  for (const char* metric : {"cpu_pct", "rss_bytes", "heap_bytes", "fds", "threads"}) {
    const std::string svg = "<svg class=\"chart\" data-metric=\"" + std::string(metric) + "\"";
    EXPECT_EQ(CountOf(html, svg), 1) << metric;
  }
  EXPECT_EQ(CountOf(html, "series-before"), 5);
  EXPECT_EQ(CountOf(html, "series-after"), 5);
  // Each side's phases drawn in its own lane.
  EXPECT_THAT(html, HasSubstr("data-series=\"before\""));
  EXPECT_THAT(html, HasSubstr("data-series=\"after\""));
  // The tables of the Markdown.
  EXPECT_THAT(html, HasSubstr("idle_cpu_returns"));
  EXPECT_THAT(html, HasSubstr("exch-heartbeat"));
  EXPECT_THAT(html, HasSubstr("RowObjectKlineSaver::Save"));
}

TEST(CompareHtml, TextFromTheResultsIsEscaped) {
  json before = Fixture("before.json");
  before["scenario"]["name"] = "<b>before</b> & 'co'";
  before["growth"][0]["site"] = "<script>alert(1)</script>";
  const std::string html = Html(before, WithTimeline(Fixture("after.json")));
  EXPECT_THAT(html, Not(HasSubstr("<script>")));
  EXPECT_THAT(html, Not(HasSubstr("<b>before</b>")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_THAT(html, HasSubstr("&lt;b&gt;before&lt;/b&gt; &amp; &#39;co&#39;"));
  // A result without a timeline still renders, and the page says why its line is missing.
  EXPECT_THAT(html, HasSubstr("The before result has no timeline"));
  EXPECT_EQ(CountOf(html, "series-after"), 5);
}

TEST(CompareHtml, TimelinePointWithoutTimeNamesRoleAndPath) {
  json after = WithTimeline(Fixture("after.json"));
  after["timeline"][3].erase("t");
  const json before = Fixture("before.json");
  auto html = RenderComparisonHtml(Compare(before, after), before, after);
  ASSERT_FALSE(html.has_value());
  EXPECT_EQ(html.error().message, "after result: /timeline/3/t is missing; expected a number");
}

// ---- the command ----

using Outcome = leakgate::testing::CommandOutput;
using leakgate::testing::TempDir;

Outcome RunLeakgate(const std::string& args) {
  return leakgate::testing::RunCommand("CI=true " + kLeakgate + " " + args + " 2>&1");
}

std::string Quote(const fs::path& path) { return "'" + path.string() + "'"; }

TEST(CompareCommand, WritesBothFilesAndExitsZeroWhenTheFixIsShown) {
  TempDir dir("leakgate-compare");
  const fs::path out = dir.path() / "cmp";
  const Outcome o = RunLeakgate("compare " + Quote(kData / "before.json") + " " +
                        Quote(kData / "after.json") + " --lang zh --out " + Quote(out));
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_THAT(o.output, HasSubstr("| 阶段 | CPU使用率 |"));
  EXPECT_THAT(o.output, HasSubstr((out / "compare.html").string()));
  // The file holds what was printed, in the language asked for.
  EXPECT_EQ(ReadText(out / "compare.md"),
            Markdown(Compare(Fixture("before.json"), Fixture("after.json")), "zh"));
  EXPECT_THAT(ReadText(out / "compare.html"), HasSubstr("content=\"fixed\""));
  // No temporary file left beside them.
  int files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(out)) ++files;
  EXPECT_EQ(files, 2);
}

TEST(CompareCommand, ExitsOneWhenTheFixIsNotShown) {
  // The wrong way round: what passed "before" cannot have been fixed.
  const Outcome o = RunLeakgate("compare " + Quote(kData / "after.json") + " " + Quote(kData / "before.json"));
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_THAT(o.output, HasSubstr("❌ The fix is not shown"));
}

TEST(CompareCommand, InputErrorsExitTwoNamingTheFileAndPath) {
  TempDir dir("leakgate-compare");
  Outcome o = RunLeakgate("compare " + Quote(dir.path() / "missing.json") + " " + Quote(kData / "after.json"));
  EXPECT_EQ(o.exit_code, 2) << o.output;
  EXPECT_THAT(o.output, HasSubstr("before: result file " + (dir.path() / "missing.json").string() +
                                  " does not exist"));

  json after = Fixture("after.json");
  after["runs"][0].erase("after");
  const fs::path broken = dir.path() / "after-broken.json";
  std::ofstream(broken) << after.dump();
  o = RunLeakgate("compare " + Quote(kData / "before.json") + " " + Quote(broken));
  EXPECT_EQ(o.exit_code, 2) << o.output;
  EXPECT_THAT(o.output, HasSubstr(broken.string() + ": after result: /runs/0/after is missing; "
                                  "expected an object"));

  o = RunLeakgate("compare " + Quote(kData / "before.json"));
  EXPECT_EQ(o.exit_code, 2) << o.output;
}

// ---- end to end: the reference service before and after the fix ----

struct Gate {
  int exit_code = -1;
  std::string output;
  json result;
};

// Both gates sample one allocation per 64 KiB (as scripts/before-after.sh does): with the default
// 512 KiB, one of the three leaking heap sites of the before gate goes unnamed in about one gate in
// five, and a fault that is not named cannot be shown gone.
Gate RunGate(const std::string& scenario, const fs::path& out) {
  Gate g;
  const Outcome o = RunLeakgate("run " + Quote(fs::path(kScenarios) / scenario) + " --out " +
                                Quote(out) +
                                " --set 'heap_profile={\"profiler\":\"agent\",\"sample\":\"64KiB\"}'");
  g.exit_code = o.exit_code;
  g.output = o.output;
  std::ifstream in(out / "result.json");
  if (in) g.result = json::parse(in, nullptr, /*allow_exceptions=*/false);
  return g;
}

// The exchange simulator's end ("127.0.0.1:PORT"), from the service's log line "... exchange
// http://127.0.0.1:PORT".
std::string ExchangeEnd(const fs::path& out) {
  std::ifstream in(out / "stderr.log");
  std::string line;
  while (std::getline(in, line)) {
    const size_t at = line.find("exchange http://");
    if (at == std::string::npos) continue;
    std::string end = line.substr(at + 16);
    return end.substr(0, end.find_first_of(" /"));
  }
  return "";
}

// Each seeded fault (DESIGN.md) is caught by the before gate and gone after the fix: the checks
// that fail before pass after, and the sites named before are no longer listed after.
TEST(CompareEndToEnd, EverySeededFaultIsCaughtBeforeAndGoneAfter) {
  if (!fs::exists(kLeakgate) || !fs::exists(LEAKGATE_BINARY_DIR "/bin/backtest_server")) {
    GTEST_SKIP() << "build the leakgate and backtest_server targets first";
  }
  TempDir dir("leakgate-compare");
  const Gate before = RunGate("reference-before.json", dir.path() / "before");
  const Gate after = RunGate("reference-after.json", dir.path() / "after");
  ASSERT_EQ(before.exit_code, 1) << "the before gate must fail\n" << before.output;
  ASSERT_TRUE(after.exit_code == 0 || after.exit_code == 4)
      << "the after gate must pass (or, on a loaded machine, be inconclusive)\n" << after.output;
  const bool after_passed = after.exit_code == 0;
  if (!after_passed) {
    std::cout << "note: the after gate was inconclusive on this machine; the before side and the "
                 "sites are still checked, the comparison cannot show the fix\n"
              << after.output;
  }

  const fs::path out = dir.path() / "compare";
  const Outcome o = RunLeakgate("compare " + Quote(dir.path() / "before/result.json") + " " +
                        Quote(dir.path() / "after/result.json") + " --out " + Quote(out));
  EXPECT_EQ(o.exit_code, after_passed ? 0 : 1) << o.output;
  const std::string md = ReadText(out / "compare.md");
  ASSERT_FALSE(md.empty()) << o.output;
  EXPECT_THAT(ReadText(out / "compare.html"), HasSubstr("data-metric=\"cpu_pct\""));
  const Comparison c = Compare(before.result, after.result);
  EXPECT_EQ(c.fixed, after_passed);

  // The checks each fault trips fail before and pass after (or, after an inconclusive gate, at
  // least do not fail).
  for (const char* name : {"idle_cpu_returns", "rss_growth_per_run", "rss_growth_total",
                           "heap_growth_per_run", "fds_stable", "sockets_stable",
                           "threads_stable", "peak_rss"}) {
    const CheckComparison* check = FindCheck(c, name);
    ASSERT_NE(check, nullptr) << name;
    EXPECT_EQ(check->before_verdict, "fail") << name << "\n" << md;
    if (after_passed) {
      EXPECT_EQ(check->after_verdict, "pass") << name << "\n" << md;
      EXPECT_EQ(check->change, Change::kFixed) << name;
      EXPECT_THAT(md, ::testing::ContainsRegex("\\| " + std::string(name) + " \\| ❌ fail .* \\| ✅ pass .* \\| ✅ fixed \\|"));
    } else {
      EXPECT_NE(check->after_verdict, "fail") << name << "\n" << md;
    }
  }

  // The sites each fault leaves behind: listed before, gone after, and shown so in compare.md.
  struct Fault {
    const char* fault;
    const char* kind;
    std::string site;
  };
  const std::string exchange = ExchangeEnd(dir.path() / "before");
  ASSERT_FALSE(exchange.empty()) << "no exchange address in the before gate's stderr.log";
  const std::vector<Fault> faults = {
      {"singleton", "heap", "leakgate::engine::SessionEngine::Run (backtest_task.cc)"},
      {"loop-retain", "heap", "leakgate::engine::(anonymous namespace)::MakeSmaCross (strategy.cc)"},
      {"no-cleanup", "heap", "leakgate::engine::HistoricalDataProvider::FetchKlines (data_provider.cc)"},
      {"unclosed-connection", "thread", "exch-heartbeat"},
      {"unclosed-connection", "socket", "tcp -> " + exchange},
      {"unbatched-klines", "peak",
       "leakgate::engine::(anonymous namespace)::RowObjectKlineSaver::Save (backtest_task.cc)"},
  };
  for (const Fault& f : faults) {
    const SiteComparison* site = nullptr;
    for (const SiteComparison& s : c.sites) {
      if (s.kind == f.kind && s.site == f.site) site = &s;
    }
    ASSERT_NE(site, nullptr) << f.fault << ": " << f.kind << " " << f.site
                             << " is not listed before\n" << md;
    EXPECT_EQ(site->change, Change::kFixed) << f.fault << ": " << f.site << " is not gone\n" << md;
    EXPECT_TRUE(site->before_per_run.has_value()) << f.site;
    EXPECT_FALSE(site->after_per_run.has_value() || site->after_total.has_value()) << f.site;
    const std::string kind_word = std::string(f.kind) == "peak" ? "heap at the peak" : f.kind;
    EXPECT_THAT(md, HasSubstr("| ✅ gone | " + kind_word + " | `" + f.site + "` |"))
        << f.fault << "\n" << md;
  }
}

}  // namespace
}  // namespace leakgate::reports
