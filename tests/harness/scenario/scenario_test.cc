// Tests of scenario loading: the DESIGN example, defaults, every kind of validation error (each
// must name the file, the JSON path and what was expected), --set and --runs overrides,
// placeholders, sizes, and the scenario files shipped in scenarios/.
#include "harness/scenario/scenario.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace leakgate::harness {
namespace {

using nlohmann::json;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// The example of /work/shared/DESIGN.md "Scenario files", comments included.
constexpr const char* kDesignExample = R"({ "schema": "leakgate.scenario/1",
  "name": "reference-after",
  "target": {
    "spawn": { "argv": ["${BIN}/backtest_server", "--port", "${PORT}", "--db", "${OUT}/backtest.db", "--faults", "none"],
               "env": { "NAME": "value" }, "cwd": "${SCENARIO_DIR}",
               "ready": { "http_get": "http://127.0.0.1:${PORT}/healthz", "timeout_s": 10 } }
    // or "attach": { "pid": 1234 }
  },
  "workload": {
    "http": { "base_url": "http://127.0.0.1:${PORT}",
              "steps": [
                { "method": "POST", "path": "/api/backtest", "json": { "symbol": "BTCUSDT" },
                  "expect_status": [202], "capture": { "sid": "/session_id" } },
                { "method": "GET", "path": "/api/backtest/${sid}",
                  "until": { "pointer": "/status", "in": ["done", "failed"] },
                  "poll_interval_s": 0.05, "timeout_s": 60 } ] }
    // or "command": { "argv": ["..."], "timeout_s": 60 }
  },
  "runs": 5, "warmup_runs": 1, "max_runs": 12,
  "baseline_s": 2, "sample_hz": 10,
  "cooldown": { "max_s": 30, "settle_window_s": 1 },
  "heap_profile": false,
  "thresholds": { "idle_cpu_pct": 2.0, "rss_per_run": "256KiB", "rss_total": "2MiB",
                  "heap_per_run": "64KiB", "fds": 0, "sockets": 0, "threads": 0, "peak_rss": null } }
)";

constexpr const char* kFile = "/scenarios/design-example.json";

std::map<std::string, std::string>& TestEnvironment() {
  static std::map<std::string, std::string> environment = {{"TARGET_PID", "4242"},
                                                           {"API_TOKEN", "secret-token"}};
  return environment;
}

LoadOptions TestOptions() {
  LoadOptions options;
  options.out_dir = "/tmp/leakgate-out";
  options.bin_dir = "/opt/leakgate/bin";
  options.port = 4321;
  options.env = [](const std::string& name) -> std::optional<std::string> {
    const auto it = TestEnvironment().find(name);
    if (it == TestEnvironment().end()) return std::nullopt;
    return it->second;
  };
  return options;
}

json DesignDocument() {
  return json::parse(kDesignExample, nullptr, true, /*ignore_comments=*/true);
}

Result<Scenario> LoadJson(const json& document, LoadOptions options = TestOptions()) {
  return LoadScenarioFromText(document.dump(2), kFile, options);
}

TEST(ScenarioTest, LoadsTheDesignExample) {
  auto scenario = LoadScenarioFromText(kDesignExample, kFile, TestOptions());
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  EXPECT_EQ(scenario->name, "reference-after");
  EXPECT_EQ(scenario->file, std::filesystem::path(kFile));
  ASSERT_TRUE(scenario->target.spawn);
  EXPECT_FALSE(scenario->target.attach);
  const SpawnTargetConfig& spawn = *scenario->target.spawn;
  EXPECT_THAT(spawn.argv, ElementsAre("/opt/leakgate/bin/backtest_server", "--port", "4321", "--db",
                                      "/tmp/leakgate-out/backtest.db", "--faults", "none"));
  EXPECT_EQ(spawn.env.at("NAME"), "value");
  EXPECT_EQ(spawn.cwd, "/scenarios");
  EXPECT_EQ(spawn.ready.kind, ReadyProbe::Kind::kHttpGet);
  EXPECT_EQ(spawn.ready.http_get, "http://127.0.0.1:4321/healthz");
  EXPECT_EQ(spawn.ready.timeout_s, 10);
  EXPECT_EQ(spawn.stop_signal, SIGTERM);

  ASSERT_TRUE(scenario->workload.http);
  EXPECT_FALSE(scenario->workload.command);
  const HttpWorkloadConfig& http = *scenario->workload.http;
  EXPECT_EQ(http.base_url, "http://127.0.0.1:4321");
  ASSERT_EQ(http.steps.size(), 2u);
  EXPECT_EQ(http.steps[0].method, "POST");
  EXPECT_EQ(http.steps[0].path, "/api/backtest");
  EXPECT_EQ(*http.steps[0].json, json({{"symbol", "BTCUSDT"}}));
  EXPECT_THAT(http.steps[0].expect_status, ElementsAre(202));
  EXPECT_EQ(http.steps[0].capture.at("sid"), "/session_id");
  // The captured value is substituted at run time, by the workload.
  EXPECT_EQ(http.steps[1].path, "/api/backtest/${sid}");
  ASSERT_TRUE(http.steps[1].until);
  EXPECT_EQ(http.steps[1].until->pointer, "/status");
  EXPECT_THAT(http.steps[1].until->in, ElementsAre("done", "failed"));
  EXPECT_DOUBLE_EQ(http.steps[1].poll_interval_s, 0.05);
  EXPECT_DOUBLE_EQ(http.steps[1].timeout_s, 60);

  EXPECT_EQ(scenario->runs, 5);
  EXPECT_EQ(scenario->warmup_runs, 1);
  EXPECT_EQ(scenario->max_runs, 12);
  EXPECT_DOUBLE_EQ(scenario->baseline_s, 2);
  EXPECT_DOUBLE_EQ(scenario->sample_hz, 10);
  EXPECT_DOUBLE_EQ(scenario->cooldown.max_s, 30);
  EXPECT_DOUBLE_EQ(scenario->cooldown.settle_window_s, 1);
  EXPECT_FALSE(scenario->heap_profile);
  const Thresholds& t = scenario->thresholds;
  EXPECT_EQ(t.idle_cpu_pct, 2.0);
  EXPECT_EQ(t.rss_per_run, 256 * 1024);
  EXPECT_EQ(t.rss_total, 2 * 1024 * 1024);
  EXPECT_EQ(t.heap_per_run, 64 * 1024);
  EXPECT_EQ(t.fds, 0);
  EXPECT_EQ(t.sockets, 0);
  EXPECT_EQ(t.threads, 0);
  EXPECT_FALSE(t.peak_rss.has_value());

  EXPECT_EQ(scenario->port, 4321);
  EXPECT_EQ(scenario->out_dir, "/tmp/leakgate-out");
  EXPECT_EQ(scenario->placeholders.values.at("PORT"), "4321");
  // result.json gets the scenario as written (placeholders unexpanded).
  EXPECT_EQ(scenario->json, DesignDocument());
}

