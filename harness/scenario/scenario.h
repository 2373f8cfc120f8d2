// Scenario files: which target leakgate measures, how it drives it, how long it measures, and the
// thresholds it judges against (format "leakgate.scenario/1", described in scenarios/README.md).
//
// `LoadScenario` reads a JSON file (comments allowed), applies `--set` and `--runs` overrides to
// the JSON, expands the load-time placeholders (${PORT}, ${OUT}, ${BIN}, ${SCENARIO_DIR},
// ${env:NAME}) and validates strictly into a `Scenario`: unknown keys, wrong types and out-of-range
// values are errors, each naming the file, the JSON path and what was expected. Run-time
// placeholders (${RUN} and values captured by earlier HTTP steps) are left in the workload's
// strings for the workload to expand. Everything here returns plain values owned by the caller. The
// functions are thread-safe, except that ${env:NAME} reads the process environment unless a lookup
// is supplied.
#ifndef LEAKGATE_HARNESS_SCENARIO_SCENARIO_H_
#define LEAKGATE_HARNESS_SCENARIO_SCENARIO_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "harness/analyze/analysis.h"
#include "base/error.h"
#include "base/ports.h"
#include "base/units.h"

namespace leakgate::harness {

inline constexpr std::string_view kScenarioSchema = "leakgate.scenario/1";

// -------------------------------------------------------------------------------------------------
// Sizes, ports and placeholders.

// The values `ExpandPlaceholders` substitutes for ${NAME}.
//
// Syntax: ${NAME} with NAME a letter or '_' followed by letters, digits or '_'; ${env:NAME} reads
// an environment variable; "$${" is a literal "${". A '$' not followed by '{' is literal.
struct PlaceholderValues {
  // NAME -> text (PORT, OUT, BIN, SCENARIO_DIR, RUN, captured values...).
  std::map<std::string, std::string> values;
  // Names left as "${NAME}" for a later pass (run-time values such as RUN and captures).
  std::set<std::string> deferred;
  // The text will be expanded again: "$${" escapes are kept as they are, and a "${" inside a
  // substituted value is written as "$${" so the later pass leaves it alone.
  bool for_later_pass = false;
  // Looks up ${env:NAME}; std::nullopt means unset. Empty: the process environment (getenv).
  std::function<std::optional<std::string>(const std::string&)> env;
};

// Substitutes every placeholder of `text`. Fails (kInvalidArgument) on an unknown placeholder
// (naming it and the known ones), an unset environment variable (naming it) or a malformed "${...".
// The message names no file or JSON path: callers add them.
Result<std::string> ExpandPlaceholders(std::string_view text, const PlaceholderValues& values);

// The same for every string value inside `value` (object keys are left alone). A failure's message
// starts with the JSON Pointer of the offending string relative to `value` ("/params/name: ...").
Result<nlohmann::json> ExpandPlaceholdersInJson(const nlohmann::json& value,
                                                const PlaceholderValues& values);

// The JSON text of `value` as the workload compares it against an "in" list: a string is its own
// text (unquoted), anything else its compact JSON ("3", "true", "null", "2.5").
std::string JsonValueText(const nlohmann::json& value);

// -------------------------------------------------------------------------------------------------
// The scenario, as typed values. Defaults are those of the file format.

// How leakgate knows a spawned target is ready: exactly one of the four ways.
struct ReadyProbe {
  enum class Kind { kHttpGet, kStdoutLine, kStdoutRegex, kDelay };
  Kind kind = Kind::kDelay;
  std::string http_get;     // kHttpGet: this URL answers 2xx
  std::string stdout_line;  // kStdoutLine: a line of stdout contains this text
  std::string
      stdout_regex;       // kStdoutRegex: a line of stdout matches (std::regex_search, ECMAScript)
  double delay_s = 0;     // kDelay: ready after this many seconds
  double timeout_s = 10;  // not ready within this: the target failed (exit 3)
};

// Where exact heap figures of the target come from when it reports them itself (Prometheus text).
struct HeapMetricsSource {
  std::string metrics_url;    // "http://127.0.0.1:${PORT}/metrics"
  std::string metric;         // sample whose value is the exact bytes in use
  std::string cached_metric;  // optional: sample whose value is the allocator's free cached bytes
};

struct SpawnTargetConfig {
  std::vector<std::string> argv;           // non-empty; argv[0] searched on PATH when it has no '/'
  std::map<std::string, std::string> env;  // added to (or replacing in) leakgate's environment
  std::string cwd;                         // empty: leakgate's working directory
  ReadyProbe ready;
  int stop_signal = 15;        // signal number ("SIGTERM", "TERM" or a number in the file)
  double stop_timeout_s = 10;  // then SIGKILL to the process group
  std::optional<HeapMetricsSource> heap;
  bool include_children = false;  // sample the target's descendants as well
};

struct AttachTargetConfig {
  int pid = 0;  // > 0 (an integer, or a string expanding to one, such as "${env:TARGET_PID}")
  std::optional<HeapMetricsSource> heap;
  bool include_children = false;
};

// Exactly one of `spawn` and `attach` is set.
struct TargetConfig {
  std::optional<SpawnTargetConfig> spawn;
  std::optional<AttachTargetConfig> attach;
};

// A JSON Pointer into a response and the values (as JsonValueText) that satisfy it.
struct JsonValueMatch {
  std::string pointer;          // RFC 6901, validated
  std::vector<std::string> in;  // non-empty
};

struct HttpStep {
  std::string name;                            // label for messages; empty: "METHOD PATH"
  std::string method = "GET";                  // GET POST PUT PATCH DELETE HEAD OPTIONS
  std::string path;                            // starts with '/'; may hold ${capture} and ${RUN}
  std::optional<nlohmann::json> json;          // request body sent as application/json
  std::optional<std::string> body;             // raw request body (not with `json`)
  std::map<std::string, std::string> headers;  // added to the workload's headers
  std::vector<int> expect_status;              // empty: any 2xx
  std::map<std::string, std::string> capture;  // placeholder name -> JSON Pointer into the response
  std::optional<JsonValueMatch> until;         // poll this step until the value is in the list
  std::optional<JsonValueMatch> expect;        // the final response's value must be in the list
  double poll_interval_s = 0.1;                // between polls of `until`
  double timeout_s = 60;                       // per request; with `until`, for all polls together
};

struct HttpWorkloadConfig {
  std::string base_url;                        // http[s]://HOST[:PORT][/PREFIX]
  std::map<std::string, std::string> headers;  // sent with every step
  std::vector<HttpStep> steps;                 // non-empty
};

struct CommandWorkloadConfig {
  std::vector<std::string> argv;           // non-empty; may hold ${RUN}
  double timeout_s = 60;                   // then the command's process group is killed
  std::map<std::string, std::string> env;  // added to (or replacing in) leakgate's environment
  std::string cwd;                         // empty: leakgate's working directory
  std::vector<int> expect_exit = {0};      // exit statuses that count as success
};

// Exactly one of `http` and `command` is set.
struct WorkloadConfig {
  std::optional<HttpWorkloadConfig> http;
  std::optional<CommandWorkloadConfig> command;
};

struct CooldownConfig {
  double max_s = 30;           // longest wait after a run; 0: no cooldown
  double settle_window_s = 1;  // CPU measured over this window to decide it has settled
  double settle_tolerance_pct =
      1;  // settled: window CPU within baseline + this many points of a core
};

// Heap profiles between runs ("heap_profile" in the file): `true` or "agent" is leakgate's sampling
// agent (cheap enough to leave on), "tcmalloc" gperftools' exact heap profiler (about 17 us per
// allocation), or an object {"profiler": "agent"|"tcmalloc", "sample": SIZE (agent: one sample per
// SIZE allocated; 0 = every allocation), "signal": N (the signal that asks for a dump)}.
struct HeapProfileConfig {
  enum class Profiler { kAgent, kTcmalloc };
  Profiler profiler = Profiler::kAgent;
  int64_t sample_bytes = 512 * 1024;
  int signal = 12;  // SIGUSR2
};

// "agent", "tcmalloc".
std::string_view ProfilerName(HeapProfileConfig::Profiler profiler);

struct Scenario {
  std::string name;            // "name" in the file; default: the file's stem
  std::string description;     // optional free text
  std::filesystem::path file;  // absolute path of the scenario file
  TargetConfig target;
  WorkloadConfig workload;
  int runs = 5;           // judged runs (>= 1)
  int warmup_runs = 1;    // measured, not judged (>= 0)
  int max_runs = 12;      // all runs, warm-up included, when the verdict needs more (default
                          // 2 * (runs + warmup_runs))
  double baseline_s = 2;  // idle window before the first run (> 0)
  double sample_hz = 10;  // sampling rate, in (0, 100]
  CooldownConfig cooldown;
  // Heap profiles after the warm-up and after each judged run, diffed by allocation site; nullopt
  // when off (the default, `false` in the file). Needs a spawned target.
  std::optional<HeapProfileConfig> heap_profile;
  // "cpu_profile": true: a gperftools CPU profile of each cooldown (spawned native targets).
  bool cpu_profile = false;
  // "suppressions": a file of known growth (harness/suppressions.h), absolute; "" when none.
  std::string suppressions_file;
  // The analysis's thresholds (harness/analysis.h), read from "thresholds": an absent key keeps the
  // default, null turns the check off; sizes in bytes.
  Thresholds thresholds;

