// leakgate: the leak-regression gate.
//   leakgate run SCENARIO.json [--out DIR] [--runs N] [--set KEY=VALUE]... [--pid PID]
//                [--suppressions FILE] [--quiet]
//   leakgate sites REFERENCE.heap LATER.heap... [--suppressions FILE] [--all]
//     (what grew between heap profiles, by allocation site)
//   leakgate report RESULT.json --format md|html|junit|console [--lang en|zh] [--out FILE]
//     (the Markdown verification table, the HTML report with charts or JUnit XML of a result, on
//     stdout or into FILE)
//   leakgate compare BEFORE.json AFTER.json [--lang en|zh] [--out DIR]
//     (the before/after comparison of two results as Markdown on stdout; with --out also
//     DIR/compare.md and DIR/compare.html. Exit 0 when it shows the fix, 1 when it does not,
//     2 on a usage or input error)
// Exit codes: 0 no drift; 1 drift over a threshold; 2 usage or scenario error; 3 the target failed;
// 4 inconclusive after the maximum number of runs.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "base/clock.h"
#include "harness/profile/heap_profile.h"
#include "harness/profile/heap_sites.h"
#include "harness/sample/proc_reader.h"
#include "reports/compare.h"
#include "reports/console.h"
#include "reports/html_report.h"
#include "reports/report.h"
#include "harness/gate/result_writer.h"
#include "harness/gate/runner.h"
#include "harness/gate/scenario_gate.h"
#include "harness/scenario/scenario.h"
#include "harness/scenario/suppressions.h"
#include "harness/profile/symbolizer.h"
#include "harness/drive/target.h"

