// Reports rendered from a result document (result.json, schema "leakgate.result/1"): the Markdown
// verification table a person reads in a pull request (English or Chinese headings) and JUnit XML for
// a CI test view. Both work from the JSON alone, so a result written by any leakgate version that
// keeps the schema can be rendered later, elsewhere.
// Pure functions apart from ReadResultFile; thread-safe.
#ifndef LEAKGATE_REPORTS_REPORT_H_
#define LEAKGATE_REPORTS_REPORT_H_

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace leakgate::reports {

// Reads and parses a result file. kNotFound when it does not exist, kIo when it cannot be read,
// kParse (with the parser's position) when it is not JSON. The schema is checked by the renderers.
Result<nlohmann::json> ReadResultFile(const std::string& path);

// Checks every field the renderers read (schema "leakgate.result/1", baseline, runs, checks,
// growth, heap_profiles), naming the JSON path of the first problem: kInvalidArgument. Every renderer
// (Markdown, JUnit, HTML, comparison) calls it first.
Result<void> ValidateResult(const nlohmann::json& result);

// The Markdown report: title with the scenario and verdict, the verification table (baseline, then
// each run during and after its cooldown), the checks, what grew and the heap at the peak.
// `lang` is "en" or "zh" (the incident document's headings; check details stay in English).
// kInvalidArgument naming the JSON path when a required field is missing or of the wrong type, the
// schema is not "leakgate.result/1", or `lang` is unknown.
Result<std::string> RenderMarkdownReport(const nlohmann::json& result, std::string_view lang);

// JUnit XML: one test case per check (a failure carries observed value and threshold, an
// inconclusive check is skipped); a result with verdict "error" adds a test case "target" with an
// <error>. Errors as for RenderMarkdownReport.
Result<std::string> RenderJunitReport(const nlohmann::json& result);

}  // namespace leakgate::reports

#endif  // LEAKGATE_REPORTS_REPORT_H_
