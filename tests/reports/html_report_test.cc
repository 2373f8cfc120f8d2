// The HTML report of one gate (RenderHtmlReport) and the chart pieces it shares with the comparison
// page (html_parts.h), from real results in testdata/: before_timeline.json is a real
// reference-before gate with its timeline (per-snapshot fd, thread and socket lists dropped to keep
// it small); before.json, after.json and error.json have no timeline. Expected figures are computed
// from the fixture, not typed in.
#include "reports/html_report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base/units.h"
#include "html_parts.h"

namespace leakgate::reports {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;

const std::string kTestdata = LEAKGATE_SOURCE_DIR "/tests/reports/testdata/";
const std::vector<std::string> kMetrics = {"cpu_pct", "rss_bytes", "heap_bytes", "fds", "threads"};

json Fixture(const std::string& name) {
  std::ifstream in(kTestdata + name);
  EXPECT_TRUE(in) << kTestdata + name;
  return json::parse(in);
}

std::string Render(const json& result) {
  auto page = RenderHtmlReport(result);
  EXPECT_TRUE(page.has_value()) << page.error().message;
  return page.value_or("");
}

std::string RenderError(const json& result) {
  auto page = RenderHtmlReport(result);
  EXPECT_FALSE(page.has_value());
  return page.has_value() ? "" : page.error().message;
}

// Like HasSubstr, without printing a whole page when it fails.
::testing::AssertionResult Has(const std::string& text, const std::string& needle) {
  if (text.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << needle << "\" is not among the " << text.size()
                                       << " characters rendered";
}

size_t CountOf(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

size_t CountMatches(const std::string& text, const std::string& pattern) {
  const std::regex re(pattern);
  return std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator());
}

// The <svg> of one chart, "" when absent.
std::string ChartSvg(const std::string& page, const std::string& metric) {
  const size_t start = page.find("<svg class=\"chart\" data-metric=\"" + metric + "\"");
  if (start == std::string::npos) return "";
  const size_t end = page.find("</svg>", start);
  return page.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// The <figure> holding a chart: its svg, legend and note.
std::string ChartFigure(const std::string& page, const std::string& metric) {
  const size_t svg = page.find("<svg class=\"chart\" data-metric=\"" + metric + "\"");
  if (svg == std::string::npos) return "";
  const size_t start = page.rfind("<figure", svg);
  return page.substr(start, page.find("</figure>", svg) - start);
}

// The <g> of one series of a chart, "" when absent.
std::string SeriesGroup(const std::string& svg, const std::string& label) {
  const size_t start = svg.find("data-series=\"" + HtmlEscape(label) + "\">");
  if (start == std::string::npos) return "";
  return svg.substr(start, svg.find("</g>", start) - start);
}

// Every tag of the page ("<...>") and the content of its <style> elements: the markup that could
// reference something, as opposed to text a person reads.
struct Markup {
  std::vector<std::string> tags;
  std::string styles;
};

Markup MarkupOf(const std::string& page) {
  Markup markup;
  for (size_t at = page.find('<'); at != std::string::npos; at = page.find('<', at + 1)) {
    const size_t end = page.find('>', at);
    if (end == std::string::npos) break;
    const std::string tag = page.substr(at, end - at + 1);
    markup.tags.push_back(tag);
    if (tag.starts_with("<style")) {
      const size_t close = page.find("</style>", end);
      markup.styles += page.substr(end + 1, close - end - 1);
      at = close;
    }
  }
  return markup;
}

// What a self-contained page must not have: a script, a link, an embedded document, an import, a
// URL attribute other than a fragment or data:, a url() other than a fragment or data:, or any
// http:, https: or protocol-relative // inside markup.
std::vector<std::string> ExternalReferences(const std::string& page) {
  std::vector<std::string> found;
  const Markup markup = MarkupOf(page);
  const std::regex url_attribute(R"re(\s(src|href|xlink:href|action|poster|srcset|data)\s*=\s*"([^"]*)")re",
                                 std::regex::icase);
  for (const std::string& tag : markup.tags) {
    std::string lower = tag;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* element : {"<script", "<link", "<iframe", "<object", "<embed", "<base",
                                "<img", "<image", "<use", "<audio", "<video", "<source"}) {
      if (lower.starts_with(element)) found.push_back(tag);
    }
    if (lower.find("http:") != std::string::npos || lower.find("https:") != std::string::npos ||
        lower.find("//") != std::string::npos) {
      found.push_back(tag);
    }
    for (auto it = std::sregex_iterator(tag.begin(), tag.end(), url_attribute);
         it != std::sregex_iterator(); ++it) {
      const std::string value = (*it)[2];
      if (!value.starts_with("#") && !value.starts_with("data:")) found.push_back(tag);
    }
    for (size_t at = lower.find("url("); at != std::string::npos; at = lower.find("url(", at + 1)) {
      const std::string rest = lower.substr(at + 4);
      if (!rest.starts_with("#") && !rest.starts_with("data:")) found.push_back(tag);
    }
  }
  std::string styles = markup.styles;
  for (char& c : styles) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* bad : {"@import", "http:", "https:", "//", "@font-face"}) {
    if (styles.find(bad) != std::string::npos) found.push_back(std::string("<style> ") + bad);
  }
  for (size_t at = styles.find("url("); at != std::string::npos; at = styles.find("url(", at + 1)) {
    const std::string rest = styles.substr(at + 4);
    if (!rest.starts_with("#") && !rest.starts_with("data:")) found.push_back("<style> url(");
  }
  return found;
}

std::string MetaVerdict(const std::string& page) {
  std::smatch m;
  static const std::regex re(R"re(<meta name="leakgate-verdict" content="([^"]*)">)re");
  return std::regex_search(page, m, re) ? m[1].str() : "";
}

double ReferenceValue(const json& result, const char* key) {
  const json* reference = &result["baseline"];
  for (const json& run : result["runs"]) {
    if (run.value("warmup", false)) reference = &run["after"];
  }
  return (*reference)[key].get<double>();
}

const json& Check(const json& result, const std::string& name) {
  for (const json& check : result["checks"]) {
    if (check["name"] == name) return check;
  }
  static const json kNone;
  ADD_FAILURE() << "no check " << name;
  return kNone;
}

std::string Size(double bytes) { return FormatSize(std::llround(bytes)); }

// ---- the report ----

TEST(HtmlReportTest, TimelineGivesFiveChartsWithEveryPhaseOfEveryRun) {
  const json result = Fixture("before_timeline.json");
  const std::string page = Render(result);
  for (const std::string& metric : kMetrics) {
    SCOPED_TRACE(metric);
    const std::string svg = ChartSvg(page, metric);
    ASSERT_FALSE(svg.empty());
    EXPECT_EQ(CountMatches(svg, R"re(<rect class="phase phase-baseline" data-run="0")re"), 1u);
    for (const json& run : result["runs"]) {
      const std::string k = std::to_string(run["index"].get<int>());
      const std::string warmup = run["warmup"].get<bool>() ? " warmup" : "";
      EXPECT_EQ(CountOf(svg, "<rect class=\"phase phase-run" + warmup + "\" data-run=\"" + k + "\""),
                1u)
          << "run " << k;
      EXPECT_EQ(
          CountOf(svg, "<rect class=\"phase phase-cooldown" + warmup + "\" data-run=\"" + k + "\""),
          1u)
          << "cooldown " << k;
    }
    // Axis labels with units.
    EXPECT_TRUE(Has(svg, " s</text>"));
    EXPECT_TRUE(Has(svg, "time since start (s)"));
  }
  EXPECT_TRUE(Has(ChartSvg(page, "cpu_pct"), " %</text>"));
  EXPECT_TRUE(Has(ChartSvg(page, "rss_bytes"), " MiB</text>"));
  EXPECT_TRUE(Has(ChartSvg(page, "heap_bytes"), " MiB</text>"));
  // The warm-up run is labelled as such; judged runs by their number.
  EXPECT_TRUE(Has(ChartSvg(page, "rss_bytes"), ">w1</text>"));
  EXPECT_TRUE(Has(ChartSvg(page, "rss_bytes"), ">run 2</text>"));
}

TEST(HtmlReportTest, PostRunMeasurementsAreMarkedWithTooltips) {
  const json result = Fixture("before_timeline.json");
  const std::string page = Render(result);
  const size_t snapshots = result["runs"].size() + 1;  // the baseline and after each run
  for (const auto& [metric, series] : std::vector<std::pair<std::string, std::string>>{
           {"rss_bytes", "RSS"}, {"fds", "fds"}, {"threads", "threads"}, {"heap_bytes", "heap in use"}}) {
    SCOPED_TRACE(metric);
    EXPECT_EQ(CountOf(SeriesGroup(ChartSvg(page, metric), series), "class=\"pt mark\""), snapshots);
  }
  // The idle CPU the check judges: the baseline and after each run, joined by a line.
  EXPECT_EQ(CountOf(SeriesGroup(ChartSvg(page, "cpu_pct"), "idle CPU (judged)"), "class=\"pt mark\""),
            snapshots);
  // The peak RSS of each run beside the samples.
  EXPECT_EQ(CountOf(SeriesGroup(ChartSvg(page, "rss_bytes"), "peak RSS of each run (VmHWM)"),
                    "class=\"pt mark\""),
            result["runs"].size());
  // The heap exists only at the measurements: every one of its points is a marker.
  const std::string heap = ChartSvg(page, "heap_bytes");
  EXPECT_EQ(CountOf(heap, "<circle"), snapshots);
  const json& run2 = result["runs"][1];
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1f s", run2["after"]["t"].get<double>());
  EXPECT_TRUE(Has(heap, "<title>heap in use: " + Size(run2["after"]["heap_bytes"]) + " at " +
                              seconds + " (after run 2)</title>"));
  // Every sample of RSS carries a tooltip, marked or not.
  size_t rss_points = 0;
  for (const json& p : result["timeline"]) rss_points += p.contains("rss_bytes") ? 1 : 0;
  EXPECT_GE(CountOf(ChartSvg(page, "rss_bytes"), "<circle"), rss_points);
  EXPECT_EQ(CountOf(ChartSvg(page, "rss_bytes"), "<circle"),
            CountOf(ChartSvg(page, "rss_bytes"), "<title>RSS: ") +
                CountOf(ChartSvg(page, "rss_bytes"), "<title>peak RSS of each run"));
}

TEST(HtmlReportTest, ThresholdsAreDrawnAndLabelledWithTheirValues) {
  const json result = Fixture("before_timeline.json");
  const std::string page = Render(result);
  const double idle_limit =
      result["baseline"]["cpu_pct"].get<double>() + Check(result, "idle_cpu_returns")["threshold"].get<double>();
  char idle_text[32];
  std::snprintf(idle_text, sizeof idle_text, "%.1f %%", idle_limit);
  const std::string cpu = ChartSvg(page, "cpu_pct");
  EXPECT_EQ(CountOf(cpu, "<g class=\"threshold\">"), 1u);
  EXPECT_TRUE(Has(cpu, ">idle limit " + std::string(idle_text) + "</text>"));

  const std::string rss = ChartSvg(page, "rss_bytes");
  EXPECT_EQ(CountOf(rss, "<g class=\"threshold\">"), 2u);
  const double budget =
      ReferenceValue(result, "rss_bytes") + Check(result, "rss_growth_total")["threshold"].get<double>();
  EXPECT_TRUE(Has(rss, ">RSS budget " + Size(budget) + "</text>"));
  EXPECT_TRUE(Has(ChartFigure(page, "rss_bytes"),
                  "RSS budget: RSS after the warm-up (" + Size(ReferenceValue(result, "rss_bytes")) +
                      ") + 2 MiB."));
  // The scenario writes the peak limit as a size string; the check holds it in bytes.
  EXPECT_EQ(ParseSize(result["scenario"]["thresholds"]["peak_rss"].get<std::string>()).value(),
            Check(result, "peak_rss")["threshold"].get<double>());
  EXPECT_TRUE(Has(rss, "peak RSS limit " + Size(Check(result, "peak_rss")["threshold"])));

  const int fd_limit = static_cast<int>(ReferenceValue(result, "fds") +
                                        Check(result, "fds_stable")["threshold"].get<double>());
  EXPECT_TRUE(Has(ChartSvg(page, "fds"), ">fd limit " + std::to_string(fd_limit) + "</text>"));
  EXPECT_TRUE(Has(ChartFigure(page, "fds"), "Limit: fds after the warm-up (" +
                                                std::to_string(static_cast<int>(ReferenceValue(result, "fds"))) +
                                                ") + 0 tolerated."));
  const int thread_limit = static_cast<int>(ReferenceValue(result, "threads") +
                                            Check(result, "threads_stable")["threshold"].get<double>());
  EXPECT_TRUE(Has(ChartSvg(page, "threads"), "thread limit " + std::to_string(thread_limit)));
  EXPECT_EQ(CountOf(ChartSvg(page, "heap_bytes"), "<g class=\"threshold\">"), 0u);
}

TEST(HtmlReportTest, ThresholdFromTheScenarioWhenNoCheckCarriesIt) {
  json result = Fixture("before_timeline.json");
  json checks = json::array();
  for (const json& check : result["checks"]) {
    if (check["name"] != "peak_rss") checks.push_back(check);
  }
  result["checks"] = checks;
  result["scenario"]["thresholds"]["peak_rss"] = "30MiB";
  EXPECT_TRUE(Has(ChartSvg(Render(result), "rss_bytes"), "peak RSS limit 30 MiB"));
  result["scenario"]["thresholds"]["peak_rss"] = nullptr;  // the check is off: no line
  EXPECT_THAT(ChartSvg(Render(result), "rss_bytes"), Not(HasSubstr("peak RSS limit")));
}

TEST(HtmlReportTest, VerdictIsInTheMetaAndAtTheTopWithFailuresFirst) {
  for (const auto& [file, verdict] : std::vector<std::pair<std::string, std::string>>{
           {"before_timeline.json", "fail"}, {"before.json", "fail"}, {"after.json", "pass"},
           {"error.json", "error"}}) {
    SCOPED_TRACE(file);
    const std::string page = Render(Fixture(file));
    EXPECT_EQ(MetaVerdict(page), verdict);
    const size_t banner = page.find("<section class=\"banner banner-" + verdict + "\"");
    ASSERT_NE(banner, std::string::npos);
    EXPECT_LT(banner, page.find("id=\"timelines\""));
    EXPECT_THAT(page.substr(banner, 200),
                HasSubstr("<span class=\"verdict verdict-" + verdict + "\">" + verdict + "</span>"));
  }
  json result = Fixture("before.json");
  result["checks"][2]["verdict"] = "pass";  // a pass among failures goes after them
  result["checks"][4]["verdict"] = "inconclusive";
  const std::string page = Render(result);
  const size_t table = page.find("<table class=\"checks\">");
  ASSERT_NE(table, std::string::npos);
  const std::string checks = page.substr(table, page.find("</table>", table) - table);
  const size_t last_fail = checks.rfind("class=\"row-fail\"");
  EXPECT_LT(last_fail, checks.find("class=\"row-inconclusive\""));
  EXPECT_LT(checks.find("class=\"row-inconclusive\""), checks.find("class=\"row-pass\""));
  // The banner names each failed check with its observed value and links to its row.
  const std::string banner = page.substr(page.find("<section class=\"banner"),
                                         page.find("</section>") - page.find("<section class=\"banner"));
  for (const json& check : result["checks"]) {
    if (check["verdict"] == "pass") {
      EXPECT_THAT(banner, Not(HasSubstr(">" + check["name"].get<std::string>() + "<")));
    } else {
      EXPECT_TRUE(Has(banner, "href=\"#check-" + check["name"].get<std::string>() + "\">" +
                                    check["name"].get<std::string>() + "</a>"));
    }
  }
  EXPECT_TRUE(Has(page, "<span id=\"check-idle_cpu_returns\">"));
}

TEST(HtmlReportTest, HostileTextIsEscapedEverywhere) {
  const std::string hostile = "</script><img src=x onerror=alert(1)>\"'&";
  json result = Fixture("before_timeline.json");
  result["scenario"]["name"] = hostile;
  result["scenario"]["description"] = hostile;
  result["summary"] = "fail: " + hostile;
  result["error"] = hostile;
  result["target"]["description"] = hostile;
  result["checks"][0]["name"] = hostile;
  result["checks"][0]["detail"] = hostile;
  result["checks"][0]["unit"] = hostile;
  result["growth"][0]["site"] = hostile;
  result["growth"][0]["location"] = hostile;
  result["growth"][0]["stack"][0] = hostile;
  result["growth"][0]["suppressed"] = hostile;
  result["runs"][1]["idle_threads"][0]["name"] = hostile;
  result["heap_profiles"]["peak_sites"][0]["site"] = hostile;
  result["warnings"] = json::array({hostile});
  result["notes"] = json::array({hostile});
  const std::string page = Render(result);
  EXPECT_THAT(page, Not(HasSubstr("<img")));
  EXPECT_THAT(page, Not(HasSubstr("</script>")));
  EXPECT_THAT(page, Not(HasSubstr("<script")));
  const std::string escaped = "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;";
  EXPECT_GE(CountOf(page, escaped), 14u);
  EXPECT_THAT(ExternalReferences(page), ::testing::IsEmpty());
  // Nothing of the hostile text opens an attribute: outside quoted values no tag mentions it.
  const std::regex quoted("\"[^\"]*\"");
  for (const std::string& tag : MarkupOf(page).tags) {
    EXPECT_THAT(std::regex_replace(tag, quoted, "\"\""), Not(HasSubstr("onerror"))) << tag;
  }
}

TEST(HtmlReportTest, HtmlEscapeCoversTextAndAttributes) {
  EXPECT_EQ(HtmlEscape("a<b>&\"c'd"), "a&lt;b&gt;&amp;&quot;c&#39;d");
  EXPECT_EQ(HtmlEscape("维持 — 中文"), "维持 — 中文");
  EXPECT_EQ(HtmlEscape(""), "");
}

TEST(HtmlReportTest, NoExternalReferenceInAnyFixture) {
  for (const char* file : {"before_timeline.json", "before.json", "after.json", "error.json"}) {
    SCOPED_TRACE(file);
    const json result = Fixture(file);
    const std::string page = Render(result);
    EXPECT_THAT(ExternalReferences(page), ::testing::IsEmpty());
    // The text does mention URLs (the workload's base URL): as text, escaped, never as markup.
    if (result.contains("workload") && result["workload"].value("description", "").find("http://") !=
                                           std::string::npos) {
      EXPECT_TRUE(Has(page, HtmlEscape(result["workload"]["description"].get<std::string>())));
    }
  }
}

TEST(HtmlReportTest, TheCheckerCatchesExternalReferences) {
  // The checker above must be able to fail.
  for (const char* bad :
       {"<img src=\"x.png\">", "<script>1</script>", "<a href=\"https://example.org\">x</a>",
        "<div style=\"background:url(//cdn.example/x.png)\"></div>",
        "<style>@import \"x.css\";</style>", "<link rel=\"stylesheet\" href=\"x.css\">"}) {
    EXPECT_THAT(ExternalReferences(std::string("<p>ok</p>") + bad), Not(::testing::IsEmpty())) << bad;
  }
  EXPECT_THAT(ExternalReferences("<a href=\"#checks\">x</a><p>http://text.example</p>"),
              ::testing::IsEmpty());
}

TEST(HtmlReportTest, ResultWithoutTimelineRendersWithoutCharts) {
  for (const char* file : {"before.json", "error.json"}) {
    SCOPED_TRACE(file);
    const json result = Fixture(file);
    ASSERT_FALSE(result.contains("timeline"));
    const std::string page = Render(result);
    EXPECT_THAT(page, Not(HasSubstr("<svg")));
    EXPECT_TRUE(Has(page, "This result has no timeline"));
    EXPECT_TRUE(Has(page, "<table class=\"verification\">"));
  }
  json empty = Fixture("before_timeline.json");
  empty["timeline"] = json::array();
  EXPECT_TRUE(Has(Render(empty), "This result has no timeline"));
}

TEST(HtmlReportTest, ErrorResultShowsTheErrorInTheBanner) {
  const json result = Fixture("error.json");
  const std::string page = Render(result);
  const size_t banner = page.find("<section class=\"banner banner-error\"");
  ASSERT_NE(banner, std::string::npos);
  EXPECT_THAT(page.substr(banner, page.find("</section>", banner) - banner),
              HasSubstr(HtmlEscape(result["error"].get<std::string>())));
}

TEST(HtmlReportTest, InvalidInputNamesTheJsonPath) {
  const json good = Fixture("before_timeline.json");
  {
    json r = good;
    r["timeline"][3].erase("phase");
    EXPECT_TRUE(Has(RenderError(r), "/timeline/3/phase is missing"));
  }
  {
    json r = good;
    r["timeline"][0]["t"] = "0.5";
    EXPECT_THAT(RenderError(r), HasSubstr("/timeline/0/t is string; expected a number"));
  }
  {
    json r = good;
    r["timeline"][7].erase("run");
    EXPECT_TRUE(Has(RenderError(r), "/timeline/7/run is missing"));
  }
  {
    json r = good;
    r["timeline"] = json::object();
    EXPECT_TRUE(Has(RenderError(r), "/timeline is object"));
  }
  {
    json r = good;
    r["timeline"][2] = 5;
    EXPECT_TRUE(Has(RenderError(r), "/timeline/2 is number"));
  }
  {
    json r = good;
    r["schema"] = "leakgate.result/0";
    EXPECT_TRUE(Has(RenderError(r), "/schema"));
  }
  {
    json r = good;
    r["runs"][0].erase("after");
    EXPECT_TRUE(Has(RenderError(r), "/runs/0/after is missing"));
  }
  EXPECT_TRUE(Has(RenderError(json::array()), "expected an object"));
}

TEST(HtmlReportTest, TablesGrowthAndIdleThreads) {
  const json result = Fixture("before_timeline.json");
  const std::string page = Render(result);
  // The verification table: the baseline, then during and after each run.
  const size_t table = page.find("<table class=\"verification\">");
  ASSERT_NE(table, std::string::npos);
  const std::string verification = page.substr(table, page.find("</table>", table) - table);
  EXPECT_EQ(CountOf(verification, "<tr"), 2 + 2 * result["runs"].size());
  EXPECT_TRUE(Has(verification, "run 1 (warm-up), after"));
  EXPECT_TRUE(Has(verification, "CPU above baseline"));
  // Every growth item with its stack folded in <details>.
  for (const json& item : result["growth"]) {
    EXPECT_TRUE(Has(page, "<code>" + HtmlEscape(item["site"].get<std::string>()) + "</code>"));
  }
  EXPECT_TRUE(Has(page, "<details class=\"stack\"><summary>allocation stack (8 frames)"));
  EXPECT_TRUE(Has(page, "<details class=\"stack\"><summary>creation stack"));
  // The idle CPU by thread: one column per thread group, one row per snapshot, the heartbeat
  // threads that were not there at the baseline in red.
  const size_t threads = page.find("<table class=\"idle-threads\">");
  ASSERT_NE(threads, std::string::npos);
  const std::string idle = page.substr(threads, page.find("</table>", threads) - threads);
  EXPECT_TRUE(Has(idle, "<th class=\"num\">exch-heartbeat</th>"));
  EXPECT_EQ(CountOf(idle, "<tr"), 2 + result["runs"].size());
  EXPECT_TRUE(Has(idle, "<span class=\"bad\">"));
}

// ---- the shared chart pieces ----

TEST(HtmlPartsTest, NiceTicksUseReadableStepsInTheAxisUnit) {
  constexpr double kMiB = 1024.0 * 1024.0;
  const std::vector<double> bytes = html::NiceTicks(0, 61 * kMiB, 5, html::ValueUnit::kBytes);
  ASSERT_GE(bytes.size(), 3u);
  EXPECT_EQ(bytes.front(), 0);
  EXPECT_GE(bytes.back(), 61 * kMiB);
  const double step_mib = (bytes[1] - bytes[0]) / kMiB;
  EXPECT_THAT((std::set<double>{5, 10, 20, 25}), ::testing::Contains(step_mib));
  const std::vector<double> counts = html::NiceTicks(48, 88, 5, html::ValueUnit::kCount);
  EXPECT_LE(counts.front(), 48);
  EXPECT_GE(counts.back(), 88);
  for (double tick : counts) EXPECT_EQ(tick, std::round(tick));
  const std::vector<double> small = html::NiceTicks(0, 2, 5, html::ValueUnit::kCount);
  EXPECT_EQ(small, (std::vector<double>{0, 1, 2}));  // never half a thread
  const std::vector<double> flat = html::NiceTicks(7, 7, 5, html::ValueUnit::kCount);
  EXPECT_LE(flat.front(), 7);
  EXPECT_GT(flat.back(), 7);
  EXPECT_EQ(html::FormatValue(3 * kMiB / 2, html::ValueUnit::kBytes), "1.5 MiB");
  EXPECT_EQ(html::FormatValue(6.4, html::ValueUnit::kPercent), "6.40 %");
}

TEST(HtmlPartsTest, SeveralSeriesWithPhasesGetOneLaneEach) {
  html::ChartSpec chart{.metric = "rss_bytes", .title = "RSS", .unit = html::ValueUnit::kBytes};
  for (const auto& [label, color, scale] :
       {std::tuple<std::string, std::string_view, double>{"before", html::kColorBefore, 2},
        std::tuple<std::string, std::string_view, double>{"after", html::kColorAfter, 1}}) {
    html::ChartSeries series{.label = label, .color = std::string(color)};
    for (int i = 0; i <= 10; ++i) {
      series.points.push_back({i * 1.0, (16 + scale * i) * 1024 * 1024, i % 5 == 4, ""});
    }
    series.phases = {{.phase = "baseline", .run = 0, .start_t = 0, .end_t = 2},
                     {.phase = "run", .run = 1, .start_t = 2, .end_t = 3, .warmup = true},
                     {.phase = "cooldown", .run = 1, .start_t = 3, .end_t = 10, .warmup = true}};
    series.css_class = "series-" + label;
    chart.series.push_back(series);
  }
  chart.thresholds.push_back({30.0 * 1024 * 1024, "limit 30 MiB"});
  chart.thresholds.push_back({30.2 * 1024 * 1024, "another limit"});
  const std::string svg = html::RenderTimelineChart(chart);
  EXPECT_EQ(CountOf(svg, "data-series=\"before\" x="), 3u);
  EXPECT_EQ(CountOf(svg, "data-series=\"after\" x="), 3u);
  EXPECT_TRUE(Has(svg, "<text class=\"lane-label\""));
  EXPECT_TRUE(Has(svg, "<g class=\"series series-before\" data-series=\"before\">"));
  EXPECT_TRUE(Has(svg, "border-color:" + std::string(html::kColorAfter)));
  EXPECT_EQ(CountOf(svg, "class=\"pt mark\""), 4u);
  // Two close thresholds: their labels do not sit on the same spot.
  std::smatch m;
  std::string rest = svg;
  std::vector<std::string> positions;
  const std::regex label(R"re(<text x="([0-9.]+)" y="([0-9.]+)" text-anchor="(end|start)" fill="[^"]*">(limit 30 MiB|another limit)<)re");
  while (std::regex_search(rest, m, label)) {
    positions.push_back(m[1].str() + "," + m[2].str());
    rest = m.suffix();
  }
  ASSERT_EQ(positions.size(), 2u);
  EXPECT_NE(positions[0], positions[1]);
}

TEST(HtmlPartsTest, CappedAxisKeepsTheTrueValueInTheTooltip) {
  html::ChartSpec chart{.metric = "cpu_pct", .title = "CPU", .unit = html::ValueUnit::kPercent};
  chart.series.push_back({.label = "CPU", .color = "#000", .points = {{0, 1}, {1, 150}, {2, 3}}});
  chart.y_cap = 25;
  const std::string svg = html::RenderTimelineChart(chart);
  EXPECT_TRUE(Has(svg, "<title>CPU: 150 % at 1.0 s</title>"));
  EXPECT_TRUE(Has(svg, "drawn on the top edge"));
  EXPECT_THAT(svg, Not(HasSubstr(">150 %</text>")));  // no tick that high
}

TEST(HtmlPartsTest, ChartWithoutPointsSaysNoData) {
  html::ChartSpec chart{.metric = "fds", .title = "fds", .unit = html::ValueUnit::kCount};
  chart.series.push_back({.label = "fds", .color = "#000"});
  const std::string svg = html::RenderTimelineChart(chart);
  EXPECT_TRUE(Has(svg, "<svg class=\"chart\" data-metric=\"fds\""));
  EXPECT_TRUE(Has(svg, ">no data</text>"));
}

}  // namespace
}  // namespace leakgate::reports