namespace leakgate::harness {
namespace {

using reports::CompareResults;
using reports::ReadResultFile;
using reports::RenderComparisonHtml;
using reports::RenderComparisonMarkdown;
using reports::RenderConsoleReport;
using reports::RenderHtmlReport;
using reports::RenderJunitReport;
using reports::RenderMarkdownReport;

struct RunArguments {
  std::string scenario;
  std::string out;
  std::optional<int> runs;
  std::vector<std::string> sets;
  std::optional<int> pid;
  std::string suppressions;
  bool quiet = false;
};

struct SitesArguments {
  std::vector<std::string> profiles;
  std::string suppressions;
  bool all = false;
};

struct CompareArguments {
  std::string before;
  std::string after;
  std::string lang = "en";
  std::string out;
};

struct ReportArguments {
  std::string result;
  std::string format;
  std::string lang = "en";
  std::string out;
};

bool ProgressWanted(bool quiet) {
  if (quiet) return false;
  const char* ci = std::getenv("CI");
  if (ci != nullptr && *ci != '\0' && std::string(ci) != "false" && std::string(ci) != "0") {
    return false;
  }
  return isatty(STDERR_FILENO) != 0;
}

int Run(const RunArguments& args) {
  std::error_code ec;
  LoadOptions load;
  load.overrides = args.sets;
  if (args.pid) {
    // Attach instead of spawning: the scenario's workload and thresholds stay as they are.
    load.overrides.push_back("target={\"attach\":{\"pid\":" + std::to_string(*args.pid) + "}}");
    // A running process cannot be given a preloaded profiler: attribution then comes from /proc
    // alone (fds, sockets, threads, idle CPU by thread).
    load.overrides.push_back("heap_profile=false");
    load.overrides.push_back("cpu_profile=false");
  }
  if (!args.suppressions.empty()) {
    load.overrides.push_back(
        "suppressions=" +
        nlohmann::json(std::filesystem::absolute(args.suppressions, ec).string()).dump());
  }
  load.runs = args.runs;
  std::filesystem::path out = args.out;
  if (out.empty()) {
    out = std::filesystem::path("leakgate-out") /
          std::filesystem::path(args.scenario).stem();
  }
  out = std::filesystem::absolute(out, ec);
  load.out_dir = out.string();
  auto scenario = LoadScenario(args.scenario, load);
  if (!scenario) {
    std::cerr << "leakgate: " << scenario.error().message << "\n";
    return kExitUsage;
  }
  std::filesystem::create_directories(out, ec);
  if (ec) {
    std::cerr << "leakgate: cannot create the output folder " << out << ": " << ec.message() << "\n";
    return kExitUsage;
  }

  // SIGINT, SIGTERM, SIGHUP: the targets are killed at once, the gate ends between two samples
  // and its partial result and reports are written; then leakgate ends by that signal.
  InstallTerminationHandlers(TerminationPolicy::kRecord);
  (void)BecomeChildSubreaper();  // best effort: lets leakgate reap what a dying target left behind

  ScenarioRunOptions options;
  options.out_dir = out.string();
  if (ProgressWanted(args.quiet)) {
    options.progress = [](std::string_view line) { std::cerr << "leakgate: " << line << "\n"; };
  }
  const nlohmann::json environment = EnvironmentJson();
  GateResult result = RunScenario(*scenario, options, Clock::Real(), ProcReader::Real());
  if (const int sig = TerminationSignal(); sig != 0 && result.interrupted.empty()) {
    MarkInterrupted(result, sig, "after the gate");
  }

  const nlohmann::json written_result = GateResultToJson(result, scenario->json, environment);
  const std::string path = (out / "result.json").string();
  if (auto written = WriteFileAtomically(
          path, written_result.dump(2) + "\n");
      !written) {
    std::cerr << "leakgate: " << written.error().message << "\n";
  }
  // The reports for people and CI systems beside it (DESIGN.md: --out holds them).
  for (const auto& [file, report] :
       {std::pair<std::string, Result<std::string>>{"report.md", RenderMarkdownReport(written_result, "en")},
        std::pair<std::string, Result<std::string>>{"report.html", RenderHtmlReport(written_result)},
        std::pair<std::string, Result<std::string>>{"junit.xml", RenderJunitReport(written_result)}}) {
    if (!report) {
      std::cerr << "leakgate: " << file << " not written: " << report.error().message << "\n";
      continue;
    }
    if (auto ok = WriteFileAtomically((out / file).string(), *report); !ok) {
      std::cerr << "leakgate: " << ok.error().message << "\n";
    }
  }
  std::cout << "leakgate: " << scenario->name << " (" << result.runs.size() << " runs, "
            << static_cast<int>(result.wall_s + 0.5) << " s)\n"
            << RenderConsoleReport(written_result) << "result: " << path << "\n";
  if (const int sig = TerminationSignal(); sig != 0) {
    std::cout.flush();
    RaiseTerminationSignal();  // ends the process as the signal would have (130 for SIGINT)
    return 128 + sig;
  }
  return result.exit_code;
}

// Prints the sites whose in-use bytes grew across heap profiles of one process.
int Sites(const SitesArguments& args) {
  Suppressions suppressions;
  if (!args.suppressions.empty()) {
    auto loaded = LoadSuppressions(args.suppressions);
    if (!loaded) {
      std::cerr << "leakgate: " << loaded.error().message << "\n";
      return kExitUsage;
    }
    suppressions = std::move(*loaded);
  }
  std::vector<HeapProfile> profiles;
  for (const std::string& path : args.profiles) {
    auto profile = ReadHeapProfile(path);
    if (!profile) {
      std::cerr << "leakgate: " << profile.error().message << "\n";
      return kExitUsage;
    }
    profiles.push_back(std::move(*profile));
  }
  Addr2lineSymbolizer symbolizer;
  SiteGrowthOptions options;
  if (args.all) options.floor_bytes = 1;
  auto report = SiteGrowthAcross(profiles, symbolizer, suppressions, options);
  if (!report) {
    std::cerr << "leakgate: " << report.error().message << "\n";
    return kExitUsage;
  }
  for (const std::string& note : report->notes) std::cout << "note: " << note << "\n";
  int shown = 0;
  for (const SiteGrowth& site : report->sites) {
    if (!site.growing && site.suppressed.empty() && !args.all) continue;
    ++shown;
    std::cout << (site.suppressed.empty() ? (site.growing ? "GROWING " : "        ") : "SUPPRESSED ")
              << FormatSize(static_cast<int64_t>(site.per_run)) << "/profile, total "
              << FormatSize(static_cast<int64_t>(site.total)) << "  " << site.site.signature
              << "  [" << site.site.id << "]\n";
    if (!site.suppressed.empty()) std::cout << "    suppressed: " << site.suppressed << "\n";
    for (const std::string& frame : site.site.stack) std::cout << "    " << frame << "\n";
  }
  if (shown == 0) {
    std::cout << "no allocation site grew across the " << profiles.size() << " profiles"
              << (report->sampled ? " (sampled: one sample per " +
                                        FormatSize(report->sample_period) + ")"
                                  : std::string())
              << "\n";
  }
  return kExitPass;
}

// Renders a result file as Markdown, HTML or JUnit XML.
int Report(const ReportArguments& args) {
  auto result = ReadResultFile(args.result);
  if (!result) {
    std::cerr << "leakgate: " << result.error().message << "\n";
    return kExitUsage;
  }
  auto text = args.format == "junit"     ? RenderJunitReport(*result)
              : args.format == "html"    ? RenderHtmlReport(*result)
              : args.format == "console" ? Result<std::string>(RenderConsoleReport(*result))
                                         : RenderMarkdownReport(*result, args.lang);
  if (!text) {
    std::cerr << "leakgate: " << args.result << ": " << text.error().message << "\n";
    return kExitUsage;
  }
  if (args.out.empty()) {
    std::cout << *text;
    return kExitPass;
  }
  if (auto written = WriteFileAtomically(args.out, *text); !written) {
    std::cerr << "leakgate: " << written.error().message << "\n";
    return kExitUsage;
  }
  return kExitPass;
}

// Compares the result of a gate before a fix with one after it: exit 0 when the comparison shows
// the fix, 1 when it does not, 2 when an input cannot be read or is not a result.
int Compare(const CompareArguments& args) {
  auto before = ReadResultFile(args.before);
  if (!before) {
    std::cerr << "leakgate: before: " << before.error().message << "\n";
    return kExitUsage;
  }
  auto after = ReadResultFile(args.after);
  if (!after) {
    std::cerr << "leakgate: after: " << after.error().message << "\n";
    return kExitUsage;
  }
  auto comparison = CompareResults(*before, *after);
  if (!comparison) {
    // The message names the role and the JSON path ("after result: /runs/3/after/fds is ..."):
    // the file is added here.
    const std::string& message = comparison.error().message;
    std::cerr << "leakgate: " << (message.starts_with("after") ? args.after : args.before) << ": "
              << message << "\n";
    return kExitUsage;
  }
  auto markdown = RenderComparisonMarkdown(*comparison, args.lang);
  if (!markdown) {
    std::cerr << "leakgate: " << markdown.error().message << "\n";
    return kExitUsage;
  }
  std::cout << *markdown;
  if (!args.out.empty()) {
    auto html = RenderComparisonHtml(*comparison, *before, *after);
    if (!html) {
      const std::string& message = html.error().message;
      std::cerr << "leakgate: " << (message.starts_with("after") ? args.after : args.before)
                << ": " << message << "\n";
      return kExitUsage;
    }
    std::error_code ec;
    const std::filesystem::path out = std::filesystem::absolute(args.out, ec);
    std::filesystem::create_directories(out, ec);
    if (ec) {
      std::cerr << "leakgate: cannot create the output folder " << out << ": " << ec.message()
                << "\n";
      return kExitUsage;
    }
    for (const auto& [file, text] : {std::pair<std::string, const std::string*>{"compare.md", &*markdown},
                                     std::pair<std::string, const std::string*>{"compare.html", &*html}}) {
      if (auto written = WriteFileAtomically((out / file).string(), *text); !written) {
        std::cerr << "leakgate: " << written.error().message << "\n";
        return kExitUsage;
      }
    }
    std::cout << "\ncomparison: " << (out / "compare.md").string() << "\n"
              << "comparison page: " << (out / "compare.html").string() << "\n";
  }
  return comparison->fixed ? kExitPass : kExitDrift;
}

int Main(int argc, char** argv) {
  CLI::App app{"leakgate: runs a workload N times against a target and fails when anything drifts"};
  app.require_subcommand(1);
  RunArguments run_args;
  CLI::App* run = app.add_subcommand("run", "run a scenario and decide");
  run->add_option("scenario", run_args.scenario, "scenario file (JSON)")->required();
  run->add_option("--out", run_args.out, "output folder (default: leakgate-out/SCENARIO)");
  run->add_option("--runs", run_args.runs, "judged runs (overrides the scenario's runs)")
      ->check(CLI::PositiveNumber);
  run->add_option("--set", run_args.sets, "override a scenario field: KEY=VALUE (dotted path)");
  run->add_option("--pid", run_args.pid,
                  "attach to this running process instead of the scenario's target (heap and CPU "
                  "profiles, which need a spawned target, are off)")
      ->check(CLI::PositiveNumber);
  run->add_option("--suppressions", run_args.suppressions,
                  "file of known growth (overrides the scenario's suppressions)");
  run->add_flag("--quiet", run_args.quiet, "no progress on stderr");
  SitesArguments sites_args;
  CLI::App* sites = app.add_subcommand(
      "sites", "what grew between heap profiles of one process, by allocation site");
  sites->add_option("profiles", sites_args.profiles,
                    "heap profiles: the reference first, then later ones (at least two)")
      ->required()
      ->expected(2, 1000);
  sites->add_option("--suppressions", sites_args.suppressions, "file of known growth");
  sites->add_flag("--all", sites_args.all, "list every site, growing or not");
  ReportArguments report_args;
  CLI::App* report = app.add_subcommand(
      "report", "render a result file as a Markdown verification table, an HTML report or JUnit XML");
  report->add_option("result", report_args.result, "result file (result.json)")->required();
  report->add_option("--format", report_args.format,
                     "md (Markdown), html (self-contained page with charts), junit, or console "
                     "(the table leakgate run prints)")
      ->required()
      ->check(CLI::IsMember({"md", "html", "junit", "console"}));
  report->add_option("--lang", report_args.lang, "headings of the Markdown report: en or zh")
      ->check(CLI::IsMember({"en", "zh"}));
  report->add_option("--out", report_args.out, "write here (atomically) instead of stdout");
  CompareArguments compare_args;
  CLI::App* compare = app.add_subcommand(
      "compare", "compare the results of a gate before and after a fix (exit 0: the fix is shown)");
  compare->add_option("before", compare_args.before, "result.json of the gate before the fix")
      ->required();
  compare->add_option("after", compare_args.after, "result.json of the gate after the fix")
      ->required();
  compare->add_option("--lang", compare_args.lang, "language of the Markdown: en or zh")
      ->check(CLI::IsMember({"en", "zh"}));
  compare->add_option("--out", compare_args.out,
                      "also write compare.md and compare.html (atomically) into this folder");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  if (*run) return Run(run_args);
  if (*sites) return Sites(sites_args);
  if (*report) return Report(report_args);
  if (*compare) return Compare(compare_args);
  return kExitUsage;
}

}  // namespace
}  // namespace leakgate::harness

int main(int argc, char** argv) { return leakgate::harness::Main(argc, argv); }