TEST(ScenarioTest, AbsentFieldsTakeTheDefaults) {
  const json minimal = {
      {"schema", "leakgate.scenario/1"},
      {"target", {{"attach", {{"pid", 1}}}}},
      {"workload", {{"command", {{"argv", {"/bin/true"}}}}}},
  };
  auto scenario = LoadScenarioFromText(minimal.dump(), "/x/minimal-gate.json", TestOptions());
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  EXPECT_EQ(scenario->name, "minimal-gate");
  EXPECT_EQ(scenario->runs, 5);
  EXPECT_EQ(scenario->warmup_runs, 1);
  EXPECT_EQ(scenario->max_runs, 12);
  EXPECT_DOUBLE_EQ(scenario->baseline_s, 2);
  EXPECT_DOUBLE_EQ(scenario->sample_hz, 10);
  EXPECT_DOUBLE_EQ(scenario->cooldown.max_s, 30);
  EXPECT_DOUBLE_EQ(scenario->cooldown.settle_window_s, 1);
  EXPECT_DOUBLE_EQ(scenario->cooldown.settle_tolerance_pct, 1);
  EXPECT_EQ(scenario->thresholds.idle_cpu_pct, 2.0);
  EXPECT_EQ(scenario->thresholds.rss_per_run, 256 * 1024);
  EXPECT_EQ(scenario->thresholds.rss_total, 2 * 1024 * 1024);
  EXPECT_EQ(scenario->thresholds.heap_per_run, 64 * 1024);
  EXPECT_EQ(scenario->thresholds.fds, 0);
  EXPECT_EQ(scenario->thresholds.sockets, 0);
  EXPECT_EQ(scenario->thresholds.threads, 0);
  EXPECT_FALSE(scenario->thresholds.peak_rss);
  ASSERT_TRUE(scenario->target.attach);
  EXPECT_EQ(scenario->target.attach->pid, 1);
  ASSERT_TRUE(scenario->workload.command);
  EXPECT_DOUBLE_EQ(scenario->workload.command->timeout_s, 60);
  EXPECT_THAT(scenario->workload.command->expect_exit, ElementsAre(0));
}

TEST(ScenarioTest, OptionalFormsAreRead) {
  json document = DesignDocument();
  document["target"] = {
      {"attach",
       {{"pid", "${env:TARGET_PID}"},
        {"include_children", true},
        {"heap",
         {{"metrics_url", "http://127.0.0.1:${PORT}/metrics"}, {"metric", "heap_bytes"}}}}}};
  document["workload"]["http"]["headers"] = {{"Authorization", "Bearer ${env:API_TOKEN}"}};
  document["workload"]["http"]["steps"][0]["expect_status"] = 202;
  document["workload"]["http"]["steps"][0]["method"] = "post";
  document["workload"]["http"]["steps"][1]["expect"] = {{"pointer", "/code"}, {"in", {0, "ok"}}};
  document["thresholds"]["peak_rss"] = 1048576;
  document["thresholds"]["rss_total"] = "1.5 MiB";
  auto scenario = LoadJson(document);
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  ASSERT_TRUE(scenario->target.attach);
  EXPECT_EQ(scenario->target.attach->pid, 4242);
  EXPECT_TRUE(scenario->target.attach->include_children);
  EXPECT_EQ(scenario->target.attach->heap->metrics_url, "http://127.0.0.1:4321/metrics");
  EXPECT_EQ(scenario->workload.http->headers.at("Authorization"), "Bearer secret-token");
  EXPECT_THAT(scenario->workload.http->steps[0].expect_status, ElementsAre(202));
  EXPECT_EQ(scenario->workload.http->steps[0].method, "POST");
  EXPECT_THAT(scenario->workload.http->steps[1].expect->in, ElementsAre("0", "ok"));
  EXPECT_EQ(scenario->thresholds.peak_rss, 1048576);
  EXPECT_EQ(scenario->thresholds.rss_total, 1572864);
}

struct ErrorCase {
  std::string name;
  std::function<void(json&)> mutate;
  std::vector<std::string> expected;  // substrings of the message besides the file name
  LoadOptions options = TestOptions();
};

class ScenarioErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ScenarioErrorTest, NamesFileJsonPathAndExpectation) {
  const ErrorCase& c = GetParam();
  json document = DesignDocument();
  c.mutate(document);
  auto scenario = LoadJson(document, c.options);
  ASSERT_FALSE(scenario) << "loaded although invalid";
  EXPECT_EQ(scenario.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(scenario.error().message, HasSubstr(kFile));
  for (const auto& part : c.expected) EXPECT_THAT(scenario.error().message, HasSubstr(part));
}

LoadOptions WithoutOutDir() {
  LoadOptions options = TestOptions();
  options.out_dir.clear();
  return options;
}

INSTANTIATE_TEST_SUITE_P(
    Errors, ScenarioErrorTest,
    ::testing::Values(
        ErrorCase{"WrongType",
                  [](json& d) { d["runs"] = "five"; },
                  {"/runs: expected the number of judged runs (a whole number >= 1",
                   "got a string (\"five\")"}},
        ErrorCase{"UnknownProfiler",
                  [](json& d) { d["heap_profile"] = "tcmallo"; },
                  {"/heap_profile: unknown profiler \"tcmallo\"; did you mean \"tcmalloc\"?"}},
        ErrorCase{"ProfilerSampleWithTcmalloc",
                  [](json& d) { d["heap_profile"] = {{"profiler", "tcmalloc"}, {"sample", "1MiB"}}; },
                  {"/heap_profile/sample: the tcmalloc heap profiler records every allocation"}},
        ErrorCase{"ProfilerBadSample",
                  [](json& d) { d["heap_profile"] = {{"sample", "12 parsecs"}}; },
                  {"/heap_profile/sample: expected a size"}},
        ErrorCase{"ProfilerStoppingSignal",
                  [](json& d) { d["heap_profile"] = {{"signal", 15}}; },
                  {"/heap_profile/signal: signal 15 stops the target"}},
        ErrorCase{"HeapProfileWrongType",
                  [](json& d) { d["heap_profile"] = 3; },
                  {"/heap_profile: expected false, true (the agent), \"agent\", \"tcmalloc\""}},
        ErrorCase{"MissingSuppressionsFile",
                  [](json& d) { d["suppressions"] = "no-such.json"; },
                  {"/suppressions: no such file:", "no-such.json",
                   "taken from the scenario's folder"}},
        ErrorCase{"FractionalRuns",
                  [](json& d) { d["runs"] = 2.5; },
                  {"/runs:", "whole number", "got the number 2.5"}},
        ErrorCase{"UnknownKeyWithSuggestion",
                  [](json& d) {
                    d.erase("warmup_runs");
                    d["warmup_run"] = 1;
                  },
                  {"/warmup_run: unknown key \"warmup_run\"; did you mean \"warmup_runs\"?"}},
        ErrorCase{"UnknownNestedKeyWithSuggestion",
                  [](json& d) { d["workload"]["http"]["steps"][1]["poll_intervall_s"] = 1; },
                  {"/workload/http/steps/1/poll_intervall_s: unknown key",
                   "did you mean \"poll_interval_s\"?"}},
        ErrorCase{"UnknownKeyListsTheKnownOnes",
                  [](json& d) { d["cooldown"]["zzz"] = 1; },
                  {"/cooldown/zzz: unknown key \"zzz\"; expected one of: max_s, settle_window_s, "
                   "settle_tolerance_pct"}},
        ErrorCase{"MissingTarget",
                  [](json& d) { d.erase("target"); },
                  {"/target: required: an object with \"spawn\"", "\"attach\""}},
        ErrorCase{"BothSpawnAndAttach",
                  [](json& d) {
                    d["target"]["attach"] = {{"pid", 12}};
                  },
                  {"/target: expected exactly one of \"spawn\" and \"attach\", got both"}},
        ErrorCase{"NeitherHttpNorCommand",
                  [](json& d) { d["workload"] = json::object(); },
                  {"/workload: expected exactly one of \"http\" and \"command\", got neither"}},
        ErrorCase{"BadSizeString",
                  [](json& d) { d["thresholds"]["rss_per_run"] = "256KB"; },
                  {"/thresholds/rss_per_run: expected a size", "unknown size unit \"KB\"",
                   "write \"KiB\""}},
        ErrorCase{"NegativeSize",
                  [](json& d) { d["thresholds"]["heap_per_run"] = -1; },
                  {"/thresholds/heap_per_run: expected a size", "got the number -1"}},
        ErrorCase{"MaxRunsTooSmall",
                  [](json& d) { d["max_runs"] = 4; },
                  {"/max_runs: expected at least runs + warmup_runs = 6, got 4"}},
        ErrorCase{"SampleRateOutOfRange",
                  [](json& d) { d["sample_hz"] = 500; },
                  {"/sample_hz: expected a number in (0, 100], got 500"}},
        ErrorCase{"BadJsonPointerSyntax",
                  [](json& d) { d["workload"]["http"]["steps"][1]["until"]["pointer"] = "status"; },
                  {"/workload/http/steps/1/until/pointer: expected a JSON Pointer (RFC 6901)",
                   "got \"status\""}},
        ErrorCase{"BadCapturePointer",
                  [](json& d) { d["workload"]["http"]["steps"][0]["capture"]["sid"] = "/a~2"; },
                  {"/workload/http/steps/0/capture/sid: expected a JSON Pointer"}},
        ErrorCase{
            "UnknownPlaceholder",
            [](json& d) { d["workload"]["http"]["steps"][1]["path"] = "/api/${session}"; },
            {"/workload/http/steps/1/path: unknown placeholder ${session}", "${sid}", "${PORT}"}},
        ErrorCase{"PlaceholderTypoGetsSuggestion",
                  [](json& d) { d["target"]["spawn"]["argv"][0] = "${BIM}/backtest_server"; },
                  {"/target/spawn/argv/0: unknown placeholder ${BIM}; did you mean ${BIN}?"}},
        ErrorCase{"CaptureUsedBeforeItIsCaptured",
                  [](json& d) { d["workload"]["http"]["steps"][0]["path"] = "/api/${sid}"; },
                  {"/workload/http/steps/0/path: unknown placeholder ${sid}"}},
        ErrorCase{"RunPlaceholderOutsideTheWorkload",
                  [](json& d) { d["target"]["spawn"]["argv"][1] = "${RUN}"; },
                  {"/target/spawn/argv/1: placeholder ${RUN}", "has no value here"}},
        ErrorCase{"MissingEnvironmentVariable",
                  [](json& d) { d["target"]["spawn"]["env"]["X"] = "${env:LEAKGATE_TEST_UNSET}"; },
                  {"/target/spawn/env/X: environment variable LEAKGATE_TEST_UNSET is not set"}},
        ErrorCase{"OutWithoutOutputFolder",
                  [](json&) {},
                  {"/target/spawn/argv/4: placeholder ${OUT}", "--out", "has no value here"},
                  WithoutOutDir()},
        ErrorCase{"MalformedPlaceholder",
                  [](json& d) { d["target"]["spawn"]["cwd"] = "${SCENARIO DIR}"; },
                  {"/target/spawn/cwd: malformed placeholder ${SCENARIO DIR}"}},
        ErrorCase{"WrongSchema",
                  [](json& d) { d["schema"] = "leakgate.scenario/2"; },
                  {"/schema: expected \"leakgate.scenario/1\"", "got \"leakgate.scenario/2\""}},
        ErrorCase{"MissingSchema",
                  [](json& d) { d.erase("schema"); },
                  {"/schema: required: \"leakgate.scenario/1\""}},
        ErrorCase{"TwoReadyProbes",
                  [](json& d) { d["target"]["spawn"]["ready"]["delay_s"] = 1; },
                  {"/target/spawn/ready: expected exactly one of \"http_get\", \"stdout_line\"",
                   "got 2"}},
        ErrorCase{"BadRegex",
                  [](json& d) {
                    d["target"]["spawn"]["ready"] = {{"stdout_regex", "listening on ("}};
                  },
                  {"/target/spawn/ready/stdout_regex: expected an ECMAScript regular expression"}},
        ErrorCase{
            "BadSignal",
            [](json& d) { d["target"]["spawn"]["stop_signal"] = "SIGFOO"; },
            {"/target/spawn/stop_signal: expected a signal name", "got a string (\"SIGFOO\")"}},
        ErrorCase{"EmptyArgv",
                  [](json& d) { d["target"]["spawn"]["argv"] = json::array(); },
                  {"/target/spawn/argv: expected a non-empty array of strings"}},
        ErrorCase{"StatusOutOfRange",
                  [](json& d) {
                    d["workload"]["http"]["steps"][0]["expect_status"] = {202, 999};
                  },
                  {"/workload/http/steps/0/expect_status/1: expected HTTP status codes",
                   "got the number 999"}},
        ErrorCase{"PollIntervalWithoutUntil",
                  [](json& d) { d["workload"]["http"]["steps"][0]["poll_interval_s"] = 1; },
                  {"/workload/http/steps/0/poll_interval_s: only meaningful with \"until\""}},
        ErrorCase{"JsonAndBody",
                  [](json& d) { d["workload"]["http"]["steps"][0]["body"] = "x"; },
                  {"/workload/http/steps/0: expected at most one of \"json\" and \"body\""}},
        ErrorCase{"PathWithoutSlash",
                  [](json& d) { d["workload"]["http"]["steps"][0]["path"] = "api/backtest"; },
                  {"/workload/http/steps/0/path: expected a request path starting with \"/\""}},
        ErrorCase{"BaseUrlNotHttp",
                  [](json& d) { d["workload"]["http"]["base_url"] = "127.0.0.1:${PORT}"; },
                  {"/workload/http/base_url: expected an http:// or https:// URL"}},
        ErrorCase{"EmptyUntilList",
                  [](json& d) { d["workload"]["http"]["steps"][1]["until"]["in"] = json::array(); },
                  {"/workload/http/steps/1/until/in: expected a non-empty array"}},
        ErrorCase{"ReservedCaptureName",
                  [](json& d) {
                    d["workload"]["http"]["steps"][0]["capture"] = {{"PORT", "/session_id"}};
                  },
                  {"/workload/http/steps/0/capture/PORT: the capture name \"PORT\" is reserved"}},
        ErrorCase{"NegativeCount",
                  [](json& d) { d["thresholds"]["fds"] = -2; },
                  {"/thresholds/fds: expected a whole number >= 0"}},
        ErrorCase{"SettleWindowLongerThanCooldown",
                  [](json& d) {
                    d["cooldown"] = {{"max_s", 1}, {"settle_window_s", 5}};
                  },
                  {"/cooldown/settle_window_s: expected at most max_s (1 s)"}},
        ErrorCase{"BadAttachPid",
                  [](json& d) { d["target"] = {{"attach", {{"pid", -3}}}}; },
                  {"/target/attach/pid: expected a process id"}},
        ErrorCase{"TargetNotAnObject",
                  [](json& d) { d["target"] = "server"; },
                  {"/target: expected an object with \"spawn\"", "got a string (\"server\")"}}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

TEST(ScenarioTest, ReportsEveryProblemAtOnce) {
  json document = DesignDocument();
  document["runs"] = 0;
  document["sample_hz"] = -1;
  document["thresholds"]["rss_total"] = "lots";
  auto scenario = LoadJson(document);
  ASSERT_FALSE(scenario);
  const std::string& message = scenario.error().message;
  EXPECT_THAT(message, HasSubstr("3 problems in the scenario"));
  EXPECT_THAT(message, HasSubstr(std::string(kFile) + ": /runs:"));
  EXPECT_THAT(message, HasSubstr(std::string(kFile) + ": /sample_hz:"));
  EXPECT_THAT(message, HasSubstr(std::string(kFile) + ": /thresholds/rss_total:"));
}

TEST(ScenarioTest, SyntaxErrorNamesFileLineAndColumn) {
  const std::string text = "{\n  \"schema\": \"leakgate.scenario/1\",\n  \"runs\": 5,,\n}\n";
  auto scenario = LoadScenarioFromText(text, "/s/broken.json", TestOptions());
  ASSERT_FALSE(scenario);
  EXPECT_EQ(scenario.error().code, ErrorCode::kParse);
  EXPECT_THAT(scenario.error().message, HasSubstr("/s/broken.json:3:13: invalid JSON: "));
  EXPECT_THAT(scenario.error().message, Not(HasSubstr("[json.exception")));
}

TEST(ScenarioTest, TopLevelMustBeAnObject) {
  auto scenario = LoadScenarioFromText("[1, 2]", "/s/list.json", TestOptions());
  ASSERT_FALSE(scenario);
  EXPECT_THAT(scenario.error().message,
              AllOf(HasSubstr("/s/list.json: /: expected a scenario object"), HasSubstr("array")));
}

TEST(ScenarioTest, MissingFileIsNotFound) {
  auto scenario = LoadScenario("/nonexistent/leakgate/none.json", TestOptions());
  ASSERT_FALSE(scenario);
  EXPECT_EQ(scenario.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(scenario.error().message, HasSubstr("/nonexistent/leakgate/none.json"));
}

TEST(ScenarioTest, LoadsFromAFileAndExpandsScenarioDir) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ("scenario-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path file = dir / "gate.json";
  std::ofstream(file) << kDesignExample;
  auto scenario = LoadScenario(file, TestOptions());
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  EXPECT_EQ(scenario->target.spawn->cwd, dir.lexically_normal().string());
  EXPECT_EQ(scenario->placeholders.values.at("SCENARIO_DIR"), dir.lexically_normal().string());
}

// --- --set and --runs
// ------------------------------------------------------------------------------

Result<Scenario> LoadWithOverrides(std::vector<std::string> overrides,
                                   std::optional<int> runs = std::nullopt) {
  LoadOptions options = TestOptions();
  options.overrides = std::move(overrides);
  options.runs = runs;
  return LoadScenarioFromText(kDesignExample, kFile, options);
}

TEST(ScenarioOverrideTest, SetsNumbersSizesNullsNestedPathsAndArrayElements) {
  auto scenario = LoadWithOverrides({"runs=8", "thresholds.rss_per_run=2MiB", "thresholds.fds=null",
                                     "cooldown.max_s=5", "target.spawn.argv.6=singleton",
                                     "workload.http.steps.1.timeout_s=120",
                                     "thresholds.peak_rss=64MiB", "heap_profile=true"});
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  EXPECT_EQ(scenario->runs, 8);
  EXPECT_EQ(scenario->thresholds.rss_per_run, 2 * 1024 * 1024);
  EXPECT_FALSE(scenario->thresholds.fds.has_value());
  EXPECT_EQ(scenario->thresholds.sockets, 0);
  EXPECT_DOUBLE_EQ(scenario->cooldown.max_s, 5);
  EXPECT_EQ(scenario->target.spawn->argv[6], "singleton");
  EXPECT_DOUBLE_EQ(scenario->workload.http->steps[1].timeout_s, 120);
  EXPECT_EQ(scenario->thresholds.peak_rss, 64 * 1024 * 1024);
  EXPECT_TRUE(scenario->heap_profile);
  // result.json shows the scenario that ran.
  EXPECT_EQ(scenario->json["thresholds"]["rss_per_run"], "2MiB");
  EXPECT_TRUE(scenario->json["thresholds"]["fds"].is_null());
  EXPECT_EQ(scenario->json["target"]["spawn"]["argv"][6], "singleton");
}

TEST(ScenarioTest, HeapProfileFormsChooseTheProfiler) {
  json document = DesignDocument();
  auto scenario = LoadJson(document);
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  EXPECT_FALSE(scenario->heap_profile.has_value());

  document["heap_profile"] = true;
  scenario = LoadJson(document);
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  ASSERT_TRUE(scenario->heap_profile.has_value());
  EXPECT_EQ(scenario->heap_profile->profiler, HeapProfileConfig::Profiler::kAgent);
  EXPECT_EQ(scenario->heap_profile->sample_bytes, 512 * 1024);
  EXPECT_EQ(scenario->heap_profile->signal, SIGUSR2);

  document["heap_profile"] = "tcmalloc";
  scenario = LoadJson(document);
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  EXPECT_EQ(scenario->heap_profile->profiler, HeapProfileConfig::Profiler::kTcmalloc);

  document["heap_profile"] = {{"profiler", "agent"}, {"sample", 0}, {"signal", 10}};
  scenario = LoadJson(document);
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  EXPECT_EQ(scenario->heap_profile->sample_bytes, 0);
  EXPECT_EQ(scenario->heap_profile->signal, 10);

  document["heap_profile"] = {{"sample", "64KiB"}};
  scenario = LoadJson(document);
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  EXPECT_EQ(scenario->heap_profile->sample_bytes, 64 * 1024);

  document["heap_profile"] = false;
  scenario = LoadJson(document);
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  EXPECT_FALSE(scenario->heap_profile.has_value());
}

TEST(ScenarioTest, SuppressionsPathIsTakenFromTheScenarioFolder) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("leakgate-scenario-supp-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "known.json") << R"({"schema":"leakgate.suppressions/1","suppressions":[]})";
  json document = DesignDocument();
  document["suppressions"] = "known.json";
  auto scenario = LoadScenarioFromText(document.dump(), dir / "s.json", TestOptions());
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  EXPECT_EQ(scenario->suppressions_file, (dir / "known.json").string());
  std::filesystem::remove_all(dir);
}

TEST(ScenarioOverrideTest, CreatesMissingObjectsAndTakesJsonValues) {
  json document;
  auto applied = ApplyOverride(document = json::object(), "thresholds.threads=3");
  ASSERT_TRUE(applied) << applied.error().ToString();
  EXPECT_EQ(document, json({{"thresholds", {{"threads", 3}}}}));
  ASSERT_TRUE(ApplyOverride(document, "name=\"quoted text\""));
  EXPECT_EQ(document["name"], "quoted text");
  ASSERT_TRUE(ApplyOverride(document, "name=plain text"));
  EXPECT_EQ(document["name"], "plain text");
  ASSERT_TRUE(ApplyOverride(document, "description="));
  EXPECT_EQ(document["description"], "");
  ASSERT_TRUE(ApplyOverride(document, "workload.command.argv=[\"/bin/sh\",\"-c\",\"x=1\"]"));
  EXPECT_EQ(document["workload"]["command"]["argv"], json({"/bin/sh", "-c", "x=1"}));
  ASSERT_TRUE(ApplyOverride(document, "workload.command.argv.2=y=2"));
  EXPECT_EQ(document["workload"]["command"]["argv"][2], "y=2");
}

struct BadOverride {
  std::string assignment;
  std::vector<std::string> expected;
};

class ScenarioBadOverrideTest : public ::testing::TestWithParam<BadOverride> {};

TEST_P(ScenarioBadOverrideTest, IsAClearError) {
  auto scenario = LoadWithOverrides({GetParam().assignment});
  ASSERT_FALSE(scenario);
  EXPECT_EQ(scenario.error().code, ErrorCode::kInvalidArgument);
  for (const auto& part : GetParam().expected) {
    EXPECT_THAT(scenario.error().message, HasSubstr(part));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Overrides, ScenarioBadOverrideTest,
    ::testing::Values(
        BadOverride{"thresholdz.rss_total=1MiB",
                    {"--set \"thresholdz.rss_total=1MiB\"", "unknown scenario field \"thresholdz\"",
                     "did you mean \"thresholds\"?"}},
        BadOverride{"nonsense=1", {"unknown scenario field \"nonsense\"", "expected one of:"}},
        BadOverride{"runs", {"expected KEY=VALUE"}}, BadOverride{"=3", {"expected KEY=VALUE"}},
        BadOverride{"thresholds..fds=1", {"empty segment"}},
        BadOverride{"target.spawn.argv.9=x",
                    {"\"target.spawn.argv\" is an array of 7 elements: expected an index 0..6, "
                     "got \"9\""}},
        BadOverride{"target.spawn.argv.first=x", {"expected an index 0..6, got \"first\""}},
        BadOverride{"runs.count=3", {"\"runs\" is the number 5, not an object or array"}},
        // Passes the top-level check; validation names the key and the --set that put it there.
        BadOverride{"thresholds.rss_per_runs=1MiB",
                    {kFile, "/thresholds/rss_per_runs: unknown key",
                     "did you mean \"rss_per_run\"?", "(from --set thresholds.rss_per_runs=1MiB)"}},
        BadOverride{"sample_hz=fast",
                    {"/sample_hz: expected a number in (0, 100], got a string (\"fast\")",
                     "(from --set sample_hz=fast)"}}));

TEST(ScenarioOverrideTest, RunsRaisesMaxRunsKeepingTheHeadroom) {
  auto more = LoadWithOverrides({}, 20);
  ASSERT_TRUE(more) << more.error().ToString();
  EXPECT_EQ(more->runs, 20);
  // The file allows 12 - 5 - 1 = 6 extra runs; --runs 20 keeps them.
  EXPECT_EQ(more->max_runs, 27);
  EXPECT_EQ(more->json["runs"], 20);

  auto fewer = LoadWithOverrides({}, 3);
  ASSERT_TRUE(fewer) << fewer.error().ToString();
  EXPECT_EQ(fewer->runs, 3);
  EXPECT_EQ(fewer->max_runs, 12);

  auto zero = LoadWithOverrides({}, 0);
  ASSERT_FALSE(zero);
  EXPECT_THAT(zero.error().message, HasSubstr("--runs 0: expected a whole number >= 1"));
}

TEST(ScenarioOverrideTest, ExplicitMaxRunsTooSmallNamesTheOverride) {
  auto scenario = LoadWithOverrides({"max_runs=3"});
  ASSERT_FALSE(scenario);
  EXPECT_THAT(scenario.error().message,
              HasSubstr("/max_runs: expected at least runs + warmup_runs = 6, got 3 (from --set "
                        "max_runs=3)"));
}

// --- placeholders
// ----------------------------------------------------------------------------------

PlaceholderValues Values() {
  PlaceholderValues values;
  values.values = {{"PORT", "8080"}, {"OUT", "/out"}};
  values.env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "HOME_DIR") return "/home/me";
    if (name == "TRICKY") return "a${b}c";
    return std::nullopt;
  };
  return values;
}

TEST(PlaceholderTest, SubstitutesValuesEnvironmentAndEscapes) {
  EXPECT_EQ(ExpandPlaceholders("http://h:${PORT}/x", Values()).value(), "http://h:8080/x");
  EXPECT_EQ(ExpandPlaceholders("${OUT}/${PORT}${PORT}", Values()).value(), "/out/80808080");
  EXPECT_EQ(ExpandPlaceholders("${env:HOME_DIR}/db", Values()).value(), "/home/me/db");
  EXPECT_EQ(ExpandPlaceholders("cost $5 and $${PORT}", Values()).value(), "cost $5 and ${PORT}");
  EXPECT_EQ(ExpandPlaceholders("trailing $", Values()).value(), "trailing $");
  EXPECT_EQ(ExpandPlaceholders("", Values()).value(), "");
}

TEST(PlaceholderTest, ReadsTheProcessEnvironmentByDefault) {
  ::setenv("LEAKGATE_SCENARIO_TEST_VAR", "from-env", 1);
  EXPECT_EQ(ExpandPlaceholders("${env:LEAKGATE_SCENARIO_TEST_VAR}", PlaceholderValues{}).value(),
            "from-env");
  ::unsetenv("LEAKGATE_SCENARIO_TEST_VAR");
  auto missing = ExpandPlaceholders("${env:LEAKGATE_SCENARIO_TEST_VAR}", PlaceholderValues{});
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message,
              HasSubstr("environment variable LEAKGATE_SCENARIO_TEST_VAR is not set"));
}

TEST(PlaceholderTest, DeferredNamesAndEscapesSurviveForTheLaterPass) {
  PlaceholderValues load = Values();
  load.deferred = {"sid", "RUN"};
  load.for_later_pass = true;
  const std::string first =
      ExpandPlaceholders("/a/${sid}/${RUN}/${PORT}/$${lit}/${env:TRICKY}", load).value();
  EXPECT_EQ(first, "/a/${sid}/${RUN}/8080/$${lit}/a$${b}c");

  PlaceholderValues run;
  run.values = {{"sid", "s1"}, {"RUN", "3"}};
  EXPECT_EQ(ExpandPlaceholders(first, run).value(), "/a/s1/3/8080/${lit}/a${b}c");
}

TEST(PlaceholderTest, RejectsUnknownMalformedAndUnterminated) {
  auto unknown = ExpandPlaceholders("${PROT}", Values());
  ASSERT_FALSE(unknown);
  EXPECT_THAT(unknown.error().message,
              AllOf(HasSubstr("unknown placeholder ${PROT}"), HasSubstr("did you mean ${PORT}?"),
                    HasSubstr("${OUT}")));
  auto malformed = ExpandPlaceholders("${1x}", Values());
  ASSERT_FALSE(malformed);
  EXPECT_THAT(malformed.error().message, HasSubstr("malformed placeholder ${1x}"));
  auto unterminated = ExpandPlaceholders("x ${PORT", Values());
  ASSERT_FALSE(unterminated);
  EXPECT_THAT(unterminated.error().message, HasSubstr("unterminated placeholder \"${PORT\""));
}

TEST(PlaceholderTest, ExpandsEveryStringOfAJsonBody) {
  const json body = {{"port", "${PORT}"},
                     {"count", 3},
                     {"list", {"${OUT}", 1, nullptr, {{"deep", "x${PORT}"}}}},
                     {"${PORT}", "key unchanged"}};
  auto expanded = ExpandPlaceholdersInJson(body, Values());
  ASSERT_TRUE(expanded) << expanded.error().ToString();
  EXPECT_EQ(*expanded, json({{"port", "8080"},
                             {"count", 3},
                             {"list", {"/out", 1, nullptr, {{"deep", "x8080"}}}},
                             {"${PORT}", "key unchanged"}}));
  auto failed = ExpandPlaceholdersInJson(json{{"a", {1, {{"b", "${nope}"}}}}}, Values());
  ASSERT_FALSE(failed);
  EXPECT_THAT(failed.error().message, HasSubstr("/a/1/b: unknown placeholder ${nope}"));
}

TEST(PlaceholderTest, OnePortPerScenarioWhenNoneIsGiven) {
  LoadOptions options = TestOptions();
  options.port.reset();
  auto scenario = LoadScenarioFromText(kDesignExample, kFile, options);
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  ASSERT_GT(scenario->port, 0);
  const std::string port = std::to_string(scenario->port);
  EXPECT_EQ(scenario->target.spawn->argv[2], port);
  EXPECT_EQ(scenario->target.spawn->ready.http_get, "http://127.0.0.1:" + port + "/healthz");
  EXPECT_EQ(scenario->workload.http->base_url, "http://127.0.0.1:" + port);
}

TEST(PlaceholderTest, JsonValueTextComparesStringsAndNumbersAsText) {
  EXPECT_EQ(JsonValueText(json("done")), "done");
  EXPECT_EQ(JsonValueText(json(3)), "3");
  EXPECT_EQ(JsonValueText(json(2.5)), "2.5");
  EXPECT_EQ(JsonValueText(json(true)), "true");
  EXPECT_EQ(JsonValueText(json(nullptr)), "null");
}

// --- sizes and ports
// -------------------------------------------------------------------------------

TEST(SizeTest, ParsesUnitsAndRejectsTheRest) {
  EXPECT_EQ(ParseSize("256KiB").value(), 262144);
  EXPECT_EQ(ParseSize("2MiB").value(), 2097152);
  EXPECT_EQ(ParseSize("2 MiB").value(), 2097152);
  EXPECT_EQ(ParseSize("1GiB").value(), 1073741824);
  EXPECT_EQ(ParseSize("1.5KiB").value(), 1536);
  EXPECT_EQ(ParseSize("4096B").value(), 4096);
  EXPECT_EQ(ParseSize("4096").value(), 4096);
  EXPECT_EQ(ParseSize(" 0 ").value(), 0);
  for (const char* bad : {"", "KiB", "-1KiB", "1.5", "1.5B", "1..5MiB", "12 parsecs", "0x10"}) {
    auto size = ParseSize(bad);
    EXPECT_FALSE(size) << bad;
    if (!size) {
      EXPECT_THAT(size.error().message, HasSubstr("B, KiB, MiB, GiB")) << bad;
    }
  }
  auto decimal = ParseSize("10MB");
  ASSERT_FALSE(decimal);
  EXPECT_THAT(decimal.error().message, HasSubstr("write \"MiB\""));
}

TEST(SizeTest, FormatsForPeople) {
  EXPECT_EQ(FormatSize(512), "512 B");
  EXPECT_EQ(FormatSize(262144), "256 KiB");
  EXPECT_EQ(FormatSize(1572864), "1.5 MiB");
  EXPECT_EQ(FormatSize(-2097152), "-2 MiB");
  EXPECT_EQ(FormatSize(3LL << 30), "3 GiB");
}

TEST(FreePortTest, ReturnsAPortThatCanBeBound) {
  auto port = FreePort();
  ASSERT_TRUE(port) << port.error().ToString();
  ASSERT_GT(*port, 0);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(*port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ::close(fd);
}

// --- the scenario files in scenarios/
// --------------------------------------------------------------

std::vector<std::filesystem::path> ShippedScenarios() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(LEAKGATE_SOURCE_DIR) / "scenarios")) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(ShippedScenarioTest, EveryScenarioFileLoads) {
  const auto files = ShippedScenarios();
  ASSERT_GE(files.size(), 7u);
  for (const auto& file : files) {
    auto scenario = LoadScenario(file, TestOptions());
    EXPECT_TRUE(scenario) << file << ": " << scenario.error().ToString();
  }
}

TEST(ShippedScenarioTest, ReferenceScenariosSwitchTheirFault) {
  const std::map<std::string, std::string> expected_faults = {
      {"reference-after", "none"},
      {"reference-before", "all"},
      {"reference-fault-singleton", "singleton"},
      {"reference-fault-no-cleanup", "no-cleanup"},
      {"reference-fault-unbatched-klines", "unbatched-klines"},
      {"reference-fault-unclosed-connection", "unclosed-connection"},
      {"reference-fault-loop-retain", "loop-retain"},
  };
  for (const auto& [name, fault] : expected_faults) {
    const auto file = std::filesystem::path(LEAKGATE_SOURCE_DIR) / "scenarios" / (name + ".json");
    auto scenario = LoadScenario(file, TestOptions());
    ASSERT_TRUE(scenario) << file << ": " << scenario.error().ToString();
    EXPECT_EQ(scenario->name, name);
    ASSERT_TRUE(scenario->target.spawn) << name;
    const auto& argv = scenario->target.spawn->argv;
    EXPECT_EQ(argv.front(), "/opt/leakgate/bin/backtest_server") << name;
    const auto faults = std::find(argv.begin(), argv.end(), "--faults");
    ASSERT_NE(faults, argv.end()) << name;
    ASSERT_NE(faults + 1, argv.end()) << name;
    EXPECT_EQ(*(faults + 1), fault) << name;
    EXPECT_THAT(argv, ::testing::Contains("/tmp/leakgate-out/backtest.db")) << name;
    ASSERT_TRUE(scenario->target.spawn->heap) << name;
    EXPECT_EQ(scenario->target.spawn->heap->metric, "backtest_heap_allocated_bytes") << name;
    ASSERT_TRUE(scenario->workload.http) << name;
    EXPECT_EQ(scenario->runs, 5) << name;
    EXPECT_EQ(scenario->warmup_runs, 1) << name;
    // The after gate has room for more runs: with the agent preloaded its RSS settles later.
    EXPECT_EQ(scenario->max_runs, name == "reference-after" ? 14 : 10) << name;
    EXPECT_EQ(scenario->thresholds.rss_per_run, 256 * 1024) << name;
    EXPECT_EQ(scenario->thresholds.heap_per_run, 64 * 1024) << name;
    EXPECT_EQ(scenario->thresholds.fds, 0) << name;
  }
}

// The reference scenarios read the heap from the service's /metrics: the sample names they use must
// be ones the service exports.
TEST(ShippedScenarioTest, HeapMetricsAreExportedByTheReferenceService) {
  const std::string server = std::string(LEAKGATE_BINARY_DIR) + "/bin/backtest_server";
  if (::access(server.c_str(), X_OK) != 0) GTEST_SKIP() << server << " is not built";
  auto scenario = LoadScenario(
      std::filesystem::path(LEAKGATE_SOURCE_DIR) / "scenarios" / "reference-after.json",
      TestOptions());
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  auto port = FreePort();
  ASSERT_TRUE(port);
  const std::string dir = ::testing::TempDir() + "/scenario-metrics-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::vector<std::string> args = {
      server, "--host", "127.0.0.1", "--port", std::to_string(*port), "--db", dir + "/backtest.db"};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, server.c_str(), &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);

  httplib::Client client("127.0.0.1", *port);
  std::string metrics;
  for (int attempt = 0; attempt < 200 && metrics.empty(); ++attempt) {
    if (auto response = client.Get("/metrics"); response && response->status == 200) {
      metrics = response->body;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  client.stop();
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(metrics.empty()) << "the service never answered /metrics";
  const auto& heap = *scenario->target.spawn->heap;
  EXPECT_THAT(metrics, HasSubstr("\n" + heap.metric + " "));
  EXPECT_THAT(metrics, HasSubstr("\n" + heap.cached_metric + " "));
}

}  // namespace
}  // namespace leakgate::harness