  int port = 0;         // the value of ${PORT}
  std::string out_dir;  // the value of ${OUT} (absolute; empty when none was given)
  std::string bin_dir;  // the value of ${BIN}
  // The load-time values (PORT, OUT, BIN, SCENARIO_DIR) for workloads and later expansions.
  PlaceholderValues placeholders;
  // The file's JSON after --set and --runs, placeholders not expanded: result.json's "scenario".
  // Its "name" is the effective one (the file's stem when the file has none).
  nlohmann::json json;
};

struct LoadOptions {
  std::vector<std::string> overrides;  // "dotted.path=VALUE" from --set, applied in order
  std::optional<int> runs;             // --runs N
  std::string out_dir;                 // ${OUT}; empty: a scenario using ${OUT} is an error
  std::string bin_dir;                 // ${BIN}; empty: the folder of the running program
  std::optional<int> port;             // ${PORT}; empty: FreePort() when the scenario uses ${PORT}
  // ${env:NAME} lookup; empty: the process environment.
  std::function<std::optional<std::string>(const std::string&)> env;
};

// Reads, overrides, expands and validates a scenario file. Errors: kNotFound / kIo when the file
// cannot be read; kParse for invalid JSON ("FILE:LINE:COLUMN: ..."); kInvalidArgument for a bad
// override or an invalid scenario, one line per problem, each "FILE: /json/path: what was wrong and
// what was expected" (with "(from --set ...)" when an override put the value there).
Result<Scenario> LoadScenario(const std::filesystem::path& path, const LoadOptions& options = {});

// The same for text already in memory; `path` names it in messages and gives ${SCENARIO_DIR}.
Result<Scenario> LoadScenarioFromText(std::string_view text, const std::filesystem::path& path,
                                      const LoadOptions& options = {});

// Applies one "dotted.path=VALUE" to `document`. VALUE is taken as JSON when it parses as JSON
// (number, null, true, array, "quoted string"), else as a plain string. A segment addresses an
// object key (missing keys and objects are created) or, when numeric, an array element (which must
// exist). Errors (kInvalidArgument) name the assignment and the segment that could not be
// addressed.
Result<void> ApplyOverride(nlohmann::json& document, std::string_view assignment);

}  // namespace leakgate::harness

#endif  // LEAKGATE_HARNESS_SCENARIO_SCENARIO_H_
