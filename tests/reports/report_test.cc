// Reports rendered from fixed result files (a real before run, a real after run, both trimmed, and a
// hand-made "error" result) compared with golden files; the JUnit XML is also parsed by xmllint and
// its counts checked against the result's checks. Bad input ends in an error that names the problem.
// LEAKGATE_UPDATE_GOLDEN=1 rewrites the expected files from the current output.
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>

#include "reports/report.h"
#include "golden.h"

namespace leakgate::reports {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using nlohmann::json;

using golden::ExpectGolden;
using golden::Fixture;
using golden::kData;
using golden::ReadText;

std::string Markdown(const std::string& fixture, const std::string& lang) {
  auto md = RenderMarkdownReport(Fixture(fixture), lang);
  EXPECT_TRUE(md.has_value()) << md.error().message;
  return md.value_or("");
}

std::string Junit(const json& result) {
  auto xml = RenderJunitReport(result);
  EXPECT_TRUE(xml.has_value()) << xml.error().message;
  return xml.value_or("");
}

int CountOf(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The value of attribute `name` on the <testsuite> element.
int SuiteAttribute(const std::string& xml, const std::string& name) {
  std::smatch match;
  const std::regex pattern("<testsuite [^>]*\\b" + name + "=\"([0-9]+)\"");
  if (!std::regex_search(xml, match, pattern)) return -1;
  return std::stoi(match[1]);
}

// Runs xmllint --noout on `xml`; the exit status, or -1 when xmllint is not installed.
int XmllintStatus(const std::string& xml, std::string* errors) {
  if (std::system("command -v xmllint >/dev/null 2>&1") != 0) return -1;
  const fs::path dir = fs::temp_directory_path() / ("report_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "junit.xml";
  std::ofstream(file, std::ios::binary) << xml;
  const std::string command =
      "xmllint --noout '" + file.string() + "' 2>'" + (dir / "errors").string() + "'";
  const int status = std::system(command.c_str());
  *errors = ReadText(dir / "errors");
  fs::remove_all(dir);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

void ExpectValidJunit(const std::string& xml, const json& result) {
  std::string errors;
  const int status = XmllintStatus(xml, &errors);
  if (status == -1) GTEST_SKIP() << "xmllint is not installed (package libxml2-utils)";
  EXPECT_EQ(status, 0) << "xmllint rejects the JUnit XML:\n" << errors << "\n" << xml;
  int failures = 0;
  int skipped = 0;
  for (const json& check : result["checks"]) {
    failures += check["verdict"] == "fail";
    skipped += check["verdict"] == "inconclusive";
  }
  const int errored = result["verdict"] == "error" ? 1 : 0;
  const int tests = static_cast<int>(result["checks"].size()) + errored;
  EXPECT_EQ(SuiteAttribute(xml, "tests"), tests);
  EXPECT_EQ(SuiteAttribute(xml, "failures"), failures);
  EXPECT_EQ(SuiteAttribute(xml, "skipped"), skipped);
  EXPECT_EQ(SuiteAttribute(xml, "errors"), errored);
  EXPECT_EQ(CountOf(xml, "<testcase "), tests);
  EXPECT_EQ(CountOf(xml, "<failure "), failures);
  EXPECT_EQ(CountOf(xml, "<skipped "), skipped);
  EXPECT_EQ(CountOf(xml, "<error "), errored);
}

TEST(MarkdownReport, BeforeEnglishMatchesGolden) {
  const std::string md = Markdown("before.json", "en");
  ExpectGolden(md, "before.en.md");
  EXPECT_THAT(md, HasSubstr("# leakgate: reference-before — ❌ fail"));
  EXPECT_THAT(md, HasSubstr("| baseline (idle) |"));
  EXPECT_THAT(md, HasSubstr("❌ CPU above baseline"));
  EXPECT_THAT(md, HasSubstr("## What grew"));
}

TEST(MarkdownReport, BeforeChineseMatchesGolden) {
  const std::string md = Markdown("before.json", "zh");
  ExpectGolden(md, "before.zh.md");
  for (const char* heading : {"阶段", "CPU使用率", "内存(RSS)", "堆", "文件描述符", "线程", "状态",
                              "基线(空闲)", "第2次运行", "观测值", "阈值", "说明", "增长来源",
                              "结论", "失败"}) {
    EXPECT_THAT(md, HasSubstr(heading));
  }
}

TEST(MarkdownReport, AfterMatchesGoldenInBothLanguages) {
  const std::string en = Markdown("after.json", "en");
  ExpectGolden(en, "after.en.md");
  EXPECT_THAT(en, HasSubstr("— ✅ pass"));
  EXPECT_EQ(CountOf(en, "❌"), 0) << en;
  ExpectGolden(Markdown("after.json", "zh"), "after.zh.md");
}

TEST(MarkdownReport, ErrorResultShowsTheError) {
  const std::string md = Markdown("error.json", "en");
  ExpectGolden(md, "error.en.md");
  EXPECT_THAT(md, HasSubstr("SIGSEGV"));
  EXPECT_THAT(md, HasSubstr("No check was judged."));
}

TEST(MarkdownReport, StatusFollowsTheIdleCpuAllowance) {
  json result = Fixture("after.json");
  result["baseline"]["cpu_pct"] = 0.0;
  result["runs"][0]["after"]["cpu_pct"] = 50.0;
  const std::string md = RenderMarkdownReport(result, "en").value_or("");
  EXPECT_EQ(CountOf(md, "❌ CPU above baseline"), 1) << md;
}

TEST(JunitReport, BeforeMatchesGoldenAndIsValid) {
  const json result = Fixture("before.json");
  const std::string xml = Junit(result);
  ExpectGolden(xml, "before.xml");
  EXPECT_THAT(xml, HasSubstr("<failure message=\"observed 6.91 %, threshold 2.00 %\">"));
  ExpectValidJunit(xml, result);
}

TEST(JunitReport, AfterMatchesGoldenAndIsValid) {
  const json result = Fixture("after.json");
  const std::string xml = Junit(result);
  ExpectGolden(xml, "after.xml");
  ExpectValidJunit(xml, result);
}

TEST(JunitReport, ErrorResultHasATargetErrorAndEscapedText) {
  const json result = Fixture("error.json");
  const std::string xml = Junit(result);
  ExpectGolden(xml, "error.xml");
  EXPECT_THAT(xml, HasSubstr("name=\"target\""));
  EXPECT_THAT(xml, HasSubstr("&lt;service&gt; &amp; &quot;friends&quot;"));
  EXPECT_THAT(xml, HasSubstr("&apos;SIGSEGV&apos;"));
  ExpectValidJunit(xml, result);
}

TEST(JunitReport, InconclusiveCheckIsSkipped) {
  json result = Fixture("after.json");
  result["checks"][1]["verdict"] = "inconclusive";
  result["checks"][1]["detail"] = "needs more runs <5 & 'more'>";
  const std::string xml = Junit(result);
  EXPECT_THAT(xml, HasSubstr("<skipped message=\"inconclusive: needs more runs &lt;5"));
  ExpectValidJunit(xml, result);
}

TEST(ReportInput, MissingFileIsNotFound) {
  auto result = ReadResultFile((kData / "no-such-result.json").string());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(result.error().message, HasSubstr("no-such-result.json"));
}

TEST(ReportInput, NotJsonIsAParseError) {
  const fs::path file = fs::temp_directory_path() / ("report_test_bad_" + std::to_string(getpid()));
  std::ofstream(file) << "verdict: fail\n";
  auto result = ReadResultFile(file.string());
  fs::remove(file);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kParse);
  EXPECT_THAT(result.error().message, HasSubstr("is not JSON"));
}

TEST(ReportInput, WrongSchemaIsNamed) {
  json result = Fixture("after.json");
  result["schema"] = "leakgate.scenario/1";
  for (auto rendered : {RenderMarkdownReport(result, "en"), RenderJunitReport(result)}) {
    ASSERT_FALSE(rendered.has_value());
    EXPECT_EQ(rendered.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(rendered.error().message, HasSubstr("/schema is \"leakgate.scenario/1\""));
    EXPECT_THAT(rendered.error().message, HasSubstr("leakgate.result/1"));
  }
}

TEST(ReportInput, CheckWithoutNameNamesThePath) {
  json result = Fixture("before.json");
  result["checks"][2].erase("name");
  auto rendered = RenderJunitReport(result);
  ASSERT_FALSE(rendered.has_value());
  EXPECT_EQ(rendered.error().message, "result: /checks/2/name is missing; expected a string");
}

TEST(ReportInput, WrongTypeNamesThePathAndTheType) {
  json result = Fixture("before.json");
  result["runs"][3]["after"]["rss_bytes"] = "lots";
  auto rendered = RenderMarkdownReport(result, "zh");
  ASSERT_FALSE(rendered.has_value());
  EXPECT_EQ(rendered.error().message,
            "result: /runs/3/after/rss_bytes is string; expected a number");
}

TEST(ReportInput, UnknownLanguageIsRefused) {
  auto rendered = RenderMarkdownReport(Fixture("after.json"), "fr");
  ASSERT_FALSE(rendered.has_value());
  EXPECT_THAT(rendered.error().message, HasSubstr("expected en or zh"));
}

}  // namespace
}  // namespace leakgate::reports
